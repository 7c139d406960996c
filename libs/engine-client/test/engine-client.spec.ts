import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createServer, type Server } from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EngineClient, EngineConflictError, EngineNotFoundError, EngineUnreachableError, LogDemuxer, muxFrame, TASK_LABELS } from "../src";
import { SimAgent } from "../../../test/support/sim-agent";

describe("LogDemuxer", () => {
  it("splits frames, whatever the chunking", () => {
    const bytes = Buffer.concat([muxFrame("stdout", "hello\n"), muxFrame("stderr", "oops\n"), muxFrame("stdout", "")]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const d = new LogDemuxer();
      const frames = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
      expect(frames.map((f) => [f.stream, f.data.toString()])).toEqual([
        ["stdout", "hello\n"],
        ["stderr", "oops\n"],
        ["stdout", ""],
      ]);
      expect(d.pending).toBe(0);
    }
  });

  it("keeps an unfinished frame pending", () => {
    const d = new LogDemuxer();
    expect(d.push(muxFrame("stdout", "abcdef").subarray(0, 10))).toEqual([]);
    expect(d.pending).toBe(10);
  });
});

describe("EngineClient over HTTP", () => {
  let agent: SimAgent;
  let engine: EngineClient;
  beforeAll(async () => {
    agent = await new SimAgent({ hostname: "e1" }).start();
    engine = new EngineClient({ url: agent.url });
  });
  afterAll(async () => {
    engine?.close();
    await agent?.stop();
  });

  it("pings", async () => {
    expect(await engine.ping()).toBe(true);
  });

  it("pulls a missing image on 404 and creates, starts, lists by label, stops and removes", async () => {
    const labels = { [TASK_LABELS.taskId]: "t1", [TASK_LABELS.serviceId]: "s1", [TASK_LABELS.slot]: "1" };
    const id = await engine.createContainer("web.1.t1", { Image: "busybox", Labels: labels, Env: ["A=1"], HostConfig: { Memory: 1024 } });
    expect(agent.calls.filter((c) => c !== "GET /_ping")).toEqual([
      "POST /containers/create",
      "POST /images/create",
      "POST /containers/create",
    ]);
    expect(agent.images.has("busybox:latest")).toBe(true);
    await engine.startContainer(id);
    await engine.startContainer(id); // 304: already running is fine
    const listed = await engine.listContainers({ [TASK_LABELS.serviceId]: "s1" });
    expect(listed.map((c) => [c.Id, c.State, c.Labels[TASK_LABELS.taskId]])).toEqual([[id, "running", "t1"]]);
    expect(await engine.listContainers({ [TASK_LABELS.serviceId]: "other" })).toEqual([]);
    await engine.stopContainer(id, 1);
    expect((await engine.inspectContainer(id)).State).toMatchObject({ Running: false, ExitCode: 143 });
    await engine.removeContainer(id);
    await expect(engine.inspectContainer(id)).rejects.toBeInstanceOf(EngineNotFoundError);
  });

  it("types errors: a taken name is a conflict naming the operation", async () => {
    await engine.createContainer("dup", { Image: "busybox" });
    const e = await engine.createContainer("dup", { Image: "busybox" }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineConflictError);
    expect((e as Error).message).toMatch(/^create container dup: Conflict\. The container name "\/dup" is already in use \(HTTP 409\)$/);
  });

  it("kills when asked, and a kill of a stopped container is not an error", async () => {
    const id = await engine.createContainer("k", { Image: "busybox" });
    await engine.startContainer(id);
    await engine.killContainer(id);
    await engine.killContainer(id);
    expect((await engine.inspectContainer(id)).State.ExitCode).toBe(137);
  });

  it("streams demultiplexed logs, following until aborted", async () => {
    const id = await engine.createContainer("logger", { Image: "busybox" });
    await engine.startContainer(id);
    const once: string[] = [];
    for await (const c of engine.logs(id)) once.push(`${c.stream}:${c.data.toString()}`);
    expect(once).toEqual(["stdout:hello from logger\n", "stderr:busybox:latest started\n"]);
    const ac = new AbortController();
    const seen: string[] = [];
    for await (const c of engine.logs(id, { follow: true, signal: ac.signal })) {
      seen.push(c.data.toString());
      if (seen.length === 3) ac.abort();
    }
    expect(seen[2]).toMatch(/^tick /);
  });

  it("reports an unreachable agent as such", async () => {
    const gone = new EngineClient({ url: "http://127.0.0.1:1", timeoutMs: 2000 });
    await expect(gone.ping()).rejects.toBeInstanceOf(EngineUnreachableError);
  });
});

