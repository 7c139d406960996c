import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ACTIVE_TASK_STATES,
  advance,
  canTransition,
  DISPATCHED_TASK_STATES,
  foldContainerState,
  isActive,
  isLive,
  isTerminal,
  observedTaskState,
  STOPPABLE_TASK_STATES,
  TASK_STATES,
  taskStateRank,
  type ContainerObservation,
  type TaskState,
} from "../src";
import { makeTask, NOW } from "./fixtures";

describe("task states", () => {
  it("are ordered as in swarmkit", () => {
    expect(TASK_STATES.join(" < ")).toBe(
      "NEW < PENDING < ASSIGNED < ACCEPTED < PREPARING < STARTING < RUNNING < COMPLETE < SHUTDOWN < FAILED < REJECTED < ORPHANED",
    );
    expect(taskStateRank("NEW")).toBe(0);
    expect(taskStateRank("ORPHANED")).toBe(11);
  });

  it("list the active and the dispatched ones in that order", () => {
    expect([...ACTIVE_TASK_STATES]).toEqual(TASK_STATES.filter(isActive));
    expect([...DISPATCHED_TASK_STATES]).toEqual(TASK_STATES.filter((s) => isActive(s) && taskStateRank(s) >= taskStateRank("ACCEPTED")));
    expect([...STOPPABLE_TASK_STATES]).toEqual(TASK_STATES.filter((s) => isActive(s) && taskStateRank(s) >= taskStateRank("ASSIGNED")));
  });

  it.each([
    ["NEW", false, true],
    ["PENDING", false, true],
    ["STARTING", false, true],
    ["RUNNING", false, true],
    ["COMPLETE", true, false],
    ["SHUTDOWN", true, false],
    ["FAILED", true, false],
    ["REJECTED", true, false],
    ["ORPHANED", true, false],
  ] as const)("%s: terminal %s, active %s", (s, terminal, active) => {
    expect(isTerminal(s)).toBe(terminal);
    expect(isActive(s)).toBe(active);
  });

  it("counts a task as live only while it is wanted running and not finished", () => {
    expect(isLive({ state: "PENDING", desiredState: "running" })).toBe(true);
    expect(isLive({ state: "RUNNING", desiredState: "shutdown" })).toBe(false);
    expect(isLive({ state: "FAILED", desiredState: "running" })).toBe(false);
  });
});

describe("canTransition", () => {
  it.each([
    ["NEW", "PENDING", true],
    ["PENDING", "RUNNING", true],
    ["ASSIGNED", "ASSIGNED", false],
    ["RUNNING", "STARTING", false],
    ["RUNNING", "COMPLETE", true],
    ["RUNNING", "ORPHANED", true],
    ["STARTING", "REJECTED", true],
    ["COMPLETE", "SHUTDOWN", false],
    ["FAILED", "ORPHANED", false],
    ["ORPHANED", "RUNNING", false],
  ] as const)("%s → %s: %s", (from, to, ok) => {
    expect(canTransition(from, to)).toBe(ok);
  });

  it("allows exactly the forward moves out of non-terminal states", () => {
    fc.assert(
      fc.property(fc.constantFrom(...TASK_STATES), fc.constantFrom(...TASK_STATES), (a, b) => {
        expect(canTransition(a, b)).toBe(!isTerminal(a) && taskStateRank(b) > taskStateRank(a));
      }),
    );
  });
});

describe("advance", () => {
  it("moves forward and stamps the times", () => {
    const t = makeTask("t1", { state: "STARTING" });
    const r = advance(t, "RUNNING", NOW);
    expect(r).toMatchObject({ state: "RUNNING", updatedAt: NOW, startedAt: NOW });
    expect(r.finishedAt).toBeUndefined();
    const done = advance(r, "FAILED", NOW + 5, { exitCode: 2, error: "boom" });
    expect(done).toMatchObject({ state: "FAILED", startedAt: NOW, finishedAt: NOW + 5, exitCode: 2, error: "boom" });
    expect(t.state).toBe("STARTING");
  });

  it("returns the very same task for a backwards or repeated move", () => {
    const t = makeTask("t1", { state: "RUNNING" });
    expect(advance(t, "STARTING", NOW)).toBe(t);
    expect(advance(t, "RUNNING", NOW)).toBe(t);
    const dead = makeTask("t2", { state: "COMPLETE", exitCode: 0 });
    expect(advance(dead, "FAILED", NOW, { exitCode: 1 })).toBe(dead);
  });

  it("never moves a task backwards, whatever the sequence of reports", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TASK_STATES), { maxLength: 30 }), (reports) => {
        let t = makeTask("t", { state: "NEW" });
        let terminalSeen: TaskState | undefined;
        for (const [i, s] of reports.entries()) {
          const next = advance(t, s, NOW + i);
          expect(taskStateRank(next.state)).toBeGreaterThanOrEqual(taskStateRank(t.state));
          if (terminalSeen) expect(next.state).toBe(terminalSeen);
          if (isTerminal(next.state)) terminalSeen = next.state;
          t = next;
        }
      }),
    );
  });
});

describe("foldContainerState", () => {
  const cases: [string, TaskState, "running" | "shutdown", ContainerObservation, TaskState, number | undefined][] = [
    ["created", "ASSIGNED", "running", { kind: "created" }, "STARTING", undefined],
    ["running", "STARTING", "running", { kind: "running" }, "RUNNING", undefined],
    ["running, before we saw it created", "ASSIGNED", "running", { kind: "running" }, "RUNNING", undefined],
    ["exit 0", "RUNNING", "running", { kind: "exited", exitCode: 0 }, "COMPLETE", 0],
    ["exit 1", "RUNNING", "running", { kind: "exited", exitCode: 1 }, "FAILED", 1],
    ["exit 143 after we asked it to stop", "RUNNING", "shutdown", { kind: "exited", exitCode: 143 }, "SHUTDOWN", 143],
    ["oom", "RUNNING", "running", { kind: "oom" }, "FAILED", 137],
    ["oom while stopping", "RUNNING", "shutdown", { kind: "oom" }, "SHUTDOWN", 137],
    ["rejected", "ASSIGNED", "running", { kind: "rejected", error: "pull access denied" }, "REJECTED", undefined],
    ["removed behind our back", "RUNNING", "running", { kind: "removed" }, "FAILED", undefined],
    ["removed after stop", "RUNNING", "shutdown", { kind: "removed" }, "SHUTDOWN", undefined],
    ["late 'created' after running", "RUNNING", "running", { kind: "created" }, "RUNNING", undefined],
    ["late 'running' after exit", "FAILED", "running", { kind: "running" }, "FAILED", undefined],
  ];

  it.each(cases)("%s", (_name, from, desiredState, obs, to, exitCode) => {
    const t = makeTask("t", { state: from, desiredState });
    const r = foldContainerState(t, obs, NOW);
    expect(r.state).toBe(to);
    expect(r.exitCode).toBe(exitCode);
    if (to === from) expect(r).toBe(t);
  });

  it("explains failures", () => {
    expect(observedTaskState({ desiredState: "running" }, { kind: "exited", exitCode: 3 }).error).toBe("task: non-zero exit (3)");
    expect(observedTaskState({ desiredState: "running" }, { kind: "oom" }).error).toMatch(/out of memory/);
    expect(observedTaskState({ desiredState: "running" }, { kind: "rejected", error: "no such image" }).error).toBe("no such image");
  });
});
