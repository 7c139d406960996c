// Unit tests of the agent's configuration and Engine API plumbing: flags and env, version
// prefixes, routing, query and filter parsing, error mapping, events.
import { ConflictError, InvalidError, NotFoundError, NotSupportedError, UnavailableError } from "@flotilla/core";
import { describe, expect, it } from "vitest";
import { pullReference, registryCredentials } from "../src/api/images.routes";
import { errorStatus, HttpError, labelMatches, NotModifiedError, parseFilters, queryBool, queryInt } from "../src/api/http-util";
import { compareVersions, Router, splitVersion } from "../src/api/router";
import { DEFAULT_BUILD_CONTEXT_LIMIT, DEFAULT_ROOT, DEFAULT_SHIM, DEFAULT_SOCKET, parseArgs, parseListen } from "../src/config";
import { EventBus, eventMatches, parseEventTime } from "../src/events/event-bus";

describe("parseArgs", () => {
  it("uses defaults: root, socket, no TLS", () => {
    expect(parseArgs([], {})).toEqual({
      root: DEFAULT_ROOT,
      socket: DEFAULT_SOCKET,
      tls: null,
      insecureRegistries: [],
      registryMirrors: [],
      subnet: undefined,
      bridge: undefined,
      chainPrefix: undefined,
      shimPath: DEFAULT_SHIM,
      denyBinds: [],
      buildContextLimit: DEFAULT_BUILD_CONTEXT_LIMIT,
    });
  });

  it("takes repeatable --deny-bind (absolute paths only), else FLOTILLA_AGENT_DENY_BINDS", () => {
    expect(parseArgs(["--deny-bind", "/a", "--deny-bind=/b"], {})!.denyBinds).toEqual(["/a", "/b"]);
    expect(parseArgs([], { FLOTILLA_AGENT_DENY_BINDS: "/x:/y" })!.denyBinds).toEqual(["/x", "/y"]);
    expect(() => parseArgs(["--deny-bind", "rel"], {})).toThrow("--deny-bind must be an absolute path: rel");
  });

  it("takes repeatable --registry-mirror URLs, else FLOTILLA_AGENT_REGISTRY_MIRRORS, refusing what is not http(s)://host[:port]", () => {
    expect(parseArgs(["--registry-mirror", "http://198.19.150.1:5000", "--registry-mirror=https://m.test"], {})!.registryMirrors).toEqual([
      "http://198.19.150.1:5000",
      "https://m.test",
    ]);
    expect(parseArgs([], { FLOTILLA_AGENT_REGISTRY_MIRRORS: "http://a:1, https://b" })!.registryMirrors).toEqual([
      "http://a:1",
      "https://b",
    ]);
    expect(() => parseArgs(["--registry-mirror", "198.19.150.1:5000"], {})).toThrow(
      '--registry-mirror: registry mirror "198.19.150.1:5000": not a URL (want http(s)://host[:port])',
    );
  });

  it("reads --build-context-limit with binary units, and refuses nonsense", () => {
    expect(parseArgs(["--build-context-limit", "512m"], {})!.buildContextLimit).toBe(512 * 1024 * 1024);
    expect(parseArgs([], { FLOTILLA_AGENT_BUILD_CONTEXT_LIMIT: "2g" })!.buildContextLimit).toBe(2 * 1024 ** 3);
    expect(() => parseArgs(["--build-context-limit", "lots"], {})).toThrow("--build-context-limit: expected a size");
  });

  it("reads every flag, repeatable --insecure-registry, --flag=value", () => {
    const o = parseArgs(
      [
        "--root",
        "/r",
        "--socket=/s.sock",
        "--tls-listen",
        "127.0.0.1:9999",
        "--tlscacert",
        "ca",
        "--tlscert",
        "c",
        "--tlskey",
        "k",
        "--insecure-registry",
        "a:5000",
        "--insecure-registry",
        "b",
        "--subnet",
        "198.18.0.0/24",
        "--bridge",
        "br0",
      ],
      {},
    )!;
    expect(o).toMatchObject({ root: "/r", socket: "/s.sock", insecureRegistries: ["a:5000", "b"], subnet: "198.18.0.0/24", bridge: "br0" });
    expect(o.tls).toEqual({ host: "127.0.0.1", port: 9999, caCert: "ca", cert: "c", key: "k" });
  });

  it("falls back to the environment; flags win", () => {
    const env = {
      FLOTILLA_AGENT_ROOT: "/env-root",
      FLOTILLA_AGENT_INSECURE_REGISTRIES: "x:1, y:2",
      FLOTILLA_AGENT_TLSCACERT: "ca",
      FLOTILLA_AGENT_TLSCERT: "c",
      FLOTILLA_AGENT_TLSKEY: "k",
    };
    const o = parseArgs(["--root", "/flag-root"], env)!;
    expect(o.root).toBe("/flag-root");
    expect(o.insecureRegistries).toEqual(["x:1", "y:2"]);
    expect(o.tls).toMatchObject({ host: "0.0.0.0", port: 2376 }); // certificates alone mean the default port
  });

  it("refuses half a TLS configuration, unknown flags, missing values, nothing to listen on", () => {
    expect(() => parseArgs(["--tlscert", "c"], {})).toThrow(/needs all of/);
    expect(() => parseArgs(["--bogus"], {})).toThrow(InvalidError);
    expect(() => parseArgs(["--root"], {})).toThrow(/needs a value/);
    expect(() => parseArgs(["--socket", "none"], {})).toThrow(/nothing to listen on/);
    expect(() => parseArgs(["--shim", "relative/shim"], {})).toThrow(/absolute/);
  });

  it("answers null for --help", () => {
    expect(parseArgs(["--help"], {})).toBeNull();
    expect(parseArgs(["-h", "--bogus"], {})).toBeNull();
  });

  it("parses listen addresses", () => {
    expect(parseListen("0.0.0.0:2376")).toEqual({ host: "0.0.0.0", port: 2376 });
    expect(parseListen(":2376")).toEqual({ host: "0.0.0.0", port: 2376 });
    expect(parseListen("2376")).toEqual({ host: "0.0.0.0", port: 2376 });
    expect(parseListen("[::1]:1")).toEqual({ host: "::1", port: 1 });
    expect(() => parseListen("host:99999")).toThrow(InvalidError);
    expect(() => parseListen("nope")).toThrow(InvalidError);
  });
});

