// Finding 5 of issue 11: the API buffered a partial log line without a cap.
import { describe, expect, it } from "vitest";
import { MAX_PARTIAL_LINE, splitLines } from "../src/services/log-lines";

describe("service log lines", () => {
  it("holds a partial line until its newline", () => {
    const a = splitLines("", "one\ntw");
    expect(a).toEqual({ lines: ["one"], partial: "tw" });
    expect(splitLines(a.partial, "o\n")).toEqual({ lines: ["two"], partial: "" });
  });

  it("never holds more than the cap of a line without a newline", () => {
    let partial = "";
    const lines: string[] = [];
    const chunk = "x".repeat(10_000);
    for (let i = 0; i < 100; i++) {
      const r = splitLines(partial, chunk);
      partial = r.partial;
      lines.push(...r.lines);
      expect(partial.length).toBeLessThanOrEqual(MAX_PARTIAL_LINE);
    }
    expect(lines.join("").length + partial.length).toBe(1_000_000);
    expect(lines.every((l) => l.length === MAX_PARTIAL_LINE)).toBe(true);
  });
});
