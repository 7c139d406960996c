// The failover cases the bench measures and the integration test checks: while sim agents beat
// and a writer changes the control plane continuously, one part of it fails. Counted: how long
// until writes succeed again, how many requests failed, acknowledged changes that were lost,
// containers that were restarted (replaced) and containers started twice (more than desired).
import { SimAgent } from "../support/sim-agent";
import { HaTopology, ReplicaClient } from "./ha-topology";

export interface CaseResult {
  name: string;
  writesBackS: number;
  failedRequests: number;
  lostChanges: number;
  containersRestarted: number;
  doubledContainers: number;
  converged: boolean;
}

export interface FailoverCase {
  name: string;
  /** Breaks something; resolves when the fault is in place (a failover may still be under way). */
  fault(t: HaTopology): Promise<void>;
  /** Puts the topology back to full strength for the next case. */
  repair(t: HaTopology): void;
}

export const CASES: FailoverCase[] = [
  {
    name: "api-process-killed",
    fault: (t) => t.shAsync("kill-api", "1"),
    repair: (t) => t.sh("start-api", "1"),
  },
  {
    name: "postgres-primary-stopped-replica-promoted",
    fault: (t) => t.shAsync("pg-failover"),
    repair: (t) => t.sh("pg-rejoin"),
  },
  {
    name: "redis-master-killed-sentinel-failover",
    fault: (t) => t.shAsync("redis-kill-master"),
    repair: (t) => t.sh("redis-start"),
  },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type ServiceView = { id: string; name: string; desired: number; running: number };

/** Sim agents and one service on the topology, shared by the cases. */
export class Workload {
  readonly agents: SimAgent[] = [];
  client = new ReplicaClient([], "");
  private serviceId = "";
  replicas = 4;

  constructor(private readonly t: HaTopology) {}

  /** Starts the agents and the service on the topology, which must be up. */
  async start(nodes = 3): Promise<void> {
    this.client = new ReplicaClient(this.t.apiUrls, this.t.token);
    for (let i = 1; i <= nodes; i++) {
      this.agents.push(
        await new SimAgent({
          hostname: `ha-${i}`,
          apiUrl: this.t.apiUrls.join(","),
          token: this.t.token,
          heartbeatMs: 500,
          images: ["busybox:latest"],
        }).start(),
      );
    }
    const svc = await this.client.ok<ServiceView>("POST", "/api/v1/services", {
      name: "ha-web",
      image: "busybox",
      replicas: this.replicas,
    });
    this.serviceId = svc.id;
    if (!(await this.converge(120_000))) throw new Error("the service did not start on the sim agents");
  }

  running(): Map<string, string> {
    const out = new Map<string, string>();
    for (const a of this.agents) for (const c of a.running()) out.set(c.id, c.labels["flotilla.service.id"] ?? c.name);
    return out;
  }

  /** Waits until the service runs exactly its replicas on the agents (bounded; false on give-up). */
  async converge(withinMs: number): Promise<boolean> {
    const until = Date.now() + withinMs;
    while (Date.now() < until) {
      const svc = await this.client.call("GET", `/api/v1/services/${this.serviceId}`).catch(() => undefined);
      const view = svc?.status === 200 ? (svc.body as ServiceView) : undefined;
      if (view && view.running === this.replicas && this.running().size === this.replicas) return true;
      await sleep(250);
    }
    return false;
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop()));
  }

  /** Runs one case: writes continuously, injects the fault, scales the service, checks the result. */
  async run(c: FailoverCase): Promise<CaseResult> {
    const before = this.running();
    const acked: string[] = [];
    // When each acknowledged write was answered: the longest wait for one after the fault is
    // how long writes were gone (failed or stalled).
    const ackedAt: number[] = [];
    let failed = 0;
    let writing = true;
    let seq = 0;
    const writer = (async () => {
      while (writing) {
        const name = `w-${c.name.slice(0, 20)}-${seq++}`;
        const r = await this.client.call("POST", "/api/v1/tokens", { name, role: "viewer" }).catch(() => ({ status: 0, body: undefined }));
        if (r.status === 201) {
          acked.push(name);
          ackedAt.push(Date.now());
        } else failed++;
        await sleep(50);
      }
    })();
    await sleep(1_000);
    const faultAt = Date.now();
    await c.fault(this.t);
    // A change made during the failover must still reach the agents: scale up once writes work.
    const scaleUntil = Date.now() + 120_000;
    for (;;) {
      const r = await this.client
        .call("POST", `/api/v1/services/${this.serviceId}/scale`, { replicas: this.replicas + 1 })
        .catch(() => undefined);
      if (r?.status === 200) break;
      failed++;
      if (Date.now() > scaleUntil) break;
      await sleep(200);
    }
    this.replicas++;
    const converged = await this.converge(120_000);
    // Let the writer see the recovery even when it never failed.
    await sleep(500);
    writing = false;
    await writer;
    const tokens = await this.client.ok<{ name: string }[]>("GET", "/api/v1/tokens");
    const present = new Set(tokens.map((t) => t.name));
    const after = this.running();
    const result: CaseResult = {
      name: c.name,
      writesBackS: longestGap(faultAt, ackedAt) / 1000,
      failedRequests: failed,
      lostChanges: acked.filter((n) => !present.has(n)).length,
      containersRestarted: [...before.keys()].filter((id) => !after.has(id)).length,
      doubledContainers: Math.max(0, after.size - this.replicas),
      converged,
    };
    c.repair(this.t);
    return result;
  }
}

/** The longest time from `from` (or an acknowledgement after it) to the next acknowledgement. */
function longestGap(from: number, times: number[]): number {
  let last = from;
  let gap = 0;
  for (const t of times) {
    if (t < from) continue;
    gap = Math.max(gap, t - last);
    last = t;
  }
  return gap;
}
