// docker build (the classic builder the CLI uses without buildx) against the agent with the real
// docker CLI 28: a seed-like multi-stage Dockerfile from a base image in a real registry, the
// cache on rebuild and its break at a changed file, the built config, running the result, and
// bad input (unknown instruction, missing file, failing RUN, escaping paths, a context over
// the limit) each with Docker's message and nothing left behind.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type TestRegistry } from "../../test/support/registry";
import { docker, dockerOk, HAS_DOCKER_CLI, IS_ROOT, leftovers, startTestAgent, stopTestAgent, type TestAgent } from "./docker-helpers";

let registry: TestRegistry;
let agent: TestAgent;
let env: NodeJS.ProcessEnv;
let base: string;
let ctx: string;

const CONTEXT_LIMIT = 4 << 20;

const DOCKERFILE = `# a seed-like Dockerfile
ARG BASE
FROM \${BASE} AS build
ARG GREETING=hello
WORKDIR /src
COPY greeting.txt ./
RUN echo "$GREETING from $(cat greeting.txt)" > out.txt && mkdir -p /opt/app && cp out.txt /opt/app/

FROM \${BASE}
LABEL org.example.name="memcache" org.example.tier=cache
ENV APP_HOME=/opt/app \\
    PORT=11211
WORKDIR $APP_HOME
COPY --from=build /opt/app/out.txt ./
COPY --chown=nobody:nogroup conf/ ./conf/
ADD files.tar.gz /opt/extra/
RUN rm /bin/vi && echo "port \${PORT:-0}" > /opt/app/port.txt
EXPOSE 11211/tcp 11211/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD test -f /opt/app/out.txt
USER nobody
SHELL ["/bin/sh", "-c"]
ENTRYPOINT ["sh", "-c"]
CMD ["cat /opt/app/out.txt /opt/app/port.txt; ls -n /opt/app/conf; ls /opt/extra; id -u; test -e /bin/vi || echo no-vi"]
`;

function write(rel: string, content: string): void {
  fs.mkdirSync(join(ctx, rel, ".."), { recursive: true });
  fs.writeFileSync(join(ctx, rel), content);
}

function steps(output: string): string[] {
  return output.split(/^Step \d+\/\d+ : /m).slice(1);
}

