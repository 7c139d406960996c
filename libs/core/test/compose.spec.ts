// Compose file → stack services: the translation of every supported key, interpolation, and
// the refusals (unknown keys, bad ports, what services do not have yet), each naming its path.
import { describe, expect, it } from "vitest";
import {
  InvalidError,
  NotSupportedError,
  commandOf,
  interpolateString,
  parseCompose,
  parseEnvFile,
  planStackDeploy,
  STACK_LABEL,
} from "../src";

const FULL = `
version: "3.8"
x-common: &common
  labels: [team=web]
services:
  web:
    <<: *common
    image: \${REGISTRY:-127.0.0.1:5000}/web:\${TAG:?set TAG}
    entrypoint: ["/bin/sh", "-c"]
    command: httpd -f -p "8 0" 'a b'
    environment:
      MODE: prod
      FROM_SHELL:
      EMPTY: ""
    env_file: [web.env]
    ports:
      - "8080:80"
      - "9090:90"
      - target: 53
        published: 5353
        protocol: udp
        mode: host
    stop_grace_period: 30s
    deploy:
      mode: replicated
      replicas: 3
      labels: { tier: front }
      resources:
        limits: { cpus: "0.5", memory: 64M, pids: 100 }
        reservations: { cpus: "0.25", memory: 32m }
      placement:
        constraints: [node.labels.zone==a]
        preferences: [{ spread: node.labels.rack }]
        max_replicas_per_node: 2
      update_config: { parallelism: 2, delay: 10s, failure_action: rollback, monitor: 5s, max_failure_ratio: 0.2, order: start-first }
      rollback_config: { parallelism: 1, order: stop-first }
      restart_policy: { condition: on-failure, delay: 5s, max_attempts: 3, window: 2m }
  agent:
    image: busybox
    command: ["sleep", "$$HOME"]
    deploy: { mode: global }
`;

const parse = (text: string, extra: Partial<Parameters<typeof parseCompose>[0]> = {}) =>
  parseCompose({ text, stack: "shop", env: { TAG: "v1" }, ...extra });

