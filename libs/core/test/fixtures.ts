// Builders for tests: small, explicit defaults, every field overridable.
import { normalizeServiceSpec, type NodeInfo, type ServiceSpec, type ServiceSpecInput, type Task } from "../src";

export const NOW = 1_700_000_000_000;
export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
export const CPU = 1_000_000_000;

export function makeSpec(input: Partial<ServiceSpecInput> = {}): ServiceSpec {
  return normalizeServiceSpec({ name: "web", image: "nginx:1.27", ...input });
}

export function replicated(replicas: number, input: Partial<ServiceSpecInput> = {}): ServiceSpec {
  return makeSpec({ mode: { kind: "replicated", replicas }, ...input });
}

export function makeNode(id: string, over: Partial<NodeInfo> = {}): NodeInfo {
  return {
    id,
    hostname: `${id}.test`,
    role: "worker",
    status: "ready",
    availability: "active",
    labels: {},
    resources: { nanoCpus: 4 * CPU, memoryBytes: 8 * GiB },
    ...over,
  };
}

export function makeNodes(count: number, over: (i: number) => Partial<NodeInfo> = () => ({})): NodeInfo[] {
  return Array.from({ length: count }, (_, i) => makeNode(`n${i + 1}`, over(i)));
}

export function makeTask(id: string, over: Partial<Task> = {}): Task {
  const state = over.state ?? "RUNNING";
  return {
    id,
    serviceId: "svc",
    specVersion: 1,
    state,
    desiredState: "running",
    createdAt: NOW - 60_000,
    updatedAt: NOW - 30_000,
    ...(state === "RUNNING" ? { startedAt: NOW - 30_000 } : {}),
    ...over,
  };
}
