/**
 * The classic builder behind `POST /build`: the context is unpacked, the Dockerfile parsed, and
 * each instruction of each stage (up to --target) becomes one step that either reuses a cached
 * image ("Using cache") or makes a new one from its parent: metadata steps change the config
 * only, RUN runs in a shim container and keeps its changes as a layer, COPY/ADD lay files out as
 * a layer. Every step's image is recorded with its parent, so a rebuild finds them again.
 *
 *   context ─► Dockerfile ─► stages ─► FROM (store or pull) ─► step … step ─► tags
 *                                       cache key = parent + history line + config (+ content)
 *
 * A failed build leaves no container, mount or half-written layer: containers are the shim's
 * (gone when it exits), work directories live in the store's tmp/ and are removed in `finally`,
 * and layers land in the store by rename only once complete.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { resolveUser } from "../containers/rootfs-files";
import type { ImageStore } from "../images";
import { ImageNotFoundError } from "../images/errors";
import type { LayerRef } from "../images/image-index";
import type { ImageConfigJson } from "../images/media-types";
import { shortId } from "../images/progress";
import { familiarize, parseReference, canonicalReference } from "../images/reference";
import type { BuildOptions } from "./build-options";
import { stepCacheKey } from "./cache-key";
import { applyDockerignore, receiveContext } from "./context";
import { planCopy } from "./copy";
import { parseDockerfile, parseInstruction, type Command, type CommandLine } from "./dockerfile";
import { ImageFs } from "./image-fs";
import { applyMetadata, BUILTIN_ARGS, nopCreatedBy, runArgsPrefix, toArgv, type RunConfig } from "./instructions";
import { directoryLayerTar } from "./layer-diff";
import { RUNTIME_MOUNT_POINTS, runStep, upperHasChanges } from "./run-step";
import { envLookup, processWord, type Lookup } from "./shell-lexer";
import {
  BuildError,
  entriesTar,
  scopeArgs,
  scratchConfig,
  splitStages,
  type BuildOutput,
  type BuildRequest,
  type DispatchContext,
  type State,
} from "./build-state";
import type { CopyEntry } from "./copy";

export { BuildError, isUserError } from "./build-state";
export type { BuildOutput, BuildRequest } from "./build-state";

export interface BuilderDeps {
  images: ImageStore;
  shimPath: string;
  /** Largest build context accepted, in bytes. */
  contextLimit: number;
}

export class Builder {
  constructor(private readonly deps: BuilderDeps) {}

