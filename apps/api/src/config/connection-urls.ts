// The two connection URLs of an HA control plane, parsed here because neither client library
// reads them whole: node-postgres takes one host per URL (libpq's multi-host form
// `postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=read-write` throws in its parser), and
// ioredis takes Sentinel settings only as options, not as a URL.

/** A Postgres URL with one or more hosts, tried in order (libpq's multi-host form). */
export interface DatabaseTarget {
  hosts: { host: string; port: number }[];
  user: string;
  password?: string;
  database: string;
  /** libpq's target_session_attrs: `read-write` connects only to a primary, `any` to the first host that answers. */
  targetSessionAttrs: "any" | "read-write";
  /** The URL with only the first host, for what takes a single-host URL (migrations, tools). */
  firstHostUrl: string;
}

/** Redis: one server (`redis://`, `rediss://`) or a master found through Sentinels (`redis+sentinel://`). */
export type RedisTarget =
  | { kind: "direct"; url: string }
  | {
      kind: "sentinel";
      sentinels: { host: string; port: number }[];
      /** The master name the Sentinels monitor. */
      name: string;
      username?: string;
      password?: string;
      /** The Sentinels' own password (their requirepass); defaults to the master's. */
      sentinelPassword?: string;
      db: number;
    };

const HOST_LIST = /^(?:\[([0-9a-fA-F:.]+)\]|([^:,[\]\s]+))(?::(\d{1,5}))?$/;

function hostList(list: string, defaultPort: number, what: string): { host: string; port: number }[] {
  const out = [];
  for (const item of list.split(",")) {
    const m = HOST_LIST.exec(item);
    const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
    if (!m || port < 1 || port > 65535) throw new Error(`${what}: "${item}" is not host[:port]`);
    out.push({ host: decodeURIComponent(m[1] ?? m[2]), port });
  }
  return out;
}

// `scheme://[user[:password]@]hostlist[/path][?query]`: the WHATWG URL parser refuses a host
// list, so the authority is split here and the rest read with URL on a placeholder host.
function splitUrl(raw: string, schemes: string[], what: string) {
  const m = /^([a-z+]+):\/\/(?:([^@/]*)@)?([^/?#]*)(.*)$/i.exec(raw);
  if (!m || !schemes.includes(m[1].toLowerCase())) throw new Error(`${what} must be a ${schemes.map((s) => `${s}://`).join(" or ")} URL`);
  const [, scheme, auth, hosts, rest] = m;
  const colon = auth?.indexOf(":") ?? -1;
  const user = auth === undefined ? "" : decodeURIComponent(colon < 0 ? auth : auth.slice(0, colon));
  const password = auth === undefined || colon < 0 ? undefined : decodeURIComponent(auth.slice(colon + 1));
  const tail = new URL(`x://placeholder${rest}`);
  return {
    scheme: scheme.toLowerCase(),
    user,
    password,
    hosts,
    path: decodeURIComponent(tail.pathname.slice(1)),
    params: tail.searchParams,
  };
}

/** Parses DATABASE_URL; throws an Error naming what is wrong. */
export function parseDatabaseUrl(raw: string): DatabaseTarget {
  const u = splitUrl(raw, ["postgresql", "postgres"], "DATABASE_URL");
  if (!u.hosts) throw new Error("DATABASE_URL names no host");
  const hosts = hostList(u.hosts, 5432, "DATABASE_URL");
  const attrs = u.params.get("target_session_attrs") ?? "any";
  if (attrs !== "any" && attrs !== "read-write" && attrs !== "primary") {
    throw new Error(`DATABASE_URL: target_session_attrs=${attrs} is not supported (any, read-write or primary)`);
  }
  const first = `${hosts[0].host.includes(":") ? `[${hosts[0].host}]` : hosts[0].host}:${hosts[0].port}`;
  const query = [...u.params].filter(([k]) => k !== "target_session_attrs");
  const auth = u.user ? `${encodeURIComponent(u.user)}${u.password === undefined ? "" : `:${encodeURIComponent(u.password)}`}@` : "";
  return {
    hosts,
    user: u.user,
    password: u.password,
    database: u.path,
    targetSessionAttrs: attrs === "any" ? "any" : "read-write",
    firstHostUrl: `${u.scheme}://${auth}${first}/${encodeURIComponent(u.path)}${query.length ? `?${new URLSearchParams(query).toString()}` : ""}`,
  };
}

/**
 * Parses REDIS_URL. The Sentinel form is
 * `redis+sentinel://[[user]:password@]host:port[,host:port…]/masterName[/db][?sentinelPassword=…]`
 * (port 26379 when left out), as Celery/Kombu and Spring Data Redis spell it, with `+`.
 */
export function parseRedisUrl(raw: string): RedisTarget {
  const scheme = /^([a-z+]+):\/\//i.exec(raw)?.[1]?.toLowerCase();
  if (scheme === "redis" || scheme === "rediss") {
    new URL(raw); // throws on a malformed URL, as ioredis would later
    return { kind: "direct", url: raw };
  }
  const u = splitUrl(raw, ["redis", "rediss", "redis+sentinel"], "REDIS_URL");
  if (!u.hosts) throw new Error("REDIS_URL names no Sentinel");
  const [name, db = "0", ...extra] = u.path.split("/");
  if (!name || extra.length || !/^\d+$/.test(db)) throw new Error("REDIS_URL: a Sentinel URL ends in /masterName or /masterName/db");
  for (const key of u.params.keys()) if (key !== "sentinelPassword") throw new Error(`REDIS_URL: unknown parameter ${key}`);
  return {
    kind: "sentinel",
    sentinels: hostList(u.hosts, 26379, "REDIS_URL"),
    name,
    username: u.user || undefined,
    password: u.password || undefined,
    sentinelPassword: u.params.get("sentinelPassword") ?? (u.password || undefined),
    db: Number(db),
  };
}