describe("EngineClient over a unix socket", () => {
  let server: Server;
  const socket = join(mkdtempSync(join(tmpdir(), "engine-client-")), "engine.sock");
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === "/_ping") return void res.end("OK");
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify([{ Id: "abc", Names: ["/x"], Image: "busybox", Labels: {}, State: "running", Status: "", Created: 0 }]));
    });
    await new Promise<void>((r) => server.listen(socket, r));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("speaks HTTP over the socket", async () => {
    const engine = new EngineClient({ url: `unix://${socket}` });
    expect(await engine.ping()).toBe(true);
    expect((await engine.listContainers()).map((c) => c.Id)).toEqual(["abc"]);
    engine.close();
  });
});

describe("EngineUnreachableError.notDelivered", () => {
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error("expected a failure");
      },
      (e: unknown) => e as EngineUnreachableError,
    );

  it("is true for a refused connection: the request never reached an agent", async () => {
    const { createServer: tcp } = await import("node:net");
    const probe = tcp();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const e = await failure(new EngineClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 2000 }).createContainer("n", { Image: "x" }));
    expect(e).toBeInstanceOf(EngineUnreachableError);
    expect(e.notDelivered).toBe(true);
  });

  it("is false for a request the agent took and never answered: it may have acted on it", async () => {
    const { createServer: tcp } = await import("node:net");
    const held = tcp((s) => s.on("error", () => undefined));
    await new Promise<void>((r) => held.listen(0, "127.0.0.1", r));
    const port = (held.address() as { port: number }).port;
    try {
      const e = await failure(new EngineClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 300 }).createContainer("n", { Image: "x" }));
      expect(e).toBeInstanceOf(EngineUnreachableError);
      expect(e.notDelivered).toBe(false);
    } finally {
      held.close();
    }
  });

  it("names the timeout when an answer stops half-way, and closes that connection", async () => {
    let closed = 0;
    const stalls = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("{");
    });
    stalls.on("connection", (s) => s.on("close", () => closed++));
    await new Promise<void>((r) => stalls.listen(0, "127.0.0.1", r));
    const port = (stalls.address() as { port: number }).port;
    try {
      const e = await failure(new EngineClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 300 }).inspectContainer("c1"));
      expect(e).toBeInstanceOf(EngineUnreachableError);
      expect(e.message).toContain("no answer within 300 ms");
      expect(e.notDelivered).toBe(false);
      await vi.waitFor(() => expect(closed).toBe(1));
    } finally {
      stalls.closeAllConnections();
      stalls.close();
    }
  });
});

describe("launch batches over a connection the agent resets", () => {
  it("sends a launch once more on a new connection when the first is reset under it", async () => {
    const { createServer: createTcpServer } = await import("node:net");
    let connections = 0;
    const requests: string[] = [];
    const server = createTcpServer((socket) => {
      const nth = ++connections;
      let data = "";
      socket.on("data", (chunk) => {
        data += chunk.toString("utf8");
        const end = data.indexOf("\r\n\r\n");
        if (end < 0) return;
        const length = Number(/content-length: (\d+)/i.exec(data.slice(0, end))?.[1] ?? 0);
        if (data.length < end + 4 + length) return;
        requests.push(data.split("\r\n")[0]!);
        // The first connection is reset once the whole request arrived, as a kept-alive
        // connection the agent closed at that moment would be.
        if (nth === 1) return void socket.resetAndDestroy();
        const body = JSON.stringify({ Results: [{ Name: "web.1.t1", Id: "c".repeat(64), Ports: {} }] });
        socket.end(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const client = new EngineClient({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, timeoutMs: 5_000 });
      const results = await client.launchContainers([{ name: "web.1.t1", body: { Image: "busybox" } }]);
      expect(results).toEqual([{ Name: "web.1.t1", Id: "c".repeat(64), Ports: {} }]);
      expect(requests).toEqual(["POST /flotilla/containers/launch HTTP/1.1", "POST /flotilla/containers/launch HTTP/1.1"]);
      client.close();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