  /** Runs one build; resolves with the final image ID. BuildError and domain errors for the user. */
  async build(context: AsyncIterable<Buffer>, req: BuildRequest, out: BuildOutput): Promise<string> {
    const { images } = this.deps;
    const opts = req.options;
    const tags = opts.tags.map((t) => {
      const ref = parseReference(t);
      if (ref.digest) throw new BuildError(`invalid reference format: ${t} (a tag, not a digest)`);
      return canonicalReference(ref);
    });
    const work = join(images.blobs.tmpDir, `build-${randomBytes(6).toString("hex")}`);
    const releases: Array<() => void> = [];
    try {
      const ctxDir = join(work, "context");
      await fs.mkdir(ctxDir, { recursive: true, mode: 0o755 });
      await receiveContext(context, ctxDir, this.deps.contextLimit);
      await applyDockerignore(ctxDir, opts.dockerfile);
      let text: string;
      try {
        text = await fs.readFile(join(ctxDir, opts.dockerfile), "utf8");
      } catch {
        throw new BuildError(`Cannot locate specified Dockerfile: ${opts.dockerfile}`);
      }
      const parsed = parseDockerfile(text);
      if (parsed.commands.length === 0) throw new BuildError(`the Dockerfile (${opts.dockerfile}) cannot be empty`);
      const { meta, stages } = splitStages(parsed.commands);
      let targetIndex = stages.length - 1;
      if (opts.target) {
        targetIndex = stages.findIndex((s) => s.name === opts.target.toLowerCase());
        if (targetIndex < 0) throw new BuildError(`failed to reach build target ${opts.target} in Dockerfile`);
      }
      const labelKeys = Object.keys(opts.labels);
      if (labelKeys.length) {
        const line = `LABEL ${labelKeys.map((k) => `${JSON.stringify(k)}=${JSON.stringify(opts.labels[k])}`).join(" ")}`;
        stages[targetIndex]!.commands.push(parseInstruction(line, "\\", 0));
      }
      const total = meta.length + stages.slice(0, targetIndex + 1).reduce((n, s) => n + 1 + s.commands.length, 0);
      let step = 0;
      const announce = (c: Command) => out.stream(`Step ${++step}/${total} : ${c.original}\n`);
      const consumed = new Set<string>();
      const argValue = (name: string, fallback: string | undefined): string | undefined => {
        consumed.add(name);
        if (opts.buildArgs.has(name) && opts.buildArgs.get(name) !== null) return opts.buildArgs.get(name)!;
        return fallback;
      };

      const metaArgs = new Map<string, string | undefined>();
      for (const c of meta) {
        announce(c);
        if (c.kind !== "ARG") continue;
        for (const a of c.args) {
          const lookup = envLookup([...metaArgs].filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`));
          metaArgs.set(a.name, argValue(a.name, a.value === undefined ? undefined : processWord(a.value, lookup, parsed.escape)));
        }
      }
      const metaLookup: Lookup = (n) => metaArgs.get(n);

      const results: Array<{ name?: string; imageId: string; state: State }> = [];
      let final: State | undefined;
      for (let i = 0; i <= targetIndex; i++) {
        const stage = stages[i]!;
        announce(stage.from);
        const state = await this.from(stage.from, processWord(stage.from.image, metaLookup, parsed.escape), results, opts, req, out);
        const triggers = (state.run.OnBuild ?? []).map((t) => parseInstruction(t, parsed.escape, stage.from.line));
        if (triggers.length) {
          out.stream(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? "s" : ""}\n`);
          state.run = { ...state.run, OnBuild: null };
        }
        for (const c of [...triggers, ...stage.commands]) {
          if (!triggers.includes(c)) announce(c);
          await this.dispatch(c, state, { escape: parsed.escape, metaArgs, argValue, ctxDir, work, results, opts, req, out, releases });
        }
        results.push({ name: stage.name, imageId: state.imageId, state });
        final = state;
      }
      const id = final!.imageId;
      if (!id) throw new BuildError("No image was generated. Is your Dockerfile empty?");
      const unused = [...opts.buildArgs.keys()].filter((k) => !consumed.has(k) && !BUILTIN_ARGS.has(k));
      if (unused.length) out.stream(`[Warning] One or more build-args [${unused.join(" ")}] were not consumed\n`);
      for (const t of tags) await images.tag(id, t);
      out.aux({ ID: id });
      out.stream(`Successfully built ${shortId(id)}\n`);
      for (const t of tags) out.stream(`Successfully tagged ${familiarize(t)}\n`);
      return id;
    } finally {
      for (const r of releases) r();
      await fs.rm(work, { recursive: true, force: true });
    }
  }

  /** FROM: a previous stage, scratch, a stored image, or a pull. */
  private async from(
    cmd: Extract<Command, { kind: "FROM" }>,
    image: string,
    stages: ReadonlyArray<{ name?: string; imageId: string; state: State }>,
    opts: BuildOptions,
    req: BuildRequest,
    out: BuildOutput,
  ): Promise<State> {
    const fresh = (imageId: string, config: ImageConfigJson, layers: LayerRef[]): State => ({
      imageId,
      config,
      run: structuredClone(config.config ?? {}) as RunConfig,
      layers,
      args: new Map(),
      cmdSet: false,
    });
    const stage = stages.find((s) => s.name !== undefined && s.name === image.toLowerCase());
    if (stage) {
      out.stream(` ---> ${shortId(stage.imageId)}\n`);
      return fresh(stage.imageId, structuredClone(stage.state.config), [...stage.state.layers]);
    }
    if (image === "scratch") {
      out.stream(" ---> \n");
      return fresh("", scratchConfig(), []);
    }
    if (!image) throw new BuildError(`dockerfile parse error on line ${cmd.line}: base name (${cmd.image}) should not be blank`);
    const id = await this.ensureImage(image, opts.pull, req, out);
    out.stream(` ---> ${shortId(id)}\n`);
    return fresh(id, structuredClone(await this.deps.images.imageConfig(id)), [...this.deps.images.record(id).layers]);
  }

