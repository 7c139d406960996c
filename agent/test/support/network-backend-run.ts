// Run by network.int.spec.ts inside a namespace of its own (`ip netns exec NS tsx this-file`), so
// the iptables backend under test gets fresh tables that vanish with the namespace: x_tables
// (legacy) tables, once loaded, would otherwise stay in the host namespace for good.
// Prints one JSON document: what each step saw.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HostNetwork, type IptablesBackend } from "../../src/network";

const backend = process.argv[2] as IptablesBackend;
const other: IptablesBackend = backend === "nft" ? "legacy" : "nft";
const S = (b: IptablesBackend) =>
  execFileSync(`iptables-${b}`, ["-w", "-t", "nat", "-S"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });

async function main() {
  const stateDir = mkdtempSync(join(tmpdir(), "flotilla-net-backend-"));
  const opts = { stateDir, bridgeName: "fltbk0", subnet: "198.19.78.0/24", chainPrefix: "FLTBK" };
  const net = new HostNetwork({ ...opts, iptablesBackend: backend });
  const init = await net.init();
  const e = await net.attach("bk-1", { ports: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }] });
  const rulesOurs = S(backend);
  const rulesOther = S(other);
  // A restart whose `iptables` points at the other backend still finds (and keeps using) ours.
  const restarted = new HostNetwork({ ...opts, iptablesBackend: other });
  const again = await restarted.init();
  const restore = await restarted.restore(["bk-1"]);
  await restarted.teardown();
  const after = S(backend);
  // With x_tables tables now loaded next to nf_tables ones, an nft network says so.
  const mixed = new HostNetwork({ ...opts, stateDir: join(stateDir, "mixed"), iptablesBackend: "nft" });
  const mixedInit = await mixed.init();
  await mixed.teardown();
  rmSync(stateDir, { recursive: true, force: true });
  return { init, endpoint: e, rulesOurs, rulesOther, again, restore, after, mixedWarnings: mixedInit.warnings };
}

main().then(
  (r) => process.stdout.write(JSON.stringify(r)),
  (e) => {
    process.stderr.write(String((e as Error).stack ?? e));
    process.exit(1);
  },
);
