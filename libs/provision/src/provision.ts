// Provisioning over SSH: put the agent on a host, give it TLS material, run it as a service, and
// wait until it answers mutual TLS on port 2376. Every step is reported, and a failure names the
// step and keeps the cause: "provision devdays: upload agent: tar: ...: Cannot open: Permission denied".
import { readFile, writeFile } from "node:fs/promises";
import { connect as tlsConnect } from "node:tls";
import { UnavailableError } from "@flotilla/core";
import { sleep, type SshEndpoint } from "@flotilla/drivers";
import { hostRuntimeDir, prepareBundle, type PreparedBundle } from "./bundle";
import { type CertificateAuthority, type KeyPair, needsReissue } from "./certs";
import { engineEnvironment, type EngineOptions } from "./engine-options";
import { hostProbeScript, parseHostProbe, parseOsRelease } from "./host-os";
import { agentLayout, detectLayout, NETNS_MARKER, renderAgentEnv, renderRunScript, type AgentLayout } from "./layout";
import {
  enableServiceScript,
  installedServiceKind,
  restartService,
  serviceFiles,
  serviceKindOf,
  stopService,
  type ServiceKind,
} from "./service";
import { openShell, RootShell, step } from "./shell";
import { tarOf, type TarFile } from "./tar";

export const AGENT_PORT = 2376;

export interface ProvisionProgress {
  step: string;
  message: string;
  /** 0-100, rising. */
  percent: number;
}

export interface AgentTarget {
  ssh: SshEndpoint;
  machineName: string;
  /** The address the control plane and users reach the agent on; a SAN of its certificate. */
  ip: string;
  ca: CertificateAuthority;
  /** The control plane's client certificate, used to check the agent answers mutual TLS. */
  client: KeyPair;
  signal?: AbortSignal;
  progress?: (p: ProvisionProgress) => void;
  /** How long to wait for the agent's TLS port after (re)starting it. Default 60s. */
  agentTimeoutMs?: number;
  sshTimeoutMs?: number;
  /**
   * The client certificates the agent accepts (`clientAllowList`): written to the host and
   * passed with --tlsclients. Without it the agent accepts any certificate the CA signed.
   */
  allowedClients?: readonly string[];
  /** Where to keep a copy of the server certificate issued (for its expiry in `machine inspect`). */
  serverCertCopy?: string;
}

export interface ProvisionOptions extends AgentTarget {
  /**
   * Where agents send heartbeats, and the one-time token the agent trades for its own API token
   * (`POST /api/v1/nodes/join`); both written to the agent's environment file (mode 0600). `url` lists
   * every replica the agent may report to, comma-separated (FLOTILLA_API_URL).
   */
  controlPlane?: { url: string; joinToken: string };
  agentBundle: { path: string };
  engine?: EngineOptions;
}

export interface ProvisionResult {
  os: { id: string; versionId: string; pretty: string };
  /** The bundle's own Node runtime, as it reports itself on the host ("v20.20.2"). */
  nodeVersion: string;
  service: ServiceKind;
  agentVersion: string;
  layout: AgentLayout;
}

/**
 * Provisions a host: OS → agent bundle (with its own Node runtime) → TLS files → service → start
 * → mutual TLS answers. The host needs only SSH, a POSIX shell, tar and gzip.
 * Idempotent: running it again upgrades the bundle, re-issues the certificate and restarts.
 */
