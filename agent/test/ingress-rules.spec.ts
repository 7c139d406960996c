// The kernel mesh's rules, decided purely from a table and the node's view.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chainNames } from "../src/network/nat-rules";
import { forwardedPorts, ingressChains, ingressJumps, ingressRules, planPorts, type IngressPort, type NodeView } from "../src/ingress";

const C = ingressChains("FLT");
const ME = "198.19.130.2";
const OTHER = "198.19.130.3";
const node: NodeView = {
  addresses: ["127.0.0.1", ME, "172.31.0.1"],
  endpoints: [
    { hostPort: 32768, protocol: "tcp", ip: "172.31.0.5", containerPort: 80 },
    { hostPort: 32769, protocol: "tcp", ip: "172.31.0.6", containerPort: 80 },
    { hostPort: 32770, protocol: "udp", ip: "172.31.0.7", containerPort: 53 },
  ],
};
const port = (p: Partial<IngressPort> & Pick<IngressPort, "backends">): IngressPort => ({
  port: 8080,
  protocol: "tcp",
  serviceId: "s",
  serviceName: "web",
  ...p,
});

describe("ingress rules", () => {
  it("DNATs local backends to the container and remote ones to the node, round robin, masquerading only the remote", () => {
    const rules = ingressRules(
      C,
      [
        port({
          backends: [
            { host: ME, port: 32768 },
            { host: OTHER, port: 32771 },
            { host: ME, port: 32769 },
          ],
        }),
      ],
      node,
    );
    expect(rules.nat).toEqual([
      ":FLT-IDNAT - [0:0]",
      ":FLT-IPOST - [0:0]",
      "-A FLT-IDNAT -p tcp -m tcp --dport 8080 -m statistic --mode nth --every 3 --packet 0 -j DNAT --to-destination 172.31.0.5:80",
      "-A FLT-IDNAT -p tcp -m tcp --dport 8080 -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 198.19.130.3:32771",
      "-A FLT-IPOST -d 198.19.130.3/32 -p tcp -m tcp --dport 32771 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j MASQUERADE",
      "-A FLT-IDNAT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.31.0.6:80",
    ]);
    expect(rules.filter).toEqual([":FLT-IFWD - [0:0]", "-A FLT-IFWD -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 -j ACCEPT"]);
    expect(rules.errors).toEqual([]);
  });

  it("traffic=local keeps only this node's tasks and never masquerades", () => {
    const rules = ingressRules(
      C,
      [
        port({
          traffic: "local",
          backends: [
            { host: OTHER, port: 32771 },
            { host: ME, port: 32769 },
          ],
        }),
      ],
      node,
    );
    expect(rules.nat.filter((l) => l.startsWith("-A"))).toEqual([
      "-A FLT-IDNAT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.31.0.6:80",
    ]);
    expect(rules.plans).toEqual([{ port: 8080, serviceName: "web", traffic: "local", targets: [{ to: "172.31.0.6:80", remote: false }] }]);
  });

  it("a port with no usable backend gets no rule (the node refuses), and the chains are still declared", () => {
    const rules = ingressRules(
      C,
      [
        port({ port: 9000, traffic: "local", backends: [{ host: OTHER, port: 32771 }] }),
        // A local backend whose host port no running container publishes: the task is gone here.
        port({ port: 9001, backends: [{ host: ME, port: 40000 }] }),
        // A udp endpoint does not serve a tcp port.
        port({ port: 9002, backends: [{ host: ME, port: 32770 }] }),
      ],
      node,
    );
    expect(rules.nat).toEqual([":FLT-IDNAT - [0:0]", ":FLT-IPOST - [0:0]"]);
    expect(rules.filter).toEqual([":FLT-IFWD - [0:0]"]);
    expect(rules.plans.map((p) => p.targets.length)).toEqual([0, 0, 0]);
  });

  it("leaves IPv6 backends out with an error naming them, and lists a backend once", () => {
    const { plans, errors } = planPorts(
      [
        port({
          backends: [
            { host: "fd00::1", port: 32771 },
            { host: OTHER, port: 32771 },
            { host: OTHER, port: 32771 },
          ],
        }),
      ],
      node,
    );
    expect(errors).toEqual([{ port: 8080, message: "backend fd00::1:32771 left out: IPv6 is not supported" }]);
    expect(plans[0].targets).toEqual([{ to: "198.19.130.3:32771", remote: true }]);
  });

  it("names its chains as the network module does, so the network's teardown removes them too", () => {
    const network = chainNames("FLT");
    expect(ingressChains("FLT")).toEqual({ dnat: network.idnat, post: network.ipost, fwd: network.ifwd });
  });

  it("jumps from the built-in chains, LOCAL destinations only for DNAT", () => {
    expect(ingressJumps(C)).toEqual({
      nat: [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j FLT-IDNAT",
        "-A OUTPUT -m addrtype --dst-type LOCAL -j FLT-IDNAT",
        "-A POSTROUTING -j FLT-IPOST",
      ],
      filter: ["-A FORWARD -j FLT-IFWD"],
    });
  });

  it("properties: each backend gets 1/n of the connections, only remote ones masquerade, equal inputs give equal rules", () => {
    const backend = fc.record({ host: fc.constantFrom(ME, OTHER, "198.19.130.4"), port: fc.constantFrom(32768, 32769, 32771, 32772) });
    const table = fc.uniqueArray(
      fc.record({
        port: fc.integer({ min: 1, max: 65535 }),
        traffic: fc.constantFrom("cluster" as const, "local" as const),
        backends: fc.array(backend, { maxLength: 6 }),
      }),
      { selector: (p) => p.port, maxLength: 5 },
    );
    fc.assert(
      fc.property(table, (ports) => {
        const input = ports.map((p) => port(p));
        const rules = ingressRules(C, input, node);
        expect(ingressRules(C, input, node)).toEqual(rules);
        for (const plan of rules.plans) {
          const dnat = rules.nat.filter((l) => l.includes(`--dport ${plan.port} `) && l.includes("-j DNAT"));
          expect(dnat).toHaveLength(plan.targets.length);
          // Rule i takes every (n-i)th connection of what the rules before it left: 1/n each.
          let left = 1;
          dnat.forEach((l, i) => {
            const every = Number(/--every (\d+)/.exec(l)?.[1] ?? 1);
            expect(every).toBe(dnat.length - i);
            expect(left / every).toBeCloseTo(1 / dnat.length);
            left -= left / every;
          });
          const masq = rules.nat.filter((l) => l.includes(`--ctorigdstport ${plan.port} `));
          expect(masq).toHaveLength(plan.targets.filter((t) => t.remote).length);
          if (plan.traffic === "local") expect(plan.targets.every((t) => !t.remote)).toBe(true);
        }
        // Read back (a restarted agent re-holds these): exactly the ports with a rule, not the
        // backends' ports the masquerade rules name.
        expect(forwardedPorts(C, rules.nat)).toEqual(rules.plans.filter((p) => p.targets.length > 0).map((p) => p.port));
      }),
    );
  });

  it("reads back only our DNAT chain's ports from an iptables listing", () => {
    const listing = [
      "-A PREROUTING -m addrtype --dst-type LOCAL -j FLT-IDNAT",
      "-A FLT-IDNAT -p tcp -m tcp --dport 8080 -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 172.31.0.5:80",
      "-A FLT-IDNAT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.130.3:32771",
      "-A FLT-IDNAT -p tcp -m tcp --dport 443 -j DNAT --to-destination 198.19.130.3:32772",
      "-A FLT-IPOST -d 198.19.130.3/32 -p tcp -m tcp --dport 32771 -m conntrack --ctstate DNAT --ctorigdstport 8080 -j MASQUERADE",
      "-A OTHER-IDNAT -p tcp -m tcp --dport 9999 -j DNAT --to-destination 172.31.0.9:80",
      "-A FLT-IDNATX -p tcp -m tcp --dport 9998 -j DNAT --to-destination 172.31.0.9:80",
    ];
    expect(forwardedPorts(C, listing)).toEqual([443, 8080]);
  });
});
