import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";
import { join } from "node:path";

// The import boundaries of ARCHITECTURE.md, checked through the project's real ESLint config.
const eslint = new ESLint({ cwd: join(__dirname, "..", "..") });

async function errorsFor(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(__dirname, "..", "..", file) });
  return result.messages.filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

describe("import boundaries", () => {
  it.each([
    ['import { readFileSync } from "node:fs";'],
    ['import { Injectable } from "@nestjs/common";'],
    ['import { PrismaClient } from "@prisma/client";'],
    ['import { Queue } from "bullmq";'],
    ['import IORedis from "ioredis";'],
    ['import { Client } from "ssh2";'],
    ['import { x } from "@flotilla/drivers";'],
  ])("libs/core may not: %s", async (line) => {
    expect(await errorsFor("libs/core/src/probe.ts", `${line}\nexport const probe = 1;\n`)).toEqual([
      expect.stringMatching(/libs\/core is pure/),
    ]);
  });

  it("libs/core may import its own files", async () => {
    expect(await errorsFor("libs/core/src/probe.ts", 'import { InvalidError } from "./errors";\nexport const probe = InvalidError;\n')).toEqual([]);
  });

  it("apps never import each other", async () => {
    expect(await errorsFor("apps/ctl/src/probe.ts", 'import { start } from "../../api/src/bootstrap";\nexport const probe = start;\n')).toEqual([
      expect.stringMatching(/apps never import each other/),
    ]);
    expect(await errorsFor("apps/api/src/probe.ts", 'import { run } from "@flotilla/ctl";\nexport const probe = run;\n')).toEqual([
      expect.stringMatching(/apps never import each other/),
    ]);
  });
});
