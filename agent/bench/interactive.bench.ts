// Rows for bench:engine measuring interactive work (agent-engine.bench.ts plugs them in):
//
//   crun exec     `crun exec` of /bin/true into a running crun container (the reference)
//   shim exec     `flotilla-shim exec --foreground` of /bin/true into a running shim container
//   agent exec    the Engine API round trip of `docker exec`: POST create, POST start (hijacked,
//                 read to EOF), GET json for the exit code — into a running agent container
//   agent run -it POST create (Tty, OpenStdin), POST attach (hijacked), POST start, until the
//                 first byte of the shell's prompt arrives — `docker run -it IMAGE sh` without the CLI
//
// The long-running containers are made before and removed after the measured rounds.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import http from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import type { BenchRow } from "./engine.bench";

export interface ApiClient {
  socket: string;
  keepAlive: http.Agent;
}

function call(api: ApiClient, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: api.socket, agent: api.keepAlive, method, path, headers: body ? { "Content-Type": "application/json" } : {} },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

/** A hijacked request (Upgrade: tcp): resolves with the raw socket after the 101. */
function hijack(api: ApiClient, path: string, body?: unknown): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath: api.socket,
      method: "POST",
      path,
      headers: { Connection: "Upgrade", Upgrade: "tcp", ...(body ? { "Content-Type": "application/json" } : {}) },
    });
    req.on("upgrade", (_res, socket) => resolve(socket));
    req.on("response", (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on("error", reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

export interface InteractiveBench {
  rows: BenchRow[];
  teardown(): Promise<void>;
}

/** Sets up the running containers and returns the rows (crun rows only when crun exists). */
export async function interactiveRows(opts: {
  api: ApiClient;
  image: string;
  shimBin: string;
  rootfs: string;
  dir: string;
}): Promise<InteractiveBench> {
  const { api, image, shimBin, rootfs, dir } = opts;
  const rows: BenchRow[] = [];
  const undo: Array<() => void | Promise<void>> = [];

  // crun: a detached container running sleep, from a bundle of crun's own spec.
  if (spawnSync("sh", ["-c", "command -v crun"]).status === 0) {
    const bundle = join(dir, "crun-exec-bundle");
    fs.mkdirSync(bundle, { recursive: true });
    execFileSync("crun", ["spec"], { cwd: bundle });
    const spec = JSON.parse(fs.readFileSync(join(bundle, "config.json"), "utf8"));
    spec.process.terminal = false;
    spec.process.args = ["/bin/sleep", "3600"];
    spec.root = { path: rootfs, readonly: true };
    fs.writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
    const root = join(dir, "crun-exec-root");
    const id = `bench-exec-${process.pid}`;
    execFileSync("crun", ["--root", root, "run", "--detach", "--bundle", bundle, id], { stdio: "ignore" });
    undo.push(() => void spawnSync("crun", ["--root", root, "delete", "--force", id]));
    rows.push({
      name: "crun exec",
      run() {
        const r = spawnSync("crun", ["--root", root, "exec", id, "/bin/true"], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
        if (r.status !== 0) throw new Error(`crun exec: ${r.stderr}`);
      },
    });
  }

  // the shim: a detached container running sleep, exec'd into with --foreground
  const stateDir = join(dir, "shim-exec-state");
  const out = execFileSync(
    shimBin,
    [
      "run",
      "--id",
      `bench-exec-${process.pid}`,
      "--state-dir",
      stateDir,
      "--rootfs",
      rootfs,
      "--readonly-rootfs",
      "--",
      "/bin/sleep",
      "3600",
    ],
    { encoding: "utf8" },
  );
  const st = JSON.parse(out) as { pid: number; cgroup: string };
  undo.push(() => void spawnSync(shimBin, ["kill", "--state-dir", stateDir, "KILL"]));
  rows.push({
    name: "shim exec",
    run(i) {
      const r = spawnSync(
        shimBin,
        [
          "exec",
          "--foreground",
          "--id",
          `x${i}`,
          "--state-dir",
          join(dir, `shim-exec-${i}`),
          "--pid",
          String(st.pid),
          "--cgroup",
          st.cgroup,
          "--",
          "/bin/true",
        ],
        { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" },
      );
      if (r.status !== 0) throw new Error(`shim exec: ${r.stderr}`);
    },
    cleanup: (i) => fs.rmSync(join(dir, `shim-exec-${i}`), { recursive: true, force: true }),
  });

  // the agent: a running container, and docker exec's three requests
  const created = await call(api, "POST", "/v1.41/containers/create", {
    Image: image,
    Cmd: ["sleep", "3600"],
    HostConfig: { NetworkMode: "none" },
  });
  const cid = (JSON.parse(created.body) as { Id: string }).Id;
  if ((await call(api, "POST", `/v1.41/containers/${cid}/start`)).status !== 204) throw new Error("bench: agent container did not start");
  undo.push(async () => void (await call(api, "DELETE", `/v1.41/containers/${cid}?force=1`)));
  rows.push({
    name: "agent exec",
    async run() {
      const x = await call(api, "POST", `/v1.41/containers/${cid}/exec`, { Cmd: ["/bin/true"], AttachStdout: true, AttachStderr: true });
      if (x.status !== 201) throw new Error(`exec create: ${x.body}`);
      const id = (JSON.parse(x.body) as { Id: string }).Id;
      const sock = await hijack(api, `/v1.41/exec/${id}/start`, { Detach: false, Tty: false });
      await new Promise<void>((resolve) => {
        sock.resume();
        sock.once("end", () => resolve());
        sock.once("close", () => resolve());
      });
      sock.destroy();
      const info = JSON.parse((await call(api, "GET", `/v1.41/exec/${id}/json`)).body) as { ExitCode: number };
      if (info.ExitCode !== 0) throw new Error(`agent exec exited ${info.ExitCode}`);
    },
  });

  // docker run -it: time to the first byte of the prompt
  const itIds: string[] = [];
  rows.push({
    name: "agent run -it",
    async run(i) {
      const c = await call(api, "POST", "/v1.41/containers/create", {
        Image: image,
        Cmd: ["sh"],
        Tty: true,
        OpenStdin: true,
        StdinOnce: true,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        HostConfig: { NetworkMode: "none" },
      });
      if (c.status !== 201) throw new Error(`create: ${c.body}`);
      const id = (JSON.parse(c.body) as { Id: string }).Id;
      itIds[i] = id;
      const sock = await hijack(api, `/v1.41/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1`);
      const first = new Promise<void>((resolve) => sock.once("data", () => resolve()));
      const start = await call(api, "POST", `/v1.41/containers/${id}/start`);
      if (start.status !== 204) throw new Error(`start: ${start.body}`);
      await first;
      sock.destroy();
    },
    async cleanup(i) {
      await call(api, "DELETE", `/v1.41/containers/${itIds[i]}?force=1`);
    },
  });

  return {
    rows,
    async teardown() {
      for (const u of undo.reverse()) await u();
    },
  };
}
