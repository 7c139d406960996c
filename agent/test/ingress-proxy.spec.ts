// The ingress proxy with real sockets, all on 127.0.0.1: backends are tiny TCP servers in this
// process (one stopped child process stands in for a host that drops SYNs).
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { IngressProxy, type IngressApplyResult, type IngressTable } from "../src/ingress";
import { freePort } from "./docker-helpers";

const LOOPBACK = "127.0.0.1";
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A backend: answers each connection with `handler` (default: its name, then FIN). */
async function backend(name: string, handler?: (s: net.Socket) => void): Promise<{ port: number; accepted: () => number }> {
  let accepted = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted++;
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => s.destroy());
    if (handler) handler(s);
    else s.end(name);
  });
  await new Promise<void>((r) => server.listen(0, LOOPBACK, r));
  cleanups.push(() => {
    for (const s of open) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted };
}

/** Echoes every chunk back, prefixed; stays open until the client ends. */
const echo = (prefix: string) => (s: net.Socket) => {
  s.on("data", (d: Buffer) => s.write(`${prefix}${d.toString()}`));
  s.on("end", () => s.end());
};

function newProxy(): IngressProxy {
  const proxy = new IngressProxy({ host: LOOPBACK, connectTimeoutMs: 300 });
  cleanups.push(() => proxy.close());
  return proxy;
}

const table = (version: string, ports: [port: number, backends: number[]][]): IngressTable => ({
  version,
  ports: ports.map(([port, backends]) => ({
    port,
    protocol: "tcp",
    serviceId: `svc-${port}`,
    serviceName: `web-${port}`,
    backends: backends.map((p) => ({ host: LOOPBACK, port: p })),
  })),
});

/** Connects, optionally writes (and ends), and resolves everything read once the proxy's side ends. */
function exchange(port: number, send?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: LOOPBACK, allowHalfOpen: true });
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString()));
    s.on("end", () => {
      s.end();
      resolve(got);
    });
    s.on("error", reject);
    s.setTimeout(5000, () => s.destroy(new Error("exchange timed out")));
    if (send !== undefined) s.end(send);
  });
}

/** An open connection to talk over in steps. */
async function session(port: number) {
  const s = net.connect({ port, host: LOOPBACK });
  await new Promise<void>((resolve, reject) => s.once("connect", resolve).once("error", reject));
  cleanups.push(() => s.destroy());
  let buffered = "";
  s.on("data", (d: Buffer) => (buffered += d.toString()));
  return {
    async say(text: string): Promise<string> {
      buffered = "";
      s.write(text);
      await vi.waitFor(() => expect(buffered.length).toBeGreaterThan(0), { timeout: 3000 });
      return buffered;
    },
    end: () => new Promise<void>((r) => s.end(() => r())),
  };
}

