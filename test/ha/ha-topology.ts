// The HA topology of deploy/ha-local/ha.sh (Postgres primary + standby, Redis + Sentinels, two
// APIs, two workers) driven from TypeScript, for the failover test and bench.
import { execFile, execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const repoRoot = join(__dirname, "..", "..");
const script = join(repoRoot, "deploy/ha-local/ha.sh");

export class HaTopology {
  apiUrls: string[] = [];
  token = "";

  constructor(
    readonly stateDir: string,
    readonly portBase: number,
  ) {}

  /** Runs an ha.sh command; its log goes to stderr. */
  sh(...args: string[]): string {
    return execFileSync("bash", [script, ...args], {
      env: { ...process.env, FLOTILLA_HA_STATE_DIR: this.stateDir, FLOTILLA_HA_PORT_BASE: String(this.portBase) },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
  }

  /** The same without blocking this process (its sim agents and writers keep running meanwhile). */
  shAsync(...args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = execFile("bash", [script, ...args], {
        env: { ...process.env, FLOTILLA_HA_STATE_DIR: this.stateDir, FLOTILLA_HA_PORT_BASE: String(this.portBase) },
      });
      child.stderr?.pipe(process.stderr);
      child.on("error", reject);
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`ha.sh ${args.join(" ")} exited ${code}`))));
    });
  }

  /** A fresh topology: whatever an earlier run left is stopped and removed first. */
  up(): this {
    this.down();
    rmSync(this.stateDir, { recursive: true, force: true });
    this.sh("up");
    const env = Object.fromEntries(
      this.sh("env")
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    this.apiUrls = env.FLOTILLA_API_URL.split(",");
    this.token = (JSON.parse(readFileSync(join(env.FLOTILLA_CONFIG_DIR, "config.json"), "utf8")) as { token: string }).token;
    return this;
  }

  down(): void {
    try {
      this.sh("down");
    } catch {
      // Nothing was running.
    }
  }
}

/** An API client over the replicas that, like ctl, tries the next one when one cannot be reached. */
export class ReplicaClient {
  private index = 0;
  constructor(
    private readonly urls: string[],
    private readonly token: string,
  ) {}

  /** One request (failing over between replicas on a network error); the status and JSON body. */
  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < this.urls.length; attempt++) {
      const url = this.urls[this.index % this.urls.length];
      try {
        const res = await fetch(url + path, {
          method,
          headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
      } catch (e) {
        lastError = e as Error;
        this.index++;
      }
    }
    throw lastError ?? new Error("no API URL");
  }

  /** Like call, but a non-2xx answer throws. */
  async ok<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as T;
  }
}
