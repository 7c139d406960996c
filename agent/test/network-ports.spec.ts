// Published-port validation, clash rules and held ports (agent/src/network/ports.ts). Sockets are
// bound on 127.0.0.1 only.
import { createServer, type Server } from "node:net";
import { InvalidError, NotSupportedError } from "@flotilla/core";
import { afterAll, describe, expect, it } from "vitest";
import {
  PortAllocatedError,
  portsClash,
  rehold,
  reservePorts,
  validatePorts,
  type PortRequest,
  type PortReservation,
  type PublishedPort,
} from "../src/network/ports";
import { hostCanBind } from "./support/network-helpers";

describe("validatePorts", () => {
  it("normalizes: any address is 0.0.0.0, protocol defaults to tcp", () => {
    expect(
      validatePorts([
        { hostPort: 8000, containerPort: 80 },
        { hostIp: "127.0.0.1", hostPort: 0, containerPort: 53, protocol: "udp" },
      ]),
    ).toEqual([
      { hostIp: "0.0.0.0", hostPort: 8000, containerPort: 80, protocol: "tcp" },
      { hostIp: "127.0.0.1", hostPort: 0, containerPort: 53, protocol: "udp" },
    ]);
    expect(validatePorts([{ hostIp: "", hostPort: 1, containerPort: 65535 }])[0].hostIp).toBe("0.0.0.0");
  });

  it.each([
    [{ hostPort: 65536, containerPort: 80 }, "ports[0].hostPort", /invalid host port 65536/],
    [{ hostPort: -1, containerPort: 80 }, "ports[0].hostPort", /invalid host port -1/],
    [{ hostPort: 1.5, containerPort: 80 }, "ports[0].hostPort", /invalid host port 1.5/],
    [{ hostPort: 80, containerPort: 0 }, "ports[0].containerPort", /invalid container port 0/],
    [{ hostPort: 80, containerPort: 70000 }, "ports[0].containerPort", /invalid container port 70000/],
    [{ hostPort: 80, containerPort: 80, protocol: "sctp" }, "ports[0].protocol", /invalid protocol "sctp"/],
    [{ hostPort: 80, containerPort: 80, hostIp: "example.com" }, "ports[0].hostIp", /invalid host IP/],
  ])("refuses %j", (p, field, message) => {
    const err = (() => {
      try {
        validatePorts([p as PortRequest]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidError);
    expect((err as InvalidError).details.field).toBe(field);
    expect((err as Error).message).toMatch(message);
  });

  it("says IPv6 host addresses are not supported", () => {
    expect(() => validatePorts([{ hostIp: "::", hostPort: 80, containerPort: 80 }])).toThrow(NotSupportedError);
  });
});

describe("portsClash", () => {
  const p = (hostIp: string, hostPort: number, protocol: "tcp" | "udp" = "tcp") => ({ hostIp, hostPort, protocol });
  it.each([
    [p("0.0.0.0", 80), p("0.0.0.0", 80), true],
    [p("0.0.0.0", 80), p("127.0.0.1", 80), true],
    [p("127.0.0.1", 80), p("0.0.0.0", 80), true],
    [p("127.0.0.1", 80), p("127.0.0.1", 80), true],
    [p("127.0.0.1", 80), p("127.0.0.2", 80), false],
    [p("0.0.0.0", 80), p("0.0.0.0", 81), false],
    [p("0.0.0.0", 80, "tcp"), p("0.0.0.0", 80, "udp"), false],
  ])("%j vs %j → %s", (a, b, clash) => {
    expect(portsClash(a, b)).toBe(clash);
  });
});

describe("reservePorts", () => {
  const servers: Server[] = [];
  const reservations: PortReservation[] = [];
  const resolvePorts = async (requests: PublishedPort[], taken: PublishedPort[]) => {
    const r = await reservePorts(requests, taken);
    reservations.push(r);
    return r.ports;
  };
  afterAll(async () => {
    servers.forEach((s) => s.close());
    await Promise.all(reservations.map((r) => r.release()));
  });
  const req = (hostPort: number, hostIp = "127.0.0.1", protocol: "tcp" | "udp" = "tcp"): PublishedPort => ({
    hostIp,
    hostPort,
    containerPort: 80,
    protocol,
  });

  it("refuses a port another container published, with Docker's message", async () => {
    const taken = [req(18_999, "0.0.0.0")];
    await expect(resolvePorts([req(18_999)], taken)).rejects.toThrow(new PortAllocatedError("127.0.0.1", 18_999, "tcp"));
    await expect(resolvePorts([req(18_999)], taken)).rejects.toThrow("Bind for 127.0.0.1:18999 failed: port is already allocated");
  });

  it("refuses the same port twice in one request", async () => {
    const free = (await resolvePorts([req(0)], []))[0].hostPort;
    await expect(resolvePorts([req(free), req(free)], [])).rejects.toThrow(PortAllocatedError);
  });

  it("refuses a port a host socket holds", async () => {
    const s = createServer();
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as { port: number }).port;
    await expect(resolvePorts([req(port)], [])).rejects.toThrow(`Bind for 127.0.0.1:${port} failed: port is already allocated`);
    // UDP on the same number is another port.
    await expect(resolvePorts([req(port, "127.0.0.1", "udp")], [])).resolves.toHaveLength(1);
  });

  it("picks distinct free ports for hostPort 0, avoiding published ones", async () => {
    const out = await resolvePorts([req(0), req(0), req(0, "127.0.0.1", "udp")], []);
    expect(new Set(out.slice(0, 2).map((p) => p.hostPort)).size).toBe(2);
    for (const p of out) expect(p.hostPort).toBeGreaterThan(0);
  });

  it("holds each port until release: no host process nor second reservation can take it", async () => {
    const r = await reservePorts([req(0), req(0, "0.0.0.0")], []);
    const [local, any] = r.ports.map((p) => p.hostPort);
    expect(await hostCanBind(local, "127.0.0.1")).toBe(false);
    expect(await hostCanBind(any, "127.0.0.1")).toBe(false);
    // Another agent on the same kernel knows nothing of our published list: the socket refuses it.
    await expect(reservePorts([req(local)], [])).rejects.toThrow(`Bind for 127.0.0.1:${local} failed: port is already allocated`);
    await r.release();
    await r.release(); // twice is harmless
    expect(await hostCanBind(local, "127.0.0.1")).toBe(true);
    expect(await hostCanBind(any, "127.0.0.1")).toBe(true);
  });

  it("holds nothing when one request of several fails", async () => {
    const s = createServer();
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const busy = (s.address() as { port: number }).port;
    const first = await reservePorts([req(0)], []).then(async (r) => (await r.release(), r.ports[0].hostPort));
    await expect(reservePorts([req(first), req(busy)], [])).rejects.toThrow(PortAllocatedError);
    expect(await hostCanBind(first, "127.0.0.1")).toBe(true);
  });

  it("re-holds ports published before, naming those a host process took meanwhile", async () => {
    const s = createServer();
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const taken = (s.address() as { port: number }).port;
    const free = await reservePorts([req(0)], []).then(async (r) => (await r.release(), r.ports[0].hostPort));
    const { reservation, lost } = await rehold([req(free), req(taken)]);
    expect(lost).toEqual([`127.0.0.1:${taken}/tcp (EADDRINUSE)`]);
    expect(await hostCanBind(free, "127.0.0.1")).toBe(false);
    await reservation.release();
    expect(await hostCanBind(free, "127.0.0.1")).toBe(true);
  });

  it("refuses an address this host does not have", async () => {
    await expect(resolvePorts([req(18_998, "198.18.255.254")], [])).rejects.toThrow(InvalidError);
  });
});