export async function provision(options: ProvisionOptions): Promise<ProvisionResult> {
  const { machineName: name } = options;
  const report = (s: string, message: string, percent: number) => options.progress?.({ step: s, message, percent });
  const P = <T>(s: string, fn: () => Promise<T>) => step("provision", name, s, fn);

  // Host-side work while SSH connects (to a VM, often while it still boots): read and split the
  // bundle, issue the server certificate. A missing bundle fails the upload step, as before.
  const preparing = prepareBundle(options.agentBundle.path);
  preparing.catch(() => undefined);
  const issuing = options.ca.issueServer({ commonName: name, ips: [options.ip] });
  issuing.catch(() => undefined);
  report("ssh", `connecting to ${options.ssh.user}@${options.ssh.host}:${options.ssh.port}`, 5);
  const shell = await P("ssh", () => openShell(options));
  try {
    report("detect os", "reading /etc/os-release", 10);
    const runtime = (await preparing.catch(() => undefined))?.runtime;
    const probe = await P("detect os", async () =>
      parseHostProbe(await shell.run(hostProbeScript(NETNS_MARKER, runtime && hostRuntimeDir(runtime)))),
    );
    const os = parseOsRelease(probe.osRelease);
    const layout = agentLayout(probe.netns);

    const agentVersion = await uploadBundle(shell, options, layout, report, preparing, probe.runtimeSha256 ?? null);

    report("runtime", "checking the bundle's Node runtime runs here", 50);
    const nodeVersion = await P("runtime", async () => {
      const res = await shell.conn.exec(`'${layout.installDir}/node' --version`, { signal: options.signal });
      if (res.code !== 0) {
        const why = (res.stderr.trim() || `exit ${res.code ?? res.signal}`).split("\n").slice(-2).join(" | ");
        throw new UnavailableError(`the agent's Node runtime (linux-x64, glibc) does not run on ${os.pretty}: ${why}`);
      }
      return res.stdout.trim();
    });

    report("certificates", `issuing the server certificate for ${options.ip}`, 55);
    const pair = await P("certificates", () => issuing);

    const service = serviceKindOf(layout, probe);
    report("service", `writing the certificates and the agent's service (${service})`, 65);
    await P("service", () => installAgentFiles(shell, options, layout, service, pair));

    report("start agent", `starting the agent (${service})`, 75);
    await P("start agent", () => restartService(shell, layout, service));

    report("wait for agent", `waiting for mutual TLS on ${options.ip}:${AGENT_PORT}`, 85);
    await P("wait for agent", () => waitForAgentOrLog(shell, options, layout));
    report("ready", `agent ${agentVersion} answers on ${options.ip}:${AGENT_PORT}`, 100);
    return { os, nodeVersion, service, agentVersion, layout };
  } finally {
    shell.close();
  }
}

/**
 * Uploads the bundle into the install dir (replacing it whole) and returns the agent's version.
 * `hostRuntimeSha256`: what the host's copy of the bundle's runtime records (null: none;
 * undefined: ask it); when it is the bundle's, the runtime is not uploaded but linked.
 */
async function uploadBundle(
  shell: RootShell,
  options: { machineName: string; agentBundle: { path: string } },
  layout: AgentLayout,
  report: (s: string, m: string, p: number) => void,
  preparing: Promise<PreparedBundle> = prepareBundle(options.agentBundle.path),
  hostRuntimeSha256?: string | null,
): Promise<string> {
  const name = options.machineName;
  return step("provision", name, "upload agent", async () => {
    const bundle = await preparing;
    const dir = layout.installDir;
    // The host's own copy of the bundle's runtime (the Flotilla guest image carries it), when its
    // recorded sha256 is the bundle's; any other host gets the runtime uploaded.
    const shared = bundle.runtime && hostRuntimeDir(bundle.runtime);
    const recorded =
      hostRuntimeSha256 !== undefined || !shared
        ? hostRuntimeSha256
        : (await shell.run(`cat '${shared}/SHA256' 2>/dev/null || true`)).trim();
    const reuse = !!shared && !!bundle.withoutRuntime && recorded === bundle.runtime!.sha256;
    report(
      "upload agent",
      reuse
        ? `uploading ${options.agentBundle.path} without its Node runtime (the host has ${shared})`
        : `uploading ${options.agentBundle.path}`,
      30,
    );
    // Streamed into tar on the host: one pass, no temporary copy of the tarball to write and
    // read back (with the runtime it is ~40 MB; on a VM under TCG every pass over it counts).
    const out = await shell.run(
      `set -e; rm -rf '${dir}.new'; mkdir -p '${dir}.new'; tar -xzf - -C '${dir}.new'; ` +
        (reuse ? `ln -s '${shared}/node' '${dir}.new/node'; ` : "") +
        `rm -rf '${dir}.old'; if [ -d '${dir}' ]; then mv '${dir}' '${dir}.old'; fi; mv '${dir}.new' '${dir}'; rm -rf '${dir}.old'; ` +
        `head -n1 '${dir}/VERSION'`,
      reuse ? bundle.withoutRuntime : await readFile(options.agentBundle.path),
    );
    return out.trim();
  });
}

