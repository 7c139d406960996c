// Every answer carries the API's own time over it (Server-Timing), refusals and heartbeats too.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverTimingValue } from "../src/common/server-timing";
import { startTestApi, type TestApi } from "./support";

const FORMAT = /^app;dur=\d+\.\d$/;

describe("Server-Timing", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api?.stop();
  });

  it("formats the time from arrival to answer, never negative", () => {
    expect(serverTimingValue(100, 112.345)).toBe("app;dur=12.3");
    expect(serverTimingValue(100, 99)).toBe("app;dur=0.0");
  });

  it("is on a listing, a refusal and a heartbeat", async () => {
    const listing = await api.fetch("/api/v1/services");
    expect(listing.status).toBe(200);
    expect(listing.headers.get("server-timing")).toMatch(FORMAT);
    const refused = await fetch(`${api.url}/api/v1/services`, { headers: { authorization: "Bearer flt_nope" } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("server-timing")).toMatch(FORMAT);
    const beat = await api.fetch("/api/v1/nodes/heartbeat", {
      method: "POST",
      body: JSON.stringify({
        hostname: "timed",
        engineUrl: "https://198.18.0.9:2376",
        resources: { nanoCpus: 1e9, memoryBytes: 1024 ** 3 },
        containers: [],
      }),
    });
    expect(beat.status).toBe(200);
    expect(beat.headers.get("server-timing")).toMatch(FORMAT);
  });
});
