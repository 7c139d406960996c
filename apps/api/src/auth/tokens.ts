import { createHash, randomBytes } from "node:crypto";

/** Secrets look like `flt_<43 base64url chars>`: greppable in leaks, 256 bits of entropy. */
export function newTokenSecret(): string {
  return `flt_${randomBytes(32).toString("base64url")}`;
}

/** Only this hash is stored. A fast hash is right here: the secret has full entropy. */
export function hashToken(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** One-time join tokens look like `flj_...`: told apart from API tokens at a glance and in logs. */
export function newJoinSecret(): string {
  return `flj_${randomBytes(32).toString("base64url")}`;
}
