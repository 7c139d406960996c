/**
 * The builder's bookkeeping: stages split from the Dockerfile, the state of the stage being
 * built, what a step needs from the build around it, and the layer tar of a COPY plan.
 */
import { createReadStream } from "node:fs";
import { DomainError } from "@flotilla/core";
import type { Credentials, ProgressMessage } from "../images";
import type { LayerRef } from "../images/image-index";
import type { ImageConfigJson } from "../images/media-types";
import type { BuildOptions } from "./build-options";
import type { CopyEntry } from "./copy";
import { InstructionError, type Command } from "./dockerfile";
import type { RunConfig } from "./instructions";
import { TAR_END, tarHeader, tarPadding } from "./tar-writer";

/** A step failed; `code` is the command's exit code for a failing RUN. */
export class BuildError extends Error {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
    this.name = "BuildError";
  }
}

export interface Stage {
  name?: string;
  from: Extract<Command, { kind: "FROM" }>;
  commands: Command[];
}

export interface State {
  imageId: string;
  config: ImageConfigJson;
  run: RunConfig;
  layers: LayerRef[];
  /** ARGs declared in this stage and their values (undefined: declared without one). */
  args: Map<string, string | undefined>;
  cmdSet: boolean;
}

export function splitStages(commands: readonly Command[]): { meta: Command[]; stages: Stage[] } {
  const meta: Command[] = [];
  const stages: Stage[] = [];
  for (const c of commands) {
    if (c.kind === "FROM") stages.push({ name: c.stage, from: c, commands: [] });
    else if (stages.length === 0) {
      if (c.kind !== "ARG") throw new BuildError(`dockerfile parse error on line ${c.line}: no build stage in current context`);
      meta.push(c);
    } else stages[stages.length - 1]!.commands.push(c);
  }
  if (stages.length === 0) throw new BuildError("no build stage in current context");
  return { meta, stages };
}

export function scratchConfig(): ImageConfigJson {
  return { architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [] }, history: [] };
}

export async function* entriesTar(entries: readonly CopyEntry[]): AsyncGenerator<Buffer> {
  for (const e of entries) {
    yield tarHeader(e.header);
    if (e.source && e.header.type === "file") {
      let n = 0;
      for await (const chunk of createReadStream(e.source)) {
        const part = (chunk as Buffer).subarray(0, Math.max(0, e.header.size - n));
        n += part.length;
        if (part.length) yield part;
      }
      if (n < e.header.size) yield Buffer.alloc(e.header.size - n);
      yield tarPadding(e.header.size);
    }
  }
  yield TAR_END;
}

export interface DispatchContext {
  escape: string;
  metaArgs: ReadonlyMap<string, string | undefined>;
  argValue: (name: string, fallback: string | undefined) => string | undefined;
  ctxDir: string;
  work: string;
  results: ReadonlyArray<{ name?: string; imageId: string; state: State }>;
  opts: BuildOptions;
  req: BuildRequest;
  out: BuildOutput;
  releases: Array<() => void>;
}

/** `K=V` for the stage's ARGs with values (expansion sees them under ENV). */
export function scopeArgs(state: State, _withUnset: boolean): string[] {
  return [...state.args].filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
}

/** Errors a user caused, as the builder reports them (kept apart from internal failures). */
export function isUserError(e: unknown): boolean {
  return (
    e instanceof BuildError ||
    e instanceof InstructionError ||
    e instanceof DomainError ||
    (e instanceof Error && e.name === "DockerfileParseError") ||
    (e instanceof Error && e.name === "ExpansionError")
  );
}

export interface BuildOutput {
  /** Text for the terminal ({"stream": …}). */
  stream(text: string): void;
  /** Pull progress of a base image. */
  status(message: ProgressMessage): void;
  aux(value: unknown): void;
}

export interface BuildRequest {
  options: BuildOptions;
  /** Credentials for pulling base images (X-Registry-Config), per registry domain. */
  credentials?: (domain: string) => Credentials | undefined;
  signal?: AbortSignal;
}
