import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dispatchWork, TASK_STATES, type DispatchTask } from "../src";
import { makeTask, NOW } from "./fixtures";

const taskArb = fc
  .record({
    i: fc.integer({ min: 0, max: 1000 }),
    state: fc.constantFrom(...TASK_STATES),
    desired: fc.constantFrom("running" as const, "shutdown" as const),
    age: fc.constantFrom(0, 10_000, 40_000),
    container: fc.boolean(),
  })
  .map(({ i, state, desired, age, container }): DispatchTask => ({
    task: makeTask(`t${i}`, { state, desiredState: desired, updatedAt: NOW - age }),
    containerId: container ? `c${i}` : null,
  }));

describe("dispatchWork", () => {
  it("starts only tasks wanted running that are assigned or abandoned claims, and stops only unwanted unfinished ones", () => {
    fc.assert(
      fc.property(fc.array(taskArb, { maxLength: 20 }), (tasks) => {
        const w = dispatchWork(tasks, NOW);
        for (const t of w.start) {
          expect(t.task.desiredState).toBe("running");
          expect(
            t.task.state === "ASSIGNED" || (t.task.state === "ACCEPTED" && t.containerId === null && t.task.updatedAt < NOW - 30_000),
          ).toBe(true);
        }
        for (const t of w.stop) {
          expect(t.task.desiredState).toBe("shutdown");
          expect(["ASSIGNED", "ACCEPTED", "PREPARING", "STARTING", "RUNNING"]).toContain(t.task.state);
        }
        expect(w.start.some((t) => w.stop.includes(t))).toBe(false);
      }),
    );
  });
});
