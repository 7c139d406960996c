/**
 * Joins a hijacked client connection (docker attach, docker run -i/-t, docker exec) to a shim's
 * attach socket: output to the client as the shim sends it (raw with a tty, multiplexed frames
 * without), the client's bytes to the command's stdin when it attached stdin, its half-close as
 * stdin EOF, and the detach keys ending the attachment while the command keeps running.
 * Back-pressure both ways: a side that cannot take more pauses the other.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { DetachDetector } from "./detach-keys";

export type PipeEnd = "ended" | "detached" | "client-gone";

export interface PipeOptions {
  client: Duplex;
  shim: Socket;
  /** Forward the client's bytes (stdin); otherwise they are read and dropped. */
  stdin: boolean;
  /** The detach sequence, or null for none. */
  detachKeys: Buffer | null;
}

/** Resolves when the shim ends the output (the command exited), the client detaches or leaves. */
export function pipeInteractive(opts: PipeOptions): Promise<PipeEnd> {
  const { client, shim } = opts;
  const detector = opts.detachKeys?.length ? new DetachDetector(opts.detachKeys) : null;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (how: PipeEnd) => {
      if (settled) return;
      settled = true;
      client.off("data", onClientData);
      shim.off("data", onShimData);
      resolve(how);
    };
    const onShimData = (b: Buffer) => {
      if (!client.write(b)) {
        shim.pause();
        client.once("drain", () => shim.resume());
      }
    };
    const onClientData = (b: Buffer) => {
      if (!opts.stdin) return;
      let data = b;
      if (detector) {
        const r = detector.feed(b);
        data = r.forward;
        if (r.detached) {
          if (data.length) shim.write(data);
          return finish("detached");
        }
      }
      if (data.length && !shim.write(data)) {
        client.pause();
        shim.once("drain", () => client.resume());
      }
    };
    shim.on("data", onShimData);
    shim.once("end", () => finish("ended"));
    shim.once("close", () => finish("ended"));
    shim.on("error", () => finish("ended"));
    client.on("data", onClientData);
    // The client's half-close is the end of its stdin; its output side stays open.
    client.once("end", () => {
      if (opts.stdin && !shim.destroyed) shim.end();
    });
    client.once("close", () => finish("client-gone"));
  });
}
