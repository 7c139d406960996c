// Import boundaries of docs/architecture.md: libs/core is pure; each lib and the agent import only
// the packages of ours below them; apps never import each other (their sources; cross-process
// tests may start one app to drive another); the agent's domain code never imports its HTTP
// layer. Import cycles are checked by test/lint/import-cycles.spec.ts.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const nodeBuiltins = ["node:*", "fs", "path", "child_process", "net", "http", "https", "tls", "os", "crypto", "dgram", "dns"];
const infra = ["@nestjs/*", "@prisma/*", "prisma", "bullmq", "ioredis", "ssh2", "pg", "fastify", "@fastify/*"];
const restrict = (patterns, message, otherAppsRegex, extra = []) => ({
  "no-restricted-imports": [
    "error",
    {
      patterns: [
        ...(patterns.length ? [{ group: patterns, message }] : []),
        ...(otherAppsRegex ? [{ regex: otherAppsRegex, message: "apps never import each other." }] : []),
        ...extra,
      ],
    },
  ],
});
// A workspace reached by a relative path instead of its package name.
const intoOtherWorkspace = {
  regex: "(^|/)(apps|libs|agent)/|^(\\.\\./)+(core|drivers|provision|engine-client|api-types|api|ctl|console)/(src|dist)(/|$)",
  message: "import another workspace by its package name, never by path.",
};
const infraBut = (...allowed) => infra.filter((p) => !allowed.includes(p));
const srcFiles = ["{libs,apps}/*/src/**/*.{ts,tsx}", "agent/src/**/*.ts"];
// Another app, by package name or by a path (relative ones included) into its folder.
const otherApps = (...apps) => `^@flotilla/(${apps.join("|")})$|(^|/)apps/(${apps.join("|")})(/|$)|^(\\.\\./)+(${apps.join("|")})(/|$)`;

export default tseslint.config(
  {
    ignores: [
      "**/dist/**",
      "**/node_modules/**",
      "apps/api/src/generated/**",
      "apps/console/dist/**",
      "**/*.mjs",
      "**/*.cjs",
      "**/bin/*.js",
      "test/standins/**",
      "agent/shim/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    // Typed rules need the type checker, so they run on the sources the tsconfigs include.
    // A promise nobody awaits loses its rejection (an unhandled rejection ends the process); one
    // passed where a callback's result is ignored (an event handler, forEach) does the same.
    files: srcFiles,
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
    },
  },
  {
    files: ["libs/core/src/**/*.ts"],
    rules: restrict([...nodeBuiltins, ...infra, "@flotilla/*"], "libs/core is pure: no I/O, no framework, nothing of ours."),
  },
  {
    files: ["libs/drivers/src/**/*.ts"],
    rules: restrict(
      [...infraBut("ssh2"), "@flotilla/*", "!@flotilla/core"],
      "libs/drivers may import @flotilla/core, Node and ssh2 only.",
      undefined,
      [intoOtherWorkspace],
    ),
  },
  {
    files: ["libs/provision/src/**/*.ts"],
    rules: restrict(
      [...infraBut("ssh2"), "@flotilla/*", "!@flotilla/core", "!@flotilla/drivers"],
      "libs/provision may import @flotilla/core, @flotilla/drivers, Node and ssh2 only.",
      undefined,
      [intoOtherWorkspace],
    ),
  },
  {
    files: ["libs/engine-client/src/**/*.ts"],
    rules: restrict(
      [...infra, "@flotilla/*", "!@flotilla/core"],
      "libs/engine-client may import @flotilla/core and Node only.",
      undefined,
      [intoOtherWorkspace],
    ),
  },
  {
    files: ["agent/src/**/*.ts"],
    rules: restrict([...infra, "@flotilla/*", "!@flotilla/core"], "the agent may import @flotilla/core and Node only.", undefined, [
      intoOtherWorkspace,
    ]),
  },
  {
    // The agent's domain (containers, images, network, ...) is driven by the HTTP layer in
    // agent/src/api, never the other way round; agent.ts, the composition root, wires the two.
    files: ["agent/src/*/**/*.ts"],
    ignores: ["agent/src/api/**"],
    rules: restrict([...infra, "@flotilla/*", "!@flotilla/core"], "the agent may import @flotilla/core and Node only.", undefined, [
      intoOtherWorkspace,
      { regex: "^(\\.\\./)+api(/|$)", message: "the agent's domain code never imports its HTTP layer (agent/src/api)." },
    ]),
  },
  {
    files: ["apps/api/src/**/*.ts"],
    rules: {
      ...restrict([], "", otherApps("ctl", "console")),
      // Time comes from the injected Clock (common/clock.ts), so time-dependent behaviour is testable.
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']",
          message: "read time from the injected Clock (CLOCK), not Date.now().",
        },
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: "read time from the injected Clock (CLOCK), not new Date().",
        },
      ],
    },
  },
  {
    files: ["apps/ctl/src/**/*.ts"],
    rules: restrict(infra, "ctl talks REST, no server-side libraries.", otherApps("api", "console")),
  },
  {
    files: ["libs/api-types/src/**/*.ts"],
    rules: restrict(
      [...nodeBuiltins, ...infra, "@flotilla/*"],
      "libs/api-types is the REST API's shapes as types only: it imports nothing.",
    ),
  },
  {
    files: ["libs/sse/src/**/*.ts"],
    rules: restrict([...nodeBuiltins, ...infra, "@flotilla/*"], "libs/sse runs in the browser and in Node: it imports nothing."),
  },
  {
    files: ["apps/console/src/**/*.{ts,tsx}"],
    // A browser app: nothing of Node's, and of ours only the REST types and the SSE parser.
    rules: restrict(
      [...infra, ...nodeBuiltins, "@flotilla/*", "!@flotilla/api-types", "!@flotilla/sse"],
      "the console talks REST: browser code, @flotilla/api-types and @flotilla/sse only.",
      otherApps("api", "ctl"),
    ),
  },
);
