import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";
import { join } from "node:path";

// The console's and the REST types' import boundaries, through the project's real ESLint config.
const root = join(__dirname, "..", "..");
const eslint = new ESLint({ cwd: root });

async function errorsFor(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, file) });
  return result.messages.filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

describe("console and api-types import boundaries", () => {
  it("lets ctl and the console import the REST types", async () => {
    const code = 'import type { ServiceView } from "@flotilla/api-types";\nexport type Probe = ServiceView;\n';
    expect(await errorsFor("apps/ctl/src/probe.ts", code)).toEqual([]);
    expect(await errorsFor("apps/console/src/probe.tsx", code)).toEqual([]);
  });

  it.each([
    ['import { readFileSync } from "node:fs";', /browser code/],
    ['import { parseMemory } from "@flotilla/core";', /browser code/],
    ['import { Injectable } from "@nestjs/common";', /browser code/],
    ['import { start } from "../../api/src/bootstrap";', /apps never import each other/],
  ])("keeps the console to browser code: %s", async (line, message) => {
    expect(await errorsFor("apps/console/src/probe.tsx", `${line}\nexport const probe = 1;\n`)).toEqual([expect.stringMatching(message)]);
  });

  it("keeps libs/api-types free of imports", async () => {
    expect(await errorsFor("libs/api-types/src/probe.ts", 'import { InvalidError } from "@flotilla/core";\nexport const probe = InvalidError;\n')).toEqual([
      expect.stringMatching(/types only/),
    ]);
  });
});
