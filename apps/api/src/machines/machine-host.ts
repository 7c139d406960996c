// The side effects of machines on the control plane's host: drivers (bound from the stored row),
// the certificate authority, client certificates and the users' cert dirs. One place, so the
// service and the worker stay about decisions.
import { Inject, Injectable } from "@nestjs/common";
import { join } from "node:path";
import { InvalidError, parseRegistryMirror } from "@flotilla/core";
import {
  createExecRunner,
  getDriver,
  PINNED_HOST_KEY,
  type Driver,
  type DriverEvent,
  type HostKeyPin,
  type OptionValue,
  type RawOptions,
} from "@flotilla/drivers";
import { readFile } from "node:fs/promises";
import type { MachineCertificates } from "@flotilla/api-types";
import {
  certificateExpiry,
  certificateFingerprint,
  CertificateAuthority,
  CONTROL_PLANE_CLIENT,
  ensureClientCert,
  ensureMachineClientCert,
  removeClientCertDir,
  type EngineOptions,
  type KeyPair,
} from "@flotilla/provision";
import { MACHINES_CONFIG, type MachinesConfig } from "./machines-config";
import type { MachineRow } from "./machines.repository";

/** Engine flags accepted by `machine create` beside the driver's (as docker-machine's --engine-*). */
export const ENGINE_OPTIONS = [
  {
    name: "engine-insecure-registry",
    type: "string",
    help: "Registry (host:port) the agent reaches over plain http; comma-separated for several",
  },
  {
    name: "engine-registry-mirror",
    type: "string",
    help: "Docker Hub mirror the agent pulls docker.io images through, http(s)://host[:port]; comma-separated for several",
  },
  {
    name: "engine-env",
    type: "string",
    help: "Environment variable of the agent, KEY=VALUE (e.g. HTTP_PROXY); comma-separated for several",
  },
  {
    name: "engine-label",
    type: "string",
    help: "Label of the machine's node, KEY=VALUE (for placement constraints); comma-separated for several",
  },
] as const;

const ENGINE_FLAGS = ENGINE_OPTIONS.map((o) => `--${o.name}`).join(", ");

/** `KEY=VALUE` pairs of a comma-separated engine flag, each checked by `valid`. */
function pairs(flag: string, value: OptionValue, key: RegExp, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of String(value)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const at = item.indexOf("=");
    const k = at > 0 ? item.slice(0, at) : "";
    const v = at > 0 ? item.slice(at + 1) : "";
    if (!key.test(k) || /[\0\n\r]/.test(v))
      throw new InvalidError(`--${flag} must be KEY=VALUE with ${what}, got ${JSON.stringify(item)}`, { field: flag });
    out[k] = v;
  }
  return out;
}

export { agentTokenName } from "../auth/roles";

/** Splits raw flags into the driver's and the engine's. */
export function splitOptions(raw: Record<string, OptionValue>): { driver: RawOptions; engine: EngineOptions } {
  const driver: Record<string, OptionValue> = {};
  const engine: EngineOptions = {};
  for (const [k, v] of Object.entries(raw)) {
    const key = k.replace(/^--/, "");
    if (key === "engine-insecure-registry") {
      const list = String(v)
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      for (const r of list) {
        if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(r))
          throw new InvalidError(`--engine-insecure-registry must be host or host:port, got ${JSON.stringify(r)}`, { field: key });
      }
      engine.insecureRegistries = [...(engine.insecureRegistries ?? []), ...list];
    } else if (key === "engine-registry-mirror") {
      const list = String(v)
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      for (const m of list) {
        try {
          parseRegistryMirror(m);
        } catch (e) {
          throw new InvalidError(`--engine-registry-mirror: ${(e as Error).message}`, { field: key });
        }
      }
      engine.registryMirrors = [...(engine.registryMirrors ?? []), ...list];
    } else if (key === "engine-env") {
      const env = pairs(key, v, /^[A-Za-z_][A-Za-z0-9_]*$/, "KEY a variable name");
      const reserved = Object.keys(env).find((k) => k.startsWith("FLOTILLA_"));
      if (reserved) throw new InvalidError(`--engine-env ${reserved}: FLOTILLA_* variables are set by provisioning`, { field: key });
      engine.env = { ...engine.env, ...env };
    } else if (key === "engine-label") {
      engine.labels = {
        ...engine.labels,
        ...pairs(key, v, /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/, 'KEY of letters, digits, ".", "_", "/" or "-"'),
      };
    } else if (key.startsWith("engine-")) {
      throw new InvalidError(`unknown option --${key} (engine options: ${ENGINE_FLAGS})`, { field: key });
    } else {
      driver[key] = v;
    }
  }
  return { driver, engine };
}

