// `ctl machine ...`: docker-machine's verbs over the REST API. Long operations follow the
// machine's events (progress on stderr) until the machine reaches the state the verb promises.
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import type {
  ApiEvent as MachineEvent,
  CreateMachineRequest,
  DriversInfo,
  MachineView,
  OperationAccepted as Accepted,
} from "@flotilla/api-types";
import { ApiClient, CtlError, loadCtlConfig } from "../client";
import { json, note, out, table } from "../output";
import { followEvents } from "./events";
import { createHelp, parseDriverArgs } from "./machine-driver-options";
import { registerMachineSsh } from "./machine-ssh";

const api = () => new ApiClient(loadCtlConfig());
const path = (name: string, rest = "") => `/api/v1/machines/${encodeURIComponent(name)}${rest}`;

/** The state each verb promises once its job is done. */
const DONE: Record<string, string> = {
  create: "READY",
  start: "READY",
  restart: "READY",
  provision: "READY",
  "regenerate-certs": "READY",
  upgrade: "READY",
  stop: "STOPPED",
  kill: "STOPPED",
};

/**
 * Follows the machine's events from the request's own event until the operation ends: the target
 * state, a `failed` event (its reason becomes the error, exit 1), or `removed` for rm.
 */
export async function follow(client: ApiClient, accepted: Accepted, operation: string, quiet = false): Promise<void> {
  const name = accepted.machine.name;
  // Resumes on another replica (after the last event seen) when the one streaming goes away.
  for await (const e of followEvents<MachineEvent>(client, new URLSearchParams({ kind: "machine", since: String(accepted.eventId) }))) {
    if (e.subjectId !== accepted.machine.id) continue;
    if (e.action === "progress") {
      const d = e.data as { step: string; message: string; percent: number };
      if (!quiet) note(`(${name}) [${String(d.percent).padStart(3)}%] ${d.step}: ${d.message}`);
    } else if (e.action === "failed") {
      throw new CtlError(`${operation} ${name} failed: ${String(e.data.reason ?? "unknown error")}`);
    } else if (e.action === "removed" && operation === "rm") {
      return;
    } else if (e.action === "state" && e.data.state === "ERROR") {
      throw new CtlError(`${operation} ${name} failed: ${String(e.data.reason ?? "unknown error")}`);
    } else if (e.action === "state" && DONE[operation] && e.data.state === DONE[operation]) {
      return;
    } else if (
      e.action === "state" &&
      operation.startsWith("control-plane-") &&
      e.data.operation === operation &&
      e.data.state !== "PROVISIONING"
    ) {
      // `ctl node promote --control-plane` / `ctl node demote`: the machine is back in the state
      // it had (READY, or STOPPED for a forced removal from a stopped machine).
      return;
    }
  }
}

function matchesFilter(m: MachineView, filters: string[]): boolean {
  return filters.every((f) => {
    const [key, value] = f.split("=", 2);
    if (value === undefined) throw new CtlError(`bad --filter ${JSON.stringify(f)}: use key=value (driver, state, name)`);
    switch (key.toLowerCase()) {
      case "driver":
        return m.driver === value;
      case "state":
        return m.state.toLowerCase() === value.toLowerCase();
      case "name":
        return m.name === value || new RegExp(value).test(m.name);
      default:
        throw new CtlError(`bad --filter key ${JSON.stringify(key)}: use driver, state or name`);
    }
  });
}

const FORMAT_FIELDS: Record<string, (m: MachineView, active: boolean) => string> = {
  Name: (m) => m.name,
  DriverName: (m) => m.driver,
  State: (m) => m.state,
  URL: (m) => m.url ?? "",
  IP: (m) => m.ip ?? "",
  Active: (_m, a) => (a ? "*" : "-"),
  Error: (m) => (m.state === "ERROR" ? (m.stateReason ?? "") : ""),
  AgentVersion: (m) => m.agentVersion ?? "",
};

export function renderFormat(format: string, m: MachineView, active: boolean): string {
  return format.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_all, field: string) => {
    const f = FORMAT_FIELDS[field];
    if (!f)
      throw new CtlError(
        `unknown field .${field} in --format (known: ${Object.keys(FORMAT_FIELDS)
          .map((k) => `.${k}`)
          .join(", ")})`,
      );
    return f(m, active);
  });
}

function activeUrl(): string | undefined {
  return process.env.DOCKER_HOST || undefined;
}

export type Shell = "bash" | "fish" | "powershell" | "cmd";

