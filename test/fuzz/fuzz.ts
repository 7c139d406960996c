// `npm run fuzz`: property-based fuzzing (fast-check) of the control plane's REST bodies and of
// the agent's Engine API create bodies, against the real processes, plus hostile image layers
// against the agent's real pull path. Counts requests, 5xx answers and escapes; checks both are
// still healthy afterwards. Last line with --json:
//   {"rest":{"requests":N,"status5xx":0,"refusedChecked":N,"refusedWrites":0},"engine":{...},"layers":{"archives":N,"escapes":0}}
// The refused (4xx) mutating calls are then sent again one at a time with a database digest
// around each (refused-writes.ts): refusedWrites counts those that changed it.
// FUZZ_REST (20000), FUZZ_ENGINE (5000), FUZZ_REFUSED (refused calls re-checked, 3000), FUZZ_SEED
// set the run. Needs root for the agent part.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import pg from "pg";
import { startAgent } from "../../agent/src/agent";
import { adminUrl, redisUrl, repoRoot, stack } from "../support/stack";
import { deployMigrations } from "../support/migrations";
import { dropKeys } from "../support/redis-keys";
import { startRegistry } from "../support/registry";
import { hostileArchives, pushLayer } from "./hostile-layers";
import { engineBody, restCall, type RestCall } from "./arbitraries";
import { checkRefusedWrites, type RefusedWrites } from "./refused-writes";

const REST = Number(process.env.FUZZ_REST ?? 20_000);
const ENGINE = Number(process.env.FUZZ_ENGINE ?? 5_000);
const REFUSED = Number(process.env.FUZZ_REFUSED ?? 3_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const json = process.argv.includes("--json");
const say = (m: string) => process.stderr.write(`fuzz: ${m}\n`);

async function pool<T>(items: Iterable<T>, parallel: number, fn: (t: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let n = it.next(); !n.done; n = it.next()) await fn(n.value);
    }),
  );
}

async function fuzzRest(): Promise<{ requests: number; status5xx: number; samples: string[]; refused: RefusedWrites }> {
  stack("up");
  const db = `flotilla_fuzz_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db}`);
  await deployMigrations(adminUrl(db));
  const configDir = fs.mkdtempSync(join(tmpdir(), "flotilla-fuzz-"));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const queuePrefix = `fuzz${randomBytes(3).toString("hex")}`;
  // Role "api": machine creates are stored and queued, never provisioned (no worker runs).
  const api = spawn(process.execPath, [join(repoRoot, "apps/api/dist/main.js"), "api"], {
    env: {
      ...process.env,
      DATABASE_URL: adminUrl(db),
      REDIS_URL: redisUrl(),
      FLOTILLA_PORT: String(port),
      FLOTILLA_CONFIG_DIR: configDir,
      FLOTILLA_QUEUE_PREFIX: queuePrefix,
      FLOTILLA_LOG_LEVEL: "error",
      FLOTILLA_DATA_DIR: join(configDir, "data"),
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      // The admin token is written just after the API starts answering.
      if (
        fs.existsSync(join(configDir, "config.json")) &&
        (await fetch(`${url}/api/v1/health`).then(
          (r) => r.ok,
          () => false,
        ))
      )
        break;
      if (i > 600) throw new Error("the API did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
    const token = (JSON.parse(fs.readFileSync(join(configDir, "config.json"), "utf8")) as { token: string }).token;
    const calls = fc.sample(restCall, { numRuns: REST, seed: SEED });
    let requests = 0;
    let status5xx = 0;
    const samples: string[] = [];
    const refusedCalls: RestCall[] = [];
    await pool(calls, 8, async (c: RestCall) => {
      const res = await fetch(url + c.path, {
        method: c.method,
        headers: { authorization: `Bearer ${c.noToken ? "flt_wrong" : token}`, "content-type": "application/json" },
        body: c.body,
      }).catch((e: Error) => ({ status: 599, text: async () => e.message }));
      requests++;
      if (res.status >= 400 && res.status < 500 && c.method !== "GET" && refusedCalls.length < REFUSED) refusedCalls.push(c);
      if (res.status >= 500) {
        status5xx++;
        if (samples.length < 5) samples.push(`${c.method} ${c.path} ${c.body ?? ""} -> ${res.status} ${(await res.text()).slice(0, 200)}`);
      } else if ("body" in res) await (res as Response).arrayBuffer();
    });
    say(`REST: re-sending ${refusedCalls.length} refused mutating calls one at a time, with a database digest around each`);
    const refused = await checkRefusedWrites(url, token, refusedCalls, adminUrl(db));
    const health = await fetch(`${url}/api/v1/health`);
    if (!health.ok) throw new Error(`the API is unhealthy after fuzzing: ${health.status} ${await health.text()}`);
    return { requests, status5xx, samples, refused };
  } finally {
    api.kill("SIGTERM");
    await new Promise((r) => api.once("exit", r));
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
    await dropKeys(redisUrl(), `${queuePrefix}:*`);
    fs.rmSync(configDir, { recursive: true, force: true });
  }
}

function agentRequest(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      { socketPath, method, path, headers: body !== undefined ? { "content-type": "application/json" } : {} },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", (e) => resolve({ status: 599, body: e.message }));
    req.end(body);
  });
}

