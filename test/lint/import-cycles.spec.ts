import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { describeCycles, importCycles, importGraph, sourceFiles } from "./import-graph";

const root = join(__dirname, "..", "..");
// Every workspace's sources: a cycle makes load order decide what a module sees at start-up, and
// even a type-only cycle ties two files that should have a third they both depend on.
const sourceDirs = [
  "libs/core/src",
  "libs/drivers/src",
  "libs/provision/src",
  "libs/engine-client/src",
  "libs/api-types/src",
  "libs/sse/src",
  "apps/api/src",
  "apps/ctl/src",
  "apps/console/src",
  "agent/src",
];

describe("import cycles", () => {
  it("no source file imports itself through others", () => {
    const files = sourceDirs.flatMap((d) => sourceFiles(join(root, d)));
    expect(files.length).toBeGreaterThan(100);
    expect(describeCycles(importCycles(importGraph(files)), root)).toEqual([]);
  });

  describe("the check itself", () => {
    const dir = mkdtempSync(join(tmpdir(), "flotilla-cycles-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const write = (name: string, text: string) => {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };

    it("finds a cycle made only of type imports, and one through an index file", () => {
      const a = write("a.ts", 'import type { B } from "./b";\nexport type A = B[];\n');
      const b = write("b.ts", 'import type { A } from "./a";\nexport type B = { a: A };\n');
      const c = write("c.ts", 'export { d } from "./sub";\n');
      const d = write("sub/index.ts", 'import { c } from "../c";\nexport const d = c;\n');
      const e = write("e.ts", 'import { d } from "./c";\nexport const e = d;\n');
      expect(describeCycles(importCycles(importGraph([a, b, c, d, e])), dir)).toEqual(["a.ts <-> b.ts", "c.ts <-> sub/index.ts"]);
    });

    it("finds a file importing itself and ignores packages", () => {
      const s = write("self.ts", 'import { x } from "./self";\nimport { y } from "@flotilla/core";\nexport const z = [x, y];\n');
      expect(describeCycles(importCycles(importGraph([s])), dir)).toEqual(["self.ts"]);
    });
  });
});
