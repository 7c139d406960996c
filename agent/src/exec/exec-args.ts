/**
 * POST /containers/{id}/exec: the request validated (pure), and the `flotilla-shim exec` command
 * line that runs it with the container's environment, user and working directory unless the
 * request overrides them — as dockerd does.
 */
import { InvalidError, NotSupportedError } from "@flotilla/core";
import { mergeEnv } from "../containers/create-request";
import type { ContainerRecord } from "../containers/container-types";
import { parseDetachKeys } from "./detach-keys";

/** The request body the docker CLI sends. */
export interface ExecCreateBody {
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  Cmd?: string[] | string | null;
  Env?: string[] | null;
  User?: string;
  WorkingDir?: string;
  Privileged?: boolean;
  DetachKeys?: string;
  ConsoleSize?: [number, number] | null;
}

/** What an exec runs, validated. */
export interface ExecSpec {
  cmd: string[];
  env: string[];
  user: string;
  workingDir: string;
  tty: boolean;
  attachStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  detachKeys: string;
  consoleSize: [number, number] | null;
}

/** Validates the body (Docker's messages); NotSupported for --privileged. */
export function parseExecCreate(body: ExecCreateBody): ExecSpec {
  const cmd = typeof body.Cmd === "string" ? [body.Cmd] : body.Cmd;
  if (!Array.isArray(cmd) || cmd.length === 0 || cmd.some((a) => typeof a !== "string"))
    throw new InvalidError("No exec command specified", { field: "Cmd" });
  if (body.Privileged)
    throw new NotSupportedError(
      "privileged exec (docker exec --privileged) is not supported by this agent: an exec gets the container's capabilities, no more",
      { field: "Privileged" },
    );
  const env = body.Env ?? [];
  if (!Array.isArray(env) || env.some((e) => typeof e !== "string" || !e || e.startsWith("=")))
    throw new InvalidError(`invalid environment variable: ${String(env.find((e) => !e || e.startsWith("=")) ?? "")}`, { field: "Env" });
  const workingDir = body.WorkingDir ?? "";
  if (workingDir && !workingDir.startsWith("/"))
    throw new InvalidError(`the working directory '${workingDir}' is invalid, it needs to be an absolute path`, { field: "WorkingDir" });
  if (workingDir.split("/").includes(".."))
    throw new InvalidError(`the working directory '${workingDir}' is invalid: no '..' allowed`, { field: "WorkingDir" });
  if (body.DetachKeys) parseDetachKeys(body.DetachKeys);
  const size = body.ConsoleSize;
  return {
    cmd,
    env,
    user: body.User ?? "",
    workingDir,
    tty: !!body.Tty,
    attachStdin: !!body.AttachStdin,
    attachStdout: !!body.AttachStdout,
    attachStderr: !!body.AttachStderr,
    detachKeys: body.DetachKeys ?? "",
    consoleSize: Array.isArray(size) && size.length === 2 && size.every((n) => Number.isInteger(n) && n >= 0) ? [size[0], size[1]] : null,
  };
}

/** The process environment: the container's, HOSTNAME, TERM with a tty, then the exec's -e. */
export function execEnv(c: ContainerRecord, spec: ExecSpec): string[] {
  const base = [`HOSTNAME=${c.config.Hostname}`, ...(spec.tty ? ["TERM=xterm"] : []), ...c.config.Env];
  return mergeEnv(base, spec.env);
}

export interface ShimExecInput {
  execId: string;
  stateDir: string;
  /** The container init's host pid and cgroup (from its shim's state.json). */
  pid: number;
  cgroup: string;
  /** `UID:GID` or "" for root. */
  user: string;
  attachWait: boolean;
}

/** Arguments after `exec`. */
export function shimExecArgs(c: ContainerRecord, spec: ExecSpec, input: ShimExecInput): string[] {
  const args = ["--id", input.execId, "--state-dir", input.stateDir, "--pid", String(input.pid), "--cgroup", input.cgroup, "--attach"];
  if (spec.tty) args.push("--tty");
  // Docker closes an exec's stdin when its client's stdin ends.
  if (spec.attachStdin) args.push("--stdin", "--stdin-once");
  if (input.attachWait) args.push("--attach-wait");
  for (const e of execEnv(c, spec)) args.push("--env", e);
  args.push("--cwd", spec.workingDir || c.config.WorkingDir || "/");
  if (input.user) args.push("--user", input.user);
  args.push("--", ...spec.cmd);
  return args;
}
