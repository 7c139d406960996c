import { describe, expect, it } from "vitest";
import { InvalidError, MAX_REPLICA_URLS, formatReplicaUrls, parseReplicaUrls } from "../src";

describe("parseReplicaUrls", () => {
  it("reads one or several base URLs, trimmed, without trailing slashes or duplicates", () => {
    expect(parseReplicaUrls("http://a:8080", "F")).toEqual(["http://a:8080"]);
    expect(parseReplicaUrls(" http://a:8080/, https://[::1]:9/ ,,http://a:8080", "F")).toEqual(["http://a:8080", "https://[::1]:9"]);
    expect(parseReplicaUrls("", "F")).toEqual([]);
    expect(formatReplicaUrls(["http://a:1", "http://b:2"])).toBe("http://a:1,http://b:2");
  });

  it.each([
    ["ftp://a", /F: "ftp:\/\/a" is not an http:\/\/ or https:\/\/ URL/],
    ["a:8080", /not an http/],
    ["http://a:8080?x=1", /may not carry a query/],
    ["http://u:p@a:8080", /credentials/],
  ])("refuses %s naming the field", (raw, message) => {
    expect(() => parseReplicaUrls(raw, "F")).toThrow(message);
    expect(() => parseReplicaUrls(raw, "F")).toThrow(InvalidError);
  });

  it("refuses more than the cap", () => {
    const many = Array.from({ length: MAX_REPLICA_URLS + 1 }, (_, i) => `http://h${i}:1`).join(",");
    expect(() => parseReplicaUrls(many, "F")).toThrow(`at most ${MAX_REPLICA_URLS}`);
  });
});