describe("IngressProxy", () => {
  it("forwards a connection to the backend and reports the version applied", async () => {
    const a = await backend("A");
    const port = await freePort();
    const proxy = newProxy();
    expect(proxy.version).toBeUndefined();
    expect(await proxy.apply(table("v1", [[port, [a.port]]]))).toEqual({ errors: [] });
    expect(proxy.version).toBe("v1");
    expect(proxy.ports).toEqual([port]);
    expect(await exchange(port)).toBe("A");
    await vi.waitFor(() => expect(proxy.connections).toBe(0));
  });

  it("distributes connections round-robin over the backends", async () => {
    const bs = await Promise.all(["A", "B", "C"].map((n) => backend(n)));
    const port = await freePort();
    const proxy = newProxy();
    await proxy.apply(table("v1", [[port, bs.map((b) => b.port)]]));
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await exchange(port));
    expect(seen).toEqual(["A", "B", "C", "A", "B", "C"]);
  });

  it("fails over to the next backend when one refuses", async () => {
    const closed = await freePort();
    const b = await backend("B");
    const port = await freePort();
    const proxy = newProxy();
    await proxy.apply(table("v1", [[port, [closed, b.port]]]));
    for (let i = 0; i < 4; i++) expect(await exchange(port)).toBe("B");
    expect(b.accepted()).toBe(4);
  });

  it("fails over when a backend does not accept within the connect timeout, and closes the client when none does", async () => {
    // A listener whose process is stopped and whose accept queue is full: the kernel drops new
    // SYNs, as a host that is down would.
    const child: ChildProcess = spawn(
      process.execPath,
      [
        "-e",
        `require("net").createServer().listen({ port: 0, host: "${LOOPBACK}", backlog: 1 }, function () { console.log(this.address().port); })`,
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    cleanups.push(() => child.kill("SIGKILL"));
    const stuck = await new Promise<number>((r) => child.stdout!.once("data", (d: Buffer) => r(Number(d.toString().trim()))));
    child.kill("SIGSTOP");
    const fillers: net.Socket[] = [];
    cleanups.push(() => fillers.forEach((s) => s.destroy()));
    for (let i = 0; i < 4; i++) fillers.push(net.connect({ port: stuck, host: LOOPBACK }).on("error", () => {}));
    await new Promise((r) => setTimeout(r, 200));

    const b = await backend("B");
    const port = await freePort();
    const proxy = newProxy();
    await proxy.apply(table("v1", [[port, [stuck, b.port]]]));
    const t0 = Date.now();
    expect(await exchange(port)).toBe("B");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);

    await proxy.apply(table("v2", [[port, [stuck, await freePort()]]]));
    expect(await exchange(port)).toBe("");
    await vi.waitFor(() => expect(proxy.connections).toBe(0));
  });

  it("a backend list that is empty accepts and closes at once", async () => {
    const port = await freePort();
    const proxy = newProxy();
    await proxy.apply(table("v1", [[port, []]]));
    expect(await exchange(port, "hello")).toBe("");
    await vi.waitFor(() => expect(proxy.connections).toBe(0));
  });

  it("a new table closes removed ports, lets their open connections finish, and swaps backends in place", async () => {
    const a = await backend("A", echo("A:"));
    const b = await backend("B", echo("B:"));
    const [p1, p2] = [await freePort(), await freePort()];
    const proxy = newProxy();
    await proxy.apply(
      table("v1", [
        [p1, [a.port]],
        [p2, [a.port]],
      ]),
    );
    const onRemoved = await session(p1);
    const onKept = await session(p2);
    expect(await onRemoved.say("one")).toBe("A:one");

    expect(await proxy.apply(table("v2", [[p2, [b.port]]]))).toEqual({ errors: [] });
    expect(proxy.version).toBe("v2");
    expect(proxy.ports).toEqual([p2]);
    await expect(exchange(p1)).rejects.toThrow(/ECONNREFUSED/);
    // Connections made before the update keep their backend; new ones get the new backends.
    expect(await onRemoved.say("two")).toBe("A:two");
    expect(await onKept.say("three")).toBe("A:three");
    const fresh = await session(p2);
    expect(await fresh.say("four")).toBe("B:four");

    await Promise.all([onRemoved.end(), onKept.end(), fresh.end()]);
    await vi.waitFor(() => expect(proxy.connections).toBe(0));
  });

  it("reports a port it cannot bind, serves the others, and binds it on a later apply", async () => {
    const a = await backend("A");
    const [taken, free] = [await freePort(), await freePort()];
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(taken, LOOPBACK, r));
    const logs: string[] = [];
    const proxy = new IngressProxy({ host: LOOPBACK, log: (m) => logs.push(m) });
    cleanups.push(() => proxy.close());
    const t = table("v1", [
      [taken, [a.port]],
      [free, [a.port]],
    ]);

    const first: IngressApplyResult = await proxy.apply(t);
    expect(first.errors).toEqual([{ port: taken, message: expect.stringContaining("EADDRINUSE") }]);
    expect(await exchange(free)).toBe("A");
    // Not reported as applied, so the control plane sends the table again.
    expect(proxy.version).toBeUndefined();
    expect(logs.filter((l) => l.includes("not served"))).toHaveLength(1);
    await proxy.apply(t);
    expect(logs.filter((l) => l.includes("not served"))).toHaveLength(1);

    await new Promise<void>((r) => squatter.close(() => r()));
    expect(await proxy.apply(t)).toEqual({ errors: [] });
    expect(proxy.version).toBe("v1");
    expect(await exchange(taken)).toBe("A");
  });

  it("keeps a half-closed connection open: the client ends writing and still reads the reply", async () => {
    // The backend answers only after the client's FIN, as `nc -N` or an HTTP/1.0 client expects.
    const a = await backend("A", (s) => {
      let got = "";
      s.on("data", (d: Buffer) => (got += d.toString()));
      s.on("end", () => setTimeout(() => s.end(`got ${got}`), 50));
    });
    const port = await freePort();
    const proxy = newProxy();
    await proxy.apply(table("v1", [[port, [a.port]]]));
    expect(await exchange(port, "request body")).toBe("got request body");
    await vi.waitFor(() => expect(proxy.connections).toBe(0));
  });

  it("ignores invalid entries, refuses what is not a table, and destroys open connections on close", async () => {
    const a = await backend("A", echo(""));
    const port = await freePort();
    const proxy = newProxy();
    const bad = {
      version: "v1",
      ports: [
        ...table("v1", [[port, [a.port]]]).ports,
        { port, protocol: "tcp", serviceName: "dup", backends: [] },
        { port: 70000 },
        { port: 9, protocol: "udp", backends: [] },
      ],
    };
    const r = await proxy.apply(bad as IngressTable);
    expect(r.errors.map((e) => e.port)).toEqual([9, port, 70000].sort((x, y) => x - y));
    expect(r.errors.find((e) => e.port === 9)?.message).toMatch(/only tcp/);
    await expect(proxy.apply({ ports: [] } as unknown as IngressTable)).rejects.toThrow(/version/);
    const s = await session(port);
    expect(await s.say("x")).toBe("x");
    await proxy.close();
    await vi.waitFor(() => expect(proxy.connections).toBe(0));
    await expect(exchange(port)).rejects.toThrow(/ECONNREFUSED/);
    expect(await proxy.apply(table("v2", [[port, [a.port]]]))).toEqual({ errors: [] });
    expect(proxy.ports).toEqual([]);
  });
});