  private async ensureImage(image: string, pull: boolean, req: BuildRequest, out: BuildOutput): Promise<string> {
    const { images } = this.deps;
    if (!pull) {
      try {
        return images.record(image).id;
      } catch (e) {
        if (!(e instanceof ImageNotFoundError)) throw e;
      }
    }
    const ref = parseReference(image);
    const result = await images.pull(image, {
      onProgress: (m) => out.status(m),
      credentials: req.credentials?.(ref.domain),
      signal: req.signal,
    });
    return result.id;
  }

  private async dispatch(c: Command, state: State, ctx: DispatchContext): Promise<void> {
    const { opts, out } = ctx;
    const lookup = () => envLookup(scopeArgs(state, false), state.run.Env ?? []);
    switch (c.kind) {
      case "ARG": {
        for (const a of c.args) {
          const fallback = a.value !== undefined ? processWord(a.value, lookup(), ctx.escape) : ctx.metaArgs.get(a.name);
          state.args.set(a.name, ctx.argValue(a.name, fallback));
        }
        const comment = `ARG ${c.args.map((a) => (a.value !== undefined ? `${a.name}=${a.value}` : a.name)).join(" ")}`;
        return this.metadataStep(
          state,
          nopCreatedBy(state.run, comment),
          state.run,
          undefined,
          opts.noCache,
          out,
          scopeArgs(state, false).join(","),
        );
      }
      case "RUN":
        return this.runStepFor(c, state, ctx);
      case "COPY":
      case "ADD":
        return this.copyStep(c, state, ctx);
      case "FROM":
        throw new BuildError("unexpected FROM");
      case "WORKDIR": {
        const r = applyMetadata(c, state.run, lookup(), ctx.escape, state);
        const createdBy = nopCreatedBy(state.run, r.comment);
        const key = stepCacheKey(state.imageId, createdBy, r.config);
        if (await this.hit(key, state, opts.noCache, out)) return;
        // Like Docker, WORKDIR creates its directory when the image does not have it.
        const fsys = new ImageFs(await this.lowerDirs(state));
        const rel = await fsys.resolve(r.config.WorkingDir!.slice(1), true);
        const missing: CopyEntry[] = [];
        const parts = rel ? rel.split("/") : [];
        for (let i = 1; i <= parts.length; i++) {
          const p = parts.slice(0, i).join("/");
          const node = await fsys.lookup(p);
          if (node?.stat.isDirectory())
            missing.push({
              header: {
                path: p,
                type: "directory",
                size: 0,
                mode: node.stat.mode & 0o7777,
                uid: node.stat.uid,
                gid: node.stat.gid,
                mtime: Math.floor(node.stat.mtimeMs / 1000),
              },
            });
          else
            missing.push({
              header: { path: p, type: "directory", size: 0, mode: 0o755, uid: 0, gid: 0, mtime: Math.floor(Date.now() / 1000) },
            });
        }
        const node = rel ? await fsys.lookup(rel) : null;
        const layer = rel && !node?.stat.isDirectory() ? await this.addLayer(entriesTar(missing), ctx) : undefined;
        return this.commit(state, { createdBy, run: r.config, layer, cacheKey: key }, out);
      }
      default: {
        const r = applyMetadata(c, state.run, lookup(), ctx.escape, state);
        return this.metadataStep(state, nopCreatedBy(state.run, r.comment), r.config, r.author, opts.noCache, out);
      }
    }
  }

