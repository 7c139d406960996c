import { describe, expect, it } from "vitest";
import {
  affectsTasks,
  DEFAULT_RESTART_POLICY,
  DEFAULT_UPDATE_CONFIG,
  InvalidError,
  normalizeServiceSpec,
  validateServiceName,
  validateServiceSpec,
  type ServiceSpec,
} from "../src";
import { makeSpec } from "./fixtures";

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidError);
    return String((e as InvalidError).details.field);
  }
  throw new Error("expected an InvalidError");
}

describe("validateServiceName", () => {
  it.each(["web", "a", "Web-1", "my_app.v2", "0day", "x".repeat(63)])("accepts %s", (name) => {
    expect(validateServiceName(name)).toBe(name);
  });

  it.each([
    ["", /service name is required/],
    ["-web", /start with a letter or digit/],
    [".web", /start with a letter or digit/],
    ["web app", /start with a letter or digit/],
    ["web/app", /start with a letter or digit/],
    ["wéb", /start with a letter or digit/],
    ["x".repeat(64), /longer than 63 characters/],
    [42, /service name is required/],
  ])("refuses %j", (name, message) => {
    expect(() => validateServiceName(name)).toThrow(message);
    expect(fieldOf(() => validateServiceName(name))).toBe("name");
  });
});

describe("normalizeServiceSpec", () => {
  it("fills docker's defaults", () => {
    const s = normalizeServiceSpec({ name: "web", image: "nginx" });
    expect(s.mode).toEqual({ kind: "replicated", replicas: 1 });
    expect(s.restartPolicy).toEqual(DEFAULT_RESTART_POLICY);
    expect(s.updateConfig).toEqual(DEFAULT_UPDATE_CONFIG);
    expect(s.rollbackConfig.failureAction).toBe("pause");
    expect(s.resources).toEqual({ reservations: { nanoCpus: 0, memoryBytes: 0 }, limits: { nanoCpus: 0, memoryBytes: 0 } });
    expect(s.placement).toEqual({ constraints: [], preferences: [] });
    expect(s.stopGracePeriodMs).toBe(10_000);
  });

  it("keeps what the user gave and merges partial policies", () => {
    const s = normalizeServiceSpec({
      name: "web",
      image: "nginx",
      restartPolicy: { condition: "on-failure" },
      updateConfig: { parallelism: 3, order: "start-first" },
      resources: { limits: { memoryBytes: 1024, pids: 100 } },
    });
    expect(s.restartPolicy).toEqual({ ...DEFAULT_RESTART_POLICY, condition: "on-failure" });
    expect(s.updateConfig).toEqual({ ...DEFAULT_UPDATE_CONFIG, parallelism: 3, order: "start-first" });
    expect(s.resources.limits).toEqual({ nanoCpus: 0, memoryBytes: 1024, pids: 100 });
  });
});

