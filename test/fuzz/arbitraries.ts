// What the fuzzer sends: REST calls (every mutating endpoint and the reads with parameters) with
// bodies from plausible to hostile, and Engine API create bodies around a real image.
import fc from "fast-check";

export interface RestCall {
  method: string;
  path: string;
  body?: string;
  noToken?: boolean;
}

const segment = fc
  .oneof(
    fc.constantFrom("web", "api", "local", "x", "..", ".", "%2e%2e", "a".repeat(300), "00000000-0000-0000-0000-000000000000", "web.1"),
    fc.string({ maxLength: 40 }),
  )
  .map((s) => encodeURIComponent(s) || "x");

const scalar = fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
const port = fc.record(
  {
    published: fc.oneof(fc.integer({ min: -1, max: 70000 }), scalar),
    target: fc.oneof(fc.integer({ min: -1, max: 70000 }), scalar),
    protocol: fc.oneof(fc.constantFrom("tcp", "udp", "sctp"), scalar),
    mode: fc.oneof(fc.constantFrom("ingress", "host"), scalar),
  },
  { requiredKeys: [] },
);
const serviceSpec = fc.record(
  {
    name: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), scalar),
    image: fc.oneof(fc.constantFrom("busybox", "127.0.0.1:5000/busybox:latest", ""), scalar),
    replicas: fc.oneof(fc.integer({ min: -3, max: 50 }), scalar),
    command: fc.oneof(fc.array(fc.string({ maxLength: 20 }), { maxLength: 4 }), scalar),
    args: fc.oneof(fc.array(fc.string({ maxLength: 20 }), { maxLength: 4 }), scalar),
    env: fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 4 }), scalar),
    labels: fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 4 }), scalar),
    ports: fc.oneof(fc.array(port, { maxLength: 3 }), scalar),
    placement: fc.oneof(
      fc.record(
        { constraints: fc.array(fc.oneof(fc.constantFrom("node.labels.zone==a", "node.hostname!=x"), fc.string()), { maxLength: 3 }) },
        { requiredKeys: [] },
      ),
      scalar,
    ),
    resources: fc.oneof(
      fc.record(
        {
          limits: fc.record(
            { memoryBytes: fc.oneof(fc.integer(), scalar), nanoCpus: fc.oneof(fc.integer(), scalar), pids: fc.oneof(fc.integer(), scalar) },
            { requiredKeys: [] },
          ),
          reservations: fc.record({ memoryBytes: fc.oneof(fc.integer(), scalar) }, { requiredKeys: [] }),
        },
        { requiredKeys: [] },
      ),
      scalar,
    ),
    update: fc.oneof(
      fc.record(
        {
          parallelism: fc.oneof(fc.integer({ min: -1, max: 10 }), scalar),
          delayMs: fc.oneof(fc.integer(), scalar),
          failureAction: fc.oneof(fc.constantFrom("pause", "continue", "rollback"), scalar),
        },
        { requiredKeys: [] },
      ),
      scalar,
    ),
    restartPolicy: fc.oneof(
      fc.record(
        { condition: fc.oneof(fc.constantFrom("none", "on-failure", "any"), scalar), maxAttempts: fc.oneof(fc.integer(), scalar) },
        { requiredKeys: [] },
      ),
      scalar,
    ),
    stopGracePeriodMs: fc.oneof(fc.integer(), scalar),
  },
  { requiredKeys: [] },
);
const machineBody = fc.record(
  {
    name: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/), scalar),
    driver: fc.oneof(fc.constantFrom("generic", "netns", "virtualbox", "hyperv", "qemu", "nope"), scalar),
    options: fc.oneof(
      fc.dictionary(
        fc.oneof(
          fc.constantFrom("generic-ip-address", "generic-ssh-port", "netns-cidr", "engine-insecure-registry", "--generic-ssh-user"),
          fc.string({ maxLength: 15 }),
        ),
        fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.boolean()),
        { maxKeys: 4 },
      ),
      scalar,
    ),
  },
  { requiredKeys: [] },
);
const heartbeat = fc.record(
  {
    hostname: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/), scalar),
    engineUrl: fc.oneof(fc.constantFrom("https://198.18.0.9:2376", "unix:///run/x.sock", "http://[::1]:1"), scalar),
    resources: fc.oneof(
      fc.record({ nanoCpus: fc.oneof(fc.integer(), scalar), memoryBytes: fc.oneof(fc.integer(), scalar) }, { requiredKeys: [] }),
      scalar,
    ),
    containers: fc.oneof(
      fc.array(
        fc.record(
          { id: fc.string(), state: fc.string(), labels: fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }) },
          { requiredKeys: [] },
        ),
        { maxLength: 3 },
      ),
      scalar,
    ),
  },
  { requiredKeys: [] },
);