  /** On a cache hit, moves the stage to the cached image and says so. */
  private async hit(key: string, state: State, noCache: boolean, out: BuildOutput): Promise<boolean> {
    const cached = noCache ? undefined : this.deps.images.cached(key);
    if (!cached) return false;
    const record = this.deps.images.record(cached);
    out.stream(" ---> Using cache\n");
    out.stream(` ---> ${shortId(cached)}\n`);
    state.imageId = cached;
    state.layers = [...record.layers];
    state.config = structuredClone(await this.deps.images.imageConfig(cached));
    state.run = structuredClone(state.config.config ?? {}) as RunConfig;
    return true;
  }

  private async metadataStep(
    state: State,
    createdBy: string,
    run: RunConfig,
    author: string | undefined,
    noCache: boolean,
    out: BuildOutput,
    extra = "",
  ): Promise<void> {
    const key = stepCacheKey(state.imageId, createdBy, run, extra);
    if (await this.hit(key, state, noCache, out)) return;
    await this.commit(state, { createdBy, run, author, cacheKey: key }, out);
  }

  private async commit(
    state: State,
    step: { createdBy: string; run: RunConfig; layer?: LayerRef; author?: string; cacheKey: string },
    out: BuildOutput,
  ): Promise<void> {
    const created = new Date().toISOString();
    const {
      container: _c,
      container_config: _cc,
      ...base
    } = state.config as ImageConfigJson & { container?: unknown; container_config?: unknown };
    void _c;
    void _cc;
    const config: ImageConfigJson = {
      ...base,
      created,
      ...(step.author !== undefined ? { author: step.author } : {}),
      config: step.run,
      rootfs: { type: "layers", diff_ids: [...(state.config.rootfs?.diff_ids ?? []), ...(step.layer ? [step.layer.diffId] : [])] },
      history: [...(state.config.history ?? []), { created, created_by: step.createdBy, ...(step.layer ? {} : { empty_layer: true }) }],
    };
    const layers = [...state.layers, ...(step.layer ? [step.layer] : [])];
    const id = await this.deps.images.commitImage({ config, layers, parent: state.imageId || undefined, cacheKey: step.cacheKey });
    out.stream(` ---> ${shortId(id)}\n`);
    state.imageId = id;
    state.config = config;
    state.run = structuredClone(step.run);
    state.layers = layers;
  }

  private async lowerDirs(state: State): Promise<string[]> {
    return state.imageId ? (await this.deps.images.resolve(state.imageId)).lowerDirs : [];
  }

  private async addLayer(tar: AsyncIterable<Buffer>, ctx: DispatchContext): Promise<LayerRef> {
    const { ref, release } = await this.deps.images.addLayer(tar);
    ctx.releases.push(release);
    return ref;
  }

  private async runStepFor(c: { command: CommandLine }, state: State, ctx: DispatchContext): Promise<void> {
    const argv = toArgv(c.command, state.run);
    const env = state.run.Env ?? [];
    const inEnv = new Set(env.map((e) => e.split("=", 1)[0]));
    const declared = new Map([...state.args].filter(([k, v]) => v !== undefined && !inEnv.has(k)) as Array<[string, string]>);
    const builtin = [...ctx.opts.buildArgs]
      .filter(([k, v]) => BUILTIN_ARGS.has(k) && v !== null && !declared.has(k) && !inEnv.has(k))
      .map(([k, v]) => `${k}=${v}`);
    const createdBy = `${runArgsPrefix(declared)}${argv.join(" ")}`;
    const key = stepCacheKey(state.imageId, createdBy, state.run);
    if (await this.hit(key, state, ctx.opts.noCache, ctx.out)) return;
    const lowerDirs = await this.lowerDirs(state);
    let user: string;
    try {
      user = await resolveUser(state.run.User ?? "", lowerDirs);
    } catch (e) {
      throw new BuildError(`failed to run the command: ${(e as Error).message}`);
    }
    const result = await runStep(
      {
        shimPath: this.deps.shimPath,
        workRoot: ctx.work,
        lowerDirs,
        argv,
        env: [...env, ...[...declared].map(([k, v]) => `${k}=${v}`), ...builtin],
        workdir: state.run.WorkingDir ?? "",
        user,
        netns: ctx.opts.network,
        onOutput: (text) => ctx.out.stream(text),
      },
      (id) => ctx.out.stream(` ---> Running in ${id.slice(0, 12)}\n`),
    );
    try {
      if (result.exitCode !== 0)
        throw new BuildError(`The command '${argv.join(" ")}' returned a non-zero code: ${result.exitCode}`, result.exitCode);
      const layer = (await upperHasChanges(result.upper))
        ? await this.addLayer(directoryLayerTar(result.upper, { exclude: (rel) => RUNTIME_MOUNT_POINTS.has(rel) }), ctx)
        : undefined;
      ctx.out.stream(` ---> Removed intermediate container ${result.id.slice(0, 12)}\n`);
      await this.commit(state, { createdBy, run: state.run, layer, cacheKey: key }, ctx.out);
    } finally {
      await result.cleanup();
    }
  }