describe("compose → stack services", () => {
  it("translates every supported key", () => {
    const { stack, services } = parse(FULL, {
      env: { TAG: "v2", FROM_SHELL: "yes" },
      dotenv: "REGISTRY=reg.example:5000\nTAG=ignored\n",
      envFiles: { "web.env": "# c\nFILE_ONLY=1\nMODE=file\n" },
    });
    expect(stack).toBe("shop");
    expect(services.map((s) => s.name)).toEqual(["shop_agent", "shop_web"]);
    const web = services[1]!;
    expect(web.image).toBe("reg.example:5000/web:v2");
    expect(web.command).toEqual(["/bin/sh", "-c"]);
    expect(web.args).toEqual(["httpd", "-f", "-p", "8 0", "a b"]);
    expect(web.env).toEqual({ FILE_ONLY: "1", MODE: "prod", FROM_SHELL: "yes", EMPTY: "" });
    expect(web.labels).toEqual({ team: "web", tier: "front", [STACK_LABEL]: "shop" });
    expect(web.ports).toEqual([
      { published: 8080, target: 80, protocol: "tcp", mode: "ingress" },
      { published: 9090, target: 90, protocol: "tcp", mode: "ingress" },
      { published: 5353, target: 53, protocol: "udp", mode: "host" },
    ]);
    expect(web.mode).toEqual({ kind: "replicated", replicas: 3 });
    expect(web.resources).toEqual({
      limits: { nanoCpus: 500_000_000, memoryBytes: 64 * 1024 ** 2, pids: 100 },
      reservations: { nanoCpus: 250_000_000, memoryBytes: 32 * 1024 ** 2 },
    });
    expect(web.placement).toEqual({
      constraints: ["node.labels.zone==a"],
      preferences: [{ spread: "node.labels.rack" }],
      maxReplicasPerNode: 2,
    });
    expect(web.updateConfig).toMatchObject({
      parallelism: 2,
      delayMs: 10_000,
      failureAction: "rollback",
      monitorMs: 5000,
      maxFailureRatio: 0.2,
      order: "start-first",
    });
    expect(web.rollbackConfig).toMatchObject({ parallelism: 1, order: "stop-first" });
    expect(web.restartPolicy).toEqual({ condition: "on-failure", delayMs: 5000, maxAttempts: 3, windowMs: 120_000 });
    expect(web.stopGracePeriodMs).toBe(30_000);
    const agent = services[0]!;
    expect(agent.mode).toEqual({ kind: "global" });
    expect(agent.args).toEqual(["sleep", "$HOME"]);
    expect(agent.labels).toEqual({ [STACK_LABEL]: "shop" });
  });

  it("reports unknown keys with their path, and every bad value by path", () => {
    const cases: Array<[string, unknown, string]> = [
      ["services:\n  web:\n    image: x\n    imagee: y\n", InvalidError, "services.web.imagee: unknown key"],
      ["services:\n  web:\n    image: x\n    deploy: { replica: 2 }\n", InvalidError, "services.web.deploy.replica: unknown key"],
      ["servicez: {}\n", InvalidError, "servicez: unknown key"],
      ["services:\n  web:\n    image: x\n    ports: ['80:80:80:80']\n", NotSupportedError, "services.web.ports[0]"],
      ["services:\n  web:\n    image: x\n    ports: ['99999:80']\n", InvalidError, "services.web.ports[0]"],
      ["services:\n  web:\n    image: x\n    ports: ['80']\n", NotSupportedError, "publishes no port"],
      ["services:\n  web:\n    image: x\n    ports: ['8000-8001:80-81']\n", NotSupportedError, "port ranges"],
      ["services:\n  web:\n    image: x\n    ports: ['80:80/sctp']\n", InvalidError, "protocol must be tcp or udp"],
      [
        "services:\n  web:\n    image: x\n    ports: ['80:80', '53:53/udp']\n",
        InvalidError,
        "services.web.ports[1].mode: udp port 53 can only be published in host mode",
      ],
      [
        "services:\n  web:\n    image: x\n    deploy: { resources: { limits: { memory: lots } } }\n",
        InvalidError,
        "services.web.deploy.resources.limits.memory",
      ],
      [
        "services:\n  web:\n    image: x\n    deploy: { update_config: { order: sideways } }\n",
        InvalidError,
        "services.web.deploy.update_config.order",
      ],
      ["services:\n  web:\n    image: x\n    deploy: { mode: global, replicas: 2 }\n", InvalidError, "global service has no replica count"],
      [
        "services:\n  web:\n    image: x\n    deploy: { update_config: { max_failure_ratio: 2 } }\n",
        InvalidError,
        "services.web.updateConfig.maxFailureRatio",
      ],
      ["services:\n  web:\n    image: x\n    env_file: missing.env\n", InvalidError, "services.web.env_file[0]: missing.env not found"],
      ["services:\n  web: { command: x }\n", InvalidError, "services.web.image: an image is required"],
      [
        "services:\n  web:\n    image: ${NOPE:?give NOPE}\n",
        InvalidError,
        "services.web.image: required variable NOPE is missing a value: give NOPE",
      ],
      ["services: [web]\n", InvalidError, "services"],
      ["services:\n  web:\n    image: x\n  web:\n    image: y\n", InvalidError, "Map keys must be unique"],
    ];
    for (const [text, type, message] of cases) {
      expect(() => parse(text), text).toThrow(type as never);
      expect(() => parse(text), text).toThrow(message);
    }
  });

  it("takes a healthcheck: a string test runs with the shell, a list keeps its form, disable is NONE", () => {
    const hc = (text: string) => parse(`services:\n  web:\n    image: x\n    healthcheck: ${text}\n`).services[0].healthcheck;
    expect(hc("{ test: 'curl -f localhost', interval: 10s, timeout: 3s, start_period: 1m, retries: 5 }")).toEqual({
      test: ["CMD-SHELL", "curl -f localhost"],
      intervalMs: 10_000,
      timeoutMs: 3_000,
      startPeriodMs: 60_000,
      retries: 5,
    });
    expect(hc("{ test: [CMD, /bin/check, -q] }").test).toEqual(["CMD", "/bin/check", "-q"]);
    expect(hc("{ disable: true }").test).toEqual(["NONE"]);
    expect(() => hc("{ test: [CMD] }")).toThrow("services.web.healthcheck.test");
    expect(() => hc("{ disable: true, retries: 2 }")).toThrow("services.web.healthcheck: disable: true takes no retries");
  });

  it("refuses what services do not have yet, naming the key and its path", () => {
    const cases: Array<[string, string]> = [
      [
        "services:\n  web:\n    image: x\n    healthcheck: { test: ['CMD', 'true'], start_interval: 1s }\n",
        "services.web.healthcheck.start_interval: not supported",
      ],
      [
        "services:\n  web:\n    image: x\n    networks: { back: { ipv4_address: 10.0.0.9 } }\nnetworks: { back: {} }\n",
        "services.web.networks.back.ipv4_address: ipv4_address is not supported yet",
      ],
      [
        "services:\n  web:\n    image: x\nnetworks: { back: { driver: bridge } }\n",
        'networks.back.driver: network driver "bridge" is not supported',
      ],
      [
        "services:\n  web:\n    image: x\nnetworks: { back: { driver_opts: { encrypted: '' } } }\n",
        "networks.back.driver_opts: driver options (encrypted) is not supported yet",
      ],
      ["services:\n  web:\n    image: x\n    cap_add: [NET_ADMIN]\n", "services.web.cap_add: cap_add is not supported by stacks yet"],
      [
        "services:\n  web:\n    image: x\n    deploy: { resources: { reservations: { devices: [] } } }\n",
        "services.web.deploy.resources.reservations.devices",
      ],
      [
        "services:\n  web:\n    image: x\nsecrets:\n  pw: { file: ./pw }\n",
        "secrets.pw.file: the value is not sent with a stack: create it with ctl secret create pw FILE and declare it external: true",
      ],
      ["services:\n  web:\n    image: x\nconfigs:\n  c: {}\n", "configs.c: declare it external: true"],
    ];
    for (const [text, message] of cases) {
      expect(() => parse(text), text).toThrow(NotSupportedError);
      expect(() => parse(text), text).toThrow(message);
    }
    // Empty top-level sections say nothing and are fine.
    expect(parse("services:\n  web:\n    image: x\nnetworks: {}\n").services).toHaveLength(1);
  });

  it("makes top-level networks the stack's overlay networks, and attaches services by list or map with aliases", () => {
    const text = [
      "services:",
      "  web:",
      "    image: x",
      "    networks: [front, shared]",
      "  db:",
      "    image: x",
      "    deploy: { endpoint_mode: dnsrr }",
      "    networks:",
      "      front:",
      "        aliases: [database]",
      "networks:",
      "  front:",
      "    driver: overlay",
      "    labels: { tier: web }",
      "    ipam: { config: [{ subnet: 198.19.202.0/24 }] }",
      "  shared: { external: true }",
    ].join("\n");
    const stack = parse(text);
    expect(stack.networks).toEqual([
      { key: "front", name: "shop_front", external: false, subnet: "198.19.202.0/24", labels: { tier: "web" } },
      { key: "shared", name: "shared", external: true, labels: {} },
    ]);
    const [db, web] = stack.services;
    expect(web.networks).toEqual([
      { target: "shop_front", aliases: ["web"] },
      { target: "shared", aliases: ["web"] },
    ]);
    expect(db.networks).toEqual([{ target: "shop_front", aliases: ["database", "db"] }]);
    expect(db.endpointMode).toBe("dnsrr");
    // As docker: a service naming no network joins STACK_default, made only when one does.
    const plain = parse("services:\n  web:\n    image: x\n  db:\n    image: x\n    networks: [front]\nnetworks:\n  front: {}\n");
    expect(plain.networks.map((n) => n.name)).toEqual(["shop_front", "shop_default"]);
    expect(plain.services.find((x) => x.name === "shop_web")!.networks).toEqual([{ target: "shop_default", aliases: ["web"] }]);
    expect(plain.services.find((x) => x.name === "shop_db")!.networks).toEqual([{ target: "shop_front", aliases: ["db"] }]);
    const ownDefault = parse(
      "services:\n  web:\n    image: x\nnetworks:\n  default:\n    ipam: { config: [{ subnet: 198.19.202.0/24 }] }\n",
    );
    expect(ownDefault.networks).toEqual([{ key: "default", name: "shop_default", external: false, subnet: "198.19.202.0/24", labels: {} }]);
    expect(() => parse("services:\n  web:\n    image: x\n    networks: [nowhere]\n")).toThrow(
      'services.web.networks[0]: network "nowhere" is not declared in the top-level networks',
    );
  });

  it("takes external secrets and configs, short and long, with docker stack's default targets", () => {
    const text = [
      "services:",
      "  web:",
      "    image: x",
      "    secrets: [db_pass, { source: tls, target: /etc/tls/key, uid: '1000', gid: '1000', mode: '0400' }]",
      "    configs: [app]",
      "secrets:",
      "  db_pass: { external: true }",
      "  tls: { external: true, name: prod_tls }",
      "configs:",
      "  app: { external: true, name: app.conf }",
      "",
    ].join("\n");
    const [web] = parse(text).services;
    expect(web.secrets).toEqual([
      { source: "db_pass", target: "/run/secrets/db_pass", uid: "0", gid: "0", mode: 0o444 },
      { source: "prod_tls", target: "/etc/tls/key", uid: "1000", gid: "1000", mode: 0o400 },
    ]);
    expect(web.configs).toEqual([{ source: "app.conf", target: "/app", uid: "0", gid: "0", mode: 0o444 }]);
    const refused: Array<[string, string]> = [
      [
        "services:\n  web:\n    image: x\n    secrets: [nope]\n",
        'services.web.secrets[0]: secret "nope" is not declared in the top-level secrets',
      ],
      [
        "services:\n  web:\n    image: x\n    secrets: [{ source: s, mode: 0440 }]\nsecrets:\n  s: { external: true }\n",
        'services.web.secrets[0].mode: write the mode as a quoted octal string such as "0440"',
      ],
    ];
    for (const [t, message] of refused) expect(() => parse(t), t).toThrow(message);
  });

  it("interpolates like compose and reads .env files", () => {
    const vars = { A: "1", E: "" };
    expect(interpolateString("$A ${A} ${B:-d} ${E:-d} ${E-d} ${B-d} ${A:+set} ${B+set} $$A", vars, "x")).toBe("1 1 d d  d set  $A");
    expect(() => interpolateString("${E:?need E}", vars, "services.a.image")).toThrow(
      "services.a.image: required variable E is missing a value: need E",
    );
    expect(interpolateString("${E?need E}", vars, "x")).toBe("");
    expect(() => interpolateString("${A B}", vars, "p")).toThrow("p: invalid interpolation format");
    expect(parseEnvFile("export A=1\nB='two words' \nC=\"x\\ny\"\nD=v # note\n# c\n\nE\n", ".env")).toEqual({
      A: "1",
      B: "two words",
      C: "x\ny",
      D: "v",
      E: "",
    });
    expect(() => parseEnvFile("not valid line\n", ".env")).toThrow(".env line 1");
    expect(commandOf('sh -c "echo \\"hi\\"" \'\' x\\ y', "c")).toEqual(["sh", "-c", 'echo "hi"', "", "x y"]);
    expect(() => commandOf('echo "open', "services.a.command")).toThrow("services.a.command: unterminated quote");
  });

  it("plans a redeploy: only changed services are updated; prune removes what the file dropped", () => {
    const v1 = parse("services:\n  web: { image: 'web:1' }\n  db: { image: 'db:1' }\n  old: { image: 'o' }\n").services;
    const v2 = parse("services:\n  web: { image: 'web:2' }\n  db: { image: 'db:1' }\n  new: { image: 'n' }\n").services;
    const plan = planStackDeploy(v1, v2);
    expect(plan.create.map((s) => s.name)).toEqual(["shop_new"]);
    expect(plan.update.map((s) => s.name)).toEqual(["shop_web"]);
    expect(plan.unchanged).toEqual(["shop_db"]);
    expect(plan.remove).toEqual([]);
    expect(planStackDeploy(v1, v2, { prune: true }).remove).toEqual(["shop_old"]);
    expect(planStackDeploy(v2, v2).update).toEqual([]);
  });
});