/**
 * Everything the agent needs besides its bundle, in one exec: the CA, the server certificate and
 * key (0600), the client allow list, agent.env (0600), the run script, the service files, then
 * the service enabled for boot. Directories made here are 0700, as RootShell.writeFile makes them.
 */
async function installAgentFiles(
  shell: RootShell,
  options: ProvisionOptions,
  layout: AgentLayout,
  kind: ServiceKind,
  pair: KeyPair,
): Promise<void> {
  const files: TarFile[] = [
    { path: layout.caPath, content: options.ca.certPem, mode: 0o644 },
    { path: layout.certPath, content: pair.cert, mode: 0o644 },
    { path: layout.keyPath, content: pair.key, mode: 0o600 },
    ...(options.allowedClients ? [{ path: layout.clientsPath, content: clientAllowList(options.allowedClients), mode: 0o644 }] : []),
    { path: layout.envPath, content: renderAgentEnv(agentEnvironment(options, layout)), mode: 0o600 },
    {
      path: layout.runScript,
      content: renderRunScript(layout, options.engine ?? {}, { clientAllowList: !!options.allowedClients }),
      mode: 0o755,
    },
    ...serviceFiles(layout, kind),
  ];
  const dirs = [...new Set(files.map((f) => f.path.slice(0, f.path.lastIndexOf("/")) || "/"))].map((d) => `'${d}'`).join(" ");
  await shell.run(`set -e; umask 077; mkdir -p ${dirs}; tar -xf - -C /; ${enableServiceScript(kind)}`, tarOf(files));
  if (options.serverCertCopy) await writeFile(options.serverCertCopy, pair.cert, { mode: 0o644 });
}

async function installServerCert(shell: RootShell, target: AgentTarget, layout: AgentLayout): Promise<void> {
  const pair = await target.ca.issueServer({ commonName: target.machineName, ips: [target.ip] });
  await shell.writeFile(layout.caPath, target.ca.certPem, 0o644);
  await shell.writeFile(layout.certPath, pair.cert, 0o644);
  await shell.writeFile(layout.keyPath, pair.key, 0o600);
  if (target.serverCertCopy) await writeFile(target.serverCertCopy, pair.cert, { mode: 0o644 });
}

const clientAllowList = (clients: readonly string[]) => `# Written by the Flotilla control plane.\n${clients.join("\n")}\n`;

/** The agent re-reads the list when it changes: a rotated certificate is refused from the next connection. */
async function installClientAllowList(shell: RootShell, target: AgentTarget, layout: AgentLayout): Promise<void> {
  if (!target.allowedClients) return;
  await shell.writeFile(layout.clientsPath, clientAllowList(target.allowedClients), 0o644);
}

function agentEnvironment(options: ProvisionOptions, layout: AgentLayout): Record<string, string> {
  const env: Record<string, string> = {
    FLOTILLA_MACHINE_NAME: options.machineName,
    FLOTILLA_ENGINE_URL: `https://${options.ip}:${AGENT_PORT}`,
  };
  if (options.controlPlane)
    Object.assign(env, { FLOTILLA_API_URL: options.controlPlane.url, FLOTILLA_JOIN_TOKEN: options.controlPlane.joinToken });
  // An https API URL is the agents' TLS listener, whose certificate the Flotilla CA signed. The
  // URL may list several replicas (comma-separated); any of them on https needs the CA.
  if (options.controlPlane?.url.split(",").some((u) => u.trim().startsWith("https://"))) env.NODE_EXTRA_CA_CERTS = layout.caPath;
  Object.assign(env, engineEnvironment(options.engine ?? {}));
  return env;
}