async function fuzzAgent(): Promise<{
  engine: { requests: number; status5xx: number; samples: string[] };
  layers: { archives: number; escapes: number; refused: number };
}> {
  const registry = await startRegistry();
  const dir = fs.mkdtempSync("/tmp/flotilla-fuzz-agent-");
  const agent = await startAgent({
    root: join(dir, "root"),
    socket: join(dir, "docker.sock"),
    insecureRegistries: [registry.host],
    network: null,
  });
  const sock = join(dir, "docker.sock");
  try {
    const image = await registry.pushBusybox();
    const pulled = await agentRequest(sock, "POST", `/v1.41/images/create?fromImage=${encodeURIComponent(image)}`);
    if (pulled.status !== 200) throw new Error(`pull ${image}: ${pulled.status}`);
    // Engine API create bodies: only created, never started (no kernel state is touched).
    const bodies = fc.sample(engineBody(image), { numRuns: ENGINE, seed: SEED });
    let requests = 0;
    let status5xx = 0;
    const samples: string[] = [];
    await pool(bodies, 4, async (b) => {
      const r = await agentRequest(sock, "POST", "/v1.41/containers/create", b);
      requests++;
      if (r.status >= 500 && r.status !== 501) {
        status5xx++;
        if (samples.length < 5) samples.push(`${b.slice(0, 300)} -> ${r.status} ${r.body.slice(0, 200)}`);
      }
      if (r.status === 201) await agentRequest(sock, "DELETE", `/v1.41/containers/${(JSON.parse(r.body) as { Id: string }).Id}?force=1`);
    });
    if ((await agentRequest(sock, "GET", "/_ping")).status !== 200) throw new Error("the agent stopped answering");

    // Hostile layers: every archive pulled through the real registry client and layer store, and
    // unpacked by a container create.
    const targetDir = fs.mkdtempSync("/tmp/flotilla-fuzz-target-");
    const target = join(targetDir, "planted");
    fs.writeFileSync(target, "host file\n");
    let archives = 0;
    let escapes = 0;
    let refused = 0;
    for (const [i, a] of hostileArchives(target, SEED).entries()) {
      const repo = `hostile${i}`;
      await pushLayer(registry.url, repo, "latest", a.layer);
      const r = await agentRequest(
        sock,
        "POST",
        `/v1.41/images/create?fromImage=${encodeURIComponent(`${registry.host}/${repo}`)}&tag=latest`,
      );
      archives++;
      let pulledOk = r.status === 200 && !/"error"/.test(r.body);
      if (pulledOk) {
        // A pull only stores the checked blob; the files are written when a container needs them
        // (or by the unpacker in the background): create one, so the extractor meets the archive.
        const c = await agentRequest(sock, "POST", "/v1.41/containers/create", JSON.stringify({ Image: `${registry.host}/${repo}` }));
        if (c.status === 201) await agentRequest(sock, "DELETE", `/v1.41/containers/${(JSON.parse(c.body) as { Id: string }).Id}?force=1`);
        else pulledOk = false;
        if (c.status >= 500 && c.status !== 501) say(`layer ${a.kind}: create ${c.status} ${c.body.slice(0, 200)}`);
      }
      if (!pulledOk) refused++;
      const escaped =
        fs.readFileSync(target, "utf8") !== "host file\n" ||
        fs.readdirSync(targetDir).length !== 1 ||
        fs.readdirSync("/").some((f) => f === "planted");
      if (escaped) {
        escapes++;
        say(`ESCAPE: ${a.kind}`);
        fs.writeFileSync(target, "host file\n");
      }
      if (r.status >= 500 && !/"error"/.test(r.body)) say(`layer ${a.kind}: ${r.status} ${r.body.slice(0, 200)}`);
    }
    fs.rmSync(targetDir, { recursive: true, force: true });
    return { engine: { requests, status5xx, samples }, layers: { archives, escapes, refused } };
  } finally {
    for (const c of agent.containers.all()) await agent.containers.remove(c.id, { force: true }).catch(() => {});
    await agent.close();
    await registry.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  say(`seed ${SEED}: ${REST} REST calls, ${ENGINE} Engine API creates, hostile layers`);
  const rest = await fuzzRest();
  for (const s of rest.samples) say(`REST 5xx: ${s}`);
  for (const s of rest.refused.samples) say(`REST refused but wrote: ${s}`);
  say(
    `REST: ${rest.requests} requests, ${rest.status5xx} 5xx; ${rest.refused.checked} refused calls re-checked, ${rest.refused.refusedWrites} wrote`,
  );
  const { engine, layers } = await fuzzAgent();
  for (const s of engine.samples) say(`engine 5xx: ${s}`);
  say(
    `engine: ${engine.requests} creates, ${engine.status5xx} 5xx (501 "not supported" excluded); layers: ${layers.archives} archives, ${layers.refused} refused, ${layers.escapes} escapes`,
  );
  const out = {
    rest: {
      requests: rest.requests,
      status5xx: rest.status5xx,
      refusedChecked: rest.refused.checked,
      refusedWrites: rest.refused.refusedWrites,
    },
    engine: { requests: engine.requests, status5xx: engine.status5xx },
    layers: { archives: layers.archives, escapes: layers.escapes },
    seed: SEED,
  };
  if (json) process.stdout.write(JSON.stringify(out) + "\n");
  else process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  if (rest.status5xx || rest.refused.refusedWrites || engine.status5xx || layers.escapes) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`fuzz: ${(e as Error).stack}\n`);
  process.exit(2);
});
