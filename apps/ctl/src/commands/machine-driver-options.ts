// Driver options on the command line (`ctl machine create -d DRIVER --DRIVER-* ... NAME`): the
// flags are parsed against the option list the API serves (each driver describes its own), and
// `ctl machine create --help` is written from the same list, so a new driver option needs no
// change here.
import type { DriverOption as OptionSpec, DriversInfo } from "@flotilla/api-types";
import { CtlError, type ApiClient } from "../client";

/** Splits `--flag value`, `--flag=value` and bare boolean flags into raw options and the operands. */
export function parseDriverArgs(args: string[], specs: OptionSpec[]): { options: Record<string, string | boolean>; operands: string[] } {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const options: Record<string, string | boolean> = {};
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) {
      operands.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    let value: string | boolean;
    if (eq > 0) value = a.slice(eq + 1);
    else if (byName.get(key)?.type === "bool") {
      const next = args[i + 1];
      value = next !== undefined && /^(true|false)$/i.test(next) ? (i++, next) : true;
    } else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith("--")) throw new CtlError(`option --${key} needs a value`);
      value = next;
      i++;
    }
    // Repeated engine flags accumulate, as docker-machine's --engine-insecure-registry does.
    options[key] = key.startsWith("engine-") && typeof options[key] === "string" ? `${String(options[key])},${String(value)}` : value;
  }
  return { options, operands };
}

function describeOption(o: OptionSpec): string {
  const def = o.default !== undefined ? ` (default ${JSON.stringify(o.default)})` : "";
  const req = o.required ? " (required)" : "";
  const choices = o.choices ? ` [${o.choices.join("|")}]` : "";
  const value = o.type === "bool" ? "" : ` ${o.type.toUpperCase()}`;
  return `  --${o.name}${value}`.padEnd(44) + `${o.help}${choices}${def}${req}`;
}

/** `ctl machine create --help`: the fixed options, then the engine's and each driver's as the API lists them. */
export async function createHelp(client: ApiClient): Promise<string> {
  const lines = [
    "Usage: ctl machine create -d DRIVER [driver options] NAME",
    "",
    "Creates a machine with the driver, provisions the agent, and waits until it is READY.",
    "",
    "Options:",
    "  -d, --driver DRIVER                         driver to create the machine with",
    "  --json                                      print the machine as JSON when done",
    "  -h, --help                                  this text",
  ];
  try {
    const info = await client.request<DriversInfo>("GET", "/api/v1/machines/drivers");
    lines.push("", "Engine options:", ...info.engineOptions.map(describeOption));
    for (const d of info.drivers) {
      lines.push("", `Driver ${d.name}: ${d.description}`, ...d.options.map(describeOption));
    }
  } catch (e) {
    lines.push("", `(driver options unavailable: ${(e as Error).message})`);
  }
  return lines.join("\n") + "\n";
}
