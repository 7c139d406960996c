// One Engine API client per agent endpoint, reused so keep-alive connections are too. The side
// effect boundary of dispatch: tests point nodes at simulated agents, production at real ones.
import { Injectable, OnModuleDestroy } from "@nestjs/common";
import { EngineClient } from "@flotilla/engine-client";
import type { Node as NodeRow } from "../generated/prisma/client";
import { MachineHost } from "../machines/machine-host";

/** How long dispatch waits for an agent's answer to one call. */
export const ENGINE_TIMEOUT_MS = 15_000;

@Injectable()
export class EngineClients implements OnModuleDestroy {
  // Promises, so concurrent first calls for one agent share one client.
  private readonly clients = new Map<string, Promise<EngineClient>>();

  constructor(private readonly machines: MachineHost) {}

  /**
   * The client for a node's agent. `https://` agents (provisioned machines) are reached with
   * mutual TLS: the control plane's client certificate, signed by the CA that signed theirs.
   */
  forNode(node: Pick<NodeRow, "engineUrl" | "hostname">): Promise<EngineClient> {
    const url = node.engineUrl;
    if (!url) return Promise.reject(new Error(`node ${node.hostname} has no engine URL yet (no heartbeat received)`));
    let client = this.clients.get(url);
    if (!client) {
      client = this.connect(url);
      this.clients.set(url, client);
      // A failed set-up (no CA yet) must not be cached.
      client.catch(() => this.clients.delete(url));
    }
    return client;
  }

  private async connect(url: string): Promise<EngineClient> {
    if (!url.startsWith("https:")) return new EngineClient({ url, timeoutMs: ENGINE_TIMEOUT_MS });
    const ca = await this.machines.authority();
    const pair = await this.machines.controlPlaneClient();
    return new EngineClient({ url, timeoutMs: ENGINE_TIMEOUT_MS, tls: { ca: ca.certPem, cert: pair.cert, key: pair.key } });
  }

  async onModuleDestroy(): Promise<void> {
    const all = await Promise.allSettled(this.clients.values());
    for (const c of all) if (c.status === "fulfilled") c.value.close();
    this.clients.clear();
  }
}
