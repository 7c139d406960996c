// Helpers for the host network tests: run commands, start tiny servers inside a network namespace
// (no shim needed: `ip netns exec NS node -e …`), and make requests from the host or from inside a
// namespace. Only loopback and namespaces the tests create (198.18.0.0/15) are ever contacted.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { createServer } from "node:net";
import { basename } from "node:path";
import { promisify } from "node:util";
import { ipToInt, parseSubnet, prefixesOverlap } from "../../src/network/ipam";

const execFileAsync = promisify(execFile);

/**
 * Whether a host process could bind host:port over TCP now, the check any other program would
 * meet: false while an agent's socket holds the port (on that address, or on 0.0.0.0).
 */
export function hostCanBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * hostCanBind for a process of its own (`node -e BIND_PROBE PORT`), run where the test process is
 * not (another network namespace), as any program there would try: prints "bound" or the error
 * code of listening on 0.0.0.0:PORT.
 */
export const BIND_PROBE =
  'const s = require("net").createServer(); s.once("error", (e) => { process.stdout.write(e.code); process.exit(0); });' +
  's.listen({ port: Number(process.argv[1]), host: "0.0.0.0" }, () => { process.stdout.write("bound"); s.close(); });';

/** Runs a command, returns stdout; throws with stderr on failure. */
export function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Like sh() but never throws: for cleanup of things that may not exist. */
export function shQuiet(cmd: string, ...args: string[]): void {
  try {
    sh(cmd, ...args);
  } catch {
    // already gone
  }
}

export function netnsList(): string[] {
  return sh("ip", "netns", "list")
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter(Boolean);
}

export function linkExists(name: string): boolean {
  try {
    sh("ip", "link", "show", "dev", name);
    return true;
  } catch {
    return false;
  }
}

/** `iptables -t TABLE -S` as text. */
export function iptablesS(table: "nat" | "filter"): string {
  return sh("iptables", "-w", "-t", table, "-S");
}

const HTTP_SERVER = `
const http = require("http");
const [port, name] = process.argv.slice(1);
http.createServer((req, res) => { res.setHeader("connection", "close"); res.end(name + " " + req.socket.remoteAddress); })
  .listen(Number(port), "0.0.0.0", () => console.log("ready"));`;

const UDP_SERVER = `
const dgram = require("dgram");
const [port, name] = process.argv.slice(1);
const s = dgram.createSocket("udp4");
s.on("message", (m, r) => s.send(name + " " + r.address, r.port, r.address));
s.bind(Number(port), "0.0.0.0", () => console.log("ready"));`;

/**
 * Starts a server answering `<name> <client address>` on 0.0.0.0:port inside the namespace (a
 * name or a /run/netns path) and
 * resolves once it listens. The caller kills the returned process (it is the node process:
 * `ip netns exec` execs in place).
 */
export function startServer(netns: string, port: number, name: string, protocol: "tcp" | "udp" = "tcp"): Promise<ChildProcess> {
  const child = spawn(
    "ip",
    ["netns", "exec", basename(netns), process.execPath, "-e", protocol === "tcp" ? HTTP_SERVER : UDP_SERVER, String(port), name],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`server ${name} in ${netns}: not ready: ${err}`)), 10_000);
    child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    child.stdout!.on("data", (b: Buffer) => {
      if (b.toString().includes("ready")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server ${name} in ${netns} exited ${code}: ${err}`));
    });
  });
}

/** GET from the test process, without keep-alive (a pooled connection would outlive a detach). */
export function httpGet(url: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: "close" }, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}

const CLIENT = `
const [kind, host, port, ms] = process.argv.slice(1);
const fail = (e) => { console.error(e && (e.cause?.code || e.code || e.message)); process.exit(1); };
setTimeout(() => fail(new Error("timeout")), Number(ms)).unref();
if (kind === "http") fetch("http://" + host + ":" + port + "/").then((r) => r.text()).then((t) => process.stdout.write(t), fail);
else {
  const s = require("dgram").createSocket("udp4");
  s.on("message", (m) => { process.stdout.write(m.toString()); process.exit(0); });
  const ping = () => s.send("hi", Number(port), host);
  ping(); setInterval(ping, 300).unref();
  setTimeout(() => {}, 3000);
}`;

/**
 * An HTTP GET (or UDP exchange) made from inside a namespace; resolves with the answer, rejects
 * with "timeout" in the message when nothing answered within timeoutMs.
 */
export async function requestFromNetns(
  netns: string,
  host: string,
  port: number,
  kind: "http" | "udp" = "http",
  timeoutMs = 3000,
): Promise<string> {
  const args = [kind, host, String(port), String(timeoutMs)];
  const { stdout } = await execFileAsync("ip", ["netns", "exec", basename(netns), process.execPath, "-e", CLIENT, ...args], {
    timeout: 10_000,
  });
  return stdout;
}

/** A UDP exchange from the test process: sends until it gets an answer. */
export async function udpRequest(host: string, port: number): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, ["-e", CLIENT, "udp", host, String(port), "3000"], { timeout: 10_000 });
  return stdout;
}

/**
 * `count` /24 networks inside 198.19.160.0–198.19.249.255 that no route of this host overlaps
 * yet, so suites running side by side (the netns driver's, a developer's agent) never collide.
 * The search starts at a pid-derived offset so two suites choosing at once are unlikely to agree.
 */
export function freeSubnets(count: number): string[] {
  const routes = (JSON.parse(sh("ip", "-j", "-4", "route", "show", "table", "all") || "[]") as { dst: string }[])
    .map((r) => r.dst)
    .filter((d) => d !== "default" && /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(d))
    .map((d) => {
      const [addr, len] = d.split("/");
      const prefixLen = len === undefined ? 32 : Number(len);
      return { network: ipToInt(addr), prefixLen };
    });
  const out: string[] = [];
  for (let i = 0; i < 90 && out.length < count; i++) {
    const cidr = `198.19.${160 + ((process.pid + i) % 90)}.0/24`;
    const candidate = parseSubnet(cidr);
    if (!routes.some((r) => prefixesOverlap(candidate, r))) out.push(cidr);
  }
  if (out.length < count) throw new Error("no free 198.19.x.0/24 left for the network tests");
  return out;
}
