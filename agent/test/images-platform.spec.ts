import { describe, expect, it } from "vitest";
import { InvalidError } from "@flotilla/core";
import type { Descriptor } from "../src/images/media-types";
import { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, pickManifest, type Platform } from "../src/images/platform";

const OCI = "application/vnd.oci.image.manifest.v1+json";
const DOCKER = "application/vnd.docker.distribution.manifest.v2+json";

function d(n: number, platform?: Descriptor["platform"], mediaType = OCI, annotations?: Record<string, string>): Descriptor {
  return {
    mediaType,
    digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
    size: 100,
    ...(platform ? { platform } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

const amd64 = d(1, { os: "linux", architecture: "amd64" });
const arm64 = d(2, { os: "linux", architecture: "arm64", variant: "v8" });
const armv7 = d(3, { os: "linux", architecture: "arm", variant: "v7" });
const armv6 = d(4, { os: "linux", architecture: "arm", variant: "v6" });
const windows = d(5, { os: "windows", architecture: "amd64", "os.version": "10.0.17763.1" });
const attestation = d(6, { os: "unknown", architecture: "unknown" }, OCI, { "vnd.docker.reference.type": "attestation-manifest" });
const amd64v3 = d(7, { os: "linux", architecture: "amd64", variant: "v3" });

describe("pickManifest", () => {
  it.each<[string, Descriptor[], Platform, Descriptor | undefined]>([
    ["amd64 from a typical index", [attestation, arm64, amd64, windows], { os: "linux", architecture: "amd64" }, amd64],
    ["arm64 with or without the v8 variant", [amd64, arm64], { os: "linux", architecture: "arm64" }, arm64],
    [
      "arm64 entry without variant matches v8",
      [amd64, d(8, { os: "linux", architecture: "arm64" })],
      { os: "linux", architecture: "arm64", variant: "v8" },
      d(8, { os: "linux", architecture: "arm64" }),
    ],
    ["aarch64 spelling", [amd64, arm64], { os: "linux", architecture: "aarch64" }, arm64],
    ["exact arm variant preferred", [armv6, armv7], { os: "linux", architecture: "arm", variant: "v7" }, armv7],
    ["older arm variant accepted on a newer host", [armv6, amd64], { os: "linux", architecture: "arm", variant: "v7" }, armv6],
    ["newer arm variant refused on an older host", [armv7], { os: "linux", architecture: "arm", variant: "v6" }, undefined],
    ["plain amd64 preferred over a variant", [amd64v3, amd64], { os: "linux", architecture: "amd64" }, amd64],
    [
      "Docker manifest list entries",
      [d(9, { os: "linux", architecture: "amd64" }, DOCKER)],
      { os: "linux", architecture: "amd64" },
      d(9, { os: "linux", architecture: "amd64" }, DOCKER),
    ],
    ["nothing for s390x", [amd64, arm64], { os: "linux", architecture: "s390x" }, undefined],
    ["windows is not linux", [windows], { os: "linux", architecture: "amd64" }, undefined],
    ["entries without a platform never match", [d(10)], { os: "linux", architecture: "amd64" }, undefined],
    [
      "unknown media types never match",
      [d(11, { os: "linux", architecture: "amd64" }, "application/vnd.in-toto+json")],
      { os: "linux", architecture: "amd64" },
      undefined,
    ],
    ["first of equals wins", [amd64, d(12, { os: "linux", architecture: "amd64" })], { os: "linux", architecture: "amd64" }, amd64],
  ])("%s", (_name, manifests, want, expected) => {
    expect(pickManifest(manifests, want)).toEqual(expected);
  });
});

describe("platform names", () => {
  it("parses and formats os/arch/variant", () => {
    expect(parsePlatform("linux/amd64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(parsePlatform("linux/arm64")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    expect(parsePlatform("linux/arm/7")).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
    expect(formatPlatform({ os: "linux", architecture: "arm", variant: "v7" })).toBe("linux/arm/v7");
    expect(() => parsePlatform("linux")).toThrow(InvalidError);
    expect(() => parsePlatform("linux//x")).toThrow(InvalidError);
  });

  it("normalises aliases", () => {
    expect(normalizePlatform({ os: "Linux", architecture: "x86_64" })).toEqual({ os: "linux", architecture: "amd64" });
    expect(normalizePlatform({ os: "linux", architecture: "armhf" })).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
  });

  it("knows the host in Go's names", () => {
    const host = hostPlatform();
    expect(host.os).toBe("linux");
    expect(host.architecture).toBe({ x64: "amd64", arm64: "arm64" }[process.arch as string] ?? host.architecture);
  });
});
