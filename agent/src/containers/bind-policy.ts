/**
 * Bind sources a machine's containers may not use. A netns machine shares its host's
 * filesystem with the control plane, so `-v /root/.config/flotilla:/x` would hand a container
 * the admin token and the CA key: the provisioner gives such an agent the control plane's paths
 * (`--deny-bind`) and every bind source is checked against them, after resolving symlinks.
 */
import { realpath } from "node:fs/promises";
import { basename, dirname, join, posix } from "node:path";
import { InvalidError } from "@flotilla/core";

/** The real path of `p`: symlinks resolved in the part that exists, the rest appended. */
export async function resolveExisting(p: string): Promise<string> {
  const missing: string[] = [];
  let at = posix.normalize(p);
  for (;;) {
    try {
      return join(await realpath(at), ...missing.reverse());
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== "ENOENT" && code !== "ENOTDIR") || at === "/") throw e;
      missing.push(basename(at));
      at = dirname(at);
    }
  }
}

const within = (path: string, dir: string) => dir === "/" || path === dir || path.startsWith(`${dir}/`);

/**
 * Returns the source with symlinks resolved, which is what must be mounted (a link swapped in
 * after this check would otherwise point the mount elsewhere). Throws when the source is a
 * denied path, inside one, or a directory holding one.
 */
export async function checkBindSource(source: string, denied: readonly string[]): Promise<string> {
  const real = await resolveExisting(source);
  for (const d of denied) {
    const deniedReal = await resolveExisting(d);
    if (within(real, deniedReal) || within(deniedReal, real)) {
      const shown = real === source ? source : `${source} (${real})`;
      throw new InvalidError(
        `bind source ${shown} is refused on this machine: it shares the host with the Flotilla control plane, and ${deniedReal} holds its keys, tokens or data`,
        { field: "Binds" },
      );
    }
  }
  return real;
}
