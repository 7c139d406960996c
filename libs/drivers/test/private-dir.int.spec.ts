// Finding 8 of issue 11: root kept its host locks and the netns IP allocations in
// /tmp/flotilla-locks, which any user can create first, and wrote the allocation file with a
// plain write that follows a symlink. Here `nobody` plants both and root must not write through.
import { execFileSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { adoptLegacyAllocations, allocateIp } from "../src/netns-host";
import { parseCidr, type Cidr } from "../src/net";
import { defaultLockDir, withHostLock, writeFileNoFollow } from "../src";

const asRoot = process.getuid?.() === 0;
const cidr = parseCidr("198.18.200.1/24") as Cidr;
const VICTIM = '{"owner":"root"}\n';
const asNobody = (script: string) => execFileSync("runuser", ["-u", "nobody", "--", "sh", "-c", script], { encoding: "utf8" });

describe.skipIf(!asRoot)("root's lock dir cannot be planted by another user", () => {
  let base: string;
  let victim: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), "flotilla-s11-locks-"));
    chmodSync(base, 0o1777); // as /tmp is: anyone may create entries
    victim = join(base, "victim");
    // A root-owned file an allocation could be written over: JSON, so a read through a link
    // would not stop at a parse error before the write.
    writeFileSync(victim, VICTIM, { mode: 0o644 });
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it("refuses a lock dir another user made, and writes nothing through their symlink", async () => {
    const dir = join(base, "flotilla-locks");
    asNobody(`mkdir -m 0777 '${dir}' && ln -s '${victim}' '${dir}/netns-br-ips.json'`);
    await expect(withHostLock(dir, "netns-br", () => allocateIp(join(dir, "netns-br-ips.json"), "m1", cidr))).rejects.toThrow(
      `${dir} belongs to uid 65534, not to this user (uid 0): refusing to keep private files there; remove it`,
    );
    expect(readFileSync(victim, "utf8")).toBe(VICTIM);
  });

  it("refuses a lock dir others can write to, even one root owns", async () => {
    const dir = join(base, "open-locks");
    mkdirSync(dir, { mode: 0o777 });
    chmodSync(dir, 0o1777);
    await expect(withHostLock(dir, "x", async () => "ran")).rejects.toThrow(`${dir} is writable by other users (mode 1777)`);
  });

  it("neither reads nor writes through a symlink left in the lock dir", async () => {
    const dir = join(base, "mine");
    mkdirSync(dir, { mode: 0o700 });
    const file = join(dir, "netns-br-ips.json");
    symlinkSync(victim, file);
    await expect(allocateIp(file, "m1", cidr)).rejects.toThrow(`netns: allocation file ${file} is unreadable: ELOOP`);
    // A write replaces the link itself (rename), so the file it pointed at is never touched.
    await writeFileNoFollow(file, "{}\n");
    expect(lstatSync(file).isSymbolicLink()).toBe(false);
    expect(readFileSync(victim, "utf8")).toBe(VICTIM);
    expect(await allocateIp(file, "m1", cidr)).toBe("198.18.200.2");
  });

  it("takes over the old /tmp allocations only when nobody else could have written them", async () => {
    const legacy = join(base, "legacy-root");
    mkdirSync(legacy, { mode: 0o755 });
    writeFileSync(join(legacy, "ips.json"), JSON.stringify({ local: "198.18.200.2" }));
    const mine = join(base, "mine");
    mkdirSync(mine, { mode: 0o700 });
    await adoptLegacyAllocations(join(mine, "ips.json"), join(legacy, "ips.json"));
    expect(await allocateIp(join(mine, "ips.json"), "next", cidr)).toBe("198.18.200.3");

    const planted = join(base, "legacy-planted");
    asNobody(`mkdir -m 0755 '${planted}' && echo '{"local":"198.18.200.9"}' > '${planted}/ips.json'`);
    const other = join(base, "other");
    mkdirSync(other, { mode: 0o700 });
    await adoptLegacyAllocations(join(other, "ips.json"), join(planted, "ips.json"));
    expect(() => lstatSync(join(other, "ips.json"))).toThrow(/ENOENT/);
  });

  it("root's default lock dir is private and outside world-writable /tmp", async () => {
    const dir = defaultLockDir();
    expect(dir).toBe("/run/flotilla-control/locks");
    await withHostLock(dir, "flotilla-s11-probe", async () => undefined);
    const st = lstatSync(dir);
    expect(st.uid).toBe(0);
    expect(st.mode & 0o077).toBe(0);
    expect(() => asNobody(`touch '${dir}/planted'`)).toThrow(/Permission denied/);
  });
});
