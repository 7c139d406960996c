// A control-plane API replica on a machine, over the same SSH path as the agent: the
// control-plane bundle (its own Node runtime), the files every replica must share (the secrets key,
// the CA certificate, the control plane's client certificate; never the CA key), an env file
// naming Postgres and Redis as the machine reaches them, and a service that runs
// `flotilla-control-plane api`. Then it waits until the replica answers /api/v1/health.
//
// Ordinary host:  /opt/flotilla-control-plane (bundle), /etc/flotilla-control-plane (env, secrets
//                 key), /var/lib/flotilla-control-plane (certs), unit flotilla-control-plane.service
//                 when systemd is PID 1, else the supervisor loop.
// netns host:     all of it under the machine's own /var/lib/flotilla-agent/flotilla/control-plane
//                 (the host's /etc and /opt are the control plane's own), supervisor loop.
import { readFile } from "node:fs/promises";
import { replicaSettings, UnavailableError, type ReplicaSettingsInput } from "@flotilla/core";
import { sleep, type SshEndpoint } from "@flotilla/drivers";
import type { KeyPair } from "./certs";
import { NETNS_MARKER, renderAgentEnv, renderSupervisor, serviceLayout, type ServiceLayout } from "./layout";
import { startSupervisorScript, stopSupervisorScript } from "./service";
import { openShell, step, type RootShell } from "./shell";
import { tarOf, type TarFile } from "./tar";

export interface ControlPlaneLayout extends ServiceLayout {
  dataDir: string;
  secretsKeyPath: string;
  certsDir: string;
}

export const CONTROL_PLANE_UNIT = "flotilla-control-plane.service";
const UNIT_PATH = `/etc/systemd/system/${CONTROL_PLANE_UNIT}`;