describe("API versions and routing", () => {
  it("strips the version prefix and checks its range", () => {
    expect(splitVersion("/v1.41/containers/json")).toEqual({ version: "1.41", path: "/containers/json" });
    expect(splitVersion("/v1.24/_ping")).toEqual({ version: "1.24", path: "/_ping" });
    expect(splitVersion("/containers/json")).toEqual({ version: "1.41", path: "/containers/json" });
    expect(() => splitVersion("/v1.42/info")).toThrow(/too new. Maximum supported API version is 1.41/);
    expect(() => splitVersion("/v1.11/info")).toThrow(/too old/);
    expect(compareVersions("1.9", "1.12")).toBe(-1);
    expect(compareVersions("1.41", "1.41")).toBe(0);
  });

  it("matches params, slashes in image names, HEAD as GET, trailing slashes", () => {
    const r = new Router();
    const h = () => {};
    r.add("GET", "/containers/:id/json", h).add("DELETE", "/images/*name", h).add("GET", "/images/*name/json", h);
    expect(r.match("GET", "/containers/abc/json")?.params).toEqual({ id: "abc" });
    expect(r.match("HEAD", "/containers/abc/json/")?.params).toEqual({ id: "abc" });
    expect(r.match("GET", "/images/127.0.0.1:5000/ns/busybox:latest/json")?.params).toEqual({ name: "127.0.0.1:5000/ns/busybox:latest" });
    expect(r.match("DELETE", "/images/a%2Fb")?.params).toEqual({ name: "a/b" });
    expect(r.match("POST", "/containers/abc/json")).toBeNull();
  });
});