describe("compose references", () => {
  it("names the variables and env files a file needs from where it is read", async () => {
    const { composeReferences } = await import("../src");
    const text =
      "services:\n  web:\n    image: r/${IMG:-x}:$TAG\n    command: echo $$NOT_A_VAR\n    environment: [A=1, FROM_ENV]\n    env_file:\n      - base.env\n      - path: ${DIR}/extra.env\n        required: false\n";
    expect(composeReferences(text, { DIR: "conf" })).toEqual({
      variables: ["DIR", "FROM_ENV", "IMG", "TAG"],
      envFiles: ["base.env", "conf/extra.env"],
    });
  });
});

describe("stack volumes", () => {
  const parse = (text: string) => parseCompose({ text, stack: "shop" });
  const mounts = (text: string) => parse(text).services[0]!.mounts;

  it("names declared volumes after the stack, keeps external and named ones, and reads binds and tmpfs", () => {
    const text = `
services:
  db:
    image: postgres
    volumes:
      - data:/var/lib/data
      - shared:/shared:ro
      - /srv/conf:/conf:ro
      - own:/own
      - type: tmpfs
        target: /cache
        tmpfs: { size: 64m }
      - { type: volume, source: data, target: /again, read_only: true }
volumes:
  data: {}
  shared: { external: true }
  own: { name: fixed-name }
`;
    expect(mounts(text)).toEqual([
      { type: "volume", source: "shop_data", target: "/var/lib/data", readOnly: false },
      { type: "volume", source: "shared", target: "/shared", readOnly: true },
      { type: "bind", source: "/srv/conf", target: "/conf", readOnly: true },
      { type: "volume", source: "fixed-name", target: "/own", readOnly: false },
      { type: "tmpfs", target: "/cache", readOnly: false, tmpfsSizeBytes: 64 * 1024 ** 2 },
      { type: "volume", source: "shop_data", target: "/again", readOnly: true },
    ]);
  });

  it.each([
    [
      "services:\n  web:\n    image: x\n    volumes: ['data:/data']\n",
      InvalidError,
      'services.web.volumes[0]: volume "data" is not declared',
    ],
    ["services:\n  web:\n    image: x\n    volumes: ['/data']\n", NotSupportedError, "services.web.volumes[0]: anonymous volume"],
    ["services:\n  web:\n    image: x\n    volumes: ['./site:/www']\n", NotSupportedError, "relative bind source"],
    ["services:\n  web:\n    image: x\n    volumes: ['d:/data:rx']\nvolumes:\n  d: {}\n", InvalidError, 'invalid volume mode "rx"'],
    [
      "services:\n  web:\n    image: x\n    volumes: ['d:data']\nvolumes:\n  d: {}\n",
      InvalidError,
      "mount target must be an absolute path",
    ],
    ["services:\n  web:\n    image: x\nvolumes:\n  d: { driver: nfs }\n", NotSupportedError, 'volumes.d.driver: volume driver "nfs"'],
    ["services:\n  web:\n    image: x\nvolumes:\n  d: { driver_opts: { o: x } }\n", NotSupportedError, "volumes.d.driver_opts"],
    [
      "services:\n  web:\n    image: x\n    volumes: [{ type: bind, source: d, target: /d }]\nvolumes:\n  d: {}\n",
      InvalidError,
      "does not match the source",
    ],
    [
      "services:\n  web:\n    image: x\n    volumes: [{ type: volume, source: d, target: /d, volume: { nocopy: true } }]\nvolumes:\n  d: {}\n",
      NotSupportedError,
      "services.web.volumes[0].volume.nocopy",
    ],
  ])("refuses %j", (text, type, message) => {
    expect(() => parse(text)).toThrow(type as never);
    expect(() => parse(text)).toThrow(message);
  });
});

describe("stack hostname, user and working_dir", () => {
  it("become the spec's hostname, user and workdir, checked by the spec's rules", () => {
    const [svc] = parseCompose({
      text: "services:\n  web:\n    image: x\n    hostname: web-host\n    user: '1000:1000'\n    working_dir: /app\n",
      stack: "shop",
    }).services;
    expect(svc).toMatchObject({ hostname: "web-host", user: "1000:1000", workdir: "/app" });
    expect(() => parseCompose({ text: "services:\n  web:\n    image: x\n    working_dir: app\n", stack: "shop" })).toThrow(
      "services.web.workdir: workdir must be an absolute path",
    );
  });
});
