/**
 * The embedded DNS server of user networks: UDP and TCP on each network's gateway address (port
 * 53), reached by containers as 127.0.0.11 (see dnsRedirectScript). Names of containers come from
 * `decide` (dns-names.ts); everything else is relayed to the host's resolvers, which the agent, in
 * the host's namespace, can reach even when they listen on loopback.
 */
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import packet from "dns-packet";
import type { DnsDecision } from "./dns-names";

/** A resolver to relay to. */
export interface Upstream {
  host: string;
  port: number;
}

/** How the server decides and where it relays. */
export interface EmbeddedDnsOptions {
  /** Port on each gateway address; 53 unless a test wants otherwise. */
  port: number;
  /** Tried in order, each once per query. */
  upstreams: () => readonly Upstream[];
  decide: (networkId: string, clientIp: string, qname: string) => DnsDecision;
  log?: (msg: string) => void;
}

const RD = 0x100;
const RA = 0x80;
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
/** How long one upstream may take before the next is asked. */
const UPSTREAM_TIMEOUT_MS = 2000;
/** Container records change only on start/stop: a short TTL keeps restarts visible quickly. */
const TTL_S = 10;

/** The resolvers of a resolv.conf text (`nameserver` lines, IPv4 only), port 53. */
export function upstreamsFromResolvConf(text: string): Upstream[] {
  const out: Upstream[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (m) out.push({ host: m[1]!, port: 53 });
  }
  return out;
}

/** The host's resolvers, read at each relay so a changed /etc/resolv.conf is followed. */
export function hostResolvers(): Upstream[] {
  try {
    return upstreamsFromResolvConf(fs.readFileSync("/etc/resolv.conf", "utf8"));
  } catch {
    return [];
  }
}

interface Listener {
  udp: dgram.Socket;
  tcp: net.Server;
  conns: Set<net.Socket>;
}

/** UDP + TCP listeners per network, one decision function for all. */
export class EmbeddedDns {
  private readonly listeners = new Map<string, Listener>();

  constructor(private readonly opts: EmbeddedDnsOptions) {}

  /** Listens on address:port for a network; a network already served is left as it is. */
  async listen(networkId: string, address: string): Promise<void> {
    if (this.listeners.has(networkId)) return;
    const udp = dgram.createSocket({ type: "udp4" });
    const conns = new Set<net.Socket>();
    const tcp = net.createServer((sock) => this.serveTcp(networkId, sock, conns));
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind({ address, port: this.opts.port, exclusive: true }, () => {
        udp.off("error", reject);
        resolve();
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen({ host: address, port: this.opts.port, exclusive: true }, () => {
          tcp.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      throw e;
    }
    udp.on("error", (e) => this.opts.log?.(`dns ${address}: ${e.message}`));
    udp.on("message", (msg, rinfo) => {
      void this.answer(networkId, rinfo.address, msg).then((reply) => {
        if (reply) udp.send(reply, rinfo.port, rinfo.address);
      });
    });
    this.listeners.set(networkId, { udp, tcp, conns });
  }

  /** Stops serving a network. */
  async close(networkId: string): Promise<void> {
    const l = this.listeners.get(networkId);
    if (!l) return;
    this.listeners.delete(networkId);
    for (const c of l.conns) c.destroy();
    await Promise.all([new Promise<void>((r) => l.udp.close(() => r())), new Promise<void>((r) => l.tcp.close(() => r()))]);
  }

  /** Stops serving every network. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.listeners.keys()].map((id) => this.close(id)));
  }

  /** Whether a network is served. */
  serves(networkId: string): boolean {
    return this.listeners.has(networkId);
  }

  /** The reply to one DNS message from clientIp; null when it is not worth one (not a query). */
  async answer(networkId: string, clientIp: string, query: Buffer): Promise<Buffer | null> {
    let q: packet.Packet;
    try {
      q = packet.decode(query);
    } catch {
      return query.length >= 2 ? reply({ id: query.readUInt16BE(0), flags: 0 }, [], [], RCODE.FORMERR) : null;
    }
    if (q.type !== "query") return null;
    const question = q.questions?.[0];
    if (!question) return reply(q, [], [], RCODE.FORMERR);
    const decision = this.opts.decide(networkId, clientIp, question.name);
    switch (decision.kind) {
      case "refuse":
        return reply(q, [question], [], RCODE.REFUSED);
      case "nxdomain":
        return reply(q, [question], [], RCODE.NXDOMAIN);
      case "answer": {
        if (question.type !== "A") return reply(q, [question], [], RCODE.NOERROR);
        // Rotated per answer, so clients that take the first address spread over the containers.
        const addrs = [...decision.addresses];
        const shift = Math.floor(Math.random() * addrs.length);
        const rotated = [...addrs.slice(shift), ...addrs.slice(0, shift)];
        return reply(
          q,
          [question],
          rotated.map((data) => ({ type: "A" as const, name: question.name, class: "IN" as const, ttl: TTL_S, data })),
          RCODE.NOERROR,
        );
      }
      case "forward":
        return (await this.relay(query)) ?? reply(q, [question], [], RCODE.SERVFAIL);
    }
  }

  /** Sends the query to each upstream in turn over UDP; the first reply wins. */
  private async relay(query: Buffer): Promise<Buffer | null> {
    for (const up of this.opts.upstreams()) {
      const got = await new Promise<Buffer | null>((resolve) => {
        const sock = dgram.createSocket("udp4");
        const done = (b: Buffer | null) => {
          clearTimeout(timer);
          sock.close();
          resolve(b);
        };
        const timer = setTimeout(() => done(null), UPSTREAM_TIMEOUT_MS);
        sock.on("error", () => done(null));
        sock.on("message", (m) => {
          if (m.length >= 2 && m.readUInt16BE(0) === query.readUInt16BE(0)) done(m);
        });
        sock.send(query, up.port, up.host);
      });
      if (got) return got;
    }
    this.opts.log?.("dns: no upstream resolver answered");
    return null;
  }

  /** DNS over TCP: 2-byte length prefixed messages, answered in order. */
  private serveTcp(networkId: string, sock: net.Socket, conns: Set<net.Socket>): void {
    conns.add(sock);
    sock.on("close", () => conns.delete(sock));
    sock.on("error", () => sock.destroy());
    sock.setTimeout(10_000, () => sock.destroy());
    let buf = Buffer.alloc(0);
    let chain = Promise.resolve();
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const remote = (sock.remoteAddress ?? "").replace(/^::ffff:/, "");
        chain = chain.then(async () => {
          const r = await this.answer(networkId, remote, Buffer.from(msg));
          if (!r || sock.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(r.length);
          sock.write(Buffer.concat([len, r]));
        });
      }
    });
  }
}

function reply(q: { id?: number; flags?: number }, questions: packet.Question[], answers: packet.Answer[], rcode: number): Buffer {
  return packet.encode({ type: "response", id: q.id ?? 0, flags: ((q.flags ?? 0) & RD) | RA | rcode, questions, answers });
}
