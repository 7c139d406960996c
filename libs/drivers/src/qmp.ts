// A one-shot QMP client (qemu's JSON machine protocol on a unix socket): connect, leave the
// capabilities negotiation mode, run one command, hang up.
import { connect } from "node:net";
import { UnavailableError } from "@flotilla/core";

/** Runs `command` on the QMP socket; resolves with its "return" value, rejects with its "error". */
export function qmpCommand(socketPath: string, command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buffer = "";
    let stage: "greeting" | "capabilities" | "command" = "greeting";
    const fail = (message: string) => {
      sock.destroy();
      reject(new UnavailableError(`qmp ${command}: ${message}`, { step: "qmp" }));
    };
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    sock.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(e.code === "ENOENT" || e.code === "ECONNREFUSED" ? "qemu is not running (no QMP socket)" : e.message);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      if (stage !== "command") fail("qemu closed the QMP connection");
    });
    sock.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        let msg: { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          continue;
        }
        if (msg.event) continue;
        if (stage === "greeting" && msg.QMP) {
          stage = "capabilities";
          sock.write(JSON.stringify({ execute: "qmp_capabilities" }) + "\n");
        } else if (stage === "capabilities" && "return" in msg) {
          stage = "command";
          sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + "\n");
        } else if (stage === "command" && ("return" in msg || msg.error)) {
          clearTimeout(timer);
          sock.end();
          if (msg.error) reject(new UnavailableError(`qmp ${command}: ${msg.error.desc ?? "error"}`, { step: "qmp" }));
          else resolve(msg.return);
        }
      }
    });
  });
}