/** Renders env variables for a shell, with docker-machine's "Run this command" comment. */
export function renderEnv(name: string, vars: Record<string, string>, shell: Shell, unset: boolean): string {
  const set = (k: string, v: string) => {
    switch (shell) {
      case "fish":
        return unset ? `set -e ${k};` : `set -gx ${k} "${v}";`;
      case "powershell":
        return unset ? `Remove-Item Env:\\${k}` : `$Env:${k} = "${v}"`;
      case "cmd":
        return unset ? `SET ${k}=` : `SET ${k}=${v}`;
      default:
        return unset ? `unset ${k}` : `export ${k}="${v}"`;
    }
  };
  const cmd = `ctl machine env${unset ? " --unset" : ""}${shell === "bash" ? "" : ` --shell ${shell}`}${unset ? "" : ` ${name}`}`;
  const hint =
    shell === "fish"
      ? `# Run this command to configure your shell: \n# eval (${cmd})`
      : shell === "powershell"
        ? `# Run this command to configure your shell: \n# & ${cmd} | Invoke-Expression`
        : shell === "cmd"
          ? `REM Run this command to configure your shell: \nREM \t@FOR /f "tokens=*" %i IN ('${cmd}') DO @%i`
          : `# Run this command to configure your shell: \n# eval $(${cmd})`;
  return [...Object.entries(vars).map(([k, v]) => set(k, v)), hint].join("\n") + "\n";
}

const ENV_KEYS = ["DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME"];

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

async function operation(name: string, op: string, body: unknown, opts: { quiet?: boolean } = {}): Promise<void> {
  const client = api();
  const rest = op === "rm" ? "" : `/${op}`;
  const method = op === "rm" ? "DELETE" : "POST";
  const accepted = await client.request<Accepted>(
    method,
    path(name, rest) + (op === "rm" && (body as { force?: boolean }).force ? "?force=true" : ""),
    op === "rm" ? undefined : (body ?? {}),
  );
  await follow(client, accepted, op, opts.quiet);
}

