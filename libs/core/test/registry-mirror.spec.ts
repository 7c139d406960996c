import { describe, expect, it } from "vitest";
import { InvalidError, parseRegistryMirror, pullSources } from "../src";

describe("registry mirrors", () => {
  it("parses http(s)://host[:port], http meaning plain HTTP", () => {
    expect(parseRegistryMirror("http://198.19.150.1:5000")).toEqual({
      url: "http://198.19.150.1:5000",
      domain: "198.19.150.1:5000",
      insecure: true,
    });
    expect(parseRegistryMirror("https://mirror.example.test/")).toEqual({
      url: "https://mirror.example.test/",
      domain: "mirror.example.test",
      insecure: false,
    });
  });

  it.each([
    ["198.19.150.1:5000", "not a URL (want http(s)://host[:port])"],
    ["ftp://mirror", "want http(s)://host[:port] with no path, query or credentials"],
    ["https://mirror/v2/", "want http(s)://host[:port] with no path, query or credentials"],
    ["https://u:p@mirror", "want http(s)://host[:port] with no path, query or credentials"],
    ["https://mirror?x=1", "want http(s)://host[:port] with no path, query or credentials"],
  ])("refuses %s", (text, why) => {
    let err: unknown;
    try {
      parseRegistryMirror(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidError);
    expect((err as Error).message).toBe(`registry mirror ${JSON.stringify(text)}: ${why}`);
  });

  it("sends only Docker Hub images through the mirrors, in order, then Docker Hub", () => {
    const mirrors = ["http://198.19.150.1:5000", "https://mirror.example.test"].map(parseRegistryMirror);
    expect(pullSources("docker.io", mirrors)).toEqual(["198.19.150.1:5000", "mirror.example.test", "docker.io"]);
    expect(pullSources("ghcr.io", mirrors)).toEqual(["ghcr.io"]);
    expect(pullSources("198.19.150.1:5000", mirrors)).toEqual(["198.19.150.1:5000"]);
    expect(pullSources("docker.io", [])).toEqual(["docker.io"]);
  });
});
