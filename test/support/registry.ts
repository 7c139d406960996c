// A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a
// free port and a throw-away storage dir, filled with skopeo from the OCI layouts that
// busybox-image.ts builds. Plus a small auth proxy in front of it for the token flow, Basic
// auth, blob redirects and TLS. Loopback only.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { busyboxLayout, FIXTURE_TAGS, requireTools } from "./busybox-image";

const run = promisify(execFile);

export interface PushOptions {
  /** OCI layout directory; the busybox fixture layout by default. */
  layout?: string;
  /** Copy every image of an index (needed for multi-platform tags). */
  all?: boolean;
  /** `v2s2` converts to Docker schema 2 media types; the layout's OCI types by default. */
  format?: "oci" | "v2s2";
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`: the registry part of image references. */
  readonly host: string;
  readonly url: string;
  readonly storageDir: string;
  /** Copies `layoutTag` of the layout to `dest` (`busybox:latest`); returns `host/dest`. */
  push(layoutTag: string, dest: string, opts?: PushOptions): Promise<string>;
  /** Pushes the fixture busybox image; returns its reference (`127.0.0.1:PORT/busybox:latest`). */
  pushBusybox(dest?: string): Promise<string>;
  /** The file in the registry's storage holding a blob (to corrupt it, say). */
  blobFile(digest: string): string;
  stop(): Promise<void>;
}

async function waitForV2(url: string, deadline: number, status = 200): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      http
        .get(`${url}/v2/`, (res) => {
          res.resume();
          resolve(res.statusCode === status);
        })
        .on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`registry at ${url} did not answer /v2/`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Options of startRegistry. */
export interface RegistryOptions {
  /** The registry's own htpasswd (bcrypt) Basic auth: every request needs these credentials, pushes included. */
  htpasswd?: { username: string; password: string };
}

/** Starts a registry and waits until GET /v2/ answers. Stop it in afterAll. */
export async function startRegistry(registryOpts: RegistryOptions = {}): Promise<TestRegistry> {
  const opts = registryOpts;
  requireTools();
  const dir = fs.mkdtempSync(join(tmpdir(), "flotilla-registry-"));
  const storageDir = join(dir, "storage");
  const config = join(dir, "config.yml");
  const htpasswd = join(dir, "htpasswd");
  if (opts.htpasswd) {
    const { stdout } = await run("htpasswd", ["-Bbn", opts.htpasswd.username, opts.htpasswd.password]);
    fs.writeFileSync(htpasswd, stdout, { mode: 0o600 });
  }
  // Port 0: the registry logs the port it got, so there is no race for a "free" port.
  fs.writeFileSync(
    config,
    [
      "version: 0.1",
      "log: { level: info, accesslog: { disabled: true } }",
      `storage: { filesystem: { rootdirectory: ${JSON.stringify(storageDir)} }, delete: { enabled: true }, redirect: { disable: true } }`,
      `http: { addr: "127.0.0.1:0", secret: ${JSON.stringify(randomBytes(16).toString("hex"))} }`,
      ...(opts.htpasswd ? [`auth: { htpasswd: { realm: flotilla-test, path: ${JSON.stringify(htpasswd)} } }`] : []),
      "",
    ].join("\n"),
  );
  const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  // A worker that dies without afterAll must not leave a registry behind.
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  child.once("exit", () => process.removeListener("exit", reap));
  let log = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`docker-registry did not start:\n${log}`)), 15_000);
    child.stderr!.on("data", (d: Buffer) => {
      log = (log + d.toString()).slice(-20_000);
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`docker-registry exited (${code}):\n${log}`));
    });
  });
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  await waitForV2(url, Date.now() + 10_000, opts.htpasswd ? 401 : 200);

  const push = async (layoutTag: string, dest: string, opts: PushOptions = {}) => {
    const args = ["copy", "--insecure-policy", "--dest-tls-verify=false", "--quiet"];
    if (opts.all) args.push("--all");
    if (opts.format === "v2s2") args.push("--format", "v2s2");
    if (registryOpts.htpasswd) args.push("--dest-creds", `${registryOpts.htpasswd.username}:${registryOpts.htpasswd.password}`);
    args.push(`oci:${opts.layout ?? busyboxLayout()}:${layoutTag}`, `docker://${host}/${dest}`);
    try {
      await run("skopeo", args, { timeout: 60_000 });
    } catch (e) {
      throw new Error(`skopeo ${args.join(" ")}: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`, { cause: e });
    }
    return `${host}/${dest}`;
  };
  return {
    host,
    url,
    storageDir,
    push,
    pushBusybox: (dest = "busybox:latest") => push(FIXTURE_TAGS.busybox, dest),
    blobFile: (digest) => {
      const hex = digest.replace(/^sha256:/, "");
      return join(storageDir, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    },
    stop: async () => {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface AuthProxyOptions {
  /** `bearer`: a token service at /token (the Docker Hub flow); `basic`: HTTP Basic on /v2/. */
  scheme?: "bearer" | "basic";
  /** Credentials the proxy (or its token service) demands; without them tokens are anonymous. */
  username?: string;
  password?: string;
  /** Answer blob GETs with a 307 to a second server on 127.0.0.2, like object storage would. */
  redirectBlobs?: boolean;
  /** Serve https with this key and certificate (see selfSignedCert). */
  tls?: { key: string; cert: string };
}

export interface ProxyRequest {
  server: "registry" | "token" | "storage";
  method: string;
  path: string;
  authorization?: string;
  status: number;
}

export interface AuthProxy {
  /** `127.0.0.1:PORT`, the registry host to pull from. */
  readonly host: string;
  readonly url: string;
  /** Every request seen, in order. */
  readonly requests: ProxyRequest[];
  stop(): Promise<void>;
}

async function listen(server: http.Server, address: string): Promise<number> {
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, address, resolve));
  return (server.address() as AddressInfo).port;
}

function forward(upstream: TestRegistry, req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
  const headers = { ...req.headers, host: upstream.host };
  delete headers.authorization;
  const out = http.request(`${upstream.url}${path}`, { method: req.method, headers }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  out.on("error", () => res.destroy());
  req.pipe(out);
}

/**
 * Puts an authenticating proxy in front of `upstream`. Unauthorised /v2/ requests get 401 with a
 * WWW-Authenticate challenge; the bearer flow's token endpoint checks Basic credentials when
 * configured. Requests are logged so tests can assert the exchange.
 */
export async function startAuthProxy(upstream: TestRegistry, opts: AuthProxyOptions = {}): Promise<AuthProxy> {
  const scheme = opts.scheme ?? "bearer";
  const requests: ProxyRequest[] = [];
  const tokens = new Set<string>();
  const expectedBasic =
    opts.username !== undefined ? `Basic ${Buffer.from(`${opts.username}:${opts.password ?? ""}`).toString("base64")}` : undefined;
  const log = (server: ProxyRequest["server"], req: http.IncomingMessage, status: number) =>
    requests.push({
      server,
      method: req.method ?? "",
      path: req.url ?? "",
      status,
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });

  // Object storage stand-in on another loopback address: a different origin, so a client that
  // leaks the registry's Authorization header across the redirect gets caught.
  const storage = http.createServer((req, res) => {
    log("storage", req, req.headers.authorization ? 400 : 200);
    if (req.headers.authorization) return void res.writeHead(400).end("credentials sent to object storage\n");
    forward(upstream, req, res, (req.url ?? "").replace(/^\/storage/, "").replace(/\?.*$/, ""));
  });
  const storagePort = opts.redirectBlobs ? await listen(storage, "127.0.0.2") : 0;

  let origin = "";
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? "/", origin);
    if (url.pathname === "/token") {
      if (expectedBasic && req.headers.authorization !== expectedBasic) {
        log("token", req, 401);
        return void res.writeHead(401, { "content-type": "application/json" }).end('{"details":"incorrect username or password"}');
      }
      const token = randomBytes(12).toString("hex");
      tokens.add(token);
      log("token", req, 200);
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token, expires_in: 300 }));
    }
    const auth = req.headers.authorization ?? "";
    const ok = scheme === "bearer" ? tokens.has(auth.replace(/^Bearer /, "")) : expectedBasic !== undefined && auth === expectedBasic;
    if (!ok) {
      log("registry", req, 401);
      const repo = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(url.pathname)?.[1];
      const challenge =
        scheme === "bearer"
          ? `Bearer realm="${origin}/token",service="flotilla-test"${repo ? `,scope="repository:${repo}:pull"` : ""}`
          : 'Basic realm="flotilla-test"';
      res.writeHead(401, { "www-authenticate": challenge, "content-type": "application/json" });
      return void res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    }
    if (opts.redirectBlobs && /^\/v2\/.+\/blobs\/sha256:/.test(url.pathname)) {
      log("registry", req, 307);
      return void res.writeHead(307, { location: `http://127.0.0.2:${storagePort}/storage${url.pathname}?signature=test` }).end();
    }
    log("registry", req, 200);
    forward(upstream, req, res, url.pathname + url.search);
  };
  const server = opts.tls ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, handler) : http.createServer(handler);
  const port = await listen(server, "127.0.0.1");
  const host = `127.0.0.1:${port}`;
  origin = `${opts.tls ? "https" : "http"}://${host}`;
  const close = (s: http.Server) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()));
  return {
    host,
    url: origin,
    requests,
    stop: async () => {
      server.closeAllConnections();
      storage.closeAllConnections();
      await Promise.all([close(server), close(storage)]);
    },
  };
}

/** A throw-away self-signed certificate for 127.0.0.1 (openssl), for https tests. */
export async function selfSignedCert(): Promise<{ key: string; cert: string }> {
  const dir = fs.mkdtempSync(join(tmpdir(), "flotilla-cert-"));
  try {
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-days",
      "2",
    ]);
    return { key: fs.readFileSync(join(dir, "key.pem"), "utf8"), cert: fs.readFileSync(join(dir, "cert.pem"), "utf8") };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
