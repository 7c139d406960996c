import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidError, parseCpus, parseDuration, parseMemory, parsePort, parsePublish } from "../src";

function errorOf(fn: () => unknown): InvalidError {
  try {
    fn();
  } catch (e) {
    if (e instanceof InvalidError) return e;
    throw e;
  }
  throw new Error("expected an InvalidError");
}

describe("parseMemory", () => {
  it.each([
    ["0", 0],
    ["100", 100],
    ["100b", 100],
    ["512k", 512 * 1024],
    ["512K", 512 * 1024],
    ["64m", 64 * 1024 ** 2],
    ["64mb", 64 * 1024 ** 2],
    ["64MiB", 64 * 1024 ** 2],
    ["1g", 1024 ** 3],
    ["1.5g", 1.5 * 1024 ** 3],
    ["2t", 2 * 1024 ** 4],
    [" 8m ", 8 * 1024 ** 2],
    [".5k", 512],
    [4096, 4096],
  ])("%j → %d bytes", (input, bytes) => {
    expect(parseMemory(input)).toBe(bytes);
  });

  it.each(["12q", "", "m", "-1", "1..5g", "1 g b", "64mbb", "0x10"])("refuses %j", (input) => {
    const e = errorOf(() => parseMemory(input, "resources.limits.memoryBytes"));
    expect(e.message).toBe(`invalid memory size ${JSON.stringify(input)}: use a number with b, k, m or g`);
    expect(e.details).toEqual({ field: "resources.limits.memoryBytes", value: input });
  });

  it("refuses negative, fractional and unsafe numbers of bytes", () => {
    for (const n of [-1, 1.5, 2 ** 60]) expect(() => parseMemory(n)).toThrow(InvalidError);
    expect(() => parseMemory("9999999t")).toThrow(/too large/);
  });

  it("reads back any number of bytes written in any unit", () => {
    const units = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as const;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_000_000 }), fc.constantFrom("b", "k", "m", "g"), (n, u) => {
        expect(parseMemory(`${n}${u}`)).toBe(n * units[u as keyof typeof units]);
      }),
    );
  });
});

describe("parseCpus", () => {
  it.each([
    ["1", 1_000_000_000],
    ["2", 2_000_000_000],
    ["0.5", 500_000_000],
    [".25", 250_000_000],
    ["0.1", 100_000_000],
    ["0.000000001", 1],
    ["1.", 1_000_000_000],
    ["0", 0],
    [1.5, 1_500_000_000],
  ])("%j → %d nano-CPUs", (input, nanos) => {
    expect(parseCpus(input)).toBe(nanos);
  });

  it.each(["abc", "", ".", "-1", "1e3", "1/2", "0,5"])("refuses %j", (input) => {
    expect(errorOf(() => parseCpus(input)).message).toBe(
      `invalid CPU count ${JSON.stringify(input)}: use a number of CPUs such as 0.5 or 2`,
    );
  });

  it("refuses more precision than a nano-CPU instead of rounding it away", () => {
    expect(errorOf(() => parseCpus("0.0000000001")).message).toMatch(/too precise/);
  });

  it("is exact for every count of nano-CPUs written as a decimal", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 999_999_999 }), (whole, frac) => {
        const text = `${whole}.${String(frac).padStart(9, "0")}`;
        expect(parseCpus(text)).toBe(whole * 1_000_000_000 + frac);
      }),
    );
  });
});

describe("parseDuration", () => {
  it.each([
    ["0", 0],
    ["200ms", 200],
    ["5s", 5_000],
    ["1m30s", 90_000],
    ["1h", 3_600_000],
    ["1h2m3s4ms", 3_723_004],
    ["1.5s", 1_500],
    ["0.5m", 30_000],
    [250, 250],
  ])("%j → %d ms", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(["5", "", "5x", "s", "1m 30s", "-5s", "5us", "1d"])("refuses %j", (input) => {
    const e = errorOf(() => parseDuration(input, "updateConfig.delayMs"));
    expect(e.message).toBe(`invalid duration ${JSON.stringify(input)}: use a number with ms, s, m or h (e.g. 1m30s)`);
    expect(e.details.field).toBe("updateConfig.delayMs");
  });

  it("adds up the parts of a compound duration", () => {
    fc.assert(
      fc.property(fc.nat(99), fc.nat(59), fc.nat(59), fc.nat(999), (h, m, s, ms) => {
        expect(parseDuration(`${h}h${m}m${s}s${ms}ms`)).toBe(((h * 60 + m) * 60 + s) * 1000 + ms);
      }),
    );
  });
});

describe("parsePublish", () => {
  it.each([
    ["8080:80", { published: 8080, target: 80, protocol: "tcp", mode: "ingress" }],
    ["53:53/udp", { published: 53, target: 53, protocol: "udp", mode: "ingress" }],
    ["443:8443/TCP", { published: 443, target: 8443, protocol: "tcp", mode: "ingress" }],
    ["65535:1", { published: 65535, target: 1, protocol: "tcp", mode: "ingress" }],
    ["published=8080,target=80", { published: 8080, target: 80, protocol: "tcp", mode: "ingress" }],
    ["published=53,target=53,protocol=udp,mode=host", { published: 53, target: 53, protocol: "udp", mode: "host" }],
    ["mode=HOST, target=80, published=8000", { published: 8000, target: 80, protocol: "tcp", mode: "host" }],
    ["published=8080,target=80,traffic=local", { published: 8080, target: 80, protocol: "tcp", mode: "ingress", traffic: "local" }],
    ["published=8080,target=80,traffic=cluster", { published: 8080, target: 80, protocol: "tcp", mode: "ingress" }],
  ])("%s", (input, port) => {
    expect(parsePublish(input)).toEqual(port);
  });

  it.each([
    ["80", /use published:target/],
    ["published=8080", /published= and target= are both required/],
    ["published=8080,target=80,mode=vip", /invalid publish mode "vip".*ingress or host/],
    ["published=8080,target=80,published=9090", /each once/],
    ["published=8080,target=80,traffic=nearby", /invalid traffic "nearby".*cluster or local/],
    ["published=8080,target=80,mode=host,traffic=local", /traffic= applies to ingress ports only/],
    ["published=8080,target=80,host_ip=1.2.3.4", /"host_ip=1.2.3.4" is not one of/],
    ["published=8080,target=80,protocol=sctp", /invalid protocol "sctp"/],
    ["8080:80/sctp", /invalid protocol "sctp".*use tcp or udp/],
    ["0:80", /invalid port "0"/],
    ["8080:70000", /invalid port "70000"/],
    ["8080-8081:80-81", /port ranges are not supported/],
    ["127.0.0.1:8080:80", /use published:target/],
  ])("refuses %s", (input, message) => {
    expect(() => parsePublish(input, "ports[0]")).toThrow(message);
  });

  it("checks port numbers", () => {
    expect(parsePort("22")).toBe(22);
    expect(() => parsePort("22a")).toThrow(InvalidError);
    expect(() => parsePort(1.5)).toThrow(InvalidError);
  });
});
