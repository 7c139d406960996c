// Where the agent's files go on a host, and the service files that run it.
//
// Ordinary host:   /opt/flotilla/agent (bundle), /etc/flotilla (TLS, env), /run/flotilla (pids),
//                  agent root /var/lib/flotilla-agent, systemd unit when systemd is PID 1.
// netns host:      everything under the machine's own /var/lib/flotilla-agent (the host's /etc,
//                  /opt and /run are shared by every machine on the box), supervisor loop.
import type { EngineOptions } from "./engine-options";

export interface AgentLayout {
  netns: boolean;
  installDir: string;
  configDir: string;
  runDir: string;
  root: string;
  socket: string;
  caPath: string;
  certPath: string;
  keyPath: string;
  envPath: string;
  /** The client certificates the agent accepts (--tlsclients). */
  clientsPath: string;
  runScript: string;
  supervisor: string;
  logPath: string;
}

const AGENT_ROOT = "/var/lib/flotilla-agent";
/** Written by the netns driver into each machine's data dir. */
export const NETNS_MARKER = `${AGENT_ROOT}/.flotilla-netns-host`;

export function agentLayout(netns: boolean): AgentLayout {
  const base = netns ? `${AGENT_ROOT}/flotilla` : "";
  const installDir = netns ? `${base}/agent` : "/opt/flotilla/agent";
  const configDir = netns ? `${base}/etc` : "/etc/flotilla";
  const runDir = netns ? `${base}/run` : "/run/flotilla";
  return {
    netns,
    installDir,
    configDir,
    runDir,
    root: AGENT_ROOT,
    socket: netns ? `${runDir}/agent.sock` : "/run/flotilla-agent.sock",
    caPath: `${configDir}/ca.pem`,
    certPath: `${configDir}/server.pem`,
    keyPath: `${configDir}/server-key.pem`,
    envPath: `${configDir}/agent.env`,
    clientsPath: `${configDir}/clients.allow`,
    runScript: `${installDir}-run.sh`,
    supervisor: `${installDir}-supervise.sh`,
    logPath: netns ? `${base}/agent.log` : "/var/log/flotilla-agent.log",
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
export function renderSupervisor(l: Pick<AgentLayout, "runDir" | "runScript" | "logPath">, what = "agent"): string {
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
