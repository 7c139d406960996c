// The builder's pure parts: the Dockerfile parser, Docker's variable expansion, .dockerignore
// matching and what metadata instructions do to an image's configuration.
import { describe, expect, it } from "vitest";
import { DockerfileParseError, parseDockerfile } from "../src/build/dockerfile";
import { isIgnored, parseDockerignore } from "../src/build/dockerignore";
import { applyMetadata, exposedPorts, nopCreatedBy, parseDuration, runArgsPrefix, type RunConfig } from "../src/build/instructions";
import { envLookup, ExpansionError, processWord, processWords } from "../src/build/shell-lexer";

describe("variable expansion", () => {
  const env = envLookup(["A=apple", "EMPTY=", "SP=a b"]);
  it.each([
    ["$A", "apple"],
    ["${A}", "apple"],
    ["x${A}y", "xappley"],
    ["$UNSET", ""],
    ["${UNSET:-def}", "def"],
    ["${EMPTY:-def}", "def"],
    ["${EMPTY-def}", ""],
    ["${UNSET-def}", "def"],
    ["${A:+set}", "set"],
    ["${EMPTY:+set}", ""],
    ["${EMPTY+set}", "set"],
    ["${UNSET:+set}", ""],
    ["${UNSET:-${A}}", "apple"],
    ["\\$A", "$A"],
    ["'$A'", "$A"],
    ['"$A"', "apple"],
    ['"\\$A"', "$A"],
    ['"a\\b"', "a\\b"],
    ["a\\ b", "a b"],
    ["$", "$"],
    ["cost$", "cost$"],
  ])("%s → %s", (input, out) => {
    expect(processWord(input, env)).toBe(out);
  });

  it("uses the escape directive's character", () => {
    expect(processWord("`$A", env, "`")).toBe("$A");
    expect(processWord("C:\\dir", env, "`")).toBe("C:\\dir");
  });

  it("splits words on unquoted space only, after expansion of quoted parts", () => {
    expect(processWords(`a "b c" '$A' $A`, env)).toEqual(["a", "b c", "$A", "apple"]);
    expect(processWords(`$UNSET x ""`, env)).toEqual(["x", ""]);
  });

  it("fails on ${VAR:?} and bad substitutions", () => {
    expect(() => processWord("${UNSET:?needs a value}", env)).toThrow(ExpansionError);
    expect(() => processWord("${UNSET:?needs a value}", env)).toThrow("UNSET: needs a value");
    expect(() => processWord("${A", env)).toThrow(ExpansionError);
    expect(() => processWord("'open", env)).toThrow(/single-quote/);
  });
});

describe("parseDockerfile", () => {
  it("parses a multi-stage file with directives, comments and continuations", () => {
    const df = parseDockerfile(
      [
        "# syntax=docker/dockerfile:1",
        "ARG BASE=busybox",
        "FROM ${BASE} AS Build",
        "# a comment",
        "RUN echo one \\",
        "  # comment inside a continuation",
        "    two",
        'COPY --chown=1:2 ["a b", "c", "/dst/"]',
        "FROM scratch",
        "COPY --from=build /x /y",
        'ENV A=1 B="two words" C=3',
        "ENV LEGACY value with spaces",
        'CMD ["sh", "-c", "echo"]',
        "ENTRYPOINT exec thing",
        "HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost || exit 1",
        "",
      ].join("\n"),
    );
    expect(df.escape).toBe("\\");
    const kinds = df.commands.map((c) => c.kind);
    expect(kinds).toEqual(["ARG", "FROM", "RUN", "COPY", "FROM", "COPY", "ENV", "ENV", "CMD", "ENTRYPOINT", "HEALTHCHECK"]);
    const [arg, from, run, copy, , copyFrom, env, legacy, cmd, entry, hc] = df.commands;
    expect(arg).toMatchObject({ args: [{ name: "BASE", value: "busybox" }] });
    expect(from).toMatchObject({ image: "${BASE}", stage: "build", line: 3 });
    expect(run).toMatchObject({ line: 5, command: { json: false, text: "echo one     two" } });
    expect(copy).toMatchObject({ json: true, sources: ["a b", "c"], dest: "/dst/", flags: { chown: "1:2" } });
    expect(copyFrom).toMatchObject({ flags: { from: "build" }, sources: ["/x"], dest: "/y" });
    expect(env).toMatchObject({
      pairs: [
        ["A", "1"],
        ["B", '"two words"'],
        ["C", "3"],
      ],
    });
    expect(legacy).toMatchObject({ pairs: [["LEGACY", "value with spaces"]] });
    expect(cmd).toMatchObject({ command: { json: true, args: ["sh", "-c", "echo"] } });
    expect(entry).toMatchObject({ command: { json: false, text: "exec thing" } });
    expect(hc).toMatchObject({
      none: false,
      flags: { interval: "5s", retries: "2" },
      command: { json: false, text: "wget -q localhost || exit 1" },
    });
    expect(run!.original).toBe("RUN echo one     two");
  });

  it("honours # escape=`", () => {
    const df = parseDockerfile("# escape=`\nFROM busybox\nRUN echo a `\n b\nCOPY c:\\x /y\n");
    expect(df.escape).toBe("`");
    expect(df.commands[1]).toMatchObject({ command: { text: "echo a  b" } });
    expect(df.commands[2]).toMatchObject({ sources: ["c:\\x"] });
  });

  it("names the line of an unknown instruction, as Docker does", () => {
    expect(() => parseDockerfile("FROM busybox\n\nFOO bar\n")).toThrow("dockerfile parse error on line 3: unknown instruction: FOO");
    expect(() => parseDockerfile("FROM busybox\nCOPY onlyone\n")).toThrow(DockerfileParseError);
    expect(() => parseDockerfile("FROM busybox\nCOPY onlyone\n")).toThrow("COPY requires at least two arguments");
    expect(() => parseDockerfile("FROM busybox\nRUN --mount=type=cache,target=/x true\n")).toThrow("RUN --mount is not supported");
    expect(() => parseDockerfile("FROM busybox\nCOPY --bogus=1 a b\n")).toThrow("unknown flag: --bogus");
    expect(() => parseDockerfile("FROM a b\n")).toThrow("FROM requires either one or three arguments");
  });
});

