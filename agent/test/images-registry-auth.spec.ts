import { describe, expect, it } from "vitest";
import { parseAuthChallenges } from "../src/images/auth-challenge";
import { DigestMismatchError } from "../src/images/errors";
import { DigestVerifier, assertDigest, isDigest, sha256Of, verified } from "../src/images/digest";
import { isInsecureRegistry } from "../src/images/registry-client";

describe("parseAuthChallenges", () => {
  it("reads Docker Hub's bearer challenge", () => {
    expect(
      parseAuthChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/busybox:pull" },
      },
    ]);
  });

  it.each([
    ['Basic realm="Registry Realm"', [{ scheme: "basic", params: { realm: "Registry Realm" } }]],
    ["bearer realm=https://x/token, service=reg", [{ scheme: "bearer", params: { realm: "https://x/token", service: "reg" } }]],
    ['Bearer realm="a\\"b"', [{ scheme: "bearer", params: { realm: 'a"b' } }]],
    ['Bearer  REALM = "r" ,Service="s"', [{ scheme: "bearer", params: { realm: "r", service: "s" } }]],
    [
      'Basic realm="x", Bearer realm="y",scope="repository:a,b:pull"',
      [
        { scheme: "basic", params: { realm: "x" } },
        { scheme: "bearer", params: { realm: "y", scope: "repository:a,b:pull" } },
      ],
    ],
    ["", []],
  ])("%j", (header, expected) => {
    expect(parseAuthChallenges(header)).toEqual(expected);
  });

  it("joins repeated headers", () => {
    expect(parseAuthChallenges(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme)).toEqual(["basic", "bearer"]);
  });
});

describe("isInsecureRegistry", () => {
  it.each([
    ["127.0.0.1:5000", ["127.0.0.1:5000"], true],
    ["127.0.0.1:5000", ["127.0.0.1:5001"], false],
    ["127.0.0.1:5000", ["127.0.0.1"], true],
    ["127.0.0.1:5000", ["127.0.0.0/8"], true],
    ["10.1.2.3", ["10.1.0.0/16"], true],
    ["10.2.2.3", ["10.1.0.0/16"], false],
    ["registry.local:5000", ["127.0.0.0/8"], false],
    ["registry.local:5000", ["registry.local"], true],
    ["anything", ["0.0.0.0/0"], false],
    ["1.2.3.4", ["0.0.0.0/0"], true],
    ["docker.io", [], false],
  ])("%s in %j → %s", (domain, list, expected) => {
    expect(isInsecureRegistry(domain, list)).toBe(expected);
  });
});

describe("digests", () => {
  const data = Buffer.from("hello");
  const good = sha256Of(data);

  it("checks the form", () => {
    expect(isDigest(good)).toBe(true);
    expect(isDigest(good.toUpperCase())).toBe(false);
    expect(() => assertDigest("md5:abc", "layer")).toThrow(/layer: unsupported or malformed digest/);
  });

  it("verifies a stream and names the mismatch", async () => {
    const pass = async (digest: string, size?: number) => {
      const out: Buffer[] = [];
      for await (const c of verified(
        (async function* () {
          yield data.subarray(0, 2);
          yield data.subarray(2);
        })(),
        new DigestVerifier(digest, size, "blob x"),
      ))
        out.push(c);
      return Buffer.concat(out).toString();
    };
    expect(await pass(good, 5)).toBe("hello");
    await expect(pass(sha256Of("other"), 5)).rejects.toThrow(DigestMismatchError);
    await expect(pass(sha256Of("other"), 5)).rejects.toThrow(/digest mismatch for blob x: expected sha256:/);
    await expect(pass(good, 3)).rejects.toThrow(/more than the 3 bytes/);
    await expect(pass(good, 9)).rejects.toThrow(/5 bytes instead of 9/);
  });
});
