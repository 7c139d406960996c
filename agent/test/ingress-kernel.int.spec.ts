// KernelIngress against the real kernel's iptables, in a network namespace this test makes (see
// support/ingress-kernel-run.ts): what an apply writes, that an unchanged rule set is not
// restored, that a new table replaces the old one whole, and that close() leaves nothing behind;
// that each published port is held by a socket in that namespace (no other process can bind it),
// released when unpublished and held again by the agent that follows a killed one.
// Traffic through the rules is covered end to end by test/e2e/ingress.int.spec.ts.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = process.getuid?.() === 0;
const ns = `fltik-${process.pid.toString(36)}`;
const repo = join(__dirname, "..", "..");

describe.skipIf(!root)("the kernel mesh's iptables adapter", () => {
  const dir = fs.mkdtempSync(join(tmpdir(), "flotilla-ingress-kernel-"));
  afterAll(() => {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // never made
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs support/ingress-kernel-run.ts in the test's namespace (made by the first call); its JSON. */
  const inNamespace = (mode: string): unknown => {
    const tsconfig = join(dir, "tsconfig.json");
    if (!fs.existsSync(tsconfig)) {
      execFileSync("ip", ["netns", "add", ns]);
      fs.writeFileSync(
        tsconfig,
        JSON.stringify({ compilerOptions: { baseUrl: repo, paths: { "@flotilla/core": ["libs/core/src/index.ts"] } } }),
      );
    }
    const tsx = join(repo, "node_modules", ".bin", "tsx");
    const script = join(__dirname, "support", "ingress-kernel-run.ts");
    return JSON.parse(execFileSync("ip", ["netns", "exec", ns, tsx, "--tsconfig", tsconfig, script, mode], { encoding: "utf8" }));
  };
  let rulesRun: unknown;
  const rules = () => (rulesRun ??= inNamespace("rules"));

  it("writes the rules on chains of its own, skips unchanged ones, replaces them whole, and removes everything on close", () => {
    const r = rules() as Record<
      string,
      {
        version?: string;
        nat: string;
        filter: string;
        restored?: boolean;
        errors?: unknown[];
        held?: number[];
        binds?: Record<string, string>;
      }
    >;
    expect(r.first.errors).toEqual([]);
    expect(r.v1.version).toBe("v1");
    const nat = r.v1.nat.split("\n");
    expect(nat).toEqual(
      expect.arrayContaining([
        "-A PREROUTING -m addrtype --dst-type LOCAL -j FLTIK-IDNAT",
        "-A OUTPUT -m addrtype --dst-type LOCAL -j FLTIK-IDNAT",
        "-A POSTROUTING -j FLTIK-IPOST",
        "-A FLTIK-IDNAT -p tcp -m tcp --dport 8080 -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 172.31.0.5:80",
        "-A FLTIK-IDNAT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.132.3:32771",
        "-A FLTIK-IPOST -d 198.19.132.3/32 -p tcp -m tcp --dport 32771 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j MASQUERADE",
      ]),
    );
    // traffic=local with no task on this node: no rule at all for 8081.
    expect(r.v1.nat).not.toContain("--dport 8081");
    expect(r.v1.filter).toContain("-A FORWARD -j FLTIK-IFWD");
    expect(r.v1.filter).toContain("-A FLTIK-IFWD -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 -j ACCEPT");
    expect(r.same).toEqual({ version: "v1b", restored: false });
    expect(r.v2.version).toBe("v2");
    expect(r.v2.nat).not.toContain("--dport 8080");
    expect(r.v2.nat).toContain("-A FLTIK-IDNAT -p tcp -m tcp --dport 9090 -j DNAT --to-destination 198.19.132.4:32800");
    // Jumps are inserted once, however many applies.
    expect(r.v2.nat.split("\n").filter((l) => l === "-A PREROUTING -m addrtype --dst-type LOCAL -j FLTIK-IDNAT")).toHaveLength(1);
    expect(r.closed.version).toBeUndefined();
    expect(r.closed.nat).not.toContain("FLTIK");
    expect(r.closed.filter).not.toContain("FLTIK");
  });

  it("holds every published port with a socket: another process of the namespace cannot bind it until it is unpublished", () => {
    const r = rules() as Record<string, { held?: number[]; binds?: Record<string, string> }> & {
      before: Record<string, string>;
    };
    expect(r.before).toEqual({ 8080: "bound", 8081: "bound" });
    // 8081 (traffic=local, no task here) has no rule yet, but the port is the mesh's all the same.
    expect(r.v1.binds).toEqual({ 8080: "EADDRINUSE", 8081: "EADDRINUSE" });
    expect(r.v2.binds).toEqual({ 8080: "bound", 8081: "bound", 9090: "EADDRINUSE" });
    expect(r.closed.binds).toEqual({ 9090: "bound" });
    expect([r.v1.held, r.v2.held, r.closed.held]).toEqual([[8080, 8081], [9090], []]);
  });

  it("leaves a port another socket had first unforwarded, reports it, and takes it over once that socket is closed", () => {
    const r = inNamespace("taken") as {
      whileTaken: { errors: { port: number; message: string }[]; version?: string; held: number[]; nat: string };
      freed: { version?: string; held: number[]; nat: string; binds: Record<string, string> };
      logs: string[];
    };
    expect(r.whileTaken.errors).toEqual([
      { port: 7070, message: "host port 7070 is taken by another process on this node (EADDRINUSE); not forwarded here until it is free" },
    ]);
    expect(r.whileTaken.held).toEqual([7071]);
    expect(r.whileTaken.nat).not.toContain("--dport 7070");
    expect(r.whileTaken.nat).toContain("-A FLTIK-IDNAT -p tcp -m tcp --dport 7071 -j DNAT --to-destination 198.19.132.3:32771");
    // Unreported, so the control plane keeps sending the table; every refresh (each beat) retries.
    expect(r.whileTaken.version).toBeUndefined();
    expect(r.freed.held).toEqual([7070, 7071]);
    expect(r.freed.nat).toContain("-A FLTIK-IDNAT -p tcp -m tcp --dport 7070 -j DNAT --to-destination 198.19.132.3:32771");
    expect(r.freed.version).toBe("t1");
    expect(r.freed.binds).toEqual({ 7070: "EADDRINUSE" });
    expect(r.logs).toContain("ingress: port 7070 (svc7070) held and forwarded (it was taken before)");
  });

  it("after a killed agent, a new one holds the ports its rules still forward before the first table comes", () => {
    expect(inNamespace("left")).toEqual({ held: [6060] });
    const r = inNamespace("restart") as {
      beforeAgent: Record<string, string>;
      beforeTable: { held: number[]; binds: Record<string, string> };
      afterTable: { held: number[]; binds: Record<string, string> };
      logs: string[];
    };
    // The killed agent's socket died with it; its DNAT rule did not.
    expect(r.beforeAgent).toEqual({ 6060: "bound" });
    expect(r.beforeTable).toEqual({ held: [6060], binds: { 6060: "EADDRINUSE" } });
    expect(r.logs).toContain("ingress: holding ports 6060, which the rules left in place forward");
    // The first table no longer lists 6060: its rule is gone, then its socket.
    expect(r.afterTable).toEqual({ held: [6061], binds: { 6060: "bound", 6061: "EADDRINUSE" } });
  });
});
