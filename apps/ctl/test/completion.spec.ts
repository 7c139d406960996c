import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completionTable } from "../src/commands/completion";
import { buildProgram } from "../src/main";
import { ctl } from "./run-ctl";

// The scripts are asked for the way a user does (`ctl completion SHELL` in its own process) and
// then run by the real shells: bash's completion function is called with COMP_WORDS as bash sets
// them, fish answers `complete -C`, zsh at least parses its script and runs its walker.
const has = (shell: string) => spawnSync("sh", ["-c", `command -v ${shell}`]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "flotilla-ctl-completion-"));
const scripts: Record<string, string> = {};
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await ctl(["completion", shell], {});
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    scripts[shell] = join(dir, `ctl.${shell}`);
    writeFileSync(scripts[shell], r.stdout);
  }
}, 120_000);

/** What bash's completion offers for these words (the last one is the word being completed). */
function bashComplete(cases: string[][]): string[][] {
  const calls = cases.map((words) => `t ${words.map((w) => `'${w}'`).join(" ")}`).join("\n");
  const program = `source '${scripts.bash}'
t() { COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _ctl; echo "\${COMPREPLY[*]}"; }
${calls}`;
  const stdout = execFileSync("bash", ["--norc", "--noprofile", "-c", program], { encoding: "utf8" });
  return stdout
    .split("\n")
    .slice(0, cases.length)
    .map((l) => l.split(" ").filter(Boolean));
}

describe("ctl completion", () => {
  const table = completionTable(buildProgram());

  it("refuses a shell it does not know, naming the choices", async () => {
    const r = await ctl(["completion", "csh"], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/'csh' is invalid .*bash, zsh, fish/);
  });

  it("bash: completes commands, subcommands, options and their choices", () => {
    expect(
      bashComplete([
        ["ctl", "ser"],
        ["ctl", "service", "sc"],
        ["ctl", "service", "create", "--name", "web", "--mo"],
        ["ctl", "service", "create", "--name", "web", "--mode", ""],
        ["ctl", "node", "update", "--availability", "d"],
        ["ctl", "node", "update", "--av"],
        ["ctl", "--ver"],
        ["ctl", "completion", ""],
        // After an option that takes a value, the shell's default (file names) applies.
        ["ctl", "service", "create", "--name", ""],
      ]),
    ).toEqual([
      ["service"],
      ["scale"],
      ["--mode", "--mount"],
      ["replicated", "global"],
      ["drain"],
      ["--availability"],
      ["--version"],
      ["bash", "zsh", "fish"],
      [],
    ]);
  });

  it("bash: offers every command's subcommands and options, as ctl's command table has them", () => {
    const cases = table.flatMap((n) => [
      ["ctl", ...n.path.split(" ").filter(Boolean), ""],
      ["ctl", ...n.path.split(" ").filter(Boolean), "-"],
    ]);
    const answers = bashComplete(cases);
    table.forEach((n, i) => {
      expect(answers[2 * i], `ctl ${n.path} <TAB>`).toEqual(n.subcommands.map((s) => s.name));
      expect(answers[2 * i + 1], `ctl ${n.path} -<TAB>`).toEqual(n.options.flatMap((o) => o.flags));
    });
    // The table is the program's: every top-level command is there, and a new one would be too.
    expect(table[0].subcommands.map((s) => s.name)).toEqual(buildProgram().commands.map((c) => c.name()));
    expect(table.find((n) => n.path === "service scale")).toBeDefined();
  });

  it.skipIf(!has("fish"))("fish: parses, and completes through `complete -C`", () => {
    execFileSync("fish", ["-n", scripts.fish]);
    const complete = (line: string) =>
      execFileSync("fish", ["--no-config", "-c", `source '${scripts.fish}'; complete -C '${line}'`], { encoding: "utf8" })
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split("\t")[0]);
    expect(complete("ctl ser")).toEqual(["service"]);
    expect(complete("ctl service sc")).toEqual(["scale"]);
    expect(complete("ctl node update --availability ").sort()).toEqual(["active", "drain", "pause"]);
    expect(complete("ctl service create --name web --mo")).toEqual(["--mode", "--mount"]);
  });

  it.skipIf(!has("zsh"))("zsh: parses, and its walker reads the same table", () => {
    execFileSync("zsh", ["-n", scripts.zsh]);
    const out = execFileSync(
      "zsh",
      ["-f", "-c", `source '${scripts.zsh}'; __ctl_subcommands service; __ctl_choices 'node update' --availability`],
      { encoding: "utf8" },
    );
    expect(out.split("\n").filter(Boolean)).toEqual([
      table
        .find((n) => n.path === "service")!
        .subcommands.map((s) => s.name)
        .join(" "),
      "active pause drain",
    ]);
  });
});
