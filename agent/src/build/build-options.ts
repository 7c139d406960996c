/**
 * The query parameters of the classic builder's `POST /build`, validated: what the docker CLI
 * sends for `docker build` flags. Options this builder does not do are refused by name when set
 * to anything but their default, never silently ignored. Pure.
 */
import { InvalidError, NotSupportedError } from "@flotilla/core";

export interface BuildOptions {
  tags: string[];
  dockerfile: string;
  buildArgs: Map<string, string | null>;
  labels: Record<string, string>;
  target: string;
  noCache: boolean;
  pull: boolean;
  quiet: boolean;
  /** `new` (default: loopback only) or `host`. */
  network: "new" | "host";
}

function jsonParam<T>(q: URLSearchParams, name: string, fallback: T): T {
  const raw = q.get(name);
  if (raw === null || raw === "" || raw === "null") return fallback;
  try {
    return JSON.parse(raw) as T;
  } catch {
    throw new InvalidError(`invalid ${name}: ${raw}`, { field: name });
  }
}

function bool(q: URLSearchParams, name: string, fallback: boolean): boolean {
  const v = q.get(name);
  if (v === null || v === "") return fallback;
  return !["0", "false", "False", "FALSE"].includes(v);
}

/** Parameters whose default means "not used"; any other value is refused (501). */
const REFUSED: Array<[string, (v: string) => boolean, string]> = [
  ["remote", (v) => v !== "", "building from a remote URL or git repository (the context must be sent)"],
  ["squash", (v) => bool(new URLSearchParams({ v }), "v", false), "--squash"],
  ["extrahosts", (v) => v !== "" && v !== "[]", "--add-host"],
  ["platform", (v) => v !== "" && v !== "linux/amd64" && v !== "linux", "--platform other than the host's"],
  ["isolation", (v) => v !== "" && v !== "default", "--isolation"],
  ["cpusetcpus", (v) => v !== "", "--cpuset-cpus"],
  ["cpusetmems", (v) => v !== "", "--cpuset-mems"],
  ["cgroupparent", (v) => v !== "", "--cgroup-parent"],
  ["cpushares", (v) => v !== "" && v !== "0", "--cpu-shares"],
  ["cpuquota", (v) => v !== "" && v !== "0", "--cpu-quota"],
  ["cpuperiod", (v) => v !== "" && v !== "0", "--cpu-period"],
  ["memory", (v) => v !== "" && v !== "0", "--memory"],
  ["memswap", (v) => v !== "" && v !== "0", "--memory-swap"],
  ["shmsize", (v) => v !== "" && v !== "0", "--shm-size"],
  ["ulimits", (v) => v !== "" && v !== "null" && v !== "[]", "--ulimit"],
  ["cachefrom", (v) => v !== "" && v !== "null" && v !== "[]", "--cache-from"],
  ["securityopt", (v) => v !== "" && v !== "null" && v !== "[]", "--security-opt"],
  ["outputs", (v) => v !== "" && v !== "null" && v !== "[]", "--output"],
];

/** Reads and checks the parameters. InvalidError / NotSupportedError name the option. */
export function parseBuildOptions(q: URLSearchParams): BuildOptions {
  for (const [name, used, flag] of REFUSED) {
    const v = q.get(name);
    if (v !== null && used(v)) throw new NotSupportedError(`${flag} is not supported by this agent's builder`, { field: name });
  }
  if (q.get("version") === "2")
    throw new NotSupportedError("BuildKit (builder version 2) is not supported by this agent; the classic builder is used without buildx", {
      field: "version",
    });
  if (!bool(q, "rm", true)) {
    throw new NotSupportedError("--rm=false is not supported: this builder always removes its intermediate containers", { field: "rm" });
  }
  const mode = q.get("networkmode") ?? "";
  let network: "new" | "host";
  if (mode === "" || mode === "default" || mode === "none") network = "new";
  else if (mode === "host") network = "host";
  else
    throw new NotSupportedError(
      `--network=${mode} is not supported for builds: RUN steps have no network (default, like none) or the host's (--network host)`,
      { field: "networkmode" },
    );

  const buildArgs = new Map<string, string | null>(Object.entries(jsonParam<Record<string, string | null>>(q, "buildargs", {})));
  const labels = jsonParam<Record<string, string>>(q, "labels", {});
  const dockerfile = (q.get("dockerfile") || "Dockerfile").replace(/^\.\//, "");
  if (dockerfile.startsWith("/") || dockerfile.split("/").includes("..")) {
    throw new InvalidError(`the Dockerfile (${dockerfile}) must be within the build context`, { field: "dockerfile" });
  }
  return {
    tags: q.getAll("t").filter(Boolean),
    dockerfile,
    buildArgs,
    labels,
    target: q.get("target") ?? "",
    noCache: bool(q, "nocache", false),
    pull: bool(q, "pull", false),
    quiet: bool(q, "q", false),
    network,
  };
}
