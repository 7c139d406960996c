// Health checks: the spec's rules, what a reported health status does to a task, and how an
// unhealthy task weighs on a rolling update.
import { describe, expect, it } from "vitest";
import {
  affectsTasks,
  describeHealthcheck,
  foldContainerState,
  InvalidError,
  normalizeServiceSpec,
  planUpdate,
  startUpdate,
  type HealthCheck,
  type Task,
} from "../src";
import { makeNodes, makeTask, NOW, replicated } from "./fixtures";

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof InvalidError) return (e.details as { field?: string }).field;
    throw e;
  }
  return undefined;
}

const spec = (healthcheck: Partial<HealthCheck>) => normalizeServiceSpec({ name: "web", image: "app:1", healthcheck });

describe("healthcheck in the spec", () => {
  it("defaults to the image's", () => {
    expect(normalizeServiceSpec({ name: "web", image: "app:1" }).healthcheck).toEqual({
      test: [],
      intervalMs: 0,
      timeoutMs: 0,
      startPeriodMs: 0,
      retries: 0,
    });
  });

  it.each([
    [{ test: ["CMD-SHELL", "true"], intervalMs: 1000, retries: 2 }, undefined],
    [{ test: ["CMD", "/bin/check", "-q"] }, undefined],
    [{ test: ["NONE"] }, undefined],
    [{ intervalMs: 500 }, undefined],
    [{ test: ["CMD"] }, "healthcheck.test"],
    [{ test: ["CMD-SHELL"] }, "healthcheck.test"],
    [{ test: ["CMD-SHELL", "a", "b"] }, "healthcheck.test"],
    [{ test: ["CMD-SHELL", "  "] }, "healthcheck.test"],
    [{ test: ["NONE", "x"] }, "healthcheck.test"],
    [{ test: ["curl", "localhost"] }, "healthcheck.test"],
    [{ test: "true" as unknown as string[] }, "healthcheck.test"],
    [{ intervalMs: -1 }, "healthcheck.intervalMs"],
    [{ timeoutMs: 1.5 }, "healthcheck.timeoutMs"],
    [{ retries: -2 }, "healthcheck.retries"],
    [{ startPeriodMs: "5s" as unknown as number }, "healthcheck.startPeriodMs"],
    [{ test: ["NONE"], intervalMs: 1000 }, "healthcheck"],
  ])("%j → error on %s", (h, field) => {
    expect(fieldOf(() => spec(h))).toBe(field);
  });

  it("changes the tasks: a new health check rolls them", () => {
    expect(affectsTasks(spec({}), spec({ test: ["CMD-SHELL", "true"] }))).toBe(true);
    expect(affectsTasks(spec({ intervalMs: 1000 }), spec({ intervalMs: 1000 }))).toBe(false);
  });

  it("describes itself for people", () => {
    expect(describeHealthcheck(spec({}).healthcheck)).toBe("the image's");
    expect(describeHealthcheck(spec({ test: ["NONE"] }).healthcheck)).toBe("none");
    expect(describeHealthcheck(spec({ test: ["CMD-SHELL", "true"], intervalMs: 2000, retries: 1 }).healthcheck)).toBe(
      "CMD-SHELL true, every 2s, 1 retries",
    );
  });
});

describe("a reported health status", () => {
  const started = makeTask("t", { state: "STARTING" });
  it("keeps a task STARTING until healthy, then RUNNING", () => {
    expect(foldContainerState(started, { kind: "running", health: "starting" }, NOW).state).toBe("STARTING");
    const healthy = foldContainerState(started, { kind: "running", health: "healthy" }, NOW);
    expect(healthy).toMatchObject({ state: "RUNNING", startedAt: NOW });
  });

  it("fails an unhealthy task with the last check's output as its error", () => {
    const t = foldContainerState(makeTask("t"), { kind: "running", health: "unhealthy", healthOutput: "curl: (7) refused\n" }, NOW);
    expect(t).toMatchObject({ state: "FAILED", error: "task: unhealthy container (last check: curl: (7) refused)", finishedAt: NOW });
  });

  it("leaves a task being stopped alone when it turns unhealthy", () => {
    const stopping = makeTask("t", { desiredState: "shutdown" });
    expect(foldContainerState(stopping, { kind: "running", health: "unhealthy" }, NOW)).toBe(stopping);
  });

  it("never moves a running task back to STARTING", () => {
    const running = makeTask("t");
    expect(foldContainerState(running, { kind: "running", health: "starting" }, NOW)).toBe(running);
  });
});

describe("a rolling update to an image whose health check fails", () => {
  const nodes = makeNodes(2);
  const v2 = (failureAction: "pause" | "rollback") =>
    replicated(2, {
      image: "app:2",
      healthcheck: { test: ["CMD-SHELL", "false"] },
      updateConfig: { parallelism: 1, delayMs: 0, monitorMs: 10_000, failureAction, maxFailureRatio: 0, order: "stop-first" },
    });
  const v1 = replicated(2, { image: "app:1" });
  const state = startUpdate(2, NOW - 60_000);
  const old2 = makeTask("old2", { slot: 2, nodeId: "n2", specVersion: 1 });
  const old1 = makeTask("old1", { slot: 1, nodeId: "n1", specVersion: 1, desiredState: "shutdown", state: "SHUTDOWN" });
  const base: Task = makeTask("new1", { slot: 1, nodeId: "n1", specVersion: 2, state: "STARTING", createdAt: NOW - 30_000 });

  it("waits while the new task's health check is starting", () => {
    const d = planUpdate(v2("pause"), v1, [old1, old2, base], nodes, state, NOW);
    expect(d.state.status).toBe("updating");
    expect(d.plan.create).toEqual([]);
  });

  it.each([
    ["pause", "paused", false],
    ["rollback", "paused", true],
  ] as const)("failure action %s: %s, rollback asked %s", (action, status, rollback) => {
    const unhealthy = foldContainerState(base, { kind: "running", health: "unhealthy", healthOutput: "exit 1" }, NOW - 1_000);
    const d = planUpdate(v2(action), v1, [old1, old2, unhealthy], nodes, state, NOW);
    expect(d.state.status).toBe(status);
    expect(d.state.failedTaskIds).toEqual(["new1"]);
    expect(d.plan.create).toEqual([]);
    expect(d.rollbackTo !== undefined).toBe(rollback);
  });
});