describe(".dockerignore", () => {
  const patterns = parseDockerignore("# comment\n*.log\n/build\n**/secret*\n!build/keep.txt\nnode_modules\n");
  it.each([
    ["a.log", true],
    ["dir/a.log", false],
    ["build", true],
    ["build/x/y", true],
    ["build/keep.txt", false],
    ["deep/down/secret.key", true],
    ["secret", true],
    ["node_modules/x/index.js", true],
    ["src/main.ts", false],
  ])("%s ignored: %s", (path, ignored) => {
    expect(isIgnored(path, patterns)).toBe(ignored);
  });
});

describe("metadata instructions", () => {
  const cmds = parseDockerfile(
    [
      "FROM x",
      "ENV A=1 B=${A}2",
      'LABEL "com.example.v"="1.0" other=x',
      "EXPOSE 80 53/udp 8000-8001",
      "WORKDIR app",
      "WORKDIR sub",
      "USER ${WHO:-nobody}",
      "CMD echo hi",
      'ENTRYPOINT ["/entry"]',
      "VOLUME /data /logs",
      "STOPSIGNAL SIGQUIT",
      "HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD true",
      'SHELL ["/bin/ash", "-eo", "pipefail", "-c"]',
      "CMD echo shell",
    ].join("\n"),
  ).commands.slice(1);

  it("builds the config step by step, as docker's builder does", () => {
    let config: RunConfig = { Env: ["PATH=/bin"], Cmd: ["sh"] };
    const state = { cmdSet: false };
    const comments: string[] = [];
    for (const c of cmds) {
      const r = applyMetadata(c, config, envLookup(config.Env ?? []), "\\", state);
      config = r.config;
      comments.push(r.comment);
    }
    expect(config).toEqual({
      Env: ["PATH=/bin", "A=1", "B=12"],
      Labels: { "com.example.v": "1.0", other: "x" },
      ExposedPorts: { "80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {} },
      WorkingDir: "/app/sub",
      User: "nobody",
      Entrypoint: ["/entry"],
      Cmd: ["/bin/ash", "-eo", "pipefail", "-c", "echo shell"],
      Volumes: { "/data": {}, "/logs": {} },
      StopSignal: "SIGQUIT",
      Healthcheck: { Test: ["CMD-SHELL", "true"], Interval: 30e9, Timeout: 3e9, Retries: 3 },
      Shell: ["/bin/ash", "-eo", "pipefail", "-c"],
    });
    expect(comments[0]).toBe("ENV A=1 B=12");
    expect(nopCreatedBy({}, comments[0]!)).toBe("/bin/sh -c #(nop)  ENV A=1 B=12");
  });

  it("ENTRYPOINT clears an inherited CMD but keeps one set in the stage", () => {
    const [entry] = parseDockerfile('FROM x\nENTRYPOINT ["/e"]').commands.slice(1);
    expect(applyMetadata(entry!, { Cmd: ["sh"] }, envLookup([]), "\\", { cmdSet: false }).config.Cmd).toBeNull();
    expect(applyMetadata(entry!, { Cmd: ["sh"] }, envLookup([]), "\\", { cmdSet: true }).config.Cmd).toEqual(["sh"]);
  });

  it("refuses bad ports, signals and durations with Docker's words", () => {
    expect(() => exposedPorts(["80/xyz"])).toThrow("Invalid containerPort: 80/xyz");
    expect(() => parseDuration("5 s", "interval")).toThrow('invalid argument "5 s" for "--interval" flag');
    const [sig] = parseDockerfile("FROM x\nSTOPSIGNAL SIGNOPE").commands.slice(1);
    expect(() => applyMetadata(sig!, {}, envLookup([]), "\\", { cmdSet: false })).toThrow("Invalid signal: SIGNOPE");
  });

  it("prefixes a RUN's history with its build arguments", () => {
    expect(runArgsPrefix(new Map())).toBe("");
    expect(
      runArgsPrefix(
        new Map([
          ["V", "2"],
          ["A", "x"],
        ]),
      ),
    ).toBe("|2 A=x V=2 ");
  });
});