/**
 * Checks once that the agent answers over mutual TLS: handshake, then `GET /_ping`. The request
 * matters: with TLS 1.3 a server rejects a client certificate only after the client thinks the
 * handshake is done.
 */
export function agentHandshake(ip: string, ca: string, client: KeyPair, timeoutMs = 3000): Promise<true | string> {
  return new Promise((resolve) => {
    let answered = "";
    let settled = false;
    const sock = tlsConnect({
      host: ip,
      port: AGENT_PORT,
      ca,
      cert: client.cert,
      key: client.key,
      servername: undefined,
      timeout: timeoutMs,
    });
    // Agents' certificates carry the machine's IP as a SAN; Node checks it against `host`.
    const done = (r: true | string) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve(r);
    };
    sock.once("secureConnect", () => {
      if (!sock.authorized) return done(`certificate not trusted: ${String(sock.authorizationError)}`);
      sock.write(`GET /_ping HTTP/1.1\r\nHost: ${ip}:${AGENT_PORT}\r\nConnection: close\r\n\r\n`);
    });
    sock.on("data", (b: Buffer) => {
      answered += b.toString("latin1");
      if (/^HTTP\/1\.[01] \d{3}/.test(answered)) done(true);
    });
    sock.once("end", () =>
      done(answered ? `unexpected answer: ${answered.slice(0, 80)}` : "closed by the agent (client certificate refused?)"),
    );
    sock.once("timeout", () => done("timed out"));
    sock.once("error", (e: NodeJS.ErrnoException) => done(e.code === "ECONNREFUSED" ? "connection refused" : e.message));
  });
}

/** Polls the agent's TLS port until the handshake works; UnavailableError with the last failure. */
export async function waitForAgent(target: Pick<AgentTarget, "ip" | "ca" | "client" | "signal" | "agentTimeoutMs">): Promise<void> {
  const deadline = Date.now() + (target.agentTimeoutMs ?? 60_000);
  for (;;) {
    target.signal?.throwIfAborted();
    const r = await agentHandshake(target.ip, target.ca.certPem, target.client);
    if (r === true) return;
    if (Date.now() > deadline)
      throw new UnavailableError(
        `no answer over mutual TLS on ${target.ip}:${AGENT_PORT} after ${Math.round((target.agentTimeoutMs ?? 60_000) / 1000)}s: ${r}`,
      );
    await sleep(250, target.signal);
  }
}

async function waitForAgentOrLog(shell: RootShell, target: AgentTarget, layout: AgentLayout): Promise<void> {
  try {
    await waitForAgent(target);
  } catch (e) {
    if (!(e instanceof UnavailableError)) throw e;
    const log = await shell.run(`tail -n 5 '${layout.logPath}' 2>/dev/null || true`).catch(() => "");
    throw new UnavailableError(`${e.message}${log.trim() ? ` (agent log: ${log.trim().split("\n").join(" | ")})` : ""}`, e.details);
  }
}

/** Restarts the agent (after new certificates or a new bundle) and waits for mutual TLS. */
export async function restartAgent(target: AgentTarget): Promise<void> {
  const shell = await step("restart agent", target.machineName, "ssh", () => openShell(target));
  try {
    const layout = await detectLayout(shell);
    const kind = await installedServiceKind(shell, layout);
    await step("restart agent", target.machineName, "start agent", () => restartService(shell, layout, kind));
    await step("restart agent", target.machineName, "wait for agent", () => waitForAgentOrLog(shell, target, layout));
  } finally {
    shell.close();
  }
}

