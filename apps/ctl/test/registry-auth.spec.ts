// `--with-registry-auth` reads what `docker login` stored: the image's registry is found the way
// docker finds it, the matching `auths` entry decoded; what ctl cannot read is refused naming the flag.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { registryAuthFor, registryOf } from "../src/commands/registry-auth";

describe("--with-registry-auth", () => {
  const dir = mkdtempSync(join(tmpdir(), "ctl-docker-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const config = (c: unknown) => {
    writeFileSync(join(dir, "config.json"), JSON.stringify(c));
    return { DOCKER_CONFIG: dir };
  };
  const b64 = (s: string) => Buffer.from(s).toString("base64");

  it("finds the registry of an image as docker does", () => {
    expect(registryOf("busybox")).toBe("docker.io");
    expect(registryOf("library/busybox:1.36")).toBe("docker.io");
    expect(registryOf("registry.example.com/team/app:1")).toBe("registry.example.com");
    expect(registryOf("10.0.0.5:5000/app")).toBe("10.0.0.5:5000");
    expect(registryOf("localhost/app")).toBe("localhost");
  });

  it("decodes the auths entry of the image's registry, whatever form its key has", () => {
    const env = config({
      auths: {
        "https://index.docker.io/v1/": { auth: b64("hub:hubpw") },
        "https://registry.example.com/v2/": { auth: b64("bob:pa:ss") },
        "10.0.0.5:5000": { auth: b64("alice:pw") },
      },
    });
    expect(registryAuthFor("10.0.0.5:5000/app:1", env)).toEqual({ username: "alice", password: "pw", serverAddress: "10.0.0.5:5000" });
    expect(registryAuthFor("registry.example.com/app", env)).toEqual({
      username: "bob",
      password: "pa:ss",
      serverAddress: "registry.example.com",
    });
    expect(registryAuthFor("busybox", env)).toMatchObject({ username: "hub", serverAddress: "docker.io" });
  });

  it("refuses, naming the flag, when there is nothing to send", () => {
    expect(() => registryAuthFor("other.example.com/app", config({ auths: {} }))).toThrow(
      /--with-registry-auth: no credentials for other.example.com .*docker login other.example.com/,
    );
    expect(() => registryAuthFor("other.example.com/app", config({ auths: {}, credsStore: "secretservice" }))).toThrow(
      /credential helper "secretservice", which is not supported/,
    );
    expect(() => registryAuthFor("app", { DOCKER_CONFIG: join(dir, "missing") })).toThrow(/--with-registry-auth: cannot read/);
  });
});
