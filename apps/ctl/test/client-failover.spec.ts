// ctl over several API replicas: FLOTILLA_URL lists them; a request none answered goes to the
// next, an answered one (even an error) is never resent.
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient, loadCtlConfig } from "../src/client";

let server: Server;
let live = "";
const seen: string[] = [];
/** Reads a request, then closes the connection without answering: a replica dying mid-request. */
let cutter: TcpServer;
let cutting = "";
let cut = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url === "/api/v1/fail")
      res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ message: "Postgres is unavailable" }));
    else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  live = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cutter = createTcpServer((socket) => {
    socket.once("data", () => {
      cut++;
      socket.destroy();
    });
  });
  await new Promise<void>((r) => cutter.listen(0, "127.0.0.1", r));
  cutting = `http://127.0.0.1:${(cutter.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await new Promise<void>((r) => cutter.close(() => r()));
});

describe("ctl with several API URLs", () => {
  it("reads a comma-separated FLOTILLA_URL", () => {
    const c = loadCtlConfig({ FLOTILLA_URL: "http://a:1/, http://b:2", FLOTILLA_CONFIG_DIR: "/nonexistent" });
    expect(c).toMatchObject({ url: "http://a:1", urls: ["http://a:1", "http://b:2"] });
  });

  it("sends to the next replica when one refuses the connection", async () => {
    const client = new ApiClient(loadCtlConfig({ FLOTILLA_URL: `http://127.0.0.1:3,${live}`, FLOTILLA_CONFIG_DIR: "/nonexistent" }));
    expect(await client.request("GET", "/api/v1/health")).toEqual({ ok: true });
    seen.length = 0;
    // It stays with the one that answered.
    expect(await client.request("POST", "/api/v1/x", {})).toEqual({ ok: true });
    expect(seen).toEqual(["POST /api/v1/x"]);
  });

  it("does not resend a request a replica answered, even with an error", async () => {
    seen.length = 0;
    const client = new ApiClient(loadCtlConfig({ FLOTILLA_URL: `${live},${live}`, FLOTILLA_CONFIG_DIR: "/nonexistent" }));
    await expect(client.request("POST", "/api/v1/fail", {})).rejects.toThrow("Postgres is unavailable");
    expect(seen).toEqual(["POST /api/v1/fail"]);
  });

  it("names every replica when none answers", async () => {
    const client = new ApiClient(
      loadCtlConfig({ FLOTILLA_URL: "http://127.0.0.1:3,http://127.0.0.1:2", FLOTILLA_CONFIG_DIR: "/nonexistent" }),
    );
    await expect(client.request("GET", "/api/v1/health")).rejects.toThrow(
      /cannot reach the Flotilla API at http:\/\/127\.0\.0\.1:3: ECONNREFUSED; http:\/\/127\.0\.0\.1:2: ECONNREFUSED/,
    );
  });

  it("resends a read whose connection broke after sending, but never a write", async () => {
    const env = { FLOTILLA_URL: `${cutting},${live}`, FLOTILLA_CONFIG_DIR: "/nonexistent" };
    seen.length = 0;
    cut = 0;
    expect(await new ApiClient(loadCtlConfig(env)).request("GET", "/api/v1/services")).toEqual({ ok: true });
    expect([cut, seen]).toEqual([1, ["GET /api/v1/services"]]);

    seen.length = 0;
    cut = 0;
    const client = new ApiClient(loadCtlConfig(env));
    await expect(client.request("POST", "/api/v1/services/web/scale", { replicas: 3 })).rejects.toThrow(
      new RegExp(
        `the Flotilla API at ${cutting} broke the connection before answering POST /api/v1/services/web/scale .*may have carried the request out.*next command goes to ${live}`,
      ),
    );
    expect([cut, seen]).toEqual([1, []]);
    // The next request goes to the replica that answers.
    expect(await client.request("GET", "/api/v1/health")).toEqual({ ok: true });
    expect(cut).toBe(1);
  });
});
