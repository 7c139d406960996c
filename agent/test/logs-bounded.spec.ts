// Finding 5 of issue 11: logs were unbounded, and `--tail 1` read the whole file. The limits,
// the shim arguments that carry them, and reads across rotated files from the end.
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { followLog, parseRecords, readLog, type LogRecord } from "../src/containers/logs";
import { DEFAULT_LOG_MAX_FILES, DEFAULT_LOG_MAX_SIZE, logLimits } from "../src/containers/log-options";

const rec = (i: number) => JSON.stringify({ log: `line ${i}\n`, stream: "stdout", time: "2026-01-01T00:00:00.000000000Z" }) + "\n";

describe("log limits", () => {
  it("defaults to 10 MiB × 3 and takes Docker's max-size/max-file", () => {
    expect(logLimits({})).toEqual({ maxSize: DEFAULT_LOG_MAX_SIZE, maxFiles: DEFAULT_LOG_MAX_FILES });
    expect(DEFAULT_LOG_MAX_SIZE).toBe(10 * 1024 * 1024);
    expect(logLimits({ "max-size": "1m", "max-file": "5" })).toEqual({ maxSize: 1024 * 1024, maxFiles: 5 });
    expect(logLimits({ "max-size": "512k" })).toEqual({ maxSize: 512 * 1024, maxFiles: 3 });
    expect(logLimits({ "max-size": "-1" })).toEqual({ maxSize: 0, maxFiles: 3 });
  });

  it("refuses bad values and options it does not implement", () => {
    expect(() => logLimits({ "max-size": "lots" })).toThrow("invalid --log-opt max-size=lots");
    expect(() => logLimits({ "max-size": "1m", "max-file": "0" })).toThrow("invalid --log-opt max-file=0");
    expect(() => logLimits({ "max-file": "2" })).toThrow("--log-opt max-file needs max-size");
    expect(() => logLimits({ compress: "true" })).toThrow("--log-opt compress is not supported by this agent (only max-size and max-file)");
  });
});

describe("reading a rotated log", () => {
  let dir: string;
  let log: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), "flotilla-s11-logs-"));
    log = join(dir, "log.json");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reads rotated files oldest first, then the current one", async () => {
    fs.writeFileSync(`${log}.2`, rec(1) + rec(2));
    fs.writeFileSync(`${log}.1`, rec(3));
    fs.writeFileSync(log, rec(4) + rec(5) + '{"log":"part');
    const all = await readLog(log);
    expect(parseRecords(all.lines).map((r) => r.log)).toEqual(["line 1\n", "line 2\n", "line 3\n", "line 4\n", "line 5\n"]);
    expect(all.offset).toBe(Buffer.byteLength(rec(4) + rec(5)));
  });

  it("--tail reads from the end, into the rotated files when the current one is short", async () => {
    fs.writeFileSync(`${log}.1`, rec(1) + rec(2) + rec(3));
    fs.writeFileSync(log, rec(4));
    expect(parseRecords((await readLog(log, 0, 1)).lines).map((r) => r.log)).toEqual(["line 4\n"]);
    expect(parseRecords((await readLog(log, 0, 3)).lines).map((r) => r.log)).toEqual(["line 2\n", "line 3\n", "line 4\n"]);
    expect((await readLog(log, 0, 0)).lines).toEqual([]);
  });

  it("--tail 1 of a large log reads only its end", async () => {
    const fd = fs.openSync(log, "w");
    const block = Array.from({ length: 1000 }, (_, i) => rec(i)).join("");
    for (let i = 0; i < 200; i++) fs.writeSync(fd, block); // ~12 MB
    fs.writeSync(fd, rec(999_999));
    fs.closeSync(fd);
    const before = process.memoryUsage().arrayBuffers;
    const tail = await readLog(log, 0, 1);
    expect(parseRecords(tail.lines).map((r) => r.log)).toEqual(["line 999999\n"]);
    expect(tail.offset).toBe(fs.statSync(log).size);
    // A whole read would allocate the file's size; the tail needs one 64 KiB chunk.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(4 * 1024 * 1024);
  });

  it("follow carries on across a rotation without losing or repeating records", async () => {
    fs.writeFileSync(log, rec(1));
    const seen: LogRecord[] = [];
    let stop!: () => void;
    const done = new Promise<void>((r) => (stop = r));
    const following = followLog(log, 0, (r) => seen.push(...r), { done, signal: new AbortController().signal });
    const until = async (n: number) => {
      for (let i = 0; i < 400 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 25));
    };
    await until(1);
    fs.appendFileSync(log, rec(2));
    fs.renameSync(log, `${log}.1`); // as the shim rotates
    fs.writeFileSync(log, rec(3));
    await until(3);
    stop();
    await following;
    expect(seen.map((r) => r.log)).toEqual(["line 1\n", "line 2\n", "line 3\n"]);
  });
});
