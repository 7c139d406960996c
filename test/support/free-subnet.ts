// Picks a /24 in 198.19.0.0/16 that no interface on this host uses yet, so that a test's bridge
// never clashes with one a crashed or concurrent run left behind (the drivers refuse overlaps).
import { execFileSync } from "node:child_process";

/** The first `198.19.<octet>.0/24` of `octets` with no address on any interface; throws if none is free. */
export function freeSubnet24(octets: readonly number[]): { prefix: string; gateway: string } {
  const used = execFileSync("ip", ["-4", "-o", "addr", "show"], { encoding: "utf8" });
  for (const o of octets) {
    const prefix = `198.19.${o}`;
    if (!used.includes(` ${prefix}.`)) return { prefix, gateway: `${prefix}.1` };
  }
  throw new Error(`no free /24 among 198.19.{${octets.join(",")}}.0: remove the bridges a previous run left`);
}
