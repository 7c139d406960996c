/**
 * Checks an ingress table as it arrived over the wire (JSON from the control plane). Pure. A
 * table without a version or a port list is refused whole; a bad entry only costs its own port,
 * so one mistake in the control plane cannot take every service's ingress down.
 */
import { InvalidError } from "@flotilla/core";
import type { IngressBackend, IngressPort, IngressPortError } from "./ingress-types";

/** The usable entries of a table, and why the others were left out. */
export interface CheckedTable {
  version: string;
  ports: IngressPort[];
  errors: IngressPortError[];
}

const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

function entryProblem(e: Record<string, unknown>): string | null {
  if (e.protocol !== "tcp") return `protocol ${JSON.stringify(e.protocol)} is not supported (only tcp)`;
  if (!Array.isArray(e.backends)) return "backends is not a list";
  const bad = (e.backends as unknown[]).find((b) => {
    const x = b as Partial<IngressBackend> | null;
    return typeof x !== "object" || x === null || typeof x.host !== "string" || x.host === "" || !isPort(x.port);
  });
  if (bad !== undefined) return `invalid backend ${JSON.stringify(bad)}`;
  if (e.traffic !== undefined && e.traffic !== "cluster" && e.traffic !== "local")
    return `traffic ${JSON.stringify(e.traffic)} is not supported (cluster or local)`;
  return null;
}

/** Splits a received table into ports to serve and per-port errors; throws InvalidError when it is no table at all. */
export function checkIngressTable(table: unknown): CheckedTable {
  const t = table as { version?: unknown; ports?: unknown } | null;
  if (typeof t !== "object" || t === null || typeof t.version !== "string" || !Array.isArray(t.ports)) {
    throw new InvalidError("ingress table needs a string version and a ports list", { field: "ingress" });
  }
  const ports: IngressPort[] = [];
  const errors: IngressPortError[] = [];
  const seen = new Map<number, string>();
  for (const raw of t.ports as unknown[]) {
    const e = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    if (!isPort(e.port)) {
      errors.push({ port: typeof e.port === "number" ? e.port : 0, message: `invalid port ${JSON.stringify(e.port)}` });
      continue;
    }
    const name = typeof e.serviceName === "string" ? e.serviceName : "";
    const problem = entryProblem(e);
    if (problem) {
      errors.push({ port: e.port, message: problem });
      continue;
    }
    const owner = seen.get(e.port);
    if (owner !== undefined) {
      errors.push({ port: e.port, message: `listed twice (services ${owner} and ${name})` });
      continue;
    }
    seen.set(e.port, name);
    ports.push({
      port: e.port,
      protocol: "tcp",
      serviceId: typeof e.serviceId === "string" ? e.serviceId : "",
      serviceName: name,
      ...(e.traffic === "local" ? { traffic: "local" as const } : {}),
      backends: (e.backends as IngressBackend[]).map((b) => ({ host: b.host, port: b.port })),
    });
  }
  return { version: t.version, ports, errors };
}
