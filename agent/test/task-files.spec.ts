// The create body's FlotillaFiles (a task's secrets and configs): checked before anything is
// written, each refusal naming the field and never quoting a value.
import { InvalidError } from "@flotilla/core";
import { describe, expect, it } from "vitest";
import { parseTaskFiles } from "../src/containers/task-files";

const VALUE = "do-not-print-me";
const file = (over: Record<string, unknown> = {}) => ({
  Target: "/run/secrets/pw",
  Data: Buffer.from(VALUE).toString("base64"),
  UID: 1000,
  GID: 1000,
  Mode: 0o400,
  ...over,
});

describe("FlotillaFiles", () => {
  it("reads files with their owner and mode", () => {
    expect(parseTaskFiles(undefined)).toEqual([]);
    const [f] = parseTaskFiles([file()]);
    expect(f).toEqual({ target: "/run/secrets/pw", data: Buffer.from(VALUE), uid: 1000, gid: 1000, mode: 0o400 });
  });

  it("refuses bad entries naming the field, without the value", () => {
    const cases: [unknown, RegExp][] = [
      ["x", /must be a list/],
      [[file({ Target: "pw" })], /FlotillaFiles\[0\]\.Target must be a normalized absolute file path/],
      [[file({ Target: "/run/../etc/passwd" })], /Target must be a normalized absolute file path/],
      [[file({ Target: "/run/secrets/" })], /Target must be a normalized absolute file path/],
      [[file(), file()], /FlotillaFiles\[1\]\.Target \/run\/secrets\/pw is used twice/],
      [[file({ Data: `${VALUE}!` })], /FlotillaFiles\[0\]\.Data must be base64/],
      [[file({ Data: Buffer.alloc(500 * 1024 + 1).toString("base64") })], /512001 bytes, more than 512000/],
      [[file({ Mode: 0o1777 })], /Mode must be a whole number from 0 to 511/],
      [[file({ UID: -1 })], /UID must be a whole number/],
      [[file({ GID: "0" })], /GID must be a whole number/],
    ];
    for (const [raw, message] of cases) {
      let err: unknown;
      try {
        parseTaskFiles(raw);
      } catch (e) {
        err = e;
      }
      expect(err, String(message)).toBeInstanceOf(InvalidError);
      expect((err as InvalidError).message).toMatch(message);
      expect((err as InvalidError).message).not.toContain(VALUE);
      expect((err as InvalidError).details.field).toBe("FlotillaFiles");
    }
  });
});