describe("validateServiceSpec", () => {
  const base = makeSpec();
  const bad: [string, (s: ServiceSpec) => unknown, string, RegExp][] = [
    ["bad name", (s) => ({ ...s, name: "-x" }), "name", /invalid service name/],
    ["empty image", (s) => ({ ...s, image: "" }), "image", /image must be/],
    ["image with spaces", (s) => ({ ...s, image: "nginx latest" }), "image", /without spaces/],
    ["command not strings", (s) => ({ ...s, command: [1] }), "command", /list of strings/],
    ["env name with =", (s) => ({ ...s, env: { "A=B": "1" } }), "env.A=B", /invalid environment variable name/],
    ["env value not a string", (s) => ({ ...s, env: { A: 1 } }), "env.A", /must be a string/],
    [
      "negative replicas",
      (s) => ({ ...s, mode: { kind: "replicated", replicas: -1 } }),
      "mode.replicas",
      /replicas must be a whole number from 0 to 100000 \(got -1\)/,
    ],
    ["fractional replicas", (s) => ({ ...s, mode: { kind: "replicated", replicas: 1.5 } }), "mode.replicas", /replicas/],
    ["replicas as a string", (s) => ({ ...s, mode: { kind: "replicated", replicas: "3" } }), "mode.replicas", /got "3"/],
    ["unknown mode", (s) => ({ ...s, mode: { kind: "daemon" } }), "mode", /replicated or global/],
    [
      "negative memory",
      (s) => ({ ...s, resources: { ...s.resources, limits: { nanoCpus: 0, memoryBytes: -1 } } }),
      "resources.limits.memoryBytes",
      /memory limits/,
    ],
    [
      "reservation over limit",
      (s) => ({ ...s, resources: { reservations: { nanoCpus: 0, memoryBytes: 2048 }, limits: { nanoCpus: 0, memoryBytes: 1024 } } }),
      "resources.reservations.memoryBytes",
      /memory reservation \(2048\) exceeds the limit \(1024\)/,
    ],
    [
      "bad pids",
      (s) => ({ ...s, resources: { ...s.resources, limits: { ...s.resources.limits, pids: -5 } } }),
      "resources.limits.pids",
      /pids/,
    ],
    [
      "port 0",
      (s) => ({ ...s, ports: [{ published: 0, target: 80, protocol: "tcp", mode: "ingress" }] }),
      "ports[0].published",
      /1 to 65535/,
    ],
    [
      "port protocol",
      (s) => ({ ...s, ports: [{ published: 80, target: 80, protocol: "sctp", mode: "ingress" }] }),
      "ports[0].protocol",
      /tcp, udp/,
    ],
    [
      "publish mode",
      (s) => ({ ...s, ports: [{ published: 80, target: 80, protocol: "tcp", mode: "vip" }] }),
      "ports[0].mode",
      /ingress, host/,
    ],
    [
      "traffic of a host-mode port",
      (s) => ({ ...s, ports: [{ published: 80, target: 80, protocol: "tcp", mode: "host", traffic: "local" }] }),
      "ports[0].traffic",
      /traffic applies to ingress ports only/,
    ],
    [
      "unknown traffic",
      (s) => ({ ...s, ports: [{ published: 80, target: 80, protocol: "tcp", mode: "ingress", traffic: "nearby" }] }),
      "ports[0].traffic",
      /cluster, local/,
    ],
    [
      "udp through the mesh",
      (s) => ({ ...s, ports: [{ published: 53, target: 53, protocol: "udp", mode: "ingress" }] }),
      "ports[0].mode",
      /udp port 53 can only be published in host mode/,
    ],
    [
      "port published twice",
      (s) => ({
        ...s,
        ports: [
          { published: 80, target: 80, protocol: "tcp", mode: "ingress" },
          { published: 80, target: 81, protocol: "tcp", mode: "host" },
        ],
      }),
      "ports[1].published",
      /port 80\/tcp is published twice/,
    ],
    [
      "bad constraint",
      (s) => ({ ...s, placement: { ...s.placement, constraints: ["node.role==worker", "zone=a"] } }),
      "placement.constraints[1]",
      /use == or !=/,
    ],
    [
      "bad preference",
      (s) => ({ ...s, placement: { ...s.placement, preferences: [{ spread: "zone" }] } }),
      "placement.preferences[0]",
      /node.labels.<name>/,
    ],
    [
      "max replicas on global",
      (s) => ({ ...s, mode: { kind: "global" }, placement: { ...s.placement, maxReplicasPerNode: 2 } }),
      "placement.maxReplicasPerNode",
      /replicated services only/,
    ],
    [
      "restart condition",
      (s) => ({ ...s, restartPolicy: { ...s.restartPolicy, condition: "always" } }),
      "restartPolicy.condition",
      /none, on-failure, any/,
    ],
    ["restart delay", (s) => ({ ...s, restartPolicy: { ...s.restartPolicy, delayMs: -1 } }), "restartPolicy.delayMs", /restart delay/],
    ["parallelism", (s) => ({ ...s, updateConfig: { ...s.updateConfig, parallelism: -1 } }), "updateConfig.parallelism", /parallelism/],
    [
      "failure ratio",
      (s) => ({ ...s, updateConfig: { ...s.updateConfig, maxFailureRatio: 1.5 } }),
      "updateConfig.maxFailureRatio",
      /from 0 to 1/,
    ],
    [
      "update order",
      (s) => ({ ...s, updateConfig: { ...s.updateConfig, order: "random" } }),
      "updateConfig.order",
      /stop-first, start-first/,
    ],
    [
      "rollback of a rollback",
      (s) => ({ ...s, rollbackConfig: { ...s.rollbackConfig, failureAction: "rollback" } }),
      "rollbackConfig.failureAction",
      /pause, continue/,
    ],
    [
      "global start-first with host ports",
      (s) => ({
        ...s,
        mode: { kind: "global" },
        ports: [{ published: 80, target: 80, protocol: "tcp", mode: "host" }],
        updateConfig: { ...s.updateConfig, order: "start-first" },
      }),
      "updateConfig.order",
      /use stop-first/,
    ],
    ["grace period", (s) => ({ ...s, stopGracePeriodMs: 0.5 }), "stopGracePeriodMs", /stop grace period/],
  ];

  it.each(bad)("%s → field %s", (_name, mutate, field, message) => {
    const spec = mutate(base) as ServiceSpec;
    expect(() => validateServiceSpec(spec)).toThrow(message);
    expect(fieldOf(() => validateServiceSpec(spec))).toBe(field);
  });

  it("accepts a spec using every feature", () => {
    const s = makeSpec({
      command: ["/bin/app"],
      args: ["--port", "80"],
      env: { A: "1" },
      labels: { team: "core" },
      mode: { kind: "replicated", replicas: 5 },
      resources: {
        reservations: { nanoCpus: 500_000_000, memoryBytes: 1024 },
        limits: { nanoCpus: 1_000_000_000, memoryBytes: 2048, pids: 10 },
      },
      ports: [
        { published: 80, target: 80 },
        { published: 80, target: 80, protocol: "udp", mode: "host" },
      ],
      placement: { constraints: ["node.labels.zone!=c"], preferences: [{ spread: "node.labels.zone" }], maxReplicasPerNode: 2 },
      restartPolicy: { condition: "on-failure", delayMs: 100, maxAttempts: 3, windowMs: 60_000 },
      updateConfig: { parallelism: 2, order: "start-first", failureAction: "rollback", maxFailureRatio: 0.2 },
    });
    expect(validateServiceSpec(s)).toBe(s);
    expect(s.ports[0]).toEqual({ published: 80, target: 80, protocol: "tcp", mode: "ingress" });
  });

  it("lets a global service with ingress ports update start-first: they hold nothing on the node", () => {
    const s = makeSpec({ mode: { kind: "global" }, ports: [{ published: 80, target: 80 }], updateConfig: { order: "start-first" } });
    expect(validateServiceSpec(s)).toBe(s);
  });
});

describe("affectsTasks", () => {
  const s = makeSpec({ env: { A: "1", B: "2" } });
  it.each([
    ["scaling", { mode: { kind: "replicated", replicas: 9 } }, false],
    ["restart policy", { restartPolicy: { ...s.restartPolicy, delayMs: 1 } }, false],
    ["update config", { updateConfig: { ...s.updateConfig, parallelism: 4 } }, false],
    ["env key order", { env: { B: "2", A: "1" } }, false],
    ["image", { image: "nginx:1.28" }, true],
    ["env value", { env: { A: "1", B: "3" } }, true],
    ["memory limit", { resources: { ...s.resources, limits: { ...s.resources.limits, memoryBytes: 1 } } }, true],
    ["constraints", { placement: { ...s.placement, constraints: ["node.role==worker"] } }, true],
    ["ports", { ports: [{ published: 80, target: 80, protocol: "tcp" as const, mode: "ingress" as const }] }, true],
  ] as const)("%s → %s", (_name, change, expected) => {
    expect(affectsTasks(s, { ...s, ...change } as ServiceSpec)).toBe(expected);
  });
});
