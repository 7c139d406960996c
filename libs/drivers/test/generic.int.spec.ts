// The generic driver and the SSH helper against a real OpenSSH server on 127.0.0.1.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidError, UnavailableError } from "@flotilla/core";
import {
  createExecRunner,
  findFreePort,
  GenericDriver,
  generateSshKeyPair,
  MachineState,
  parseGenericOptions,
  publicKeyBlob,
  sshConnect,
  sshRun,
} from "@flotilla/drivers";
import { startSshd, type SshdHandle } from "../../../test/support/sshd";

let sshd: SshdHandle;
let dir: string;
let goodKey: string;
let wrongKey: string;
let silent: Server;
let silentPort: number;
const held: Socket[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "flotilla-generic-"));
  const good = generateSshKeyPair("flotilla-test");
  const wrong = generateSshKeyPair("not-authorized");
  goodKey = join(dir, "good");
  wrongKey = join(dir, "wrong");
  writeFileSync(goodKey, good.privateKey, { mode: 0o600 });
  writeFileSync(wrongKey, wrong.privateKey, { mode: 0o600 });
  sshd = await startSshd({ authorizedKeys: [good.publicKey] });
  // Accepts TCP but never says a word: an SSH handshake that hangs.
  silent = createServer((s) => held.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  silentPort = (silent.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of held) s.destroy();
  silent?.close();
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function generic(raw: Record<string, string>, machine = "edge-1"): GenericDriver {
  return new GenericDriver(
    { machineName: machine, storeDir: join(dir, "machines", machine), runner: createExecRunner(), timing: { sshTimeoutMs: 1000 } },
    parseGenericOptions({
      "generic-ip-address": "127.0.0.1",
      "generic-ssh-port": String(sshd.port),
      "generic-ssh-user": sshd.user,
      "generic-ssh-key": goodKey,
      ...raw,
    }),
  );
}

describe("generic driver over real sshd", () => {
  it("create checks SSH and keeps a copy of the key; the host is Running", async () => {
    const d = generic({});
    await d.preCreateCheck();
    await d.create();
    const stored = join(dir, "machines", "edge-1", "id_ssh");
    expect(readFileSync(stored, "utf8")).toBe(readFileSync(goodKey, "utf8"));
    expect(statSync(stored).mode & 0o777).toBe(0o600);
    expect(await d.getState()).toBe(MachineState.Running);
    const pin = join(dir, "machines", "edge-1", "ssh_host_key.pub");
    // Trust on first use: the host key create saw is pinned in the machine store (a driver used
    // on its own; the control plane pins it in the machine record).
    expect(await d.getSSH()).toEqual({
      host: "127.0.0.1",
      port: sshd.port,
      user: sshd.user,
      keyPath: stored,
      hostKeyPin: expect.objectContaining({ where: pin }),
      hostKey: readFileSync(pin, "utf8").trim(),
    });
    expect(publicKeyBlob(readFileSync(pin, "utf8")).equals(publicKeyBlob(sshd.hostPublicKey))).toBe(true);
    expect(await d.getURL()).toBe("tcp://127.0.0.1:2376");
    await d.remove();
    expect(existsSync(stored)).toBe(false);
    expect(existsSync(pin)).toBe(false);
  });

  it("a wrong key fails with the step, endpoint and user named", async () => {
    const err = await generic({ "generic-ssh-key": wrongKey })
      .create()
      .then(
        () => undefined,
        (e: unknown) => e as InvalidError,
      );
    // The sshd log explains an unexpected outcome (it is only printed on failure).
    expect(err?.message, sshd.log()).toBe(`ssh 127.0.0.1:${sshd.port}: authentication failed for ${sshd.user}`);
    expect(err).toBeInstanceOf(InvalidError);
    expect(err!.details).toMatchObject({ step: "ssh", reason: "auth" });
  });

  it("a wrong user fails the same way", async () => {
    await expect(generic({ "generic-ssh-user": "nobody" }).create()).rejects.toThrow(
      `ssh 127.0.0.1:${sshd.port}: authentication failed for nobody`,
    );
  });

  it("a closed port is 'connection refused', and the state is Unreachable, not Stopped", async () => {
    const port = await findFreePort();
    const d = generic({ "generic-ssh-port": String(port) });
    const err = await d.create().catch((e: unknown) => e as UnavailableError);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toBe(`ssh 127.0.0.1:${port}: connection refused`);
    expect(await d.getState()).toBe(MachineState.Unreachable);
  });

  it("a server that never answers times out with the limit in the message", async () => {
    const d = generic({ "generic-ssh-port": String(silentPort) });
    const t0 = Date.now();
    await expect(d.create()).rejects.toThrow(`ssh 127.0.0.1:${silentPort}: timed out after 1s`);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it("start, stop and kill are refused: the driver does not own the host", async () => {
    const d = generic({});
    await expect(d.stop()).rejects.toThrow("generic driver cannot stop a host it does not own; shut it down yourself");
    await expect(d.kill()).rejects.toMatchObject({ kind: "not_supported" });
  });
});

describe("ssh helper over real sshd", () => {
  const target = () => ({ host: "127.0.0.1", port: sshd.port, user: sshd.user, privateKey: readFileSync(goodKey) });

  it("exec returns stdout, stderr and the exit code, and passes stdin", async () => {
    const conn = await sshConnect(target());
    try {
      expect(await conn.exec("echo out; echo err >&2; exit 3")).toEqual({ stdout: "out\n", stderr: "err\n", code: 3, signal: null });
      expect((await conn.exec("cat", { input: "piped\n" })).stdout).toBe("piped\n");
    } finally {
      conn.close();
    }
  });

  it("exec has its own time limit", async () => {
    await expect(sshRun(target(), "sleep 5", { timeoutMs: 300 })).rejects.toThrow(
      `ssh 127.0.0.1:${sshd.port}: \`sleep 5\` timed out after 300ms`,
    );
  });

  it("an AbortSignal cancels a connect that hangs", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    await expect(sshConnect({ ...target(), port: silentPort, signal: ac.signal, timeoutMs: 30_000 })).rejects.toMatchObject({
      name: "AbortError",
    });
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("an AbortSignal cancels a running command", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await expect(sshRun({ ...target(), signal: ac.signal }, "sleep 10")).rejects.toMatchObject({ name: "AbortError" });
  });
});
