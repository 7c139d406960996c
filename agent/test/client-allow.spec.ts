// The agent's client allow list (finding 4 of issue 11): fingerprints for machines' certificates,
// common names only for certificates without an OU (the control plane's).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ClientAllowFile, clientAllowed, parseClientAllowList } from "../src/api/client-allow";

const FP = "AB:CD:EF:01";

describe("client allow list", () => {
  const list = parseClientAllowList("# comment\ncn control-plane\nsha256 abcdef01\n\nbogus line\n");

  it("accepts a listed fingerprint, whatever the subject", () => {
    expect(clientAllowed(list, { fingerprint256: FP, subject: { CN: "web", OU: "machine" } as never })).toBe(true);
  });

  it("accepts a listed name only without an OU", () => {
    expect(clientAllowed(list, { fingerprint256: "00", subject: { CN: "control-plane" } as never })).toBe(true);
    expect(clientAllowed(list, { fingerprint256: "00", subject: { CN: "control-plane", OU: "machine" } as never })).toMatch(
      /^client certificate "control-plane" \(SHA256 00\) is not accepted by this machine/,
    );
  });

  it("refuses anything else, saying why", () => {
    expect(clientAllowed(list, { fingerprint256: "11:22", subject: { CN: "other" } as never })).toBe(
      'client certificate "other" (SHA256 11:22) is not accepted by this machine: it was revoked, rotated, or issued for another machine',
    );
  });

  it("re-reads the file when it changes, and a missing file accepts nobody", () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-allow-"));
    try {
      const path = join(dir, "clients.allow");
      const file = new ClientAllowFile(path);
      const peer = { fingerprint256: FP, subject: { CN: "web", OU: "machine" } as never };
      expect(clientAllowed(file.current(), peer)).not.toBe(true);
      writeFileSync(path, "sha256 abcdef01\n");
      expect(clientAllowed(file.current(), peer)).toBe(true);
      writeFileSync(path, "sha256 0000000000\n# rotated\n");
      expect(clientAllowed(file.current(), peer)).not.toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