  private async copyStep(c: Extract<Command, { kind: "COPY" | "ADD" }>, state: State, ctx: DispatchContext): Promise<void> {
    const lookup = envLookup(scopeArgs(state, false), state.run.Env ?? []);
    const expand = (s: string) => processWord(s, lookup, ctx.escape);
    const sources = c.sources.map(expand);
    const dest = expand(c.dest);
    const lowerDirs = await this.lowerDirs(state);
    let from = new ImageFs([join(ctx.work, "context")]);
    let fromContext = true;
    if (c.flags.from !== undefined) {
      if (c.kind === "ADD") throw new BuildError("ADD --from is not supported");
      const name = expand(c.flags.from).toLowerCase();
      const byIndex = /^\d+$/.test(name) ? ctx.results[Number(name)] : undefined;
      const stage = byIndex ?? ctx.results.find((r) => r.name === name);
      const imageId = stage ? stage.imageId : await this.ensureImage(name, false, ctx.req, ctx.out);
      from = new ImageFs(imageId ? (await this.deps.images.resolve(imageId)).lowerDirs : []);
      fromContext = false;
    }
    let owner: { uid: number; gid: number } | undefined;
    if (c.flags.chown) {
      const spec = expand(c.flags.chown);
      try {
        const [uid, gid] = (await resolveUser(spec, lowerDirs)).split(":").map(Number) as [number, number];
        owner = { uid, gid: spec.includes(":") ? gid : uid };
      } catch (e) {
        throw new BuildError(`${c.kind} failed: ${(e as Error).message}`);
      }
    }
    const image = new ImageFs(lowerDirs);
    if (c.kind === "ADD" && fromContext) {
      const { planArchiveAdd } = await import("./add-archive");
      const archive = await planArchiveAdd(sources, dest, state.run.WorkingDir ?? "", from, image);
      if (archive) {
        const comment = `ADD ${archive.contentId} in ${dest} `;
        const createdBy = nopCreatedBy(state.run, comment);
        const key = stepCacheKey(state.imageId, createdBy, state.run, c.flags.chown ?? "");
        if (await this.hit(key, state, ctx.opts.noCache, ctx.out)) return;
        const layer = await this.addLayer(archive.tar(), ctx);
        return this.commit(state, { createdBy, run: state.run, layer, cacheKey: key }, ctx.out);
      }
    }
    const plan = await planCopy({ kind: c.kind, sources, dest, from, fromContext, image, workdir: state.run.WorkingDir ?? "", owner });
    const comment = `${c.kind} ${plan.contentId} in ${dest} `;
    const createdBy = nopCreatedBy(state.run, comment);
    const key = stepCacheKey(state.imageId, createdBy, state.run, `${c.flags.chown ?? ""}|${owner ? `${owner.uid}:${owner.gid}` : ""}`);
    if (await this.hit(key, state, ctx.opts.noCache, ctx.out)) return;
    const layer = await this.addLayer(entriesTar(plan.entries), ctx);
    await this.commit(state, { createdBy, run: state.run, layer, cacheKey: key }, ctx.out);
  }
}
