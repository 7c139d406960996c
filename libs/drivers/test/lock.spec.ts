import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { withHostLock } from "@flotilla/drivers";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "flotilla-lock-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("withHostLock", () => {
  it("runs callers in this process one at a time, in order", async () => {
    const trace: string[] = [];
    const job = (n: string) =>
      withHostLock(dir, "vbox", async () => {
        trace.push(`${n}+`);
        await tick(20);
        trace.push(`${n}-`);
        return n;
      });
    expect(await Promise.all([job("a"), job("b"), job("c")])).toEqual(["a", "b", "c"]);
    expect(trace).toEqual(["a+", "a-", "b+", "b-", "c+", "c-"]);
    expect(existsSync(join(dir, "vbox.lock"))).toBe(false);
  });

  it("releases the lock when the work throws", async () => {
    await expect(withHostLock(dir, "vbox", async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await withHostLock(dir, "vbox", async () => "next")).toBe("next");
  });

  it("takes over a lock file left by a dead process", async () => {
    writeFileSync(join(dir, "vbox.lock"), JSON.stringify({ pid: 2 ** 22 + 12345, token: "x", since: "then" }));
    expect(await withHostLock(dir, "vbox", async () => "ran")).toBe("ran");
  });

  it("waits for a live holder in another process, and the wait is abortable", async () => {
    const holder = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
    try {
      writeFileSync(
        join(dir, "vbox.lock"),
        JSON.stringify({ pid: holder.pid, token: "theirs", since: "now", purpose: "virtualbox create other" }),
      );
      const waits: string[] = [];
      const ac = new AbortController();
      const p = withHostLock(dir, "vbox", async () => "ran", { signal: ac.signal, pollMs: 10, onWait: (w) => waits.push(w) });
      await tick(100);
      expect(waits).toEqual([`pid ${holder.pid} (virtualbox create other)`]);
      ac.abort();
      await expect(p).rejects.toMatchObject({ name: "AbortError" });
      // The holder's file is untouched, and the in-process queue is free again.
      expect(existsSync(join(dir, "vbox.lock"))).toBe(true);
      rmSync(join(dir, "vbox.lock"));
      expect(await withHostLock(dir, "vbox", async () => "after")).toBe("after");
    } finally {
      holder.kill();
    }
  });

  it("an aborted waiter does not block those queued behind it", async () => {
    const ac = new AbortController();
    let release!: () => void;
    const first = withHostLock(dir, "vbox", () => new Promise<string>((r) => (release = () => r("first"))));
    const second = withHostLock(dir, "vbox", async () => "second", { signal: ac.signal });
    const third = withHostLock(dir, "vbox", async () => "third");
    await tick(20);
    ac.abort();
    await expect(second).rejects.toMatchObject({ name: "AbortError" });
    release();
    expect(await first).toBe("first");
    expect(await third).toBe("third");
  });
});
