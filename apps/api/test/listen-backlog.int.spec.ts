import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LISTEN_BACKLOG } from "../src/common/listen-backlog";
import { startTestApi, type TestApi } from "./support";

// The accept queue is what thousands of agents connecting at once meet first: with Node's
// default (511) it overflowed in a 1,000-node run, and each overflow cost a connection a 1 s+
// SYN retry. For a listening socket, ss's Send-Q is its backlog.
describe("the API's listener", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ FLOTILLA_ROLE: "api" });
  });
  afterAll(() => api?.stop());

  it("takes LISTEN_BACKLOG connections waiting to be accepted (as far as the kernel allows)", () => {
    const port = new URL(api.url).port;
    const line = execFileSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" })
      .trim()
      .split("\n")[0]!;
    const [, , sendQ] = line.trim().split(/\s+/);
    const somaxconn = Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8"));
    expect(Number(sendQ)).toBe(Math.min(LISTEN_BACKLOG, somaxconn));
    expect(Number(sendQ)).toBeGreaterThan(511);
  });
});
