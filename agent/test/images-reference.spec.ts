import { describe, expect, it } from "vitest";
import { InvalidError } from "@flotilla/core";
import {
  canonicalReference,
  familiarize,
  familiarReference,
  familiarRepository,
  parseReference,
  registryEndpoint,
} from "../src/images/reference";

const D = `sha256:${"ab".repeat(32)}`;

describe("parseReference", () => {
  it.each([
    ["busybox", { domain: "docker.io", path: "library/busybox", tag: "latest" }],
    ["busybox:1.36", { domain: "docker.io", path: "library/busybox", tag: "1.36" }],
    ["library/busybox", { domain: "docker.io", path: "library/busybox", tag: "latest" }],
    ["docker.io/busybox", { domain: "docker.io", path: "library/busybox", tag: "latest" }],
    ["index.docker.io/library/busybox", { domain: "docker.io", path: "library/busybox", tag: "latest" }],
    ["user/app:v2", { domain: "docker.io", path: "user/app", tag: "v2" }],
    ["127.0.0.1:5000/busybox:latest", { domain: "127.0.0.1:5000", path: "busybox", tag: "latest" }],
    ["localhost/app", { domain: "localhost", path: "app", tag: "latest" }],
    ["localhost:5000/a/b/c", { domain: "localhost:5000", path: "a/b/c", tag: "latest" }],
    ["ghcr.io/org/tool_x-1.2", { domain: "ghcr.io", path: "org/tool_x-1.2", tag: "latest" }],
    [`host.example/repo@${D}`, { domain: "host.example", path: "repo", digest: D }],
    [`busybox:1.36@${D}`, { domain: "docker.io", path: "library/busybox", tag: "1.36", digest: D }],
    ["[::1]:5000/busybox", { domain: "[::1]:5000", path: "busybox", tag: "latest" }],
  ])("%s", (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  it.each([
    ["", "empty"],
    ["Busybox", "uppercase repository"],
    ["busybox:", "empty tag"],
    ["busybox:-x", "tag starting with a dash"],
    ["busybox@sha256:abc", "short digest"],
    [`busybox@sha512:${"a".repeat(128)}`, "other digest algorithm"],
    ["a//b", "empty path component"],
    ["a/b_/c", "trailing separator"],
    ["host:5000/", "no repository"],
    [`${"a".repeat(256)}`, "too long"],
  ])("refuses %j (%s) with InvalidError", (input) => {
    expect(() => parseReference(input)).toThrow(InvalidError);
    expect(() => parseReference(input)).toThrow(/invalid reference format/);
  });
});

describe("reference names", () => {
  it.each([
    ["busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"],
    ["user/app:1", "docker.io/user/app:1", "user/app:1", "user/app"],
    ["127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox"],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`, "busybox"],
    ["docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest", "library/a/b"],
  ])("%s", (input, canonical, familiar, repo) => {
    const ref = parseReference(input);
    expect(canonicalReference(ref)).toBe(canonical);
    expect(familiarReference(ref)).toBe(familiar);
    expect(familiarRepository(ref)).toBe(repo);
    expect(familiarize(canonical)).toBe(familiar);
  });

  it("sends Docker Hub's API calls to registry-1.docker.io, others to themselves", () => {
    expect(registryEndpoint("docker.io")).toBe("registry-1.docker.io");
    expect(registryEndpoint("127.0.0.1:5000")).toBe("127.0.0.1:5000");
  });
});
