// Run by ingress-kernel.int.spec.ts inside a namespace of its own (`ip netns exec NS tsx this-file`),
// so the mesh's chains land in tables that vanish with the namespace, never the host's. Applies
// tables with KernelIngress, lists the rules after each step, then closes it. Prints one JSON document.
import { execFileSync } from "node:child_process";
import { KernelIngress } from "../../src/ingress";

const S = (table: string) => execFileSync("iptables", ["-w", "-t", table, "-S"], { encoding: "utf8" });
const port = (p: number, backends: { host: string; port: number }[], traffic?: "local") => ({
  port: p,
  protocol: "tcp" as const,
  serviceId: "s",
  serviceName: `svc${p}`,
  ...(traffic ? { traffic } : {}),
  backends,
});

async function main() {
  const logs: string[] = [];
  const ingress = await KernelIngress.create({
    chainPrefix: "FLTIK",
    localAddresses: () => ["198.19.132.2"],
    localEndpoints: () => [{ hostPort: 32768, protocol: "tcp", ip: "172.31.0.5", containerPort: 80 }],
    log: (m) => logs.push(m),
  });
  const table1 = {
    version: "v1",
    ports: [
      port(8080, [
        { host: "198.19.132.2", port: 32768 },
        { host: "198.19.132.3", port: 32771 },
      ]),
      port(8081, [{ host: "198.19.132.3", port: 32771 }], "local"),
    ],
  };
  const first = await ingress.apply(table1);
  const v1 = { version: ingress.version, nat: S("nat"), filter: S("filter") };
  // The same rules under a new version: nothing restored, the version follows.
  const logged = logs.length;
  await ingress.apply({ ...table1, version: "v1b" });
  const same = { version: ingress.version, restored: logs.length !== logged };
  await ingress.apply({ version: "v2", ports: [port(9090, [{ host: "198.19.132.4", port: 32800 }])] });
  const v2 = { version: ingress.version, nat: S("nat"), filter: S("filter") };
  await ingress.close();
  const closed = { version: ingress.version, nat: S("nat"), filter: S("filter") };
  return { first, v1, same, v2, closed };
}

main().then(
  (r) => process.stdout.write(JSON.stringify(r)),
  (e) => {
    process.stderr.write(String((e as Error).stack ?? e));
    process.exit(1);
  },
);
