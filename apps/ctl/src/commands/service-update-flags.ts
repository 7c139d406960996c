// The `service update` flags that edit one entry of a list or map (`--env-add`, `--mount-rm`):
// the API replaces lists whole, so ctl reads the current spec, applies the edits and sends the
// resulting list.
import { parseMountFlag, parsePublish, parseSecretFlag } from "@flotilla/core";
import type { ServiceSpec, ServiceUpdateRequest } from "@flotilla/api-types";
import { CtlError } from "../client";
import { keyValues, parse } from "./service-flags";

export interface UpdateListFlags {
  envAdd?: string[];
  envRm?: string[];
  mountAdd?: string[];
  mountRm?: string[];
  publishAdd?: string[];
  publishRm?: string[];
  secretAdd?: string[];
  secretRm?: string[];
  configAdd?: string[];
  configRm?: string[];
}

/** Whether any flag edits a list of the current spec (so ctl must read it first). */
export function editsLists(o: UpdateListFlags): boolean {
  return !!(
    o.envAdd ||
    o.envRm ||
    o.mountAdd ||
    o.mountRm ||
    o.publishAdd ||
    o.publishRm ||
    o.secretAdd ||
    o.secretRm ||
    o.configAdd ||
    o.configRm
  );
}

/** Sets the edited lists in `body`, starting from `current` (or from the body's own replacement list). */
export function applyListEdits(body: ServiceUpdateRequest, current: ServiceSpec, o: UpdateListFlags): void {
  if (o.envAdd || o.envRm) {
    const env = { ...current.env, ...body.env, ...keyValues("--env-add", o.envAdd) };
    for (const k of o.envRm ?? []) delete env[k];
    body.env = env;
  }
  if (o.mountAdd || o.mountRm) {
    const added = (o.mountAdd ?? []).map((m) => parse("--mount-add", () => parseMountFlag(m, "--mount-add")));
    // A target names a mount: adding one on a taken target replaces it.
    const gone = new Set([...(o.mountRm ?? []), ...added.map((m) => m.target)].map((t) => (t.length > 1 ? t.replace(/\/+$/, "") : t)));
    body.mounts = [...(body.mounts ?? current.mounts).filter((m) => !gone.has(m.target)), ...added];
  }
  for (const kind of ["secret", "config"] as const) {
    const add = kind === "secret" ? o.secretAdd : o.configAdd;
    const rm = kind === "secret" ? o.secretRm : o.configRm;
    if (!add && !rm) continue;
    const added = (add ?? []).map((s) => parse(`--${kind}-add`, () => parseSecretFlag(kind, s, `--${kind}-add`)));
    // A name names the reference: adding one already given replaces it.
    const gone = new Set([...(rm ?? []), ...added.map((s) => s.source)]);
    body[`${kind}s`] = [...(body[`${kind}s`] ?? current[`${kind}s`]).filter((s) => !gone.has(s.source)), ...added];
  }
  if (o.publishAdd || o.publishRm) {
    const added = (o.publishAdd ?? []).map((p) => parse("--publish-add", () => parsePublish(p, "--publish-add")));
    // A published port (and protocol) names a port: `--publish-rm 8080` or `8080/udp`.
    const gone = new Set([
      ...(o.publishRm ?? []).map((p) => {
        const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(p.trim()) ?? /^(\d+):\d+(?:\/(tcp|udp))?$/.exec(p.trim());
        if (!m) throw new CtlError(`--publish-rm: expected PUBLISHED[/tcp|udp], got ${JSON.stringify(p)}`);
        return `${m[1]}/${m[2] ?? "tcp"}`;
      }),
      ...added.map((p) => `${p.published}/${p.protocol}`),
    ]);
    const ports = body.ports ?? current.ports;
    body.ports = [...ports.filter((p) => !gone.has(`${p.published}/${p.protocol}`)), ...added];
  }
}
