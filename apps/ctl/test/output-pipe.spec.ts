// ctl's output through a pipe arrives whole: a real ctl process against a tiny fixture API that
// answers `GET /api/v1/tokens` with more than 1 MiB, read through `wc -c` as a script would.
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctlArgv, ctlEnv } from "./run-ctl";

describe("ctl output to a pipe", () => {
  const rows = Array.from({ length: 12_000 }, (_, i) => ({
    name: `token-${i}`,
    role: "admin",
    createdAt: "2026-01-01T00:00:00.000Z",
    lastUsedAt: null,
  }));
  const expected = Buffer.byteLength(JSON.stringify(rows, null, 2) + "\n");
  let server: Server;
  let url: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(req.url === "/api/v1/tokens" ? JSON.stringify(rows) : "{}");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("writes all of a > 1 MiB --json answer before exiting", { timeout: 60_000 }, async () => {
    expect(expected).toBeGreaterThan(1024 * 1024);
    // The reader starts late, as a slow consumer does, so the pipe is full when ctl is done.
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const command = `${[process.execPath, ...ctlArgv(["token", "ls", "--json"])].map(quote).join(" ")} | (sleep 1; wc -c)`;
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        "bash",
        ["-o", "pipefail", "-c", command],
        { env: ctlEnv({ FLOTILLA_URL: url, FLOTILLA_TOKEN: "flt_fixture" }), encoding: "utf8" },
        (err, out, errOut) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: out, stderr: errOut }),
      ),
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(Number(stdout.trim())).toBe(expected);
  });
});
