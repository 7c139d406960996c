// Import boundaries of ../ARCHITECTURE: libs/core is pure; apps never import each other (their
// sources; cross-process tests may start one app to drive another).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const nodeBuiltins = ["node:*", "fs", "path", "child_process", "net", "http", "https", "tls", "os", "crypto", "dgram", "dns"];
const infra = ["@nestjs/*", "@prisma/*", "prisma", "bullmq", "ioredis", "ssh2", "pg", "fastify", "@fastify/*"];
const restrict = (patterns, message, otherAppsRegex) => ({
  "no-restricted-imports": [
    "error",
    {
      patterns: [
        ...(patterns.length ? [{ group: patterns, message }] : []),
        ...(otherAppsRegex ? [{ regex: otherAppsRegex, message: "apps never import each other." }] : []),
      ],
    },
  ],
});
// Another app, by package name or by a path (relative ones included) into its folder.
const otherApps = (...apps) => `^@flotilla/(${apps.join("|")})$|(^|/)apps/(${apps.join("|")})(/|$)|^(\\.\\./)+(${apps.join("|")})(/|$)`;

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "apps/api/src/generated/**", "apps/console/dist/**", "**/*.mjs", "**/*.cjs", "**/bin/*.js", "test/standins/**", "agent/shim/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["libs/core/src/**/*.ts"],
    rules: restrict([...nodeBuiltins, ...infra, "@flotilla/*"], "libs/core is pure: no I/O, no framework, nothing of ours."),
  },
  {
    files: ["apps/api/src/**/*.ts"],
    rules: restrict([], "", otherApps("ctl", "console")),
  },
  {
    files: ["apps/ctl/src/**/*.ts"],
    rules: restrict(infra, "ctl talks REST, no server-side libraries.", otherApps("api", "console")),
  },
  {
    files: ["libs/api-types/src/**/*.ts"],
    rules: restrict([...nodeBuiltins, ...infra, "@flotilla/*"], "libs/api-types is the REST API's shapes as types only: it imports nothing."),
  },
  {
    files: ["apps/console/src/**/*.{ts,tsx}"],
    // A browser app: nothing of Node's, and of ours only the REST types (@flotilla/api-types).
    rules: restrict([...infra, ...nodeBuiltins, "@flotilla/*", "!@flotilla/api-types"], "the console talks REST: browser code and @flotilla/api-types only.", otherApps("api", "ctl")),
  },
);