describe.skipIf(!IS_ROOT || !HAS_DOCKER_CLI)("docker build against the agent", () => {
  beforeAll(async () => {
    registry = await startRegistry();
    base = await registry.pushBusybox("base/busybox:1");
    const dir = fs.mkdtempSync("/tmp/flotilla-dbuild-");
    agent = await startTestAgent({ dir, insecureRegistries: [registry.host], buildContextLimit: CONTEXT_LIMIT });
    env = agent.env;
    ctx = join(dir, "ctx");
    fs.mkdirSync(ctx);
    write("Dockerfile", DOCKERFILE);
    write("greeting.txt", "the context\n");
    write("conf/app.conf", "threads 4\n");
    write("conf/nested/extra.conf", "x\n");
    write("ignored/secret.txt", "do not send\n");
    write(".dockerignore", "ignored\n*.log\n");
    write("debug.log", "noise\n");
    const tarSrc = join(dir, "tarsrc");
    fs.mkdirSync(join(tarSrc, "pkg"), { recursive: true });
    fs.writeFileSync(join(tarSrc, "pkg/readme"), "from the archive\n");
    execFileSync("tar", ["-czf", join(ctx, "files.tar.gz"), "-C", tarSrc, "pkg"]);
  });

  afterAll(async () => {
    await stopTestAgent(agent);
    await registry?.stop();
  });

  const build = (args: string[], cwd = ctx) => docker(env, ["build", ...args, cwd], 180_000);

  it("builds a multi-stage Dockerfile with the classic builder's output", async () => {
    const r = await build([
      "-t",
      "memcache",
      "-t",
      `${registry.host}/memcache:v1`,
      "--build-arg",
      `BASE=${base}`,
      "--label",
      "built.by=test",
    ]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^Step 1\/23 : ARG BASE$/m);
    expect(r.stdout).toMatch(/^Step 6\/23 : RUN echo "\$GREETING/m);
    expect(r.stdout).toMatch(/^ ---> Running in [0-9a-f]{12}$/m);
    expect(r.stdout).toMatch(/^ ---> Removed intermediate container [0-9a-f]{12}$/m);
    expect(r.stdout).toMatch(/^Step 23\/23 : LABEL "built.by"="test"$/m);
    expect(r.stdout).toMatch(/^Successfully built [0-9a-f]{12}$/m);
    expect(r.stdout).toContain("Successfully tagged memcache:latest");
    expect(r.stdout).toContain(`Successfully tagged ${registry.host}/memcache:v1`);
    expect(r.stdout).not.toContain("Using cache");
  });

  it("runs the result with the built configuration", async () => {
    const r = await docker(env, ["run", "--rm", "memcache"]);
    const out = r.stdout.trim();
    expect(r.stderr).toBe("");
    const lines = out.split("\n");
    expect(lines[0]).toBe("hello from the context");
    expect(lines[1]).toBe("port 11211");
    expect(out).toMatch(/^-rw-r--r-- +1 65534 +65534 .* app\.conf$/m);
    expect(out).toMatch(/^drwxr-xr-x +\d+ 65534 +65534 .* nested$/m);
    expect(lines).toContain("pkg");
    expect(lines).toContain("65534");
    expect(lines.at(-1)).toBe("no-vi");
    // .dockerignore kept these out of the context.
    const ls = await docker(env, [
      "run",
      "--rm",
      "--entrypoint",
      "",
      "memcache",
      "sh",
      "-c",
      "ls /opt/extra/pkg; cat /opt/extra/pkg/readme",
    ]);
    expect(ls.stdout).toBe("readme\nfrom the archive\n");
  });

  it("docker image inspect shows the built config", async () => {
    const [img] = JSON.parse(await dockerOk(env, ["image", "inspect", "memcache"]));
    expect(img.Config).toMatchObject({
      ExposedPorts: { "11211/tcp": {}, "11211/udp": {} },
      Labels: { "org.example.name": "memcache", "org.example.tier": "cache", "org.flotilla.fixture": "busybox", "built.by": "test" },
      StopSignal: "SIGINT",
      Volumes: { "/data": {} },
      User: "nobody",
      WorkingDir: "/opt/app",
      Entrypoint: ["sh", "-c"],
      Healthcheck: { Test: ["CMD-SHELL", "test -f /opt/app/out.txt"], Interval: 5e9, Retries: 2 },
    });
    expect(img.Config.Env).toEqual(expect.arrayContaining(["APP_HOME=/opt/app", "PORT=11211"]));
    const history = await dockerOk(env, ["history", "--no-trunc", "--format", "{{.CreatedBy}}", "memcache"]);
    expect(history).toContain("/bin/sh -c #(nop)  EXPOSE 11211/tcp 11211/udp");
    expect(history).toMatch(/\/bin\/sh -c #\(nop\) {2}COPY dir:[0-9a-f]{64} in \.\/conf\//);
  });

  it("rebuilds with every step from the cache, then breaks the cache from a changed file on", async () => {
    const again = await build(["-t", "memcache", "--build-arg", `BASE=${base}`, "--label", "built.by=test"]);
    expect(again.code, again.stderr).toBe(0);
    const all = steps(again.stdout);
    const cached = all.filter((s) => !s.startsWith("FROM") && !s.startsWith("ARG BASE"));
    expect(cached.length).toBe(20);
    for (const s of cached) expect(s, s).toContain(" ---> Using cache");
    expect(again.stdout).not.toContain("Running in");

    write("greeting.txt", "a changed file\n");
    const changed = await build(["-t", "memcache", "--build-arg", `BASE=${base}`, "--label", "built.by=test"]);
    expect(changed.code, changed.stderr).toBe(0);
    const after = steps(changed.stdout);
    const at = (prefix: string) => after.find((s) => s.startsWith(prefix))!;
    expect(at("ARG GREETING")).toContain("Using cache");
    expect(at("WORKDIR /src")).toContain("Using cache");
    expect(at("COPY greeting.txt")).not.toContain("Using cache");
    expect(at("RUN echo")).not.toContain("Using cache");
    // The second stage's steps before the copy from the first stage still hit.
    expect(at("LABEL org.example.name")).toContain("Using cache");
    expect(at("COPY --from=build")).not.toContain("Using cache");
    expect(at("CMD")).not.toContain("Using cache");
    expect((await dockerOk(env, ["run", "--rm", "memcache"])).split("\n")[0]).toBe("hello from a changed file");
    write("greeting.txt", "the context\n");
  });

  it("--target, --no-cache and build arguments", async () => {
    const t = await build(["-q", "--target", "build", "--build-arg", `BASE=${base}`, "--build-arg", "GREETING=hi", "-t", "stage:build"]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await dockerOk(env, ["run", "--rm", "stage:build", "cat", "/src/out.txt"])).toBe("hi from the context");
    const nc = await build(["--no-cache", "--target", "build", "--build-arg", `BASE=${base}`, "--build-arg", "GREETING=hi"]);
    expect(nc.code, nc.stderr).toBe(0);
    expect(nc.stdout).not.toContain("Using cache");
    const unused = await build(["--target", "build", "--build-arg", `BASE=${base}`, "--build-arg", "NOPE=1"]);
    expect(unused.stdout).toContain("[Warning] One or more build-args [NOPE] were not consumed");
  });

  describe("bad input", () => {
    const dfDir = (name: string, dockerfile: string, files: Record<string, string> = {}) => {
      const d = join(agent.dir, name);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(join(d, "Dockerfile"), dockerfile);
      for (const [f, c] of Object.entries(files)) fs.writeFileSync(join(d, f), c);
      return d;
    };
    const clean = () => {
      expect(leftovers(agent.root, [])).toEqual([]);
      expect(fs.readdirSync(join(agent.root, "images", "tmp"))).toEqual([]);
      expect(agent.handle.containers.all()).toEqual([]);
    };

    it("an unknown instruction: Docker's parse error naming the line", async () => {
      const r = await build([], dfDir("unknown", `FROM ${base}\nRUN true\nFOO bar\n`));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("dockerfile parse error on line 3: unknown instruction: FOO");
      clean();
    });

    it("a missing file in COPY", async () => {
      const r = await build([], dfDir("missing", `FROM ${base}\nCOPY nothere.txt /x\n`));
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toContain(
        "COPY failed: file not found in build context or excluded by .dockerignore: stat nothere.txt: file does not exist",
      );
      clean();
    });

    it("a failing RUN shows its output and exit code and leaves nothing behind", async () => {
      const before = await dockerOk(env, ["images", "-aq"]);
      const r = await build([], dfDir("failing", `FROM ${base}\nRUN echo some output && echo to stderr >&2 && touch /made && exit 3\n`));
      // The CLI exits with the step's code, as with dockerd.
      expect(r.code).toBe(3);
      expect(r.stdout).toContain("some output");
      expect(r.stdout + r.stderr).toContain("to stderr");
      expect(r.stderr).toContain(
        "The command '/bin/sh -c echo some output && echo to stderr >&2 && touch /made && exit 3' returned a non-zero code: 3",
      );
      expect(await dockerOk(env, ["images", "-aq"])).toBe(before);
      clean();
    });

    it("paths escaping the context, directly or through a symlink", async () => {
      const d = dfDir("escape", `FROM ${base}\nCOPY ../outside.txt /x\n`);
      const r = await build([], d);
      expect(r.stdout + r.stderr).toContain("forbidden path outside the build context: ../outside.txt ()");
      fs.writeFileSync(join(d, "Dockerfile"), `FROM ${base}\nCOPY link /x\n`);
      fs.symlinkSync("../../../../../etc/hostname", join(d, "link"));
      const viaLink = await build([], d);
      expect(viaLink.code).toBe(1);
      // Resolved inside the context, where there is no etc/hostname.
      expect(viaLink.stdout + viaLink.stderr).toContain("file not found in build context");
      clean();
    });

    it("a context over the configured limit is refused", async () => {
      const d = dfDir("big", `FROM ${base}\nCOPY big.bin /x\n`);
      fs.writeFileSync(join(d, "big.bin"), Buffer.alloc(CONTEXT_LIMIT + 1024, 7));
      const r = await build([], d);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("build context is larger than the agent's limit of 4.194MB");
      clean();
    });

    it("unsupported options are refused by name", async () => {
      const r = await build(["--network", "bridge"], dfDir("opts", `FROM ${base}\n`));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("--network=bridge is not supported for builds");
    });
  });
});
