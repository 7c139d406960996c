import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";
import { join } from "node:path";

// The import boundaries of docs/architecture.md and the typed promise rules, checked through the
// project's real ESLint config. Each probe lints its text as if it were an existing file of the
// folder under test: typed linting (projectService) only knows files a tsconfig includes.
const root = join(__dirname, "..", "..");
const eslint = new ESLint({ cwd: root });

async function messagesFor(file: string, code: string, rule: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, file) });
  const fatal = result.messages.filter((m) => m.fatal);
  if (fatal.length) throw new Error(`${file}: ${fatal.map((m) => m.message).join("; ")}`);
  return result.messages.filter((m) => m.ruleId === rule).map((m) => m.message);
}
const errorsFor = (file: string, code: string) => messagesFor(file, code, "no-restricted-imports");
// The first probe in each tsconfig project builds that project's type program (seconds, longer on
// a loaded machine); the bound is for that, not for the rules.
const TIMEOUT = { timeout: 60_000 };

// An existing file in each room.
const CORE = "libs/core/src/errors.ts";
const DRIVERS = "libs/drivers/src/poll.ts";
const PROVISION = "libs/provision/src/host-os.ts";
const ENGINE_CLIENT = "libs/engine-client/src/errors.ts";
const AGENT_ROOT = "agent/src/config.ts";
const AGENT_DOMAIN = "agent/src/containers/container-filters.ts";
const AGENT_API = "agent/src/api/router.ts";

describe("import boundaries", TIMEOUT, () => {
  it.each([
    ['import { readFileSync } from "node:fs";'],
    ['import { Injectable } from "@nestjs/common";'],
    ['import { PrismaClient } from "@prisma/client";'],
    ['import { Queue } from "bullmq";'],
    ['import IORedis from "ioredis";'],
    ['import { Client } from "ssh2";'],
    ['import { x } from "@flotilla/drivers";'],
  ])("libs/core may not: %s", async (line) => {
    expect(await errorsFor(CORE, `${line}\nexport const probe = 1;\n`)).toEqual([expect.stringMatching(/libs\/core is pure/)]);
  });

  it("libs/core may import its own files", async () => {
    expect(await errorsFor(CORE, 'import { parseMemory } from "./parsers";\nexport const probe = parseMemory;\n')).toEqual([]);
  });

  it("apps never import each other", async () => {
    expect(
      await errorsFor("apps/ctl/src/output.ts", 'import { start } from "../../api/src/bootstrap";\nexport const probe = start;\n'),
    ).toEqual([expect.stringMatching(/apps never import each other/)]);
    expect(await errorsFor("apps/api/src/version.ts", 'import { run } from "@flotilla/ctl";\nexport const probe = run;\n')).toEqual([
      expect.stringMatching(/apps never import each other/),
    ]);
  });

  it.each([
    [DRIVERS, 'import { Injectable } from "@nestjs/common";', /libs\/drivers may import/],
    [DRIVERS, 'import { x } from "@flotilla/provision";', /libs\/drivers may import/],
    [DRIVERS, 'import { x } from "@flotilla/engine-client";', /libs\/drivers may import/],
    [DRIVERS, 'import { x } from "../../provision/src/provision";', /by its package name/],
    [PROVISION, 'import { Queue } from "bullmq";', /libs\/provision may import/],
    [PROVISION, 'import { x } from "@flotilla/engine-client";', /libs\/provision may import/],
    [PROVISION, 'import { x } from "../../drivers/src/ssh";', /by its package name/],
    [ENGINE_CLIENT, 'import { Client } from "ssh2";', /libs\/engine-client may import/],
    [ENGINE_CLIENT, 'import { x } from "@flotilla/drivers";', /libs\/engine-client may import/],
    ["libs/sse/src/index.ts", 'import { readFileSync } from "node:fs";', /libs\/sse runs in the browser and in Node/],
    ["libs/sse/src/index.ts", 'import { x } from "@flotilla/core";', /libs\/sse runs in the browser and in Node/],
    ["apps/console/src/format.ts", 'import { x } from "@flotilla/core";', /the console talks REST/],
    [AGENT_ROOT, 'import { x } from "@flotilla/drivers";', /the agent may import/],
    [AGENT_ROOT, 'import IORedis from "ioredis";', /the agent may import/],
    [AGENT_ROOT, 'import { x } from "../../libs/provision/src";', /by its package name/],
    [AGENT_DOMAIN, 'import { x } from "@flotilla/api-types";', /the agent may import/],
    [AGENT_DOMAIN, 'import { sendJson } from "../api/http-util";', /never imports its HTTP layer/],
    ["agent/src/images/reference.ts", 'import { Router } from "../api/router";', /never imports its HTTP layer/],
  ])("%s may not: %s", async (file, line, message) => {
    expect(await errorsFor(file, `${line}\nexport const probe = 1;\n`)).toEqual([expect.stringMatching(message)]);
  });

  it.each([
    [DRIVERS, 'import { InvalidError } from "@flotilla/core";\nimport { Client } from "ssh2";\nimport { join } from "node:path";'],
    [
      PROVISION,
      'import { InvalidError } from "@flotilla/core";\nimport { sshConnect } from "@flotilla/drivers";\nimport { Client } from "ssh2";',
    ],
    [ENGINE_CLIENT, 'import { InvalidError } from "@flotilla/core";\nimport { request } from "node:https";'],
    [
      AGENT_DOMAIN,
      'import { InvalidError } from "@flotilla/core";\nimport { HttpError } from "../engine-errors";\nimport { labelMatches } from "../labels";',
    ],
    [AGENT_API, 'import { sendJson } from "./http-util";\nimport { ContainerService } from "../containers/container-service";'],
    ["agent/src/agent.ts", 'import { Router } from "./api/router";'],
    ["apps/console/src/format.ts", 'import { SseDecoder } from "@flotilla/sse";\nimport type { TaskView } from "@flotilla/api-types";'],
  ])("%s may import what it stands on", async (file, lines) => {
    expect(await errorsFor(file, `${lines}\nexport const probe = 1;\n`)).toEqual([]);
  });
});

