// One Engine API client per agent endpoint, reused so keep-alive connections are too. The side
// effect boundary of dispatch: tests point nodes at simulated agents, production at real ones.
import { Injectable, OnModuleDestroy } from "@nestjs/common";
import { EngineClient } from "@flotilla/engine-client";
import type { Node as NodeRow } from "../generated/prisma/client";

@Injectable()
export class EngineClients implements OnModuleDestroy {
  private readonly clients = new Map<string, EngineClient>();

  /**
   * The client for a node's agent. TLS: `engineTlsRef` names the node's client certificate;
   * the machines issue will resolve it to {ca, cert, key} — until then agents are reached over
   * plain HTTP or a unix socket.
   */
  forNode(node: Pick<NodeRow, "engineUrl" | "hostname">): EngineClient {
    if (!node.engineUrl) throw new Error(`node ${node.hostname} has no engine URL yet (no heartbeat received)`);
    let c = this.clients.get(node.engineUrl);
    if (!c) {
      c = new EngineClient({ url: node.engineUrl, timeoutMs: 15_000 });
      this.clients.set(node.engineUrl, c);
    }
    return c;
  }

  onModuleDestroy(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
