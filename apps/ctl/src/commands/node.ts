import type { Command } from "commander";
import type {
  ControlPlaneReplicaView as ReplicaJson,
  NodeAvailability,
  NodeRole,
  NodeUpdateRequest,
  NodeView as NodeJson,
  OperationAccepted as Accepted,
  TaskView as TaskJson,
} from "@flotilla/api-types";
import { Option } from "commander";
import { ApiClient, CtlError, loadCtlConfig } from "../client";
import { json, note, out, table } from "../output";
import { follow } from "./machine";
import { taskTable } from "./task-table";

const collect = (v: string, prev: string[] = []) => [...prev, v];
const client = () => new ApiClient(loadCtlConfig());
const enc = encodeURIComponent;

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

export function registerNode(program: Command): void {
  const node = program.command("node").description("manage the nodes services run on");

  node
    .command("ls")
    .description("list nodes")
    .option("--json", "print JSON")
    .option("-q, --quiet", "print ids only")
    .action(async (o: { json?: boolean; quiet?: boolean }) => {
      const rows = await client().request<NodeJson[]>("GET", "/api/v1/nodes");
      if (o.json) return void json(rows);
      if (o.quiet) return void (rows.length && out(rows.map((r) => r.id).join("\n")));
      out(
        table(
          rows.map((r) => ({
            id: r.id.slice(0, 12),
            hostname: r.hostname,
            status: r.status,
            availability: r.availability,
            role: r.role,
            tasks: r.tasks ?? 0,
            resources: `${r.resources.nanoCpus / 1e9} CPU, ${gib(r.resources.memoryBytes)}`,
            labels: Object.entries(r.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(","),
          })),
          [
            ["ID", "id"],
            ["HOSTNAME", "hostname"],
            ["STATUS", "status"],
            ["AVAILABILITY", "availability"],
            ["ROLE", "role"],
            ["TASKS", "tasks"],
            ["RESOURCES", "resources"],
            ["LABELS", "labels"],
          ],
        ),
      );
    });

  node
    .command("ps <node>")
    .description("list the tasks on a node")
    .option("--json", "print JSON")
    .option("-q, --quiet", "print task ids only")
    .action(async (ref: string, o: { json?: boolean; quiet?: boolean }) => {
      const tasks = await client().request<TaskJson[]>("GET", `/api/v1/tasks?node=${enc(ref)}`);
      if (o.json) return void json(tasks);
      if (o.quiet) return void (tasks.length && out(tasks.map((t) => t.id).join("\n")));
      out(taskTable(tasks));
    });

  node
    .command("inspect <node...>")
    .description("show nodes as JSON")
    .action(async (refs: string[]) => {
      const c = client();
      json(await Promise.all(refs.map((r) => c.request<NodeJson>("GET", `/api/v1/nodes/${enc(r)}`))));
    });

  node
    .command("update <node>")
    .description("set a node's availability and labels")
    .addOption(
      new Option("--availability <a>", "active, pause (no new tasks) or drain (move tasks away)").choices(["active", "pause", "drain"]),
    )
    .addOption(
      new Option("--role <role>", "manager or worker: placement constraints on node.role follow it").choices(["manager", "worker"]),
    )
    .option("--label-add <K=V>", "add or change a label (repeatable)", collect)
    .option("--label-rm <K>", "remove a label (repeatable)", collect)
    .action(async (ref: string, o: { availability?: NodeAvailability; role?: NodeRole; labelAdd?: string[]; labelRm?: string[] }) => {
      const labelAdd: Record<string, string> = {};
      for (const l of o.labelAdd ?? []) {
        const at = l.indexOf("=");
        if (at <= 0) throw new CtlError(`--label-add: expected KEY=VALUE, got ${JSON.stringify(l)}`);
        labelAdd[l.slice(0, at)] = l.slice(at + 1);
      }
      if (!o.availability && !o.role && !o.labelAdd && !o.labelRm)
        throw new CtlError("nothing to update: give --availability, --role, --label-add or --label-rm");
      const body: NodeUpdateRequest = {
        ...(o.availability ? { availability: o.availability } : {}),
        ...(o.role ? { role: o.role } : {}),
        ...(o.labelAdd ? { labelAdd } : {}),
        ...(o.labelRm ? { labelRm: o.labelRm } : {}),
      };
      const n = await client().request<NodeJson>("PATCH", `/api/v1/nodes/${enc(ref)}`, body);
      note(`${n.hostname}: ${n.availability}`);
    });

  node
    .command("promote <node...>")
    .description("make nodes managers (as ctl node update --role manager); placement constraints on node.role follow it")
    .option(
      "--control-plane",
      "also run a control-plane API replica on each node's machine (admin only): installed over the machine's SSH, it joins the same Postgres and Redis and the replica lists",
    )
    .option("-d, --detach", "with --control-plane: return once the installation is queued")
    .action(async (refs: string[], o: { controlPlane?: boolean; detach?: boolean }) => {
      const c = client();
      for (const r of refs) {
        const n = await c.request<NodeJson>("PATCH", `/api/v1/nodes/${enc(r)}`, { role: "manager" } satisfies NodeUpdateRequest);
        note(`${n.hostname}: ${n.role}`);
        if (!o.controlPlane) continue;
        const accepted = await c.request<Accepted>("POST", `/api/v1/nodes/${enc(r)}/control-plane`);
        if (o.detach) {
          out(accepted.jobId);
          continue;
        }
        await follow(c, accepted, "control-plane-add");
        const replica = (await c.request<ReplicaJson[]>("GET", "/api/v1/control-plane/replicas")).find(
          (x) => x.machine === accepted.machine.name,
        );
        out(replica?.apiUrl ?? "");
        note(
          `${n.hostname}: control-plane replica at ${replica?.apiUrl ?? "?"} (ctl login again, or add it to FLOTILLA_URL, to fail over to it)`,
        );
      }
    });

  node
    .command("demote <node...>")
    .description("make nodes workers (as ctl node update --role worker), first stopping and removing a control-plane replica they run")
    .option("-f, --force", "forget a control-plane replica whose machine cannot be reached to remove it")
    .action(async (refs: string[], o: { force?: boolean }) => {
      const c = client();
      for (const r of refs) {
        const current = await c.request<NodeJson>("GET", `/api/v1/nodes/${enc(r)}`);
        const replicas = await c.request<ReplicaJson[]>("GET", "/api/v1/control-plane/replicas");
        if (replicas.some((x) => x.node === current.hostname)) {
          const accepted = await c.request<Accepted>("DELETE", `/api/v1/nodes/${enc(r)}/control-plane${o.force ? "?force=1" : ""}`);
          await follow(c, accepted, "control-plane-rm");
          note(`${current.hostname}: control-plane replica removed`);
        }
        const n = await c.request<NodeJson>("PATCH", `/api/v1/nodes/${enc(r)}`, { role: "worker" } satisfies NodeUpdateRequest);
        note(`${n.hostname}: ${n.role}`);
      }
    });

  node
    .command("rm <node...>")
    .description("remove nodes (only down ones unless --force); their tasks are replaced elsewhere")
    .option("-f, --force", "remove even if the node is up")
    .action(async (refs: string[], o: { force?: boolean }) => {
      const c = client();
      for (const r of refs) {
        await c.request("DELETE", `/api/v1/nodes/${enc(r)}${o.force ? "?force=1" : ""}`);
        out(r);
      }
    });
}
