// Files a driver keeps in the machine's store directory.
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DriverContext, DriverEvent } from "./driver";
import type { SshEndpoint } from "./driver";
import { fileHostKeyPin, type HostKeyPin } from "./ssh";
import { generateSshKeyPair } from "./ssh-keygen";

export const KEY_FILE = "id_ed25519";
/** The machine's seed disk in its store (seed-iso.ts). */
export const SEED_FILE = "seed.iso";
/** The user VirtualBox and Hyper-V guests are seeded with (boot2docker's, which docker-machine users know). */
export const GUEST_SSH_USER = "docker";

/**
 * The machine's SSH host key as first seen (trust on first use), in the machine store when the
 * driver runs without a control plane (which pins it in the machine record); older versions of
 * the control plane kept it there too, and the record takes it over.
 */
export const PINNED_HOST_KEY = "ssh_host_key.pub";

/** Where the context says the host key is pinned, else the store directory's file. */
export function hostKeyPinOf(ctx: Pick<DriverContext, "storeDir" | "hostKeyPin">): HostKeyPin {
  return ctx.hostKeyPin ?? fileHostKeyPin(join(ctx.storeDir, PINNED_HOST_KEY));
}

/**
 * The endpoint with trust on first use: where the host key is pinned, and the key when it is
 * pinned already (so `ctl machine ssh` checks it strictly too).
 */
export async function withPinnedHostKey(
  ctx: Pick<DriverContext, "storeDir" | "hostKeyPin">,
  ep: Omit<SshEndpoint, "hostKey" | "hostKeyPin">,
): Promise<SshEndpoint> {
  const hostKeyPin = hostKeyPinOf(ctx);
  const hostKey = await hostKeyPin.read();
  return { ...ep, hostKeyPin, ...(hostKey ? { hostKey } : {}) };
}

/** Writes a new ed25519 key pair to `<storeDir>/id_ed25519{,.pub}` and returns the public line. */
export async function writeMachineKey(storeDir: string, machineName: string): Promise<{ keyPath: string; publicKey: string }> {
  await mkdir(storeDir, { recursive: true });
  const pair = generateSshKeyPair(`flotilla@${machineName}`);
  const keyPath = join(storeDir, KEY_FILE);
  await writeFile(keyPath, pair.privateKey, { mode: 0o600 });
  // writeFile keeps the mode of an existing file; a leftover key must not stay world-readable.
  await chmod(keyPath, 0o600);
  await writeFile(`${keyPath}.pub`, pair.publicKey + "\n", { mode: 0o644 });
  return { keyPath, publicKey: pair.publicKey };
}

export async function removeFiles(paths: readonly string[]): Promise<void> {
  await Promise.all(paths.map((p) => rm(p, { recursive: true, force: true })));
}

export function reporter(ctx: DriverContext, driver: string): (step: string, message: string) => void {
  return (step, message) => {
    const event: DriverEvent = { driver, machine: ctx.machineName, step, message };
    ctx.progress?.(event);
  };
}
