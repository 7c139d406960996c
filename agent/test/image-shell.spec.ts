// imageHasShell: what a CMD-SHELL health check needs, looked up in an image's layer directories
// without following links out of them.
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { imageHasShell } from "../src/containers/rootfs-files";

const root = fs.mkdtempSync(join(tmpdir(), "flotilla-shell-"));
let n = 0;
function layer(files: Record<string, "file" | { link: string } | "dir">): string {
  const dir = join(root, `l${n++}`);
  fs.mkdirSync(dir);
  for (const [path, kind] of Object.entries(files)) {
    const p = join(dir, path);
    fs.mkdirSync(join(p, ".."), { recursive: true });
    if (kind === "file") fs.writeFileSync(p, "");
    else if (kind === "dir") fs.mkdirSync(p);
    else fs.symlinkSync(kind.link, p);
  }
  return dir;
}

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("imageHasShell", () => {
  it("finds /bin/sh as a file or a link (busybox), in any layer", async () => {
    expect(await imageHasShell([layer({ "etc/x": "file" }), layer({ "bin/sh": "file" })])).toBe(true);
    expect(await imageHasShell([layer({ "bin/sh": { link: "busybox" }, "bin/busybox": "file" })])).toBe(true);
  });

  it("finds /usr/bin/sh of a merged-/usr image, whose /bin is a link", async () => {
    expect(await imageHasShell([layer({ bin: { link: "usr/bin" }, "usr/bin/sh": "file" })])).toBe(true);
  });

  it("says no for an image without a shell, and never follows a linked directory out of the layer", async () => {
    expect(await imageHasShell([layer({ busybox: "file" })])).toBe(false);
    expect(await imageHasShell([])).toBe(false);
    // /bin → /usr/bin of the host, which has a sh: not the image's.
    expect(fs.existsSync("/usr/bin/sh") || fs.existsSync("/bin/sh")).toBe(true);
    expect(await imageHasShell([layer({ bin: { link: "/bin" } })])).toBe(false);
  });
});
