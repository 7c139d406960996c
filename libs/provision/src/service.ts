// How the agent runs as a service on a host, by what the host has:
//   systemd   a unit (Debian, Ubuntu and most distributions today)
//   init.d    a System V init script plus the supervisor loop (sysvinit hosts such as the Flotilla
//             guest image): the agent comes back after a reboot
//   supervisor  the loop alone, started over SSH (netns machines, hosts with neither)
import type { AgentLayout, ServiceLayout } from "./layout";
import { renderSupervisor, renderUnit } from "./layout";

export type ServiceKind = "systemd" | "init.d" | "supervisor";

/** What runs commands as root on the host (provision.ts's RootShell). */
export interface ServiceShell {
  run(script: string, input?: string | Buffer): Promise<string>;
  test(script: string): Promise<number | null>;
  writeFile(path: string, content: string | Buffer, mode: number): Promise<void>;
}

export const UNIT_PATH = "/etc/systemd/system/flotilla-agent.service";
export const INIT_SCRIPT_PATH = "/etc/init.d/flotilla-agent";

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Shell that stops the supervisor loop (its trap stops the agent), waits up to 10 s for both
 * pids, then kills what is left. Never fails.
 */
export function stopSupervisorScript(l: Pick<ServiceLayout, "runDir">): string {
  const pids = `${q(`${l.runDir}/supervisor.pid`)} ${q(`${l.runDir}/agent.pid`)}`;
  return (
    `for f in ${pids}; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done; ` +
    `i=0; while [ $i -lt 50 ]; do alive=0; for f in ${pids}; do ` +
    `[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done; [ $alive = 0 ] && break; sleep 0.2; i=$((i+1)); done; ` +
    `for f in ${pids}; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; rm -f "$f"; done; true`
  );
}

/** Starts the supervisor detached (setsid: it outlives the SSH session or the init script). */
export function startSupervisorScript(l: Pick<ServiceLayout, "runDir" | "supervisor">): string {
  return `mkdir -p ${q(l.runDir)} && setsid ${q(l.supervisor)} </dev/null >/dev/null 2>&1 &`;
}

/** The System V init script: start/stop/restart/status of the supervisor loop. */
export function renderInitScript(l: AgentLayout): string {
  const pidFile = q(`${l.runDir}/supervisor.pid`);
  return [
    "#!/bin/sh",
    "### BEGIN INIT INFO",
    "# Provides:          flotilla-agent",
    "# Required-Start:    $network $remote_fs",
    "# Required-Stop:     $network $remote_fs",
    "# Default-Start:     2 3 4 5",
    "# Default-Stop:      0 1 6",
    "# Short-Description: Flotilla agent (Docker Engine API subset)",
    "### END INIT INFO",
    "# Written by the Flotilla provisioner. Containers are the shim's children: stopping the",
    "# agent leaves them running, as the systemd unit's KillMode=process does.",
    `running() { [ -f ${pidFile} ] && kill -0 "$(cat ${pidFile})" 2>/dev/null; }`,
    'case "$1" in',
    `  start) running || { ${startSupervisorScript(l)} } ;;`,
    `  stop) ${stopSupervisorScript(l)} ;;`,
    '  restart|force-reload) "$0" stop; "$0" start ;;',
    '  status) if running; then echo "flotilla-agent is running"; else echo "flotilla-agent is not running"; exit 3; fi ;;',
    '  *) echo "usage: $0 {start|stop|restart|status}" >&2; exit 3 ;;',
    "esac",
    "",
  ].join("\n");
}

/** Which kind a host gets, from what it has: systemd when it is PID 1, System V init scripts when present. */
export function serviceKindOf(l: AgentLayout, host: { systemd: boolean; initd: boolean }): ServiceKind {
  if (l.netns) return "supervisor";
  if (host.systemd) return "systemd";
  if (host.initd) return "init.d";
  return "supervisor";
}

export async function detectServiceKind(shell: ServiceShell, l: AgentLayout): Promise<ServiceKind> {
  if (l.netns) return "supervisor";
  return serviceKindOf(l, {
    systemd: (await shell.test("[ -d /run/systemd/system ]")) === 0,
    initd: (await shell.test("[ -d /etc/init.d ] && [ -d /etc/rc2.d ]")) === 0,
  });
}

/** The kind an earlier provisioning installed (for restart/stop). */
export async function installedServiceKind(shell: ServiceShell, l: AgentLayout): Promise<ServiceKind> {
  if (l.netns) return "supervisor";
  if ((await shell.test(`[ -f ${UNIT_PATH} ] && [ -d /run/systemd/system ]`)) === 0) return "systemd";
  if ((await shell.test(`[ -x ${INIT_SCRIPT_PATH} ]`)) === 0) return "init.d";
  return "supervisor";
}

/** The files that run the agent as a `kind` service. */
export function serviceFiles(l: AgentLayout, kind: ServiceKind): Array<{ path: string; content: string; mode: number }> {
  if (kind === "systemd") return [{ path: UNIT_PATH, content: renderUnit(l), mode: 0o644 }];
  const supervisor = { path: l.supervisor, content: renderSupervisor(l), mode: 0o755 };
  if (kind === "supervisor") return [supervisor];
  return [supervisor, { path: INIT_SCRIPT_PATH, content: renderInitScript(l), mode: 0o755 }];
}

/** Shell that enables the service files for boot (none for the supervisor alone). */
export function enableServiceScript(kind: ServiceKind): string {
  if (kind === "systemd") return "systemctl daemon-reload && systemctl enable flotilla-agent.service >/dev/null 2>&1";
  if (kind === "supervisor") return "true";
  // update-rc.d where Debian's tools are; the links by hand otherwise (same names it makes).
  return (
    "if command -v update-rc.d >/dev/null; then update-rc.d flotilla-agent defaults >/dev/null; else " +
    "for r in 2 3 4 5; do ln -sf ../init.d/flotilla-agent /etc/rc$r.d/S99flotilla-agent; done; " +
    "for r in 0 1 6; do [ -d /etc/rc$r.d ] && ln -sf ../init.d/flotilla-agent /etc/rc$r.d/K01flotilla-agent; done; true; fi"
  );
}

/** Writes the service files for `kind` and enables them for boot. */
export async function installServiceFiles(shell: ServiceShell, l: AgentLayout, kind: ServiceKind): Promise<void> {
  for (const f of serviceFiles(l, kind)) await shell.writeFile(f.path, f.content, f.mode);
  await shell.run(enableServiceScript(kind));
}

export async function stopService(shell: ServiceShell, l: AgentLayout, kind: ServiceKind): Promise<void> {
  if (kind === "systemd") await shell.run("systemctl stop flotilla-agent.service || true");
  else if (kind === "init.d") await shell.run(`${INIT_SCRIPT_PATH} stop`);
  else await shell.run(stopSupervisorScript(l));
}

export async function restartService(shell: ServiceShell, l: AgentLayout, kind: ServiceKind): Promise<void> {
  if (kind === "systemd") {
    await shell.run("systemctl restart flotilla-agent.service");
  } else if (kind === "init.d") {
    await shell.run(`${INIT_SCRIPT_PATH} restart`);
  } else {
    await stopService(shell, l, kind);
    await shell.run(startSupervisorScript(l));
  }
}
