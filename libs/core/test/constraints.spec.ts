import { describe, expect, it } from "vitest";
import {
  InvalidError,
  matchesConstraint,
  matchesConstraints,
  parseConstraint,
  parseConstraints,
  parsePlacementPref,
  spreadLabel,
} from "../src";
import { makeNode } from "./fixtures";

describe("parseConstraint", () => {
  it.each([
    ["node.labels.zone==a", { attribute: "label", label: "zone", operator: "==", value: "a", expression: "node.labels.zone==a" }],
    ["node.labels.zone != a", { attribute: "label", label: "zone", operator: "!=", value: "a", expression: "node.labels.zone!=a" }],
    ["node.hostname!=x", { attribute: "hostname", operator: "!=", value: "x", expression: "node.hostname!=x" }],
    ["node.id==abc123", { attribute: "id", operator: "==", value: "abc123", expression: "node.id==abc123" }],
    ["node.role == manager", { attribute: "role", operator: "==", value: "manager", expression: "node.role==manager" }],
    ["Node.Role==Worker", { attribute: "role", operator: "==", value: "Worker", expression: "node.role==Worker" }],
    [
      "node.labels.com.example/tier==db",
      { attribute: "label", label: "com.example/tier", operator: "==", value: "db", expression: "node.labels.com.example/tier==db" },
    ],
  ])("%s", (input, parsed) => {
    expect(parseConstraint(input)).toEqual(parsed);
  });

  it.each([
    ["node.labels.zone=a", /use == or !=/],
    ["node.labels.zone", /use <key>==<value>/],
    ["node.labels.zone==", /missing or malformed value/],
    ["node.labels.zone==a==b", /missing or malformed value/],
    ["node.labels.==a", /bad label name/],
    ["node.role==boss", /node.role is manager or worker/],
    ["engine.labels.os==linux", /unsupported constraint key "engine.labels.os".*node.labels.<name>/],
    ["node.platform.os==linux", /unsupported constraint key/],
  ])("refuses %s", (input, message) => {
    expect(() => parseConstraint(input, "placement.constraints[0]")).toThrow(message);
    try {
      parseConstraint(input, "placement.constraints[0]");
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidError);
      expect((e as InvalidError).details.field).toBe("placement.constraints[0]");
    }
  });

  it("names the index of the bad constraint in a list", () => {
    expect(() => parseConstraints(["node.role==worker", "bogus"])).toThrow(
      expect.objectContaining({ details: expect.objectContaining({ field: "placement.constraints[1]" }) }),
    );
  });
});

describe("matchesConstraint", () => {
  const n = makeNode("id-1", { hostname: "Alpha.Example", role: "manager", labels: { zone: "a", tier: "DB" } });
  it.each([
    ["node.id==id-1", true],
    ["node.id==ID-1", false],
    ["node.id!=id-2", true],
    ["node.hostname==alpha.example", true],
    ["node.hostname!=ALPHA.EXAMPLE", false],
    ["node.role==manager", true],
    ["node.role==MANAGER", true],
    ["node.role!=manager", false],
    ["node.labels.zone==a", true],
    ["node.labels.zone==b", false],
    ["node.labels.zone!=b", true],
    ["node.labels.tier==db", false],
    ["node.labels.missing==a", false],
    ["node.labels.missing!=a", true],
    ["node.labels.toString==a", false],
  ])("%s → %s", (expr, ok) => {
    expect(matchesConstraint(n, parseConstraint(expr))).toBe(ok);
  });

  it("needs every constraint to hold", () => {
    expect(matchesConstraints(n, parseConstraints(["node.role==manager", "node.labels.zone==a"]))).toBe(true);
    expect(matchesConstraints(n, parseConstraints(["node.role==manager", "node.labels.zone==b"]))).toBe(false);
    expect(matchesConstraints(n, [])).toBe(true);
  });
});

describe("parsePlacementPref", () => {
  it("parses spread over a node label", () => {
    expect(parsePlacementPref("spread=node.labels.zone")).toEqual({ spread: "node.labels.zone" });
    expect(spreadLabel({ spread: "node.labels.rack" })).toBe("rack");
  });

  it.each([
    ["spread=node.hostname", /use node.labels.<name>/],
    ["spread=node.labels.", /use node.labels.<name>/],
    ["binpack=node.labels.zone", /only spread is supported/],
    ["spread", /use spread=node.labels.<name>/],
  ])("refuses %s", (input, message) => {
    expect(() => parsePlacementPref(input, "placement.preferences[0]")).toThrow(message);
  });
});
