import { describe, expect, it } from "vitest";
import { countLive, liveCountsOfNumbered } from "../src";
import { makeTask } from "./fixtures";

describe("liveCountsOfNumbered", () => {
  it("counts each listed number as one live task of the service it numbers", () => {
    const counts = liveCountsOfNumbered(["svc-a", "svc-b", "svc-c"], { n1: "0,2,0", n2: "1" });
    expect(counts).toEqual(
      new Map([
        [
          "n1",
          new Map([
            ["svc-a", 2],
            ["svc-c", 1],
          ]),
        ],
        ["n2", new Map([["svc-b", 1]])],
      ]),
    );
  });

  it("gives what countLive gives for the same tasks listed", () => {
    const services = ["s0", "s1", "s2", "s3"];
    const tasks = Array.from({ length: 200 }, (_, i) =>
      makeTask(`t${i}`, { serviceId: services[(i * 7) % 4]!, nodeId: `node${(i * 13) % 9}`, state: "running", desiredState: "running" }),
    );
    const numbered: Record<string, string[]> = {};
    for (const t of tasks) (numbered[t.nodeId!] ??= []).push(String(services.indexOf(t.serviceId)));
    const lists = Object.fromEntries(Object.entries(numbered).map(([node, numbers]) => [node, numbers.join(",")]));
    expect(liveCountsOfNumbered(services, lists)).toEqual(countLive(tasks));
  });

  it("refuses a number that names no service, instead of dropping the task", () => {
    expect(() => liveCountsOfNumbered(["svc-a"], { n1: "0,1" })).toThrow(/node n1: no service numbered "1"/);
    expect(() => liveCountsOfNumbered(["svc-a"], { n1: "0,,0" })).toThrow(/no service numbered ""/);
  });
});
