import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { utils } from "ssh2";
import { describe, expect, it } from "vitest";
import { generateSshKeyPair } from "../src/ssh-keygen";

const haveSshKeygen = (() => {
  try {
    execFileSync("sh", ["-c", "command -v ssh-keygen"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("generateSshKeyPair", () => {
  // ssh2's own generator wrote an unparsable key about once in 256 (a public key with a leading
  // zero byte lost one byte); 3,000 keys meet that case about a dozen times.
  it("writes keys ssh2 parses, whose signatures verify with the public line's key", () => {
    for (let i = 0; i < 3000; i++) {
      const pair = generateSshKeyPair(`flotilla@m${i}`);
      const priv = utils.parseKey(pair.privateKey);
      if (priv instanceof Error) throw new Error(`key ${i}: ${priv.message}\n${pair.privateKey}`);
      const pub = utils.parseKey(pair.publicKey);
      if (pub instanceof Error) throw new Error(`public ${i}: ${pub.message}\n${pair.publicKey}`);
      expect(priv.type).toBe("ssh-ed25519");
      expect(priv.comment).toBe(`flotilla@m${i}`);
      expect(priv.getPublicSSH().equals(pub.getPublicSSH())).toBe(true);
      const data = Buffer.from(`message ${i}`);
      expect(pub.verify(data, priv.sign(data))).toBe(true);
    }
  });

  it("matches ssh-keygen: the public key it derives from the private file is the public line", { skip: !haveSshKeygen }, () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-keygen-"));
    try {
      for (let i = 0; i < 20; i++) {
        const pair = generateSshKeyPair("flotilla@test");
        const file = join(dir, `k${i}`);
        writeFileSync(file, pair.privateKey, { mode: 0o600 });
        const derived = execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" }).trim();
        expect(derived).toBe(pair.publicKey);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