describe("typed promise rules", TIMEOUT, () => {
  it("a promise nobody awaits is an error", async () => {
    const code = "async function work(): Promise<void> {}\nexport function probe(): void {\n  work();\n}\n";
    expect(await messagesFor(AGENT_ROOT, code, "@typescript-eslint/no-floating-promises")).toHaveLength(1);
    expect(await messagesFor(AGENT_ROOT, code.replace("  work();", "  void work();"), "@typescript-eslint/no-floating-promises")).toEqual(
      [],
    );
  });

  it("an async function where a callback's result is ignored is an error", async () => {
    const code =
      'import { EventEmitter } from "node:events";\nexport function probe(e: EventEmitter): void {\n  e.on("x", async () => {});\n}\n';
    expect(await messagesFor(ENGINE_CLIENT, code, "@typescript-eslint/no-misused-promises")).toHaveLength(1);
  });

  it("holds in the console's TSX too", async () => {
    const code = "export function Probe() {\n  const submit = async () => {};\n  return <form onSubmit={submit} />;\n}\n";
    expect(await messagesFor("apps/console/src/views/SignIn.tsx", code, "@typescript-eslint/no-misused-promises")).toHaveLength(1);
  });
});

describe("time in the API", TIMEOUT, () => {
  it("comes from the injected clock: Date.now() and new Date() are refused in apps/api/src", async () => {
    const code = "export const probe = () => Date.now() + new Date().getTime() + new Date(0).getTime();\n";
    expect(await messagesFor("apps/api/src/version.ts", code, "no-restricted-syntax")).toEqual([
      expect.stringMatching(/injected Clock.*Date\.now/),
      expect.stringMatching(/injected Clock.*new Date\(\)/),
    ]);
  });
});
