// Finding 3 of issue 11: ssh2 accepted any host key, so whoever answered on a machine's address
// got the provisioner's connection (and the CA-signed certificates it uploads). A pinned key is
// now checked before authentication; a real sshd with a different key is refused, with a message.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSshKeyPair, keyFingerprint, publicKeyBlob, sshRun } from "@flotilla/drivers";
import { startSshd, type SshdHandle } from "../../../test/support/sshd";

describe("SSH host key pinning against a real sshd", () => {
  let sshd: SshdHandle;
  let dir: string;
  let key: string;
  let otherHostKey: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "flotilla-s11-hostkey-"));
    const user = generateSshKeyPair("flotilla-test");
    key = user.privateKey;
    sshd = await startSshd({ authorizedKeys: [user.publicKey] });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "impostor")]);
    otherHostKey = readFileSync(join(dir, "impostor.pub"), "utf8").trim();
  });
  afterAll(async () => {
    await sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const target = (hostKey?: string) => ({
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    privateKey: key,
    timeoutMs: 10_000,
    ...(hostKey ? { hostKey } : {}),
  });

  it("connects when the machine presents the pinned key", async () => {
    expect((await sshRun(target(sshd.hostPublicKey), "echo pinned")).stdout).toBe("pinned\n");
  });

  it("refuses a different key before authenticating, naming both fingerprints", async () => {
    const err = await sshRun(target(otherHostKey), "echo should-not-run").catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const expected = keyFingerprint(publicKeyBlob(otherHostKey));
    const presented = keyFingerprint(publicKeyBlob(sshd.hostPublicKey));
    expect((err as Error).message).toBe(
      `ssh 127.0.0.1:${sshd.port}: host key changed: the machine presented ${presented}, not ${expected} pinned when it was created; refusing to connect (someone may be intercepting; if the machine was rebuilt, re-create it)`,
    );
    // The fingerprint format is ssh-keygen's.
    writeFileSync(join(dir, "presented.pub"), `${sshd.hostPublicKey}\n`);
    expect(execFileSync("ssh-keygen", ["-l", "-f", join(dir, "presented.pub")], { encoding: "utf8" })).toContain(presented);
  });
});
