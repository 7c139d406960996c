import { describe, expect, it } from "vitest";
import { applyPlan, EMPTY_PLAN, materializeTask, mergePlans, nextFollowUp, type NewTask, type Plan } from "../src";
import { makeTask, NOW } from "./fixtures";

const newTask: NewTask = {
  serviceId: "svc",
  slot: 2,
  specVersion: 3,
  state: "NEW",
  desiredState: "running",
  reason: "scale-up",
  message: "scaled up to 2",
};

describe("plans", () => {
  it("materializes a planned task with the caller's id and clock", () => {
    expect(materializeTask(newTask, "id-1", NOW)).toEqual({
      id: "id-1",
      serviceId: "svc",
      slot: 2,
      specVersion: 3,
      state: "NEW",
      desiredState: "running",
      createdAt: NOW,
      updatedAt: NOW,
      message: "scaled up to 2",
    });
  });

  it("applies stops (orphaning only live tasks) and appends creations", () => {
    const tasks = [makeTask("a"), makeTask("b"), makeTask("c", { state: "FAILED" }), makeTask("d")];
    const plan: Plan = {
      ...EMPTY_PLAN,
      create: [newTask],
      stop: [
        { taskId: "a", reason: "node-down", message: "node n1 is down", orphan: true },
        { taskId: "b", reason: "scale-down", message: "scaled down", orphan: false },
        { taskId: "c", reason: "node-gone", message: "gone", orphan: true },
      ],
    };
    const after = applyPlan(tasks, plan, { now: NOW, newId: (_t, i) => `new-${i}` });
    expect(after.map((t) => [t.id, t.state, t.desiredState])).toEqual([
      ["a", "ORPHANED", "shutdown"],
      ["b", "RUNNING", "shutdown"],
      ["c", "FAILED", "shutdown"],
      ["d", "RUNNING", "running"],
      ["new-0", "NEW", "running"],
    ]);
    expect(after[0].finishedAt).toBe(NOW);
    expect(tasks[0].state).toBe("RUNNING");
  });

  it("merges plans, stopping a task once", () => {
    const a: Plan = {
      ...EMPTY_PLAN,
      stop: [{ taskId: "x", reason: "node-down", message: "down", orphan: true }],
      followUps: [{ atMs: 9, reason: "later" }],
    };
    const b: Plan = {
      ...EMPTY_PLAN,
      create: [newTask],
      stop: [{ taskId: "x", reason: "update", message: "update", orphan: false }],
      followUps: [{ atMs: 5, reason: "sooner" }],
    };
    const m = mergePlans(a, b);
    expect(m.stop).toEqual(a.stop);
    expect(m.create).toEqual([newTask]);
    expect(nextFollowUp(m)).toEqual({ atMs: 5, reason: "sooner" });
    expect(nextFollowUp(EMPTY_PLAN)).toBeUndefined();
  });
});
