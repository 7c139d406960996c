// Finding 3 of issue 11, drivers that do not make the host key themselves (generic, qemu,
// virtualbox, hyperv): before, ssh2 accepted any key, so whoever took over a machine's address
// after create got the provisioner's root connection and the certificates it uploads. Now the key
// seen at the first connection is pinned in the machine store (trust on first use), and a host
// whose sshd key was replaced afterwards is refused by provisioning, by the driver's own SSH
// (restart) and by the API's `machine ssh` check, naming the machine and both fingerprints.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecRunner, generateSshKeyPair, getDriver, keyFingerprint, publicKeyBlob, type Driver } from "@flotilla/drivers";
import { openShell } from "@flotilla/provision";
import { startSshd, type SshdHandle } from "../support/sshd";

describe("SSH host keys pinned on first use (generic driver, real sshd on loopback)", () => {
  let dir: string;
  let keyFile: string;
  let publicKey: string;
  let original: SshdHandle;
  let impostor: SshdHandle | undefined;
  let driver: Driver;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "flotilla-s11-tofu-"));
    const pair = generateSshKeyPair("flotilla-test");
    publicKey = pair.publicKey;
    keyFile = join(dir, "id_test");
    writeFileSync(keyFile, pair.privateKey, { mode: 0o600 });
    original = await startSshd({ authorizedKeys: [publicKey] });
    const factory = getDriver("generic");
    driver = factory.bind(
      {
        machineName: "tofu-1",
        storeDir: join(dir, "store"),
        runner: createExecRunner(),
        timing: { sshTimeoutMs: 10_000, pollIntervalMs: 100, ipTimeoutMs: 20_000 },
      },
      factory.parseOptions({
        "generic-ip-address": "127.0.0.1",
        "generic-ssh-port": original.port,
        "generic-ssh-user": original.user,
        "generic-ssh-key": keyFile,
      }),
    );
  });
  afterAll(async () => {
    await original?.stop();
    await impostor?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("create pins the key it saw; provisioning connects with it", async () => {
    await driver.create();
    const ep = await driver.getSSH();
    expect(publicKeyBlob(ep.hostKey!).equals(publicKeyBlob(original.hostPublicKey))).toBe(true);
    const shell = await openShell({ ssh: ep, machineName: "tofu-1" });
    try {
      expect((await shell.run("echo pinned")).trim()).toBe("pinned");
    } finally {
      shell.close();
    }
  });

  it("after the host's sshd key is replaced, provisioning and restart are refused with both fingerprints", async () => {
    const pinned = keyFingerprint(publicKeyBlob(original.hostPublicKey));
    const port = original.port;
    await original.stop();
    // Same address and port, same authorized key (the attacker accepts anything), another host key.
    impostor = await startSshd({ authorizedKeys: [publicKey], port });
    const presented = keyFingerprint(publicKeyBlob(impostor.hostPublicKey));
    expect(presented).not.toBe(pinned);
    const expected =
      `ssh 127.0.0.1:${port}: machine tofu-1: host key changed: the machine presented ${presented}, not ${pinned} ` +
      "pinned at the first connection; refusing to connect (someone may be intercepting; if the machine was rebuilt, re-create it)";

    const ep = await driver.getSSH();
    const provisioning = await openShell({ ssh: ep, machineName: "tofu-1" }).catch((e: Error) => e);
    expect(provisioning).toBeInstanceOf(Error);
    expect((provisioning as Error).message).toBe(expected);

    const restart = await driver.restart().catch((e: Error) => e);
    expect((restart as Error).message).toBe(expected);

    // The pin is unchanged: the impostor's key was never learnt.
    expect(publicKeyBlob(readFileSync(ep.hostKeyFile!, "utf8")).equals(publicKeyBlob(original.hostPublicKey))).toBe(true);
    // Nothing ran on the impostor: it never saw a session (refused before authentication).
    expect(impostor.log()).not.toMatch(/Accepted publickey/);
  });

  it("ctl's known_hosts from the pin makes OpenSSH refuse the impostor too", () => {
    const known = join(dir, "known_hosts");
    writeFileSync(known, `[127.0.0.1]:${impostor!.port} ${readFileSync(join(dir, "store", "ssh_host_key.pub"), "utf8")}`);
    let out = "";
    try {
      execFileSync(
        "ssh",
        [
          ...["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${known}`, "-o", "GlobalKnownHostsFile=/dev/null"],
          ...[
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            keyFile,
            "-p",
            String(impostor!.port),
            `${impostor!.user}@127.0.0.1`,
          ],
          "echo should-not-run",
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 },
      );
    } catch (e) {
      out = `${(e as { stdout?: string }).stdout ?? ""}${(e as { stderr?: string }).stderr ?? ""}`;
    }
    expect(out).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    expect(out).not.toContain("should-not-run");
  });
});
