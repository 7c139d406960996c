import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ancestors, classifyEntry, isAllowedLayerXattr, normalizeEntryPath, PathEscapeError } from "../src/images/layer-paths";

describe("normalizeEntryPath", () => {
  it.each([
    ["etc/passwd", "etc/passwd"],
    ["./etc/passwd", "etc/passwd"],
    ["/etc/passwd", "etc/passwd"],
    ["etc//passwd", "etc/passwd"],
    ["etc/./passwd", "etc/passwd"],
    ["etc/", "etc"],
    ["a/../b", "b"],
    ["a/b/../../c", "c"],
    [".", ""],
    ["./", ""],
    ["/", ""],
    ["..a/b", "..a/b"],
    ["a/..b", "a/..b"],
  ])("%j → %j", (input, expected) => {
    expect(normalizeEntryPath(input)).toBe(expected);
  });

  it.each(["..", "../etc/passwd", "./../x", "a/../../x", "/../x", "a/b/../../../x", "bin/\0evil"])("refuses %j", (input) => {
    expect(() => normalizeEntryPath(input)).toThrow(PathEscapeError);
  });

  it("never yields a path that is absolute or climbs out (property)", () => {
    const segment = fc.constantFrom("..", ".", "", "a", "b", ".wh.x", "..a");
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 8 }), fc.boolean(), (parts, absolute) => {
        const name = (absolute ? "/" : "") + parts.join("/");
        let out: string;
        try {
          out = normalizeEntryPath(name);
        } catch (e) {
          expect(e).toBeInstanceOf(PathEscapeError);
          return;
        }
        expect(out.startsWith("/")).toBe(false);
        expect(out.split("/")).not.toContain("..");
        expect(out.split("/")).not.toContain(".");
      }),
    );
  });
});

describe("classifyEntry", () => {
  it.each([
    ["etc/passwd", { kind: "entry", path: "etc/passwd" }],
    ["etc/.wh.motd", { kind: "whiteout", path: "etc/motd" }],
    [".wh.etc", { kind: "whiteout", path: "etc" }],
    ["opt/data/.wh..wh..opq", { kind: "opaque", dir: "opt/data" }],
    [".wh..wh..opq", { kind: "opaque", dir: "" }],
    ["a/.wh..wh.plnk", { kind: "skip", path: "a/.wh..wh.plnk", reason: "AUFS metadata" }],
    [".wh..wh.plnk/123.45", { kind: "skip", path: ".wh..wh.plnk/123.45", reason: "AUFS metadata" }],
    ["a/.wh.", { kind: "skip", path: "a/.wh.", reason: "whiteout without a name" }],
    ["a/.wh...", { kind: "skip", path: "a/.wh...", reason: "whiteout without a name" }],
    ["a/x.wh.y", { kind: "entry", path: "a/x.wh.y" }],
    [".whatever", { kind: "entry", path: ".whatever" }],
  ])("%s", (path, expected) => {
    expect(classifyEntry(path)).toEqual(expected);
  });
});

describe("helpers", () => {
  it("lists ancestors outermost first", () => {
    expect(ancestors("a/b/c")).toEqual(["a", "a/b"]);
    expect(ancestors("a")).toEqual([]);
  });

  it.each([
    ["security.capability", true],
    ["user.comment", true],
    ["trusted.md5", true],
    ["trusted.overlay.opaque", false],
    ["trusted.overlay.redirect", false],
    ["user.overlay.opaque", false],
    ["system.posix_acl_access", false],
  ])("layer xattr %s allowed: %s", (name, allowed) => {
    expect(isAllowedLayerXattr(name)).toBe(allowed);
  });
});
