// The seed disk the virtualbox and hyperv drivers attach is written byte by byte (seed-iso.ts).
// blkid (util-linux, the same probe the guest's `blkid -L cidata` uses) must see an iso9660
// volume labelled "cidata"; the files' text must parse with the seed script's own expressions.
// That a Linux kernel mounts it and flotilla-seed applies it is shown by booting the guest image
// with it (guest-seed.int.spec.ts): this host's kernel has no iso9660 to mount it here.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isoImage, seedFiles, seedIso } from "@flotilla/drivers";

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0dGVzdGtleQ flotilla@devdays";
const dir = mkdtempSync(join(tmpdir(), "flotilla-seed-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function probe(image: Buffer, tag: string): string {
  const file = join(dir, `${tag}.iso`);
  writeFileSync(file, image);
  return execFileSync("blkid", ["-p", "-o", "value", "-s", tag, file], { encoding: "utf8" }).trim();
}

describe("seed ISO", () => {
  it("is an iso9660 volume labelled cidata, a whole number of 2 KiB sectors", () => {
    const iso = seedIso({ hostname: "devdays", user: "docker", publicKey: key });
    expect(probe(iso, "TYPE")).toBe("iso9660");
    expect(probe(iso, "LABEL")).toBe("cidata");
    expect(iso.length % 2048).toBe(0);
    // meta-data and user-data each in their own sector after the root directory (sector 20).
    expect(iso.length).toBe(23 * 2048);
    expect(iso.subarray(21 * 2048, 21 * 2048 + 12).toString()).toBe("instance-id:");
  });

  it("says what flotilla-seed reads, in the shapes its sed expressions parse", () => {
    const files = seedFiles({ hostname: "devdays", user: "docker", publicKey: key });
    expect(Object.keys(files).sort()).toEqual(["meta-data", "user-data"]);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const seedScript = readFileSync(join(__dirname, "../../../scripts/guest/flotilla-seed"), "utf8");
    expect(seedScript).toContain("blkid -L cidata");
    // The same expressions as scripts/guest/flotilla-seed.
    const field = (name: string, f: string) =>
      execFileSync(
        "sh",
        ["-c", `sed -n -E "s/^[[:space:]]*${name}:[[:space:]]*\\"?([^\\"]*)\\"?[[:space:]]*$/\\1/p" "$1" | head -n1`, "sh", f],
        {
          encoding: "utf8",
        },
      ).trim();
    const keys = execFileSync(
      "sh",
      ["-c", `sed -n '/^ssh_authorized_keys:/,/^[^ -]/s/^[[:space:]]*-[[:space:]]*//p' "$1" | tr -d '"'`, "sh", join(dir, "user-data")],
      {
        encoding: "utf8",
      },
    ).trim();
    expect(field("local-hostname", join(dir, "meta-data"))).toBe("devdays");
    expect(field("user", join(dir, "user-data"))).toBe("docker");
    expect(keys).toBe(key);
  });

  it("gives a file longer than a sector consecutive sectors, and is the same bytes for the same date", () => {
    const date = new Date("2026-12-06T07:00:00Z");
    const big = "x".repeat(5000);
    const iso = isoImage("cidata", { "user-data": big, "meta-data": "a: b\n" }, date);
    // Sorted names: meta-data at 21, user-data at 22..24 (5000 bytes = 3 sectors).
    expect(iso.length).toBe(25 * 2048);
    expect(iso.subarray(22 * 2048, 22 * 2048 + 5000).toString()).toBe(big);
    expect(probe(iso, "LABEL")).toBe("cidata");
    expect(isoImage("cidata", { "user-data": big, "meta-data": "a: b\n" }, date).equals(iso)).toBe(true);
  });
});
