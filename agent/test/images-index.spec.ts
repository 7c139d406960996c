import { describe, expect, it } from "vitest";
import { inspectConfig, toImageInspect, toImageSummary } from "../src/images/docker-shapes";
import { emptyIndex, findImage, tagsOf, type ImageRecord, type IndexState } from "../src/images/image-index";
import type { ImageConfigJson } from "../src/images/media-types";
import { byteProgress, humanSize, progressBar, shortId, throttled } from "../src/images/progress";

const id = (c: string) => `sha256:${c.repeat(64)}`;

function record(imageId: string, repoDigests: string[] = []): ImageRecord {
  return {
    id: imageId,
    repoDigests,
    manifestDigest: id("9"),
    manifestMediaType: "application/vnd.oci.image.manifest.v1+json",
    blobs: [imageId],
    layers: [{ digest: id("8"), diffId: id("7"), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", size: 10 }],
    size: 1234,
    created: "2024-05-01T10:00:00Z",
    os: "linux",
    architecture: "amd64",
    pulledAt: "2024-05-02T00:00:00Z",
  };
}

function state(): IndexState {
  const s = emptyIndex();
  s.images[id("a")] = record(id("a"), [`docker.io/library/busybox@${id("d")}`]);
  s.images[id("b")] = record(id("b"));
  s.images[`sha256:ab${"0".repeat(62)}`] = record(`sha256:ab${"0".repeat(62)}`);
  s.tags["docker.io/library/busybox:latest"] = id("a");
  s.tags["docker.io/library/busybox:1"] = id("a");
  s.tags["127.0.0.1:5000/app:v1"] = id("b");
  return s;
}

describe("findImage", () => {
  it.each([
    ["busybox", id("a"), "tag"],
    ["busybox:latest", id("a"), "tag"],
    ["docker.io/library/busybox:1", id("a"), "tag"],
    [`busybox@${id("d")}`, id("a"), "digest"],
    ["127.0.0.1:5000/app:v1", id("b"), "tag"],
    [id("b"), id("b"), "id"],
    ["bbbb", id("b"), "id"],
    [`sha256:bbbbbbbb`, id("b"), "id"],
  ])("%s", (name, expected, via) => {
    const match = findImage(state(), name);
    expect(match?.record.id).toBe(expected);
    expect(match?.via).toBe(via);
  });

  it.each([
    ["nope", "unknown name"],
    ["busybox:2", "unknown tag"],
    ["a", "ambiguous ID prefix (aaaa… and ab00…)"],
    [id("c"), "unknown full ID"],
    [`busybox@${id("e")}`, "unknown digest"],
    ["127.0.0.1:5000/app", "tag latest does not exist"],
  ])("%s: none (%s)", (name) => {
    expect(findImage(state(), name)).toBeUndefined();
  });

  it("lists tags of an image", () => {
    expect(tagsOf(state(), id("a"))).toEqual(["docker.io/library/busybox:1", "docker.io/library/busybox:latest"]);
  });
});

describe("Docker shapes", () => {
  const config: ImageConfigJson = {
    architecture: "amd64",
    os: "linux",
    created: "2024-05-01T10:00:00Z",
    config: { Cmd: ["sh"], Env: ["A=1"], WorkingDir: "/tmp", Labels: { x: "y" }, ExposedPorts: { "80/tcp": {} } },
    rootfs: { type: "layers", diff_ids: [id("7")] },
  };

  it("summary has familiar names and unix seconds", () => {
    const s = toImageSummary(record(id("a"), [`docker.io/library/busybox@${id("d")}`]), config, ["docker.io/library/busybox:latest"]);
    expect(s).toMatchObject({
      Id: id("a"),
      RepoTags: ["busybox:latest"],
      RepoDigests: [`busybox@${id("d")}`],
      Created: Date.parse("2024-05-01T10:00:00Z") / 1000,
      Size: 1234,
      Labels: { x: "y" },
    });
  });

  it("inspect carries config defaults and the rootfs", () => {
    const i = toImageInspect(record(id("a")), config, [], ["/l/2", "/l/1"]);
    expect(i.Config).toMatchObject({
      Cmd: ["sh"],
      Env: ["A=1"],
      WorkingDir: "/tmp",
      Entrypoint: null,
      User: "",
      ExposedPorts: { "80/tcp": {} },
    });
    expect(i).toMatchObject({
      RepoTags: [],
      Architecture: "amd64",
      Os: "linux",
      RootFS: { Type: "layers", Layers: [id("7")] },
      Created: "2024-05-01T10:00:00Z",
    });
    expect(i.GraphDriver.Data.LowerDir).toBe("/l/2:/l/1");
  });

  it("fills Docker's empty values for a bare config", () => {
    expect(inspectConfig(undefined)).toMatchObject({ Cmd: null, Env: null, Entrypoint: null, WorkingDir: "", User: "", Labels: null });
    expect(inspectConfig(undefined)).not.toHaveProperty("ExposedPorts");
  });
});

describe("progress", () => {
  it("renders sizes and bars like the Docker daemon", () => {
    expect(humanSize(999)).toBe("999B");
    expect(humanSize(1088036)).toBe("1.088MB");
    expect(humanSize(65536)).toBe("65.54kB");
    expect(progressBar(0, 100)).toBe(`[>${" ".repeat(49)}]  0B/100B`);
    expect(progressBar(50, 100)).toBe(`[${"=".repeat(25)}>${" ".repeat(24)}]  50B/100B`);
    expect(progressBar(100, 100)).toBe(`[${"=".repeat(50)}]  100B/100B`);
    expect(byteProgress("Downloading", "abc", 1, 2)).toEqual({
      status: "Downloading",
      id: "abc",
      progressDetail: { current: 1, total: 2 },
      progress: progressBar(1, 2),
    });
    expect(shortId(id("f"))).toBe("ffffffffffff");
  });

  it("throttles byte progress but always reports completion", () => {
    let now = 0;
    const seen: number[] = [];
    const report = throttled(
      (c) => seen.push(c),
      100,
      () => now,
    );
    report(1, 10);
    now = 50;
    report(2, 10);
    now = 150;
    report(3, 10);
    now = 160;
    report(10, 10);
    expect(seen).toEqual([1, 3, 10]);
  });
});