const body = (structured: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 6, arbitrary: structured.map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: fc.anything({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null") },
    { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "{",
        "[]",
        "null",
        '{"__proto__":{"admin":true}}',
        '{"constructor":{"prototype":{"x":1}}}',
        "1e999",
        '"\\ud800"',
      ),
    },
  );

const tail = fc.oneof(fc.integer({ min: -5, max: 1e9 }).map(String), fc.string({ maxLength: 10 })).map(encodeURIComponent);

export const restCall: fc.Arbitrary<RestCall> = fc.oneof(
  body(serviceSpec).map((b) => ({ method: "POST", path: "/api/v1/services", body: b })),
  fc.tuple(segment, body(serviceSpec)).map(([s, b]) => ({ method: "PATCH", path: `/api/v1/services/${s}`, body: b })),
  fc
    .tuple(segment, body(fc.record({ replicas: fc.oneof(fc.integer({ min: -2, max: 100 }), scalar) }, { requiredKeys: [] })))
    .map(([s, b]) => ({ method: "POST", path: `/api/v1/services/${s}/scale`, body: b })),
  segment.map((s) => ({ method: "POST", path: `/api/v1/services/${s}/rollback`, body: "{}" })),
  segment.map((s) => ({ method: "DELETE", path: `/api/v1/services/${s}` })),
  fc.tuple(segment, tail).map(([s, t]) => ({ method: "GET", path: `/api/v1/services/${s}/logs?tail=${t}` })),
  fc
    .tuple(segment, fc.string({ maxLength: 20 }))
    .map(([s, q]) => ({ method: "GET", path: `/api/v1/tasks?service=${s}&state=${encodeURIComponent(q)}` })),
  body(machineBody).map((b) => ({ method: "POST", path: "/api/v1/machines", body: b })),
  fc
    .tuple(segment, fc.constantFrom("start", "stop", "restart", "kill", "provision", "regenerate-certs", "upgrade"))
    .map(([s, op]) => ({ method: "POST", path: `/api/v1/machines/${s}/${op}`, body: "{}" })),
  fc
    .tuple(segment, fc.constantFrom("env", "ip", "url", "status", "config", "ssh"))
    .map(([s, op]) => ({ method: "GET", path: `/api/v1/machines/${s}/${op}` })),
  segment.map((s) => ({ method: "DELETE", path: `/api/v1/machines/${s}?force=true` })),
  fc
    .tuple(
      segment,
      body(
        fc.record(
          {
            availability: fc.oneof(fc.constantFrom("active", "pause", "drain"), scalar),
            labels: fc.oneof(fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }), scalar),
          },
          { requiredKeys: [] },
        ),
      ),
    )
    .map(([s, b]) => ({ method: "PATCH", path: `/api/v1/nodes/${s}`, body: b })),
  segment.map((s) => ({ method: "DELETE", path: `/api/v1/nodes/${s}` })),
  body(
    fc.record(
      {
        name: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), scalar),
        role: fc.oneof(fc.constantFrom("admin", "operator", "viewer", "agent", "root"), scalar),
      },
      { requiredKeys: [] },
    ),
  ).map((b) => ({ method: "POST", path: "/api/v1/tokens", body: b })),
  segment.filter((s) => s !== "admin").map((s) => ({ method: "DELETE", path: `/api/v1/tokens/${s}` })),
  body(heartbeat).map((b) => ({ method: "POST", path: "/api/v1/nodes/heartbeat", body: b })),
  body(fc.record({ joinToken: fc.oneof(fc.string(), scalar), hostname: fc.oneof(fc.string(), scalar) }, { requiredKeys: [] })).map((b) => ({
    method: "POST",
    path: "/api/v1/nodes/join",
    body: b,
  })),
  body(serviceSpec).map((b) => ({ method: "POST", path: "/api/v1/services", body: b, noToken: true })),
);

