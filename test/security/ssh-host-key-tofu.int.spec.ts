// Finding 3 of issue 11, drivers that do not make the host key themselves (generic, qemu,
// virtualbox, hyperv): before, ssh2 accepted any key, so whoever took over a machine's address
// after create got the provisioner's root connection and the certificates it uploads. Now the key
// seen at the first connection is pinned in the machine record (trust on first use), and a host
// whose sshd key was replaced afterwards is refused by provisioning, by the driver's own SSH
// (restart) and by the API's `machine ssh` check, naming the machine and both fingerprints.
// The control plane's own pieces run here (the API, its machine host and repository, a real
// Postgres) against a real sshd on loopback.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSshKeyPair, keyFingerprint, publicKeyBlob, type Driver } from "@flotilla/drivers";
import { openShell } from "@flotilla/provision";
import { PrismaService } from "../../apps/api/src/database/prisma.service";
import { MachineHost } from "../../apps/api/src/machines/machine-host";
import { MachinesRepository, type MachineRow } from "../../apps/api/src/machines/machines.repository";
import { startTestApi, type TestApi } from "../../apps/api/test/support";
import { startSshd, type SshdHandle } from "../support/sshd";

describe("SSH host keys pinned on first use in the machine record (generic driver, real sshd on loopback)", () => {
  let dir: string;
  let keyFile: string;
  let publicKey: string;
  let original: SshdHandle;
  let impostor: SshdHandle | undefined;
  let api: TestApi;
  let prisma: PrismaService;
  let host: MachineHost;
  let repo: MachinesRepository;

  /** A READY generic machine row pointing at `port` (as a create would leave it). */
  async function machine(name: string, port: number): Promise<MachineRow> {
    return prisma.machine.create({
      data: {
        name,
        driver: "generic",
        state: "READY",
        ip: "127.0.0.1",
        options: {
          "generic-ip-address": "127.0.0.1",
          "generic-ssh-port": port,
          "generic-ssh-user": original.user,
          "generic-ssh-key": keyFile,
        },
      },
    });
  }
  /** The driver as the provision worker binds it: its host key pinned in the row. */
  const driverOf = (m: MachineRow): Driver => host.driver(m, repo.hostKeyPin(m, host.legacyHostKeyFile(m.name)));
  const row = async (name: string) => prisma.machine.findUniqueOrThrow({ where: { name } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "flotilla-s11-tofu-"));
    const pair = generateSshKeyPair("flotilla-test");
    publicKey = pair.publicKey;
    keyFile = join(dir, "id_test");
    writeFileSync(keyFile, pair.privateKey, { mode: 0o600 });
    original = await startSshd({ authorizedKeys: [publicKey] });
    process.env.FLOTILLA_DATA_DIR = join(dir, "data");
    api = await startTestApi();
    prisma = api.running.app.get(PrismaService);
    host = api.running.app.get(MachineHost);
    repo = api.running.app.get(MachinesRepository);
  });
  afterAll(async () => {
    await api?.stop();
    await original?.stop();
    await impostor?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("create pins the key it saw in the machine record; provisioning connects with it; inspect shows it", async () => {
    const m = await machine("tofu-1", original.port);
    const driver = driverOf(m);
    await driver.create();
    const pinned = (await row("tofu-1")).sshHostKey;
    expect(publicKeyBlob(pinned!).equals(publicKeyBlob(original.hostPublicKey))).toBe(true);
    // Nothing in the store directory: the record is the one place.
    expect(existsSync(host.legacyHostKeyFile("tofu-1"))).toBe(false);
    const ep = await driver.getSSH();
    expect(ep.hostKey).toBe(pinned);
    const shell = await openShell({ ssh: ep, machineName: "tofu-1" });
    try {
      expect((await shell.run("echo pinned")).trim()).toBe("pinned");
    } finally {
      shell.close();
    }
    const view = (await (await api.fetch("/api/v1/machines/tofu-1")).json()) as { sshHostKey: { key: string; sha256: string } | null };
    expect(view.sshHostKey).toEqual({ key: pinned, sha256: keyFingerprint(publicKeyBlob(original.hostPublicKey)) });
  });

  it("a key an older version pinned in the store directory is taken over into the record", async () => {
    const m = await machine("tofu-old", original.port);
    mkdirSync(host.storeDir("tofu-old"), { recursive: true });
    writeFileSync(host.legacyHostKeyFile("tofu-old"), `${original.hostPublicKey.trim()}\n`);
    const ep = await driverOf(m).getSSH();
    expect(publicKeyBlob(ep.hostKey!).equals(publicKeyBlob(original.hostPublicKey))).toBe(true);
    expect((await row("tofu-old")).sshHostKey).toBe(ep.hostKey);
    expect(existsSync(host.legacyHostKeyFile("tofu-old"))).toBe(false);
  });

  it("after the host's sshd key is replaced, provisioning, restart and `machine ssh` are refused with both fingerprints", async () => {
    const pinned = keyFingerprint(publicKeyBlob(original.hostPublicKey));
    const port = original.port;
    const before = (await row("tofu-1")).sshHostKey;
    await original.stop();
    // Same address and port, same authorized key (the attacker accepts anything), another host key.
    impostor = await startSshd({ authorizedKeys: [publicKey], port });
    const presented = keyFingerprint(publicKeyBlob(impostor.hostPublicKey));
    expect(presented).not.toBe(pinned);
    const expected =
      `ssh 127.0.0.1:${port}: machine tofu-1: host key changed: the machine presented ${presented}, not ${pinned} ` +
      "pinned at the first connection (in machine tofu-1's record); refusing to connect (someone may be intercepting; if the machine was rebuilt, re-create it)";

    const driver = driverOf(await row("tofu-1"));
    const ep = await driver.getSSH();
    const provisioning = await openShell({ ssh: ep, machineName: "tofu-1" }).catch((e: Error) => e);
    expect(provisioning).toBeInstanceOf(Error);
    expect((provisioning as Error).message).toBe(expected);

    const restart = await driver.restart().catch((e: Error) => e);
    expect((restart as Error).message).toBe(expected);

    const ssh = await api.fetch("/api/v1/machines/tofu-1/ssh");
    expect(ssh.status).toBe(503);
    expect(((await ssh.json()) as { message: string }).message).toBe(expected);

    // The pin is unchanged: the impostor's key was never learnt.
    expect((await row("tofu-1")).sshHostKey).toBe(before);
    // Nothing ran on the impostor: it never saw a session (refused before authentication).
    expect(impostor.log()).not.toMatch(/Accepted publickey/);
  });

  it("ctl's known_hosts from the record makes OpenSSH refuse the impostor too", async () => {
    const known = join(dir, "known_hosts");
    writeFileSync(known, `[127.0.0.1]:${impostor!.port} ${(await row("tofu-1")).sshHostKey}\n`);
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