export function controlPlaneLayout(netns: boolean): ControlPlaneLayout {
  const base = "/var/lib/flotilla-agent/flotilla/control-plane";
  const l = serviceLayout(
    netns,
    {
      host: {
        installDir: "/opt/flotilla-control-plane",
        configDir: "/etc/flotilla-control-plane",
        runDir: "/run/flotilla-control-plane",
        logPath: "/var/log/flotilla-control-plane.log",
      },
      netns: { installDir: `${base}/opt`, configDir: `${base}/etc`, runDir: `${base}/run`, logPath: `${base}/control-plane.log` },
    },
    "control-plane.env",
  );
  const dataDir = netns ? `${base}/data` : "/var/lib/flotilla-control-plane";
  return { ...l, dataDir, secretsKeyPath: `${l.configDir}/secrets.key`, certsDir: `${dataDir}/certs` };
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function renderRunScript(l: ControlPlaneLayout): string {
  return [
    "#!/bin/sh",
    "# Written by the Flotilla provisioner: runs this machine's control-plane API replica.",
    `set -a; . ${q(l.envPath)}; set +a`,
    `mkdir -p ${q(l.runDir)}`,
    `exec ${q(`${l.installDir}/flotilla-control-plane`)} api`,
    "",
  ].join("\n");
}

function renderUnit(l: ControlPlaneLayout): string {
  return [
    "[Unit]",
    "Description=Flotilla control plane (API replica)",
    "After=network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    `ExecStart=${l.runScript}`,
    "Restart=always",
    "RestartSec=1",
    // The API drains in-flight requests on SIGTERM (bootstrap.ts).
    "KillSignal=SIGTERM",
    "TimeoutStopSec=30",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

export interface ReplicaTarget {
  ssh: SshEndpoint;
  machineName: string;
  signal?: AbortSignal;
  sshTimeoutMs?: number;
  progress?: (p: { step: string; message: string; percent: number }) => void;
}

export interface ReplicaInstall extends ReplicaTarget {
  /** The control-plane bundle (scripts/build-control-plane-bundle.mjs). */
  bundlePath: string;
  /** Everything of the replica's settings but its paths, which depend on the host's layout. */
  settings: Omit<ReplicaSettingsInput, "paths">;
  /** The secrets key, the CA certificate and the control plane's client certificate: shared state. */
  secretsKey: Buffer;
  caCert: string;
  client: KeyPair;
  /** The client certificate's file stem in the CA dir (`control-plane`). */
  clientName: string;
  /** Where the replica answers, as this host reaches it. */
  url: string;
  timeoutMs?: number;
}

async function systemdHost(shell: RootShell, l: ControlPlaneLayout): Promise<boolean> {
  return !l.netns && (await shell.test("[ -d /run/systemd/system ]")) === 0;
}

async function stopReplica(shell: RootShell, l: ControlPlaneLayout): Promise<void> {
  await shell.run(`if [ -f ${q(UNIT_PATH)} ] && [ -d /run/systemd/system ]; then systemctl stop ${CONTROL_PLANE_UNIT} || true; fi`);
  await shell.run(stopSupervisorScript(l));
}

/**
 * Installs (or replaces) the replica and starts it; resolves once it answers /api/v1/health as an
 * `api` process. Idempotent, as provisioning is.
 */
export async function installControlPlane(o: ReplicaInstall): Promise<{ version: string; layout: ControlPlaneLayout }> {
  const S = <T>(name: string, fn: () => Promise<T>) => step("control plane", o.machineName, name, fn);
  const report = (s: string, message: string, percent: number) => o.progress?.({ step: s, message, percent });
  report("ssh", `connecting to ${o.ssh.user}@${o.ssh.host}:${o.ssh.port}`, 5);
  const shell = await S("ssh", () => openShell(o));
  try {
    const l = controlPlaneLayout((await shell.test(`[ -e ${NETNS_MARKER} ]`)) === 0);
    report("upload", `uploading ${o.bundlePath} into ${l.installDir}`, 15);
    const bundle = await S("upload", () => readFile(o.bundlePath));
    await S("stop", () => stopReplica(shell, l));
    const version = await S("upload", async () => {
      const dir = l.installDir;
      const out = await shell.run(
        `set -e; rm -rf '${dir}.new'; mkdir -p '${dir}.new'; tar -xzf - -C '${dir}.new'; ` +
          `rm -rf '${dir}.old'; if [ -d '${dir}' ]; then mv '${dir}' '${dir}.old'; fi; mv '${dir}.new' '${dir}'; rm -rf '${dir}.old'; ` +
          `head -n1 '${dir}/VERSION'`,
        bundle,
      );
      return out.trim();
    });
    const systemd = await systemdHost(shell, l);
    report("files", "writing the replica's settings, secrets key and certificates (0600)", 50);
    const env = replicaSettings({
      ...o.settings,
      paths: { configDir: l.configDir, dataDir: l.dataDir, secretsKeyFile: l.secretsKeyPath },
    });
    const files: TarFile[] = [
      { path: l.envPath, content: renderAgentEnv(env), mode: 0o600 },
      { path: l.secretsKeyPath, content: o.secretsKey, mode: 0o600 },
      { path: `${l.certsDir}/ca.pem`, content: o.caCert, mode: 0o644 },
      { path: `${l.certsDir}/${o.clientName}-cert.pem`, content: o.client.cert, mode: 0o644 },
      { path: `${l.certsDir}/${o.clientName}-key.pem`, content: o.client.key, mode: 0o600 },
      { path: l.runScript, content: renderRunScript(l), mode: 0o755 },
      systemd
        ? { path: UNIT_PATH, content: renderUnit(l), mode: 0o644 }
        : { path: l.supervisor, content: renderSupervisor(l, "control plane"), mode: 0o755 },
    ];
    const dirs = [...new Set([...files.map((f) => f.path.slice(0, f.path.lastIndexOf("/"))), l.runDir, `${l.dataDir}/machines`])];
    // A CA key left from anything earlier must not be there: the replica issues nothing.
    await S("files", () =>
      shell.run(
        `set -e; umask 077; mkdir -p ${dirs.map(q).join(" ")}; rm -f ${q(`${l.certsDir}/ca-key.pem`)}; tar -xf - -C /`,
        tarOf(files),
      ),
    );
    report("start", `starting the replica (${systemd ? "systemd" : "supervisor"})`, 70);
    await S("start", () =>
      shell.run(
        systemd
          ? `systemctl daemon-reload && systemctl enable ${CONTROL_PLANE_UNIT} >/dev/null 2>&1 && systemctl restart ${CONTROL_PLANE_UNIT}`
          : startSupervisorScript(l),
      ),
    );
    report("wait", `waiting for ${o.url}/api/v1/health`, 80);
    await S("wait", () => waitForReplica(o, shell, l));
    report("ready", `control-plane replica ${version} answers on ${o.url}`, 100);
    return { version, layout: l };
  } finally {
    shell.close();
  }
}

async function waitForReplica(o: ReplicaInstall, shell: RootShell, l: ControlPlaneLayout): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    o.signal?.throwIfAborted();
    try {
      const res = await fetch(`${o.url}/api/v1/health`, { signal: AbortSignal.timeout(3_000) });
      const body = (await res.json().catch(() => ({}))) as { role?: string; status?: string };
      if (res.ok && body.role === "api") return;
      last = `HTTP ${res.status} ${JSON.stringify(body).slice(0, 200)}`;
    } catch (e) {
      last = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    }
    if (Date.now() > deadline) {
      const log = await shell.run(`tail -n 5 ${q(l.logPath)} 2>/dev/null || true`).catch(() => "");
      throw new UnavailableError(
        `no healthy answer at ${o.url}/api/v1/health after ${Math.round(timeoutMs / 1000)}s: ${last}` +
          (log.trim() ? ` (replica log: ${log.trim().split("\n").join(" | ")})` : ""),
      );
    }
    await sleep(300, o.signal);
  }
}

/** Stops the replica and removes everything it was given (bundle, settings, secrets key, certificates). */
export async function removeControlPlane(o: ReplicaTarget): Promise<void> {
  const S = <T>(name: string, fn: () => Promise<T>) => step("control plane", o.machineName, name, fn);
  const shell = await S("ssh", () => openShell(o));
  try {
    const l = controlPlaneLayout((await shell.test(`[ -e ${NETNS_MARKER} ]`)) === 0);
    o.progress?.({ step: "stop", message: "stopping the control-plane replica", percent: 30 });
    await S("stop", () => stopReplica(shell, l));
    o.progress?.({ step: "remove", message: "removing its bundle, settings, secrets key and certificates", percent: 70 });
    const paths = [l.installDir, l.configDir, l.dataDir, l.runDir, l.runScript, l.supervisor, ...(l.netns ? [] : [UNIT_PATH])];
    await S("remove", () =>
      shell.run(
        `set -e; if [ -f ${q(UNIT_PATH)} ] && [ -d /run/systemd/system ]; then systemctl disable ${CONTROL_PLANE_UNIT} >/dev/null 2>&1 || true; fi; ` +
          `rm -rf ${paths.map(q).join(" ")}`,
      ),
    );
  } finally {
    shell.close();
  }
}
