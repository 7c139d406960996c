// A stack file's networks → overlay networks and service attachments, as `docker stack deploy`
// reads them: a top-level network is an overlay network (the default driver of stacks) called
// STACK_NAME unless it is `external` (it must exist) or has its own `name`; a service's
// `networks` (a list of names, or a map of names to {aliases}) must name declared networks.
// As in docker, a service without `networks` joins the network `default` (STACK_default unless
// the file declares `default` itself), so the stack's services reach each other by name.
import { InvalidError, NotSupportedError } from "../errors";
import { OVERLAY_DRIVER, validateNetworkName } from "../overlay";
import type { NetworkAttachmentInput } from "../types";

/** A network a stack declares. */
export interface StackNetwork {
  /** The key in the file. */
  readonly key: string;
  /** Its name in the cluster. */
  readonly name: string;
  /** Refers to an existing network: never created or removed by the stack. */
  readonly external: boolean;
  readonly subnet?: string;
  readonly gateway?: string;
  readonly labels: Readonly<Record<string, string>>;
}

const TOP_KEYS = new Set(["driver", "external", "name", "labels", "ipam", "driver_opts", "attachable", "internal", "enable_ipv6"]);
const SERVICE_NETWORK_KEYS = new Set(["aliases"]);

const notYet = (at: string, what: string) => new NotSupportedError(`${at}: ${what} is not supported yet`, { field: at });

function labelsOf(v: unknown, at: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (Array.isArray(v))
    return Object.fromEntries(
      v.map((l: unknown) => {
        const s = String(l);
        const i = s.indexOf("=");
        return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
      }),
    );
  if (typeof v !== "object") throw new InvalidError(`${at}: labels must be a mapping or a list`, { field: at });
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x ?? "")]));
}

/** Top-level `networks`: each declared key → the overlay network it means. */
export function stackNetworks(stack: string, top: unknown): Map<string, StackNetwork> {
  const out = new Map<string, StackNetwork>();
  for (const [key, raw] of Object.entries((top ?? {}) as Record<string, Record<string, unknown> | null>)) {
    const at = `networks.${key}`;
    const v = raw ?? {};
    for (const k of Object.keys(v)) {
      if (!TOP_KEYS.has(k) && !k.startsWith("x-")) throw new NotSupportedError(`${at}.${k}: not supported`, { field: `${at}.${k}` });
    }
    if (v.driver !== undefined && v.driver !== OVERLAY_DRIVER)
      throw new NotSupportedError(
        `${at}.driver: network driver ${JSON.stringify(v.driver)} is not supported: stacks use overlay networks`,
        {
          field: `${at}.driver`,
        },
      );
    if (v.driver_opts !== undefined && Object.keys(v.driver_opts as object).length)
      throw notYet(`${at}.driver_opts`, `driver options (${Object.keys(v.driver_opts as object).join(", ")})`);
    for (const flag of ["attachable", "internal", "enable_ipv6"] as const) if (v[flag] === true) throw notYet(`${at}.${flag}`, flag);
    const external = v.external === true || (typeof v.external === "object" && v.external !== null);
    const externalName = typeof v.external === "object" && v.external !== null ? (v.external as { name?: unknown }).name : undefined;
    const name = typeof v.name === "string" ? v.name : typeof externalName === "string" ? externalName : external ? key : `${stack}_${key}`;
    try {
      validateNetworkName(name);
    } catch (e) {
      throw new InvalidError(`${at}: ${(e as Error).message}`, { field: at });
    }
    let subnet: string | undefined;
    let gateway: string | undefined;
    if (v.ipam !== undefined && v.ipam !== null) {
      const ipam = v.ipam as { driver?: unknown; config?: unknown; options?: unknown };
      if (ipam.driver !== undefined && ipam.driver !== "default")
        throw notYet(`${at}.ipam.driver`, `IPAM driver ${JSON.stringify(ipam.driver)}`);
      if (ipam.options !== undefined) throw notYet(`${at}.ipam.options`, "IPAM options");
      const configs = (ipam.config ?? []) as Record<string, unknown>[];
      if (configs.length > 1) throw notYet(`${at}.ipam.config`, "more than one subnet per network");
      const c = configs[0] ?? {};
      for (const k of Object.keys(c)) if (k !== "subnet" && k !== "gateway") throw notYet(`${at}.ipam.config[0].${k}`, k);
      if (c.subnet !== undefined) subnet = String(c.subnet);
      if (c.gateway !== undefined) gateway = String(c.gateway);
    }
    if (external && (subnet || v.labels))
      throw new InvalidError(`${at}: an external network is created elsewhere: it takes no ipam or labels`, { field: at });
    out.set(key, {
      key,
      name,
      external,
      ...(subnet ? { subnet } : {}),
      ...(gateway ? { gateway } : {}),
      labels: labelsOf(v.labels, `${at}.labels`),
    });
  }
  return out;
}

/** The declared networks, plus STACK_default when a service names none and the file does not declare `default`. */
export function withDefaultNetwork(
  stack: string,
  declared: Map<string, StackNetwork>,
  services: Readonly<Record<string, Record<string, unknown> | null>>,
): Map<string, StackNetwork> {
  const needed = Object.values(services).some((s) => (s ?? {}).networks === undefined);
  if (needed && !declared.has("default"))
    declared.set("default", { key: "default", name: `${stack}_default`, external: false, labels: {} });
  return declared;
}

/**
 * A service's `networks` as attachments (by the networks' cluster names); each must be declared.
 * As docker stack deploy, the service's key in the file is an alias on each of them: its
 * siblings reach it by that short name (`db`), not only by its cluster name (`shop_db`).
 */
export function networksOf(
  entries: unknown,
  declared: ReadonlyMap<string, StackNetwork>,
  at: string,
  serviceKey: string,
): NetworkAttachmentInput[] {
  if (entries === undefined || entries === null) return [];
  const items: [string, unknown][] = Array.isArray(entries)
    ? (entries as unknown[]).map((n) => [String(n), null])
    : Object.entries(entries as Record<string, unknown>);
  return items.map(([key, options], i) => {
    const where = Array.isArray(entries) ? `${at}[${i}]` : `${at}.${key}`;
    const net = declared.get(key);
    if (!net)
      throw new InvalidError(`${where}: network ${JSON.stringify(key)} is not declared in the top-level networks`, {
        field: where,
        value: key,
      });
    const o = (options ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!SERVICE_NETWORK_KEYS.has(k) && !k.startsWith("x-")) throw notYet(`${where}.${k}`, k);
    const aliases = [...new Set([...((o.aliases ?? []) as unknown[]).map(String), serviceKey])];
    return { target: net.name, aliases };
  });
}
