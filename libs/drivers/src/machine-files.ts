// Files a driver keeps in the machine's store directory, and the OS image lookup.
import { chmod, copyFile, mkdir, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import { InvalidError } from "@flotilla/core";
import type { DriverContext, DriverEvent } from "./driver";
import type { SshEndpoint } from "./driver";
import { fileHostKeyPin, type HostKeyPin } from "./ssh";
import { generateSshKeyPair } from "./ssh-keygen";

export const KEY_FILE = "id_ed25519";
export const IMAGE_FILE = "boot2docker.iso";
/** The user boot2docker-style images log in as. */
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

export function defaultCacheDir(): string {
  return join(homedir(), ".flotilla", "cache");
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

/**
 * Where the OS image for `--<flag>` is on this host. A local path is used as it is; a URL must
 * already be in the cache (under its file name) because drivers never download at run time.
 * Throws InvalidError naming the flag when the image is not there.
 */
export async function locateImage(flag: string, value: string | undefined, cacheDir: string): Promise<string> {
  let path: string;
  let fromUrl: string | undefined;
  if (value === undefined) {
    path = join(cacheDir, IMAGE_FILE);
  } else if (/^file:\/\//i.test(value)) {
    path = decodeURIComponent(new URL(value).pathname);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    fromUrl = value;
    const name = basename(new URL(value).pathname) || IMAGE_FILE;
    path = join(cacheDir, name);
  } else {
    path = value;
  }
  const st = await stat(path).catch(() => undefined);
  if (st?.isFile()) return path;
  const field = { field: flag };
  if (fromUrl) {
    throw new InvalidError(
      `--${flag} ${fromUrl}: not in the image cache (${path}); images are not downloaded at run time: fetch it to that path, or pass a local file`,
      field,
    );
  }
  if (value === undefined) {
    throw new InvalidError(
      `--${flag} not given and no default image at ${path}: put a boot2docker-style ISO there or pass --${flag} PATH`,
      field,
    );
  }
  throw new InvalidError(`--${flag} ${value}: ${st ? "not a regular file" : "no such file"}`, field);
}

/** Copies the image into the store, so the machine keeps working if the original moves. */
export async function copyImage(source: string, storeDir: string): Promise<string> {
  const target = join(storeDir, IMAGE_FILE);
  if (source !== target) await copyFile(source, target);
  return target;
}

export function reporter(ctx: DriverContext, driver: string): (step: string, message: string) => void {
  return (step, message) => {
    const event: DriverEvent = { driver, machine: ctx.machineName, step, message };
    ctx.progress?.(event);
  };
}