/** Stops the agent's service over SSH (before a machine stop on hosts that keep running). */
export async function stopAgent(target: Pick<AgentTarget, "ssh" | "signal" | "machineName" | "sshTimeoutMs">): Promise<void> {
  const shell = await step("stop agent", target.machineName, "ssh", () => openShell(target));
  try {
    const layout = await detectLayout(shell);
    await step("stop agent", target.machineName, "stop agent", async () =>
      stopService(shell, layout, await installedServiceKind(shell, layout)),
    );
  } finally {
    shell.close();
  }
}

/**
 * Re-issues the server certificate when `force` or when its IPs no longer include `ip` (or it
 * expires soon), then restarts the agent. Returns whether it re-issued. With `allowedClients`,
 * writes the agent's client allow list too (the agent re-reads it), and with `engine` turns the
 * list on in the run script of a machine provisioned before there was one (restarting it).
 */
export async function regenerateCerts(target: AgentTarget & { force?: boolean; engine?: EngineOptions }): Promise<boolean> {
  const name = target.machineName;
  const shell = await step("regenerate certs", name, "ssh", () => openShell(target));
  try {
    const layout = await detectLayout(shell);
    let restart = false;
    if (target.allowedClients) {
      target.progress?.({ step: "client certificates", message: "writing the client certificates the agent accepts", percent: 20 });
      await step("regenerate certs", name, "client certificates", async () => {
        await installClientAllowList(shell, target, layout);
        if (!target.engine) return;
        const script = renderRunScript(layout, target.engine, { clientAllowList: true });
        if ((await shell.run(`cat '${layout.runScript}' 2>/dev/null || true`)) === script) return;
        await shell.writeFile(layout.runScript, script, 0o755);
        restart = true;
      });
    }
    const current = await shell.run(`cat '${layout.certPath}' 2>/dev/null || true`);
    let reissue = target.force === true || !current.includes("BEGIN CERTIFICATE");
    if (!reissue) {
      try {
        reissue = needsReissue(current, [target.ip]);
      } catch {
        reissue = true;
      }
    }
    if (!reissue && !restart) return false;
    if (reissue) {
      target.progress?.({ step: "certificates", message: `re-issuing the server certificate for ${target.ip}`, percent: 30 });
      await step("regenerate certs", name, "certificates", () => installServerCert(shell, target, layout));
    }
    target.progress?.({ step: "start agent", message: "restarting the agent", percent: 60 });
    const kind = await installedServiceKind(shell, layout);
    await step("regenerate certs", name, "start agent", () => restartService(shell, layout, kind));
    await step("regenerate certs", name, "wait for agent", () => waitForAgentOrLog(shell, target, layout));
    return reissue;
  } finally {
    shell.close();
  }
}

/**
 * Writes the agent's client allow list only (the agent re-reads it; no restart): e.g. only the
 * control plane's, when the machine is removed but its host and agent stay (generic).
 */
export async function writeClientAllowList(target: AgentTarget & { allowedClients: readonly string[] }): Promise<void> {
  const shell = await step("client certificates", target.machineName, "ssh", () => openShell(target));
  try {
    const layout = await detectLayout(shell);
    await step("client certificates", target.machineName, "client certificates", () => installClientAllowList(shell, target, layout));
  } finally {
    shell.close();
  }
}

/** Uploads a new bundle and restarts the agent; returns the new agent version. */
export async function upgradeAgent(target: AgentTarget & { agentBundle: { path: string } }): Promise<string> {
  const shell = await step("upgrade", target.machineName, "ssh", () => openShell(target));
  try {
    const layout = await detectLayout(shell);
    const version = await uploadBundle(shell, { ...target }, layout, (s, m, p) => target.progress?.({ step: s, message: m, percent: p }));
    const kind = await installedServiceKind(shell, layout);
    await step("upgrade", target.machineName, "start agent", () => restartService(shell, layout, kind));
    await step("upgrade", target.machineName, "wait for agent", () => waitForAgentOrLog(shell, target, layout));
    return version;
  } finally {
    shell.close();
  }
}
