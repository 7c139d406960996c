import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isTerminal, TASK_HISTORY, TASK_STATES, tasksToPrune } from "../src";
import { makeTask, NOW } from "./fixtures";

describe("tasksToPrune", () => {
  it("prunes only finished, unremembered tasks, keeping the newest per slot", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            slot: fc.integer({ min: 1, max: 3 }),
            state: fc.constantFrom(...TASK_STATES),
            age: fc.integer({ min: 0, max: 1000 }),
          }),
          { maxLength: 40 },
        ),
        fc.integer({ min: 0, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 39 }), { maxLength: 5 }),
        (rows, maxAttempts, remembered) => {
          const tasks = rows.map((r, i) => makeTask(`t${i}`, { slot: r.slot, state: r.state, createdAt: NOW - r.age * 1000 - i }));
          const keepFailed = remembered.map((i) => `t${i}`);
          const pruned = new Set(tasksToPrune(tasks, { maxAttempts }, keepFailed));
          const keep = Math.max(TASK_HISTORY, maxAttempts + 1);
          for (const t of tasks) {
            if (!pruned.has(t.id)) continue;
            expect(isTerminal(t.state)).toBe(true);
            expect(keepFailed).not.toContain(t.id);
            const newer = tasks.filter(
              (o) => o.slot === t.slot && isTerminal(o.state) && !keepFailed.includes(o.id) && o.createdAt > t.createdAt,
            );
            expect(newer.length).toBeGreaterThanOrEqual(keep);
          }
        },
      ),
    );
  });
});