export function registerMachine(program: Command): void {
  const machine = program.command("machine").description("create and manage machines (hosts running the Flotilla agent)");

  machine
    .command("create")
    .description("create a machine: ctl machine create -d DRIVER [--DRIVER-* options] NAME (see --help for each driver's options)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[args...]")
    .option("-d, --driver <driver>", "driver to create the machine with")
    .option("--json", "print the machine as JSON when done")
    .option("-h, --help", "show the drivers' options")
    .action(async (args: string[], opts: { driver?: string; json?: boolean; help?: boolean }) => {
      if (opts.help) return void process.stdout.write(await createHelp(api()));
      if (!opts.driver) throw new CtlError("missing -d/--driver (ctl machine create --help lists the drivers)");
      const client = api();
      const info = await client.request<DriversInfo>("GET", "/api/v1/machines/drivers");
      const specs = [...(info.drivers.find((d) => d.name === opts.driver)?.options ?? []), ...info.engineOptions];
      const { options, operands } = parseDriverArgs(args, specs);
      if (operands.length !== 1)
        throw new CtlError(`expected exactly one machine name, got ${operands.length ? operands.join(" ") : "none"}`);
      const body: CreateMachineRequest = { name: operands[0], driver: opts.driver, options };
      const accepted = await client.request<Accepted>("POST", "/api/v1/machines", body);
      note(`Creating machine ${operands[0]} (driver ${opts.driver})...`);
      await follow(client, accepted, "create");
      const m = await client.request<MachineView>("GET", path(operands[0]));
      if (opts.json) return void json(m);
      note(`Machine ${m.name} is ready at ${m.url}.`);
      note(`To point your docker CLI at it, run: eval $(ctl machine env ${m.name})`);
    });

  machine
    .command("ls")
    .description("list machines")
    .option(
      "--filter <key=value>",
      "filter by driver, state or name (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option("-q, --quiet", "names only")
    .option("--format <template>", "Go-style template, e.g. '{{.Name}} {{.State}}'")
    .option("--json", "print JSON")
    .action(async (opts: { filter: string[]; quiet?: boolean; format?: string; json?: boolean }) => {
      const rows = (await api().request<MachineView[]>("GET", "/api/v1/machines")).filter((m) => matchesFilter(m, opts.filter));
      const active = activeUrl();
      if (opts.json) return void json(rows);
      if (opts.quiet) return void rows.forEach((m) => out(m.name));
      if (opts.format) return void rows.forEach((m) => out(renderFormat(opts.format!, m, !!active && m.url === active)));
      out(
        table(
          rows.map((m) => ({
            ...m,
            active: active && m.url === active ? "*" : "-",
            url: m.url ?? "",
            error: m.state === "ERROR" ? (m.stateReason ?? "") : "",
          })),
          [
            ["NAME", "name"],
            ["ACTIVE", "active"],
            ["DRIVER", "driver"],
            ["STATE", "state"],
            ["URL", "url"],
            ["AGENT", "agentVersion"],
            ["ERROR", "error"],
          ],
        ),
      );
    });

  machine
    .command("active")
    .description("print the machine DOCKER_HOST points at")
    .action(async () => {
      const url = activeUrl();
      if (!url) throw new CtlError("no active machine: DOCKER_HOST is not set");
      const m = (await api().request<MachineView[]>("GET", "/api/v1/machines")).find((x) => x.url === url);
      if (!m) throw new CtlError(`no machine has DOCKER_HOST=${url}`);
      out(m.name);
    });

  machine
    .command("env [name]")
    .description("print the commands that point the docker CLI at a machine: eval $(ctl machine env NAME)")
    .option("--shell <shell>", "bash, fish, powershell or cmd", "bash")
    .option("-u, --unset", "print the commands that unset the variables instead")
    .option("--json", "print JSON")
    .action(async (name: string | undefined, opts: { shell: string; unset?: boolean; json?: boolean }) => {
      if (!["bash", "fish", "powershell", "cmd"].includes(opts.shell))
        throw new CtlError(`--shell must be bash, fish, powershell or cmd, got ${opts.shell}`);
      if (opts.unset)
        return void process.stdout.write(renderEnv("", Object.fromEntries(ENV_KEYS.map((k) => [k, ""])), opts.shell as Shell, true));
      if (!name) throw new CtlError("missing machine name");
      const env = await api().request<Record<string, string>>("GET", path(name, "/env"));
      if (opts.json) return void json(env);
      process.stdout.write(renderEnv(name, Object.fromEntries(ENV_KEYS.map((k) => [k, env[k]])), opts.shell as Shell, false));
    });

  for (const [verb, field, desc] of [
    ["ip", "ip", "print a machine's IP address"],
    ["url", "url", "print a machine's agent URL"],
  ] as const) {
    machine
      .command(`${verb} <names...>`)
      .description(desc)
      .action(async (names: string[]) => {
        for (const n of names) out((await api().request<Record<string, string>>("GET", path(n, `/${verb}`)))[field]);
      });
  }

  machine
    .command("inspect <name>")
    .description("print a machine as JSON")
    .option("--format <template>", "Go-style template, e.g. '{{.IP}}'")
    .action(async (name: string, opts: { format?: string }) => {
      const m = await api().request<MachineView>("GET", path(name));
      if (opts.format) return void out(renderFormat(opts.format, m, m.url === activeUrl()));
      json(m);
    });

  machine
    .command("status <name>")
    .description("ask the driver for a machine's state (Running, Stopped, Unreachable, ...)")
    .action(async (name: string) => {
      out((await api().request<{ status: string }>("GET", path(name, "/status"))).status);
    });

  machine
    .command("config <name>")
    .description("print the docker CLI flags for a machine")
    .action(async (name: string) => {
      out((await api().request<{ flags: string[] }>("GET", path(name, "/config"))).flags.join("\n"));
    });

  for (const [verb, desc] of [
    ["start", "start machines and their agents"],
    ["stop", "stop machines gracefully"],
    ["restart", "restart machines"],
    ["kill", "power machines off"],
    ["provision", "provision machines again (agent, certificates, service)"],
    ["upgrade", "upload the current agent to machines and restart it"],
  ] as const) {
    machine
      .command(`${verb} <names...>`)
      .description(desc)
      .action(async (names: string[]) => {
        for (const n of names) {
          await operation(n, verb, {});
          note(`${verb}: ${n} done`);
        }
      });
  }

  machine
    .command("regenerate-certs <names...>")
    .description("re-issue machines' agent certificates and restart the agents")
    .option("-f, --force", "re-issue even when the IP did not change (default)", true)
    .option("--if-needed", "only when the IP changed or the certificate expires soon")
    .option(
      "--client-certs",
      "rotate the machine's client certificate (ctl machine env's): the agent refuses the old one at once; the server certificate only if needed",
    )
    .action(async (names: string[], opts: { ifNeeded?: boolean; clientCerts?: boolean }) => {
      for (const n of names) {
        await operation(n, "regenerate-certs", opts.clientCerts ? { force: false, clientCerts: true } : { force: !opts.ifNeeded });
        note(`regenerate-certs: ${n} done`);
      }
    });

  machine
    .command("rm <names...>")
    .description("remove machines")
    .option("-f, --force", "remove the record even when the driver fails to delete the host")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (names: string[], opts: { force?: boolean; yes?: boolean }) => {
      if (!opts.yes) {
        if (!process.stdin.isTTY) throw new CtlError(`refusing to remove ${names.join(", ")} without confirmation: pass -y`);
        if (!(await confirm(`About to remove ${names.join(", ")}\nAre you sure? (y/n): `))) throw new CtlError("not removed");
      }
      for (const n of names) {
        await operation(n, "rm", { force: !!opts.force }, { quiet: true });
        note(`Successfully removed ${n}`);
      }
    });

  registerMachineSsh(machine);
}
