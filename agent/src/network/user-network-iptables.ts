// Puts the user networks' rules (user-network-rules.ts decides them) into the kernel: one
// iptables-restore transaction per table, for one network added or deleted, for all of them
// resynchronised at start, and the DNS redirect inside a container's namespace.
import { NotSupportedError } from "@flotilla/core";
import { run } from "./exec";
import type { Iptables } from "./iptables";
import { deleteOf, type ChainNames, type Table } from "./nat-rules";
import { dnsRedirectScript, netTagIn, networkRules, ownNetworkRule, type NetworkRuleInput } from "./user-network-rules";

const TABLES: readonly Table[] = ["nat", "filter"];

/** Adds or deletes one network's rules (deleting: whatever rules carry its tag). */
export async function applyNetworkRules(iptables: Iptables, chains: ChainNames, n: NetworkRuleInput, how: "add" | "delete"): Promise<void> {
  const rules = networkRules(chains, n);
  for (const table of TABLES) {
    let lines = rules[table];
    if (how === "delete") {
      const have = (await iptables.list(table)).rules;
      lines = have.filter((r) => ownNetworkRule(chains, r) && netTagIn(r) === n.id).map(deleteOf);
    }
    await iptables.apply(`iptables ${table}`, table, lines);
  }
}

/** Every network's rules exactly once, and no rules of networks that are gone. */
export async function syncNetworkRules(iptables: Iptables, chains: ChainNames, networks: readonly NetworkRuleInput[]): Promise<void> {
  for (const table of TABLES) {
    const have = (await iptables.list(table)).rules;
    const lines = have.filter((r) => ownNetworkRule(chains, r)).map(deleteOf);
    for (const n of networks) lines.push(...networkRules(chains, n)[table]);
    await iptables.apply(`iptables ${table}`, table, lines);
  }
}

/** 127.0.0.11:53 in the container's namespace → gateway DNS (see dnsRedirectScript). */
export async function redirectDns(
  iptables: Iptables | undefined,
  netns: string,
  gateway: string,
  containerIp: string,
  dnsPort: number,
): Promise<void> {
  if (!iptables) throw new NotSupportedError("embedded DNS needs iptables");
  await run("dns", "ip", ["netns", "exec", netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet"]);
  await run("dns", "ip", ["netns", "exec", netns, `${iptables.command}-restore`, "-w"], {
    input: dnsRedirectScript(gateway, containerIp, dnsPort),
  });
}
