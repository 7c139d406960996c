// Run by ingress-kernel.int.spec.ts inside a namespace of its own (`ip netns exec NS tsx this-file MODE`),
// so the mesh's chains land in tables that vanish with the namespace, never the host's, and the
// ports it holds are that namespace's. Prints one JSON document.
//   rules:   applies tables with KernelIngress, lists the rules and tries to bind the ports from
//            another process after each step, then closes it.
//   taken:   a port another socket of the namespace bound first: not forwarded, then held and
//            forwarded once that socket is closed.
//   left:    applies a table and exits without close(), as a killed agent does (rules stay).
//   restart: a new KernelIngress after `left`: holds the ports the left rules forward at once.
import { execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { KernelIngress } from "../../src/ingress";
import { BIND_PROBE } from "./network-helpers";

const S = (table: string) => execFileSync("iptables", ["-w", "-t", table, "-S"], { encoding: "utf8" });
const port = (p: number, backends: { host: string; port: number }[], traffic?: "local") => ({
  port: p,
  protocol: "tcp" as const,
  serviceId: "s",
  serviceName: `svc${p}`,
  ...(traffic ? { traffic } : {}),
  backends,
});
const localOptions = {
  chainPrefix: "FLTIK",
  localAddresses: () => ["198.19.132.2"],
  localEndpoints: () => [{ hostPort: 32768, protocol: "tcp" as const, ip: "172.31.0.5", containerPort: 80 }],
};

/**
 * What another process of this namespace meets binding 0.0.0.0:port over TCP: "bound", or the
 * error code (EADDRINUSE while the mesh holds it). A process of its own, as an attacker would be.
 */
function bindFromAnotherProcess(p: number): string {
  return execFileSync(process.execPath, ["-e", BIND_PROBE, String(p)], { encoding: "utf8" });
}
const binds = (...ports: number[]) => Object.fromEntries(ports.map((p) => [p, bindFromAnotherProcess(p)]));

async function rules() {
  const logs: string[] = [];
  const ingress = await KernelIngress.create({ ...localOptions, log: (m) => logs.push(m) });
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
  const before = binds(8080, 8081);
  const first = await ingress.apply(table1);
  const v1 = { version: ingress.version, nat: S("nat"), filter: S("filter"), held: ingress.heldPorts, binds: binds(8080, 8081) };
  // The same rules under a new version: nothing restored, the version follows.
  const logged = logs.length;
  await ingress.apply({ ...table1, version: "v1b" });
  const same = { version: ingress.version, restored: logs.length !== logged };
  await ingress.apply({ version: "v2", ports: [port(9090, [{ host: "198.19.132.4", port: 32800 }])] });
  const v2 = { version: ingress.version, nat: S("nat"), filter: S("filter"), held: ingress.heldPorts, binds: binds(8080, 8081, 9090) };
  await ingress.close();
  const closed = { version: ingress.version, nat: S("nat"), filter: S("filter"), held: ingress.heldPorts, binds: binds(9090) };
  return { before, first, v1, same, v2, closed };
}

async function taken() {
  const logs: string[] = [];
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen({ port: 7070, host: "0.0.0.0" }, resolve));
  const ingress = await KernelIngress.create({ ...localOptions, log: (m) => logs.push(m) });
  const table = {
    version: "t1",
    ports: [port(7070, [{ host: "198.19.132.3", port: 32771 }]), port(7071, [{ host: "198.19.132.3", port: 32771 }])],
  };
  const applied = await ingress.apply(table);
  const whileTaken = { errors: applied.errors, version: ingress.version, held: ingress.heldPorts, nat: S("nat") };
  await new Promise<void>((resolve) => squatter.close(() => resolve()));
  await ingress.refresh();
  const freed = { version: ingress.version, held: ingress.heldPorts, nat: S("nat"), binds: binds(7070) };
  await ingress.close();
  return { whileTaken, freed, logs };
}

async function left() {
  const ingress = await KernelIngress.create(localOptions);
  await ingress.apply({ version: "k1", ports: [port(6060, [{ host: "198.19.132.3", port: 32771 }])] });
  return { held: ingress.heldPorts };
}

async function restart() {
  const logs: string[] = [];
  const beforeAgent = binds(6060);
  const ingress = await KernelIngress.create({ ...localOptions, log: (m) => logs.push(m) });
  const beforeTable = { held: ingress.heldPorts, binds: binds(6060) };
  await ingress.apply({ version: "k2", ports: [port(6061, [{ host: "198.19.132.3", port: 32771 }])] });
  const afterTable = { held: ingress.heldPorts, binds: binds(6060, 6061) };
  await ingress.close();
  return { beforeAgent, beforeTable, afterTable, logs };
}

const modes: Record<string, () => Promise<unknown>> = { rules, taken, left, restart };
const mode = modes[process.argv[2] ?? ""];
if (!mode) throw new Error(`mode must be one of ${Object.keys(modes).join(", ")}`);
mode().then(
  (r) => {
    process.stdout.write(JSON.stringify(r));
    // `left` must not close: exit with its sockets and leave its rules, as a killed agent does.
    process.exit(0);
  },
  (e) => {
    process.stderr.write(String((e as Error).stack ?? e));
    process.exit(1);
  },
);
