"use strict";
// Flotilla agent bundle: starts agent.js (next to this file) with V8's code cache agent.jsc, made
// when the bundle was built by running the same pinned runtime (scripts/build-agent-bundle.mjs).
// Node 20 has no compile cache of its own (module.enableCompileCache is Node >= 22.1), and under
// software emulation (a VM under TCG) compiling the ~1.5 MB bundle takes seconds. A cache V8
// rejects (another runtime, other flags) only costs that compile: it is checked, never trusted.
//
//   node agent-boot.cjs ARGS...                 runs the agent
//   FLOTILLA_WRITE_CODE_CACHE=FILE node agent-boot.cjs --help
//                                               also writes the cache when the process exits
const { readFileSync, writeFileSync } = require("node:fs");
const Module = require("node:module");
const { join } = require("node:path");
const vm = require("node:vm");

const file = join(__dirname, "agent.js");
let cachedData;
try {
  cachedData = readFileSync(join(__dirname, "agent.jsc"));
} catch {
  cachedData = undefined;
}
const script = new vm.Script(Module.wrap(readFileSync(file, "utf8")), { filename: file, cachedData });
const out = process.env.FLOTILLA_WRITE_CODE_CACHE;
if (out) {
  delete process.env.FLOTILLA_WRITE_CODE_CACHE;
  // After the run: the cache then holds every function compiled so far, not only the top level.
  process.on("exit", () => writeFileSync(out, script.createCachedData()));
}
if (process.env.FLOTILLA_CODE_CACHE_DEBUG)
  process.stderr.write(`agent-boot: code cache ${cachedData ? (script.cachedDataRejected ? "rejected" : "used") : "absent"}\n`);
const agent = new Module(file, module);
agent.filename = file;
agent.paths = Module._nodeModulePaths(__dirname);
script.runInThisContext().call(agent.exports, agent.exports, Module.createRequire(file), agent, file, __dirname);
