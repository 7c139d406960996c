import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { utils } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidError, NotSupportedError } from "@flotilla/core";
import {
  createExecRunner,
  findFreePort,
  GenericDriver,
  genericDriver,
  generateSshKeyPair,
  MachineState,
  readPrivateKey,
} from "@flotilla/drivers";

let dir: string;
let listener: Server;
let openPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "flotilla-generic-unit-"));
  listener = createServer((s) => s.destroy());
  await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
  openPort = (listener.address() as { port: number }).port;
});
afterAll(() => {
  listener.close();
  rmSync(dir, { recursive: true, force: true });
});

function generic(raw: Record<string, string | number>): GenericDriver {
  const ctx = { machineName: "edge-1", storeDir: join(dir, "store"), runner: createExecRunner(), timing: { sshTimeoutMs: 500 } };
  return genericDriver.bind(ctx, genericDriver.parseOptions({ "generic-ip-address": "127.0.0.1", ...raw })) as GenericDriver;
}

describe("generic driver", () => {
  it("refuses to power a host it does not own, with a typed error", async () => {
    const d = generic({});
    for (const [call, verb] of [
      [() => d.start(), "start"],
      [() => d.stop(), "stop"],
      [() => d.kill(), "kill"],
    ] as const) {
      const err = await call().catch((e: unknown) => e as NotSupportedError);
      expect(err).toBeInstanceOf(NotSupportedError);
      expect((err as Error).message).toMatch(new RegExp(`^generic driver cannot ${verb} a host it does not own; `));
    }
  });

  it("is Running when the SSH port accepts TCP and Unreachable otherwise", async () => {
    expect(await generic({ "generic-ssh-port": openPort }).getState()).toBe(MachineState.Running);
    expect(await generic({ "generic-ssh-port": await findFreePort() }).getState()).toBe(MachineState.Unreachable);
  });

  it("getState honours an AbortSignal", async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(generic({ "generic-ssh-port": openPort }).getState(ac.signal)).rejects.toMatchObject({ name: "AbortError" });
  });

  it("reports address, URL and SSH endpoint from its options", async () => {
    const key = join(dir, "k");
    writeFileSync(key, generateSshKeyPair("t").privateKey, { mode: 0o600 });
    const d = generic({ "generic-ip-address": "fd00::7", "generic-ssh-user": "ops", "generic-ssh-key": key, "generic-ssh-port": 2222 });
    expect(await d.getIP()).toBe("fd00::7");
    expect(await d.getURL()).toBe("tcp://[fd00::7]:2376");
    expect(await d.getSSH()).toEqual({
      host: "fd00::7",
      port: 2222,
      user: "ops",
      keyPath: key,
      hostKeyPin: expect.objectContaining({ where: join(dir, "store", "ssh_host_key.pub") }),
    });
  });

  it("preCreateCheck names the flag for a missing or encrypted key", async () => {
    await expect(generic({ "generic-ssh-key": join(dir, "absent") }).preCreateCheck()).rejects.toThrow(
      `--generic-ssh-key ${join(dir, "absent")}: no such file`,
    );
    const enc = join(dir, "enc");
    writeFileSync(enc, utils.generateKeyPairSync("ed25519", { passphrase: "secret", cipher: "aes256-ctr", rounds: 4 }).private);
    const err = await generic({ "generic-ssh-key": enc })
      .preCreateCheck()
      .catch((e: unknown) => e as InvalidError);
    expect(err).toBeInstanceOf(InvalidError);
    expect((err as Error).message).toBe(`--generic-ssh-key ${enc}: the key is encrypted; use a key without a passphrase`);
    const junk = join(dir, "junk");
    writeFileSync(junk, "not a key");
    await expect(readPrivateKey(junk)).rejects.toThrow(`${junk}: not a usable private key (Unsupported key format)`);
  });
});
