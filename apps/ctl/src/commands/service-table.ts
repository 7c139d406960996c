import type { ServiceView } from "@flotilla/api-types";
import { table } from "../output";

// As docker prints them: `*:8080->80/tcp` is answered by every node (ingress mode); `local:` marks
// an ingress port with traffic=local (each node forwards to its own tasks only).
const ports = (s: ServiceView) =>
  s.spec.ports
    .map((p) => `${p.mode === "host" ? "host" : p.traffic === "local" ? "local" : "*"}:${p.published}->${p.target}/${p.protocol}`)
    .join(", ");

/** The services table of `ctl service ls` and `ctl stack services`. */
export function serviceTable(rows: readonly ServiceView[]): string {
  return table(
    rows.map((r) => ({
      id: r.id.slice(0, 12),
      name: r.name,
      mode: r.mode,
      replicas: `${r.running}/${r.desired}`,
      image: r.spec.image,
      ports: ports(r),
    })),
    [
      ["ID", "id"],
      ["NAME", "name"],
      ["MODE", "mode"],
      ["REPLICAS", "replicas"],
      ["IMAGE", "image"],
      ["PORTS", "ports"],
    ],
  );
}