describe("HTTP helpers", () => {
  it("maps typed errors to Docker's status codes", () => {
    expect(errorStatus(new NotFoundError("container", "x"))).toEqual({ status: 404, message: "container not found: x" });
    expect(errorStatus(new ConflictError("c")).status).toBe(409);
    expect(errorStatus(new InvalidError("i")).status).toBe(400);
    expect(errorStatus(new NotSupportedError("n")).status).toBe(501);
    expect(errorStatus(new UnavailableError("u")).status).toBe(503);
    expect(errorStatus(new HttpError(413, "big"))).toEqual({ status: 413, message: "big" });
    expect(errorStatus(new NotModifiedError()).status).toBe(304);
    expect(errorStatus(new Error("boom"))).toEqual({ status: 500, message: "boom" });
  });

  it("reads Docker's booleans and integers", () => {
    const q = new URLSearchParams("a=1&b=true&c=0&d=False&e=&t=10&bad=x");
    expect(["a", "b", "c", "d", "e", "missing"].map((k) => queryBool(q, k))).toEqual([true, true, false, false, false, false]);
    expect(queryInt(q, "t")).toBe(10);
    expect(queryInt(q, "missing")).toBeUndefined();
    expect(() => queryInt(q, "bad")).toThrow(InvalidError);
  });

  it("parses filters in both the map and the legacy list form", () => {
    const current = parseFilters(
      new URLSearchParams({ filters: JSON.stringify({ label: { "k=v": true, off: false }, status: { running: true } }) }),
    );
    expect(Object.fromEntries(current)).toEqual({ label: ["k=v"], status: ["running"] });
    const legacy = parseFilters(new URLSearchParams({ filters: JSON.stringify({ label: ["k=v"] }) }));
    expect(Object.fromEntries(legacy)).toEqual({ label: ["k=v"] });
    expect(() => parseFilters(new URLSearchParams({ filters: "{nope" }))).toThrow(InvalidError);
    expect(() => parseFilters(new URLSearchParams({ filters: '{"label":3}' }))).toThrow(InvalidError);
  });

  it("matches labels by key or key=value", () => {
    expect(labelMatches({ a: "1" }, "a")).toBe(true);
    expect(labelMatches({ a: "1" }, "a=1")).toBe(true);
    expect(labelMatches({ a: "1" }, "a=2")).toBe(false);
    expect(labelMatches({ a: "x=y" }, "a=x=y")).toBe(true);
    expect(labelMatches(null, "a")).toBe(false);
  });

  it("builds pull references and decodes X-Registry-Auth", () => {
    expect(pullReference("busybox", "1.36")).toBe("busybox:1.36");
    expect(pullReference("busybox", `sha256:${"a".repeat(64)}`)).toBe(`busybox@sha256:${"a".repeat(64)}`);
    expect(pullReference("busybox:1", null)).toBe("busybox:1");
    const header = Buffer.from(JSON.stringify({ username: "u", password: "p", serveraddress: "r" })).toString("base64url");
    expect(registryCredentials(header)).toEqual({ username: "u", password: "p" });
    expect(registryCredentials(Buffer.from("{}").toString("base64"))).toBeUndefined();
    expect(registryCredentials(undefined)).toBeUndefined();
    expect(() => registryCredentials("%%%notbase64json")).toThrow(InvalidError);
  });
});

describe("events", () => {
  it("records, replays by time and broadcasts in Docker's shape", () => {
    const bus = new EventBus(3);
    const seen: string[] = [];
    const stop = bus.subscribe((e) => seen.push(e.Action));
    const a = bus.emit("container", "create", "id1", { name: "web", image: "busybox" });
    bus.emit("container", "start", "id1", { name: "web", image: "busybox" });
    bus.emit("image", "pull", "busybox:latest", { name: "busybox:latest" });
    bus.emit("container", "die", "id1", { exitCode: "0" });
    stop();
    bus.emit("container", "destroy", "id1");
    expect(seen).toEqual(["create", "start", "pull", "die"]);
    expect(a).toMatchObject({
      Type: "container",
      Action: "create",
      status: "create",
      id: "id1",
      from: "busybox",
      scope: "local",
      Actor: { ID: "id1" },
    });
    expect(a.time).toBe(Math.floor(a.timeNano / 1e9));
    // capacity 3: the oldest two fell out; timestamps strictly increase
    const all = bus.history(0);
    expect(all.map((e) => e.Action)).toEqual(["pull", "die", "destroy"]);
    expect(all[1]!.timeNano).toBeGreaterThan(all[0]!.timeNano);
    expect(bus.history(all[1]!.timeNano, all[1]!.timeNano).map((e) => e.Action)).toEqual(["die"]);
  });

  it("filters by type, event, container, image and label", () => {
    const bus = new EventBus();
    const c = bus.emit("container", "start", "abcdef", { name: "web", image: "busybox", tier: "front" });
    const i = bus.emit("image", "pull", "busybox:latest", { name: "busybox:latest" });
    const f = (o: Record<string, string[]>) => new Map(Object.entries(o));
    expect(eventMatches(c, f({ type: ["container"] }))).toBe(true);
    expect(eventMatches(i, f({ type: ["container"] }))).toBe(false);
    expect(eventMatches(c, f({ event: ["stop", "start"] }))).toBe(true);
    expect(eventMatches(c, f({ container: ["abc"] }))).toBe(true);
    expect(eventMatches(c, f({ container: ["web"] }))).toBe(true);
    expect(eventMatches(c, f({ container: ["other"] }))).toBe(false);
    expect(eventMatches(c, f({ image: ["busybox"] }))).toBe(true);
    expect(eventMatches(c, f({ label: ["tier=front"], type: ["container"] }))).toBe(true);
    expect(eventMatches(c, f({ label: ["tier=back"] }))).toBe(false);
  });

  it("parses since/until as unix seconds, RFC 3339 or a duration", () => {
    expect(parseEventTime("1700000000")).toBe(1700000000 * 1e9);
    expect(parseEventTime("1700000000.5")).toBe(1700000000 * 1e9 + 5e8);
    expect(parseEventTime("2023-11-14T22:13:20Z")).toBe(1700000000 * 1e9);
    expect(parseEventTime("10m", 1_000_000)).toBe((1_000_000 - 600_000) * 1e6);
    expect(parseEventTime("garbage")).toBeNaN();
  });
});
