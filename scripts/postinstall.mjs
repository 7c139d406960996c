// Runs after `npm install`/`npm ci`: everything a fresh clone needs that npm itself does not do.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: "inherit", ...opts });

process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= "/bin/false";
run("npx", ["--no-install", "prisma", "generate"]);

// The native container shim is part of the agent; build it wherever it exists.
if (existsSync("agent/shim/Makefile")) run("make", ["-C", "agent/shim", "-s"]);
