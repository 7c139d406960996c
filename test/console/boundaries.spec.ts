import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";
import { join } from "node:path";

// The console's and the REST types' import boundaries, through the project's real ESLint config.
// Probes are linted under the names of existing files: typed linting only knows files a tsconfig
// includes, and refuses (fatally) any other.
const root = join(__dirname, "..", "..");
const eslint = new ESLint({ cwd: root });
const CTL = "apps/ctl/src/output.ts";
const CONSOLE = "apps/console/src/views/Overview.tsx";
const API_TYPES = "libs/api-types/src/errors.ts";

async function errorsFor(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, file) });
  const fatal = result.messages.filter((m) => m.fatal);
  if (fatal.length) throw new Error(`${file}: ${fatal.map((m) => m.message).join("; ")}`);
  return result.messages.filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

// The first probe of each tsconfig project builds its type program: seconds on a loaded machine.
describe("console and api-types import boundaries", { timeout: 60_000 }, () => {
  it("lets ctl and the console import the REST types", async () => {
    const code = 'import type { ServiceView } from "@flotilla/api-types";\nexport type Probe = ServiceView;\n';
    expect(await errorsFor(CTL, code)).toEqual([]);
    expect(await errorsFor(CONSOLE, code)).toEqual([]);
  });

  it.each([
    ['import { readFileSync } from "node:fs";', /browser code/],
    ['import { parseMemory } from "@flotilla/core";', /browser code/],
    ['import { Injectable } from "@nestjs/common";', /browser code/],
    ['import { start } from "../../api/src/bootstrap";', /apps never import each other/],
  ])("keeps the console to browser code: %s", async (line, message) => {
    expect(await errorsFor(CONSOLE, `${line}\nexport const probe = 1;\n`)).toEqual([expect.stringMatching(message)]);
  });

  it("keeps libs/api-types free of imports", async () => {
    expect(await errorsFor(API_TYPES, 'import { InvalidError } from "@flotilla/core";\nexport const probe = InvalidError;\n')).toEqual([
      expect.stringMatching(/types only/),
    ]);
  });
});
