// Where the agent's files go on a host, and the service files that run it.
//
// Ordinary host:   /opt/flotilla/agent (bundle), /etc/flotilla (TLS, env), /run/flotilla (pids),
//                  agent root /var/lib/flotilla-agent, systemd unit when systemd is PID 1.
// netns host:      everything under the machine's own /var/lib/flotilla-agent (the host's /etc,
//                  /opt and /run are shared by every machine on the box), supervisor loop.
import type { EngineOptions } from "./engine-options";

/**
 * The paths every service the provisioner installs has (the agent, a control-plane replica): its
 * bundle, its config and env file, its pid files, the run script the unit and the supervisor
 * exec, the supervisor itself, and the log the supervisor appends to.
 */
export interface ServiceLayout {
  netns: boolean;
  installDir: string;
  configDir: string;
  runDir: string;
  envPath: string;
  runScript: string;
  supervisor: string;
  logPath: string;
}

/** Where one service's directories and log go, on an ordinary host or on a netns host. */
export interface ServicePlaces {
  installDir: string;
  configDir: string;
  runDir: string;
  logPath: string;
}

/** A service's layout from its two tables of places; the env file is named within configDir. */
export function serviceLayout(netns: boolean, places: { host: ServicePlaces; netns: ServicePlaces }, envFile: string): ServiceLayout {
  const p = netns ? places.netns : places.host;
  return {
    netns,
    ...p,
    envPath: `${p.configDir}/${envFile}`,
    // Beside the install dir, not in it: a new bundle replaces installDir whole.
    runScript: `${p.installDir}-run.sh`,
    supervisor: `${p.installDir}-supervise.sh`,
  };
}

export interface AgentLayout extends ServiceLayout {
  root: string;
  socket: string;
  caPath: string;
  certPath: string;
  keyPath: string;
  /** The client certificates the agent accepts (--tlsclients). */
  clientsPath: string;
}

const AGENT_ROOT = "/var/lib/flotilla-agent";

/** Written by the netns driver into each machine's data dir. */
export const NETNS_MARKER = `${AGENT_ROOT}/.flotilla-netns-host`;

export function agentLayout(netns: boolean): AgentLayout {
  const base = `${AGENT_ROOT}/flotilla`;
  const l = serviceLayout(
    netns,
    {
      host: {
        installDir: "/opt/flotilla/agent",
        configDir: "/etc/flotilla",
        runDir: "/run/flotilla",
        logPath: "/var/log/flotilla-agent.log",
      },
      netns: { installDir: `${base}/agent`, configDir: `${base}/etc`, runDir: `${base}/run`, logPath: `${base}/agent.log` },
    },
    "agent.env",
  );
  return {
    ...l,
    root: AGENT_ROOT,
    socket: netns ? `${l.runDir}/agent.sock` : "/run/flotilla-agent.sock",
    caPath: `${l.configDir}/ca.pem`,
    certPath: `${l.configDir}/server.pem`,
    keyPath: `${l.configDir}/server-key.pem`,
    clientsPath: `${l.configDir}/clients.allow`,
  };
}

export async function detectLayout(shell: { test(script: string): Promise<number | null> }): Promise<AgentLayout> {
  return agentLayout((await shell.test(`[ -e ${NETNS_MARKER} ]`)) === 0);
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * agent.env, which the run script sources with `set -a; . agent.env`: every value single-quoted,
 * so nothing in a value (a URL with `$(...)`, a `;`) is ever run by that root shell.
 */
export function renderAgentEnv(vars: Readonly<Record<string, string>>): string {
  return Object.entries(vars)
    .map(([k, v]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`agent.env: invalid variable name ${JSON.stringify(k)}`);
      if (/[\0\n]/.test(v)) throw new Error(`agent.env: ${k} holds a newline or NUL`);
      return `${k}=${q(v)}\n`;
    })
    .join("");
}

/** The one place the agent's flags live; the unit and the supervisor both exec it. */
export function renderRunScript(l: AgentLayout, engine: EngineOptions, opts: { clientAllowList?: boolean } = {}): string {
  const flags = [
    `--root ${q(l.root)}`,
    `--socket ${q(l.socket)}`,
    "--tls-listen 0.0.0.0:2376",
    `--tlscacert ${q(l.caPath)}`,
    `--tlscert ${q(l.certPath)}`,
    `--tlskey ${q(l.keyPath)}`,
    // Only the control plane and this machine's own client certificate, not every one the CA signed.
    ...(opts.clientAllowList ? [`--tlsclients ${q(l.clientsPath)}`] : []),
    ...(engine.insecureRegistries ?? []).map((r) => `--insecure-registry ${q(r)}`),
    ...(engine.registryMirrors ?? []).map((m) => `--registry-mirror ${q(m)}`),
    // A netns machine shares the host's filesystem with the control plane: its containers must
    // not bind-mount the control plane's keys, tokens and data.
    ...(l.netns ? (engine.denyBinds ?? []).map((p) => `--deny-bind ${q(p)}`) : []),
  ];
  return [
    "#!/bin/sh",
    "# Written by the Flotilla provisioner: runs the agent with this machine's flags.",
    `set -a; [ -f ${q(l.envPath)} ] && . ${q(l.envPath)}; set +a`,
    `mkdir -p ${q(l.runDir)}`,
    `exec ${q(`${l.installDir}/flotilla-agent`)} ${flags.join(" ")}`,
    "",
  ].join("\n");
}

/**
 * For hosts without systemd: a loop that restarts the agent when it exits (after 1s), records
 * both pids, and on TERM stops the agent before leaving.
 */
export function renderSupervisor(l: Pick<ServiceLayout, "runDir" | "runScript" | "logPath">, what = "agent"): string {
  return [
    "#!/bin/sh",
    `# Written by the Flotilla provisioner: keeps the ${what} running (no systemd on this host).`,
    `run=${q(l.runDir)}`,
    'mkdir -p "$run"',
    'echo $$ > "$run/supervisor.pid"',
    "child=",
    'trap \'[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] && wait "$child"; rm -f "$run/agent.pid" "$run/supervisor.pid"; exit 0\' TERM INT',
    "while :; do",
    `  ${q(l.runScript)} >>${q(l.logPath)} 2>&1 &`,
    "  child=$!",
    '  echo "$child" > "$run/agent.pid"',
    '  wait "$child"',
    `  echo "flotilla-supervisor: ${what} exited ($?), restarting in 1s" >>${q(l.logPath)}`,
    "  sleep 1",
    "done",
    "",
  ].join("\n");
}

export function renderUnit(l: AgentLayout): string {
  return [
    "[Unit]",
    "Description=Flotilla agent (Docker Engine API subset)",
    "After=network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    `ExecStart=${l.runScript}`,
    "Restart=always",
    "RestartSec=1",
    // Containers are the shim's children and must survive an agent restart.
    "KillMode=process",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}
