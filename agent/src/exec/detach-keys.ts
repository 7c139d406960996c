/**
 * Docker's detach keys (`--detach-keys`, default ctrl-p,ctrl-q): a byte sequence in the attached
 * client's stdin that ends the attachment and leaves the container running. The docker CLI
 * watches for it itself with a tty; the agent watches too (as dockerd does), for `-i` without a
 * tty and for other clients. Pure.
 */
import { InvalidError } from "@flotilla/core";

export const DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q";

/** `ctrl-p,ctrl-q`, `a,ctrl-@` → bytes (Docker's rules: `ctrl-[a-z@[\\\]^_]` or one character). */
export function parseDetachKeys(spec: string): Buffer {
  const out: number[] = [];
  for (const key of spec.split(",")) {
    const k = key.trim();
    if (k.length === 1) out.push(k.charCodeAt(0));
    else if (/^ctrl-[a-z@[\\\]^_]$/i.test(k)) {
      const c = k.slice(5).toLowerCase();
      out.push(c >= "a" && c <= "z" ? c.charCodeAt(0) - 96 : c.charCodeAt(0) - 64);
    } else throw new InvalidError(`Invalid detach keys (${spec}) provided`, { field: "detachKeys" });
  }
  if (!out.length) throw new InvalidError(`Invalid detach keys (${spec}) provided`, { field: "detachKeys" });
  return Buffer.from(out);
}

/**
 * Feeds stdin through the detector: bytes that are (so far) a prefix of the sequence are held
 * back; when the whole sequence arrives, `detached` is true and nothing of it is forwarded.
 */
export class DetachDetector {
  private held = 0;

  constructor(private readonly keys: Buffer) {}

  feed(chunk: Buffer): { forward: Buffer; detached: boolean } {
    const out: number[] = [];
    for (const b of chunk) {
      if (this.held > 0 && b !== this.keys[this.held]) {
        // a broken match: the held bytes were ordinary input after all
        for (let i = 0; i < this.held; i++) out.push(this.keys[i]!);
        this.held = 0;
      }
      if (b === this.keys[this.held]) {
        this.held++;
        if (this.held === this.keys.length) return { forward: Buffer.from(out), detached: true };
      } else out.push(b);
    }
    return { forward: Buffer.from(out), detached: false };
  }
}