@Injectable()
export class MachineHost {
  private ca?: Promise<CertificateAuthority>;

  constructor(@Inject(MACHINES_CONFIG) readonly config: MachinesConfig) {}

  storeDir(name: string): string {
    return join(this.config.dataDir, "machines", name);
  }

  userCertDir(name: string): string {
    return join(this.config.userMachinesDir, name);
  }

  /**
   * Binds the machine's driver from its stored options (drivers are stateless), with the pin of
   * its SSH host key (the machine record: MachinesRepository.hostKeyPin).
   */
  driver(machine: Pick<MachineRow, "name" | "driver" | "options">, hostKeyPin: HostKeyPin, progress?: (e: DriverEvent) => void): Driver {
    const factory = getDriver(machine.driver);
    const { driver } = splitOptions((machine.options ?? {}) as Record<string, OptionValue>);
    return factory.bind(
      { machineName: machine.name, storeDir: this.storeDir(machine.name), runner: createExecRunner(), progress, hostKeyPin },
      factory.parseOptions(driver),
    );
  }

  /** Where older versions pinned the SSH host key (the record takes it over). */
  legacyHostKeyFile(name: string): string {
    return join(this.storeDir(name), PINNED_HOST_KEY);
  }

  engineOptions(machine: Pick<MachineRow, "options">): EngineOptions {
    return splitOptions((machine.options ?? {}) as Record<string, OptionValue>).engine;
  }

  authority(): Promise<CertificateAuthority> {
    this.ca ??= CertificateAuthority.open(join(this.config.dataDir, "certs"));
    return this.ca;
  }

  async controlPlaneClient(): Promise<KeyPair> {
    return ensureClientCert(await this.authority(), CONTROL_PLANE_CLIENT);
  }

  /**
   * The machine's own client certificate, in `<configDir>/machines/<name>/{ca,cert,key}.pem` for
   * `ctl machine env`: issued on first use; `renew` re-issues it when it expires soon, `rotate`
   * always (the caller then writes the agent's allow list).
   */
  async machineClientCert(name: string, opts: { rotate?: boolean; renew?: boolean } = {}): Promise<KeyPair> {
    return (await ensureMachineClientCert(await this.authority(), this.userCertDir(name), name, opts)).pair;
  }

  /** The copy of the machine's server certificate kept when it is issued (for its expiry). */
  serverCertCopy(name: string): string {
    return join(this.storeDir(name), "server-cert.pem");
  }

  /** Expiry (and fingerprint) of the machine's certificates, for `machine inspect` and the console. */
  async certificates(name: string): Promise<MachineCertificates> {
    const read = (p: string) => readFile(p, "utf8").catch(() => undefined);
    const client = await read(join(this.userCertDir(name), "cert.pem"));
    const server = await read(this.serverCertCopy(name));
    const info = (pem: string | undefined) => {
      try {
        return pem ? { expiresAt: certificateExpiry(pem).toISOString(), sha256: certificateFingerprint(pem) } : null;
      } catch {
        return null;
      }
    };
    return { client: info(client), server: info(server) };
  }

  async removeUserCerts(name: string): Promise<void> {
    await removeClientCertDir(this.userCertDir(name));
  }
}
