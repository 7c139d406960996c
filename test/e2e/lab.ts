// The set-up most end-to-end suites share: a control plane on a test database whose agents report
// through its relay on a bridge's gateway, a registry holding busybox, `ctl` as a user runs it,
// and netns machines created the way the README creates them. One place, so a change to how
// machines are made (a flag, an address) is made once.
import { join, resolve } from "node:path";
import type { Server } from "node:net";
import type { ConsoleLogger } from "@nestjs/common";
import { startTestApi, type TestApi } from "../../apps/api/test/support";
import { startRegistry, type TestRegistry } from "../support/registry";
import { addBridge, forward, parseExports, run, useMachinesEnv, type Result } from "./support";

const repo = resolve(__dirname, "../..");

export interface NetnsLabOptions {
  /** A fresh temporary directory: the agent bundle, the machines' data, ctl's home. */
  base: string;
  gateway: string;
  /** The API's relay port on the gateway, and the registry's there. */
  apiPort: number;
  regPort: number;
  /**
   * When given, the bridge is made before the first machine and the registry is served on
   * gateway:regPort from the start; otherwise the first machine makes the bridge.
   */
  bridge?: string;
  apiEnv?: Record<string, string>;
  /** Where the API logs (nowhere by default): a suite looking for what must never be logged passes its own. */
  apiLogger?: ConsoleLogger;
}

export interface NetnsLab {
  api: TestApi;
  registry: TestRegistry;
  /** The environment ctl (and docker, with a machine's exports) runs in. */
  env: Record<string, string | undefined>;
  /** busybox as the machines pull it: through the gateway. */
  image: string;
  ctl(args: string[], extra?: Record<string, string | undefined>, timeoutMs?: number): Promise<Result>;
  /** `ctl machine create -d netns` on the lab's bridge, trusting the lab's registry. */
  createMachine(name: string, bridge: string, extraArgs?: string[]): Promise<Result>;
  /** The environment `eval $(ctl machine env NAME)` gives, on top of the lab's. */
  dockerEnv(name: string): Promise<Record<string, string | undefined>>;
  /** Serves the registry on gateway:regPort (once the bridge exists). */
  forwardRegistry(): Promise<void>;
  json<T>(path: string): Promise<T>;
  /** Removes the machines, then stops the API (unless `keepApi`), the registry and the forwarder. */
  stop(machines: readonly string[], keepApi?: boolean): Promise<void>;
}

export async function startNetnsLab(o: NetnsLabOptions): Promise<NetnsLab> {
  if (o.bridge) addBridge(o.bridge, o.gateway);
  const restoreEnv = useMachinesEnv(o.base, `http://${o.gateway}:${o.apiPort}`);
  const api = await startTestApi(
    { FLOTILLA_AGENT_LISTEN: `${o.gateway}:${o.apiPort}`, FLOTILLA_HEARTBEAT_MS: "1000", ...o.apiEnv },
    o.apiLogger,
  );
  const registry = await startRegistry();
  await registry.pushBusybox("busybox:latest");
  let forwarder: Server | undefined;
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: join(o.base, "home"),
    FLOTILLA_CONFIG_DIR: api.config.configDir,
    TSX_TSCONFIG_PATH: join(repo, "apps/ctl/tsconfig.json"),
    DOCKER_CONFIG: join(o.base, "docker-config"),
  };
  const ctl = (args: string[], extra: Record<string, string | undefined> = {}, timeoutMs = 300_000) =>
    run(process.execPath, ["--import", "tsx", join(repo, "apps/ctl/src/main.ts"), ...args], { ...env, ...extra }, timeoutMs);
  const lab: NetnsLab = {
    api,
    registry,
    env,
    image: `${o.gateway}:${o.regPort}/busybox:latest`,
    ctl,
    createMachine: (name, bridge, extraArgs = []) =>
      ctl([
        "machine",
        "create",
        "-d",
        "netns",
        "--netns-cidr",
        `${o.gateway}/24`,
        "--netns-bridge",
        bridge,
        "--engine-insecure-registry",
        `${o.gateway}:${o.regPort}`,
        ...extraArgs,
        name,
      ]),
    dockerEnv: async (name) => ({ ...env, ...parseExports((await ctl(["machine", "env", name])).stdout) }),
    forwardRegistry: async () => {
      forwarder ??= await forward(o.gateway, o.regPort, Number(registry.host.split(":")[1]));
    },
    json: async <T>(path: string) => (await (await api.fetch(path)).json()) as T,
    stop: async (machines, keepApi = false) => {
      forwarder?.close();
      for (const m of machines) await ctl(["machine", "rm", "-f", "-y", m]).catch(() => undefined);
      if (!keepApi) await api.stop();
      await registry.stop();
      restoreEnv();
    },
  };
  if (o.bridge) await lab.forwardRegistry();
  return lab;
}
