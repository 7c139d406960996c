import * as fs from "node:fs";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { composeReferences } from "@flotilla/core";
import type { ServiceView as ServiceJson, TaskView as TaskJson } from "@flotilla/api-types";
import { ApiClient, CtlError, loadCtlConfig } from "../client";
import { json, note, out, table } from "../output";
import { serviceTable } from "./service-table";
import { taskTable } from "./task-table";

interface DeployResult {
  name: string;
  created: string[];
  updated: string[];
  unchanged: string[];
  removed: string[];
  networksCreated?: string[];
}

const client = () => new ApiClient(loadCtlConfig());
const enc = encodeURIComponent;

function readText(path: string, what: string): string {
  try {
    return fs.readFileSync(path, "utf8");
  } catch (e) {
    throw new CtlError(`${what} ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
}

/**
 * What deploy sends: the file, the .env beside it, each env_file (relative to the file, as
 * compose reads them) and, of this environment, only the variables the file names.
 */
export function deployBody(file: string, name: string, env: NodeJS.ProcessEnv, prune: boolean): Record<string, unknown> {
  const compose = readText(file, "compose file");
  const dir = dirname(resolve(file));
  const dotenvPath = resolve(dir, ".env");
  const dotenv = fs.existsSync(dotenvPath) ? readText(dotenvPath, ".env") : undefined;
  const refs = composeReferences(compose, env);
  const picked: Record<string, string> = {};
  for (const v of refs.variables) if (env[v] !== undefined) picked[v] = env[v]!;
  const envFiles: Record<string, string> = {};
  for (const f of refs.envFiles) {
    const p = resolve(dir, f);
    if (fs.existsSync(p)) envFiles[f] = readText(p, "env_file");
  }
  return { name, compose, env: picked, ...(dotenv !== undefined ? { dotenv } : {}), envFiles, ...(prune ? { prune: true } : {}) };
}

export function registerStack(program: Command): void {
  const stack = program.command("stack").description("deploy compose files as stacks of services");

  stack
    .command("deploy <name>")
    .description("create or update the services of a compose file as the stack NAME (services NAME_SERVICE); only what changed is updated")
    .requiredOption("-c, --compose-file <file>", "the compose file")
    .option("--prune", "remove the stack's services the file no longer has")
    .option("--json", "print what was done as JSON")
    .action(async (name: string, o: { composeFile: string; prune?: boolean; json?: boolean }) => {
      const result = await client().request<DeployResult>(
        "POST",
        "/api/v1/stacks",
        deployBody(o.composeFile, name, process.env, !!o.prune),
      );
      if (o.json) return void json(result);
      for (const n of result.networksCreated ?? []) note(`Creating network ${n}`);
      for (const s of result.created) note(`Creating service ${s}`);
      for (const s of result.updated) note(`Updating service ${s}`);
      for (const s of result.unchanged) note(`Unchanged service ${s}`);
      for (const s of result.removed) note(`Removing service ${s}`);
    });

  stack
    .command("ls")
    .description("list stacks")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      const rows = await client().request<{ name: string; services: number }[]>("GET", "/api/v1/stacks");
      if (o.json) return void json(rows);
      out(
        table(rows, [
          ["NAME", "name"],
          ["SERVICES", "services"],
        ]),
      );
    });

  stack
    .command("services <name>")
    .description("list the services of a stack")
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      const rows = await client().request<ServiceJson[]>("GET", `/api/v1/stacks/${enc(name)}/services`);
      if (o.json) return void json(rows);
      out(serviceTable(rows));
    });

  stack
    .command("ps <name>")
    .description("list the tasks of a stack")
    .option("--json", "print JSON")
    .action(async (name: string, o: { json?: boolean }) => {
      const tasks = await client().request<TaskJson[]>("GET", `/api/v1/stacks/${enc(name)}/tasks`);
      if (o.json) return void json(tasks);
      out(taskTable(tasks));
    });

  stack
    .command("rm <name...>")
    .description("remove stacks: every service of each, then the stack's own networks")
    .action(async (names: string[]) => {
      const c = client();
      for (const n of names) {
        const { removed, networksRemoved } = await c.request<{ removed: string[]; networksRemoved?: string[] }>(
          "DELETE",
          `/api/v1/stacks/${enc(n)}`,
        );
        for (const s of removed) note(`Removing service ${s}`);
        for (const net of networksRemoved ?? []) note(`Removing network ${net}`);
        out(n);
      }
    });
}
