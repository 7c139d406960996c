import { Command, Option } from "commander";
import type { ServiceCreateRequest, ServiceView as ServiceJson, TaskView as TaskJson } from "@flotilla/api-types";
import { ApiClient, CtlError, loadCtlConfig } from "../client";
import { json, note, out } from "../output";
import { taskTable } from "./task-table";
import { serviceTable } from "./service-table";
import { follow } from "./service-converge";
import { collect, intOpt, specBody, specOptions, type SpecFlags } from "./service-flags";
import { applyListEdits, editsLists, type UpdateListFlags } from "./service-update-flags";
import { applyNetworkEdits, type NetworkEditFlags } from "./network";
import { registryAuthFor } from "./registry-auth";

const client = () => new ApiClient(loadCtlConfig());
const enc = encodeURIComponent;

export function registerService(program: Command): void {
  // As with docker: everything after IMAGE belongs to the container's command, flags included.
  const service = program
    .command("service")
    .description("manage services: desired state kept running across nodes")
    .enablePositionalOptions();

  specOptions(
    service
      .command("create <image> [cmd...]")
      .description("create a service and follow it until its tasks run (options go before IMAGE)")
      .passThroughOptions()
      .requiredOption("--name <name>", "service name")
      .addOption(new Option("--mode <mode>", "replicated or global").choices(["replicated", "global"]).default("replicated")),
  ).action(async (image: string, cmd: string[], o: SpecFlags & { name: string; mode: string; detach?: boolean; timeout: string }) => {
    const body: ServiceCreateRequest = { name: o.name, image, ...specBody(o), ...(cmd.length ? { args: cmd } : {}) };
    if (o.withRegistryAuth) body.registryAuth = registryAuthFor(image);
    if (o.mode === "global") {
      if (o.replicas !== undefined) throw new CtlError("--replicas cannot be used with --mode global");
      body.mode = { kind: "global" };
    }
    const c = client();
    const svc = await c.request<ServiceJson>("POST", "/api/v1/services", body);
    out(svc.id);
    await follow(c, svc, o);
  });

  service
    .command("ls")
    .description("list services")
    .option("--json", "print JSON")
    .option("-q, --quiet", "print ids only")
    .action(async (o: { json?: boolean; quiet?: boolean }) => {
      const rows = await client().request<ServiceJson[]>("GET", "/api/v1/services");
      if (o.json) return void json(rows);
      if (o.quiet) return void (rows.length && out(rows.map((r) => r.id).join("\n")));
      out(serviceTable(rows));
    });

  service
    .command("ps <service>")
    .description("list a service's tasks")
    .option("--json", "print JSON")
    .option("-q, --quiet", "print task ids only")
    .action(async (ref: string, o: { json?: boolean; quiet?: boolean }) => {
      const c = client();
      const tasks = await c.request<TaskJson[]>("GET", `/api/v1/tasks?service=${enc(ref)}`);
      if (o.json) return void json(tasks);
      if (o.quiet) return void (tasks.length && out(tasks.map((t) => t.id).join("\n")));
      out(taskTable(tasks));
      // Why the tasks are where they are: an update in progress, paused or rolled back says so (on stderr).
      const update = (await c.request<ServiceJson>("GET", `/api/v1/services/${enc(ref)}`)).updateState;
      if (update && update.status !== "completed") note(update.message);
    });

  service
    .command("inspect <service...>")
    .description("show services as JSON")
    .action(async (refs: string[]) => {
      const c = client();
      json(await Promise.all(refs.map((r) => c.request<ServiceJson>("GET", `/api/v1/services/${enc(r)}`))));
    });

  service
    .command("scale <service=replicas...>")
    .description("set the replicas of one or more services, e.g. web=5 api=2")
    .option("-d, --detach", "return at once")
    .option("--timeout <duration>", "give up following after this long", "5m")
    .action(async (pairs: string[], o: { detach?: boolean; timeout: string }) => {
      const c = client();
      const targets = pairs.map((p) => {
        const m = /^([^=]+)=(\d+)$/.exec(p);
        if (!m) throw new CtlError(`invalid scale ${JSON.stringify(p)}: use SERVICE=REPLICAS, e.g. web=5`);
        return { ref: m[1], replicas: Number(m[2]) };
      });
      const scaled: ServiceJson[] = [];
      for (const t of targets) {
        scaled.push(await c.request<ServiceJson>("POST", `/api/v1/services/${enc(t.ref)}/scale`, { replicas: t.replicas }));
        note(`${t.ref} scaled to ${t.replicas}`);
      }
      for (const s of scaled) await follow(c, s, o);
    });

  specOptions(
    service
      .command("update <service>")
      .description("change a service; changes that reach the containers roll out batch by batch")
      .option("--image <image>", "new image")
      .option("--env-add <K=V>", "add or change an environment variable (repeatable)", collect)
      .option("--env-rm <K>", "remove an environment variable (repeatable)", collect)
      .option("--mount-add <mount>", "add or replace (by target) a mount, as --mount (repeatable)", collect)
      .option("--mount-rm <target>", "remove the mount at this container path (repeatable)", collect)
      .option("--secret-add <secret>", "add or replace (by name) a secret, as --secret (repeatable)", collect)
      .option("--secret-rm <name>", "remove a secret from the tasks (repeatable)", collect)
      .option("--config-add <config>", "add or replace (by name) a config, as --config (repeatable)", collect)
      .option("--config-rm <name>", "remove a config from the tasks (repeatable)", collect)
      .option("--publish-add <port>", "add or replace (by published port) a published port, as --publish (repeatable)", collect)
      .option("--publish-rm <port>", "remove a published port: PUBLISHED[/tcp|udp] (repeatable)", collect)
      .option(
        "--network-add <network>",
        "join an overlay network, as --network (repeatable; replaces its aliases if already joined)",
        collect,
      )
      .option("--network-rm <network>", "leave an overlay network: its name or id (repeatable)", collect)
      .option("--force", "replace every task even when nothing changed")
      .option(
        "--rebalance",
        "move tasks, a batch at a time (update parallelism, order, health), so the spread matches where the scheduler would put them now; alone",
      )
      .option("--args <args...>", "new command arguments"),
  ).action(
    async (
      ref: string,
      o: SpecFlags &
        UpdateListFlags &
        NetworkEditFlags & { image?: string; args?: string[]; force?: boolean; rebalance?: boolean; detach?: boolean; timeout: string },
    ) => {
      const c = client();
      const body = specBody(o);
      if (o.image) body.image = o.image;
      if (o.args) body.args = o.args;
      if (o.force) body.force = true;
      if (o.rebalance) body.rebalance = true;
      const edits = editsLists(o) || !!o.networkAdd || !!o.networkRm;
      const current =
        edits || (o.withRegistryAuth && !o.image) ? await c.request<ServiceJson>("GET", `/api/v1/services/${enc(ref)}`) : undefined;
      if (editsLists(o)) applyListEdits(body, current!.spec, o);
      if (o.networkAdd || o.networkRm) await applyNetworkEdits(c, body, current!.spec, o);
      if (o.withRegistryAuth) body.registryAuth = registryAuthFor(o.image ?? current!.spec.image);
      if (Object.keys(body).length === 0) throw new CtlError("nothing to update: give at least one flag (see ctl service update --help)");
      const svc = await c.request<ServiceJson>("PATCH", `/api/v1/services/${enc(ref)}`, body);
      note(`${svc.name} updated to version ${svc.version}`);
      await follow(c, svc, o);
    },
  );

  service
    .command("rollback <service>")
    .description("return a service to its previous spec")
    .option("-d, --detach", "return at once")
    .option("--timeout <duration>", "give up following after this long", "5m")
    .action(async (ref: string, o: { detach?: boolean; timeout: string }) => {
      const c = client();
      const svc = await c.request<ServiceJson>("POST", `/api/v1/services/${enc(ref)}/rollback`);
      note(`${svc.name} rolled back (version ${svc.version})`);
      await follow(c, svc, o);
    });

  service
    .command("rm <service...>")
    .description("remove services; their containers are stopped")
    .action(async (refs: string[]) => {
      const c = client();
      for (const r of refs) {
        await c.request("DELETE", `/api/v1/services/${enc(r)}`);
        out(r);
      }
    });

  service
    .command("logs <service>")
    .description("show the logs of a service's tasks, prefixed by task (finished tasks' too, until they are pruned)")
    .option("-f, --follow", "keep following")
    .option("--tail <n>", "last n lines per task")
    .action(async (ref: string, o: { follow?: boolean; tail?: string }) => {
      const q = new URLSearchParams();
      if (o.follow) q.set("follow", "1");
      if (o.tail) q.set("tail", String(intOpt("--tail", o.tail)));
      const res = await client().raw("GET", `/api/v1/services/${enc(ref)}/logs${q.size ? `?${q}` : ""}`, undefined, "text/plain");
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) process.stdout.write(chunk);
    });
}