const strings = fc.array(fc.string({ maxLength: 30 }), { maxLength: 4 });
const hostConfig = fc.record(
  {
    Binds: fc.oneof(
      fc.array(
        fc.oneof(
          fc.constantFrom("/tmp/flotilla-fuzz-bind:/data", "vol:/data:ro", "/:/host", "x:/", ":/a", "/a:/b:rw,ro,z"),
          fc.string({ maxLength: 30 }),
        ),
        { maxLength: 3 },
      ),
      scalar,
    ),
    Mounts: fc.oneof(
      fc.array(
        fc.record(
          {
            Type: fc.oneof(fc.constantFrom("bind", "volume", "tmpfs", "npipe"), scalar),
            Source: fc.oneof(fc.string(), scalar),
            Target: fc.oneof(fc.constantFrom("/data", "/", "relative"), fc.string()),
            ReadOnly: fc.boolean(),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
      scalar,
    ),
    Memory: fc.oneof(fc.integer(), fc.double(), scalar),
    MemorySwap: fc.oneof(fc.integer(), scalar),
    NanoCpus: fc.oneof(fc.integer(), fc.double(), scalar),
    CpuQuota: fc.oneof(fc.integer(), scalar),
    CpuPeriod: fc.oneof(fc.integer(), scalar),
    PidsLimit: fc.oneof(fc.integer(), scalar),
    CapAdd: fc.oneof(fc.array(fc.oneof(fc.constantFrom("NET_RAW", "SYS_ADMIN", "ALL", "cap_kill"), fc.string()), { maxLength: 3 }), scalar),
    CapDrop: fc.oneof(fc.array(fc.oneof(fc.constantFrom("NET_RAW", "ALL", "chown"), fc.string()), { maxLength: 3 }), scalar),
    Dns: fc.oneof(strings, scalar),
    DnsSearch: fc.oneof(strings, scalar),
    DnsOptions: fc.oneof(strings, scalar),
    ExtraHosts: fc.oneof(
      fc.array(fc.oneof(fc.constantFrom("db:198.18.0.9", "x:host-gateway", "a:::1"), fc.string()), { maxLength: 3 }),
      scalar,
    ),
    SecurityOpt: fc.oneof(
      fc.array(fc.oneof(fc.constantFrom("no-new-privileges", "seccomp=unconfined"), fc.string()), { maxLength: 2 }),
      scalar,
    ),
    LogConfig: fc.oneof(
      fc.record(
        {
          Type: fc.oneof(fc.constantFrom("json-file", "syslog", ""), scalar),
          Config: fc.oneof(
            fc.dictionary(fc.oneof(fc.constantFrom("max-size", "max-file"), fc.string()), fc.string({ maxLength: 10 }), { maxKeys: 3 }),
            scalar,
          ),
        },
        { requiredKeys: [] },
      ),
      scalar,
    ),
    PortBindings: fc.oneof(
      fc.dictionary(
        fc.oneof(fc.constantFrom("80/tcp", "53/udp", "1/sctp", "99999"), fc.string()),
        fc.array(
          fc.record(
            {
              HostIp: fc.oneof(fc.constantFrom("127.0.0.1", "::1"), fc.string()),
              HostPort: fc.oneof(fc.constantFrom("8080", "0", "-1"), fc.string()),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 2 },
        ),
        { maxKeys: 2 },
      ),
      scalar,
    ),
    RestartPolicy: fc.oneof(
      fc.record(
        {
          Name: fc.oneof(fc.constantFrom("always", "on-failure", "no", "sometimes"), scalar),
          MaximumRetryCount: fc.oneof(fc.integer(), scalar),
        },
        { requiredKeys: [] },
      ),
      scalar,
    ),
    NetworkMode: fc.oneof(fc.constantFrom("bridge", "host", "none", "container:x", "mynet", ""), scalar),
    Tmpfs: fc.oneof(
      fc.dictionary(fc.oneof(fc.constantFrom("/run", "/", "rel"), fc.string()), fc.string({ maxLength: 20 }), { maxKeys: 2 }),
      scalar,
    ),
    Init: fc.oneof(fc.boolean(), scalar),
    Ulimits: fc.oneof(fc.array(fc.record({ Name: fc.string(), Soft: fc.integer(), Hard: fc.integer() }), { maxLength: 2 }), scalar),
    Privileged: fc.oneof(fc.boolean(), scalar),
    ReadonlyRootfs: fc.oneof(fc.boolean(), scalar),
    AutoRemove: fc.oneof(fc.boolean(), scalar),
  },
  { requiredKeys: [] },
);

export function engineBody(image: string): fc.Arbitrary<string> {
  const create = fc.record(
    {
      Image: fc.oneof({ weight: 8, arbitrary: fc.constant(image) }, { weight: 1, arbitrary: fc.oneof(fc.string(), scalar) }),
      Cmd: fc.oneof(strings, fc.string(), scalar),
      Entrypoint: fc.oneof(strings, fc.string(), scalar),
      Env: fc.oneof(fc.array(fc.oneof(fc.constantFrom("A=1", "=x", "PATH"), fc.string()), { maxLength: 3 }), scalar),
      User: fc.oneof(fc.constantFrom("root", "1000:1000", "nobody", "x:y:z"), scalar),
      WorkingDir: fc.oneof(fc.constantFrom("/app", "rel", ""), scalar),
      Labels: fc.oneof(fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }), scalar),
      ExposedPorts: fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom("80/tcp", "x"), fc.string()), fc.constant({}), { maxKeys: 2 }), scalar),
      Volumes: fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom("/data", "rel"), fc.string()), fc.constant({}), { maxKeys: 2 }), scalar),
      StopTimeout: fc.oneof(fc.integer(), scalar),
      Tty: fc.oneof(fc.boolean(), scalar),
      OpenStdin: fc.oneof(fc.boolean(), scalar),
      HostConfig: fc.oneof({ weight: 5, arbitrary: hostConfig }, { weight: 1, arbitrary: scalar }),
    },
    { requiredKeys: [] },
  );
  return fc.oneof(
    { weight: 9, arbitrary: create.map((b) => JSON.stringify(b)) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.anything({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null"),
        fc.string({ maxLength: 40 }),
      ),
    },
  );
}
