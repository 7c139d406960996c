// What each kind of API token may call. Admin tokens may call everything; an operator runs the
// fleet (services, nodes, machines' lifecycle) but manages no tokens and creates no machine that
// reaches into the control plane's host; a viewer only reads (the console works read-only); an
// agent token, which a machine's agent gets by trading its one-time join token, may only report
// for its own machine. Anything else is refused, so a token leaked from a machine cannot drive
// the control plane.
import { createHash } from "node:crypto";

export type TokenRole = "admin" | "operator" | "viewer" | "agent";
/** The roles a person can give a token (`ctl token create --role`); agent tokens come from joins. */
export const USER_ROLES = ["admin", "operator", "viewer"] as const;

const READS = new Set(["GET", "HEAD"]);

/**
 * Machine options that name a path or folder on the control plane's host (a key, an image, a
 * shared folder, a binary): only an admin may point a machine at the host's files.
 */
export const HOST_PATH_OPTIONS: ReadonlySet<string> = new Set([
  "generic-ssh-key",
  "netns-sshd-path",
  "virtualbox-boot2docker-url",
  "virtualbox-share-folder",
  "hyperv-boot2docker-url",
  "qemu-image",
]);
/** Drivers whose machines share the control plane's host and filesystem: admin only. */
export const HOST_SHARING_DRIVERS: ReadonlySet<string> = new Set(["netns"]);

function operatorRefusal(method: string, route: string, body: unknown): string | null {
  if (route.startsWith("/api/v1/tokens")) return "an operator token may not list, create or revoke tokens (admin only)";
  if (route === "/api/v1/secrets/rotate-key") return "an operator token may not rotate the secrets key (admin only)";
  if (route === "/api/v1/nodes/:id/control-plane")
    return "an operator token may not add or remove control-plane replicas: a replica is given the secrets key (admin only)";
  if (method === "POST" && route === "/api/v1/machines") {
    const b = (body ?? {}) as { driver?: unknown; options?: unknown };
    if (typeof b.driver === "string" && HOST_SHARING_DRIVERS.has(b.driver)) {
      return `an operator token may not create ${b.driver} machines: they share the control plane's host (admin only)`;
    }
    const options = b.options && typeof b.options === "object" ? Object.keys(b.options as object).map((k) => k.replace(/^--/, "")) : [];
    const hostPath = options.filter((k) => HOST_PATH_OPTIONS.has(k));
    if (hostPath.length)
      return `an operator token may not create a machine with host-path options (${hostPath.map((k) => `--${k}`).join(", ")}; admin only)`;
    const opts = (b.options ?? {}) as Record<string, unknown>;
    const noShare = opts["virtualbox-no-share"] ?? opts["--virtualbox-no-share"];
    if (b.driver === "virtualbox" && noShare !== true && noShare !== "true") {
      return "an operator token may create a virtualbox machine only with --virtualbox-no-share (by default it shares the host's users directory; admin only)";
    }
  }
  return null;
}

/**
 * The routes (method + Fastify route pattern) an agent token may call. The join endpoint itself
 * is public (the join token is its credential). Add a route here when agents need another one.
 */
export const AGENT_ROUTES: ReadonlySet<string> = new Set([
  "POST /api/v1/nodes/heartbeat",
  "GET /api/v1/nodes/ingress",
  "GET /api/v1/nodes/networks",
]);

const AGENT_TOKEN_PREFIX = "agent-";
const TOKEN_NAME_MAX = 63;
// A machine name too long for its token's is cut to this many characters, then a digest follows.
const KEPT_OF_LONG_NAME = 46;

/** The API token name of a machine's agent (token names are at most 63 characters). */
export function agentTokenName(machine: string): string {
  const name = `${AGENT_TOKEN_PREFIX}${machine}`;
  return name.length <= TOKEN_NAME_MAX
    ? name
    : `${AGENT_TOKEN_PREFIX}${machine.slice(0, KEPT_OF_LONG_NAME)}-${createHash("sha256").update(machine).digest("hex").slice(0, 10)}`;
}

/**
 * The machine names an agent token's name may stand for: that very name, or, when the token's
 * name could be a long name's (cut and digested), any name starting with `cutTo`. Candidates
 * only: agentTokenName of each says which one it is.
 */
export function agentTokenMachines(tokenName: string): { name: string; cutTo?: string } | undefined {
  if (!tokenName.startsWith(AGENT_TOKEN_PREFIX)) return undefined;
  const name = tokenName.slice(AGENT_TOKEN_PREFIX.length);
  return tokenName.length === TOKEN_NAME_MAX ? { name, cutTo: name.slice(0, KEPT_OF_LONG_NAME) } : { name };
}

/**
 * Why a token may not make this call, or null when it may. `body` is the parsed request body:
 * an agent reports only under its own machine's host name, never as another node.
 */
export function refusal(token: { name: string; role: string }, method: string, route: string | undefined, body: unknown): string | null {
  if (token.role === "admin") return null;
  const m = method.toUpperCase();
  const call = `${m} ${route ?? "?"}`;
  if (token.role === "viewer") {
    if (!READS.has(m)) return `a viewer token may only read; ${call} changes state`;
    if ((route ?? "").startsWith("/api/v1/tokens")) return "a viewer token may not list tokens (admin only)";
    return null;
  }
  if (token.role === "operator") return operatorRefusal(m, route ?? "?", body);
  if (token.role !== "agent") return `token "${token.name}" has the unknown role "${token.role}"`;
  if (!AGENT_ROUTES.has(call))
    return `an agent token may not call ${call}; agents may only send heartbeats and read the ingress and network tables`;
  const hostname = (body as { hostname?: unknown } | undefined)?.hostname;
  if (typeof hostname === "string" && agentTokenName(hostname) !== token.name) {
    return `agent token "${token.name}" may not report as "${hostname}"`;
  }
  return null;
}
