// `ctl network`: cluster-wide overlay networks (create, ls, inspect, rm), and the
// `service update --network-add/--network-rm` edits, which need the networks' ids.
import type { Command } from "commander";
import { OVERLAY_DRIVER, parseNetworkFlag, validateNetworkName } from "@flotilla/core";
import type { NetworkCreateRequest, NetworkView, ServiceSpec, ServiceUpdateRequest } from "@flotilla/api-types";
import { ApiClient, CtlError, loadCtlConfig } from "../client";
import { json, out, table } from "../output";
import { collect, keyValues, parse } from "./service-flags";

const client = () => new ApiClient(loadCtlConfig());
const enc = encodeURIComponent;

/**
 * docker network create's options that overlay networks do not have yet: refused by name rather
 * than ignored (encrypted overlays, `--opt encrypted`, may come later).
 */
const NOT_YET: readonly [flag: string, key: string, description: string][] = [
  ["-o, --opt <K=V>", "opt", "driver option, e.g. encrypted (not supported yet: refused)"],
  ["--internal", "internal", "no traffic outside the network (not supported yet: refused)"],
  ["--attachable", "attachable", "standalone containers may join (not supported yet: refused)"],
  ["--ip-range <cidr>", "ipRange", "allocate from a sub-range (not supported yet: refused)"],
  ["--aux-address <K=IP>", "auxAddress", "reserved addresses (not supported yet: refused)"],
  ["--ipv6", "ipv6", "IPv6 (not supported yet: refused)"],
  ["--ipam-driver <driver>", "ipamDriver", "IPAM driver (not supported yet: refused)"],
  ["--ipam-opt <K=V>", "ipamOpt", "IPAM driver options (not supported yet: refused)"],
  ["--scope <scope>", "scope", "scope (overlay networks are always the cluster's: refused)"],
  ["--config-from <network>", "configFrom", "config-only networks (not supported yet: refused)"],
  ["--config-only", "configOnly", "config-only networks (not supported yet: refused)"],
  ["--ingress", "ingress", "the routing mesh's network (not supported yet: refused)"],
];

export interface NetworkEditFlags {
  networkAdd?: string[];
  networkRm?: string[];
}

/** `--network-add`/`--network-rm` on the current spec, whose targets are network ids. */
export async function applyNetworkEdits(
  c: ApiClient,
  body: ServiceUpdateRequest,
  current: ServiceSpec,
  o: NetworkEditFlags,
): Promise<void> {
  const nets = await c.request<NetworkView[]>("GET", "/api/v1/networks");
  const idOf = (ref: string) => nets.find((n) => n.name === ref || n.id === ref)?.id;
  const added = (o.networkAdd ?? []).map((n) => parse("--network-add", () => parseNetworkFlag(n, "--network-add")));
  for (const ref of o.networkRm ?? []) if (!idOf(ref)) throw new CtlError(`--network-rm: no network ${JSON.stringify(ref)}`);
  const gone = new Set([...(o.networkRm ?? []), ...added.map((a) => a.target)].map((r) => idOf(r) ?? r));
  const base = body.networks ?? current.networks;
  body.networks = [...base.filter((n) => !gone.has(idOf(n.target) ?? n.target)), ...added];
}

export function registerNetwork(program: Command): void {
  const cmd = program
    .command("network")
    .description("manage overlay networks: VXLAN segments joining the nodes that run their services' tasks");
  const create = cmd
    .command("create <name>")
    .description("create an overlay network (IPAM: --subnet, or the first free /24 of 10.0.0.0/8)")
    .option("-d, --driver <driver>", "network driver: overlay (the only one for cluster networks)", OVERLAY_DRIVER)
    .option("--subnet <cidr>", "IPv4 subnet, e.g. 10.0.9.0/24 (refused when it overlaps another network's)")
    .option("--gateway <ip>", "reserved gateway address in the subnet (default: its first host address)")
    .option("-l, --label <K=V>", "label (repeatable)", collect);
  for (const [flag, , description] of NOT_YET) {
    if (flag.includes("<")) create.option(flag, description, collect);
    else create.option(flag, description);
  }
  create.action(
    async (name: string, o: Record<string, unknown> & { driver: string; subnet?: string; gateway?: string; label?: string[] }) => {
      parse("name", () => validateNetworkName(name));
      if (o.driver !== OVERLAY_DRIVER)
        throw new CtlError(`--driver ${o.driver}: not supported: cluster networks use the overlay driver (--driver overlay)`);
      for (const [flag, key] of NOT_YET) {
        if (o[key] === undefined) continue;
        const given = Array.isArray(o[key]) ? ` ${(o[key] as string[]).join(", ")}` : "";
        throw new CtlError(`${flag.replace(/ <.*/, "").replace(/^-\w, /, "")}${given}: not supported yet`);
      }
      const body: NetworkCreateRequest = {
        name,
        driver: OVERLAY_DRIVER,
        ...(o.subnet ? { subnet: o.subnet } : {}),
        ...(o.gateway ? { gateway: o.gateway } : {}),
        ...(o.label ? { labels: keyValues("--label", o.label) } : {}),
      };
      out((await client().request<NetworkView>("POST", "/api/v1/networks", body)).id);
    },
  );
  cmd
    .command("ls")
    .description("list overlay networks")
    .option("--json", "print JSON")
    .option("-q, --quiet", "print names only")
    .action(async (o: { json?: boolean; quiet?: boolean }) => {
      const rows = await client().request<NetworkView[]>("GET", "/api/v1/networks");
      if (o.json) return void json(rows);
      if (o.quiet) return void (rows.length && out(rows.map((r) => r.name).join("\n")));
      out(
        table(
          rows.map((r) => ({ ...r, id: r.id.slice(0, 12), services: r.services.map((s) => s.name).join(",") })),
          [
            ["ID", "id"],
            ["NAME", "name"],
            ["DRIVER", "driver"],
            ["SUBNET", "subnet"],
            ["GATEWAY", "gateway"],
            ["VNI", "vni"],
            ["SERVICES", "services"],
          ],
        ),
      );
    });
  cmd
    .command("inspect <network...>")
    .description("show networks as JSON (subnet, gateway, VNI, services and their VIPs)")
    .action(async (refs: string[]) => {
      const c = client();
      json(await Promise.all(refs.map((r) => c.request<NetworkView>("GET", `/api/v1/networks/${enc(r)}`))));
    });
  cmd
    .command("rm <network...>")
    .description("remove networks (refused while a service uses one: remove the service or --network-rm it first)")
    .action(async (refs: string[]) => {
      const c = client();
      for (const r of refs) {
        await c.request("DELETE", `/api/v1/networks/${enc(r)}`);
        out(r);
      }
    });
}
