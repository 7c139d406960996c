// KernelIngress against the real kernel's iptables, in a network namespace this test makes (see
// support/ingress-kernel-run.ts): what an apply writes, that an unchanged rule set is not
// restored, that a new table replaces the old one whole, and that close() leaves nothing behind.
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

  it("writes the rules on chains of its own, skips unchanged ones, replaces them whole, and removes everything on close", () => {
    execFileSync("ip", ["netns", "add", ns]);
    const tsconfig = join(dir, "tsconfig.json");
    fs.writeFileSync(
      tsconfig,
      JSON.stringify({ compilerOptions: { baseUrl: repo, paths: { "@flotilla/core": ["libs/core/src/index.ts"] } } }),
    );
    const out = execFileSync(
      "ip",
      [
        "netns",
        "exec",
        ns,
        join(repo, "node_modules", ".bin", "tsx"),
        "--tsconfig",
        tsconfig,
        join(__dirname, "support", "ingress-kernel-run.ts"),
      ],
      { encoding: "utf8" },
    );
    const r = JSON.parse(out) as Record<string, { version?: string; nat: string; filter: string; restored?: boolean; errors?: unknown[] }>;
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
});
