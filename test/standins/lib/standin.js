// Shared plumbing of the recording stand-ins (VBoxManage, powershell.exe): the call log, the
// state file, injected failures. Plain Node, no dependencies.
//
// Environment:
//   FLOTILLA_STANDIN_LOG  file to append one JSON line per call: {tool, argv, caller?, stdinBytes?}
//   STANDIN_STATE         directory holding the tools' state (vbox.json, hyperv.json); default: a
//                         directory next to the log, or the OS temp dir
//   STANDIN_CALLER        copied into each log line (tells parallel callers apart)
//   STANDIN_FAIL          comma-separated calls to fail: "createvm", "storageattach:hdd",
//                         "controlvm:acpipowerbutton" (the part after ":" must be one of the
//                         arguments), or PowerShell cmdlets "New-VM", "Stop-VM:-TurnOff"
//   STANDIN_DELAY_MS      sleep this long in every call (makes races visible)
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const os = require("node:os");

function sleepMs(ms) {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

function stateDir() {
  const dir =
    process.env.STANDIN_STATE ||
    (process.env.FLOTILLA_STANDIN_LOG
      ? path.join(path.dirname(process.env.FLOTILLA_STANDIN_LOG), "standin-state")
      : path.join(os.tmpdir(), "flotilla-standin-state"));
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function record(tool, argv, extra) {
  const log = process.env.FLOTILLA_STANDIN_LOG;
  if (!log) return;
  const line = { tool, argv, ...(process.env.STANDIN_CALLER ? { caller: process.env.STANDIN_CALLER } : {}), ...extra };
  fs.appendFileSync(log, JSON.stringify(line) + "\n");
}

/** Runs fn(state) under a directory lock and saves what it returns (or the mutated state). */
function withState(file, initial, fn) {
  const dir = stateDir();
  const lock = path.join(dir, file + ".lock");
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, "pid"), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
      // Callers kill stand-ins on abort and timeout; a lock whose owner is gone is taken over.
      let owner;
      try {
        owner = Number(fs.readFileSync(path.join(lock, "pid"), "utf8"));
      } catch {
        owner = undefined;
      }
      if ((owner && !alive(owner)) || Date.now() > deadline) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      sleepMs(5);
    }
  }
  try {
    const p = path.join(dir, file);
    let state;
    try {
      state = JSON.parse(fs.readFileSync(p, "utf8"));
    } catch {
      state = initial();
    }
    const result = fn(state);
    const tmp = `${p}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(state, null, 1));
    fs.renameSync(tmp, p);
    return result;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The STANDIN_FAIL entry matching this call, if any. `name` is the subcommand or cmdlet. */
function injectedFailure(name, args) {
  const spec = process.env.STANDIN_FAIL;
  if (!spec) return undefined;
  for (const raw of spec.split(",")) {
    const m = raw.trim();
    if (!m) continue;
    const [what, arg] = m.split(":");
    if (what.toLowerCase() !== String(name).toLowerCase()) continue;
    if (arg === undefined || args.includes(arg)) return m;
  }
  return undefined;
}

/** Thrown by handlers to end the call like the real tool does on error. */
class ToolError extends Error {
  constructor(stderr, code = 1) {
    super(stderr);
    this.stderr = stderr;
    this.code = code;
  }
}

function main(tool, handler) {
  const argv = process.argv.slice(2);
  let stdin;
  const wantsStdin = handler.readsStdin && handler.readsStdin(argv);
  if (wantsStdin) stdin = fs.readFileSync(0);
  record(tool, argv, stdin ? { stdinBytes: stdin.length } : {});
  sleepMs(Number(process.env.STANDIN_DELAY_MS || 0));
  try {
    const out = handler.run(argv, stdin);
    if (out) process.stdout.write(out.endsWith("\n") ? out : out + "\n");
    process.exitCode = 0;
  } catch (e) {
    if (e instanceof ToolError) {
      process.stderr.write(e.stderr.endsWith("\n") ? e.stderr : e.stderr + "\n");
      process.exitCode = e.code;
    } else {
      process.stderr.write(`${tool} stand-in crashed: ${e && e.stack ? e.stack : e}\n`);
      process.exitCode = 70;
    }
  }
}

module.exports = { main, withState, injectedFailure, ToolError, sleepMs, stateDir };
