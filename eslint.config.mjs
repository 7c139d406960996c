// Import boundaries of ../ARCHITECTURE: libs/core is pure; apps never import each other.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const nodeBuiltins = ["node:*", "fs", "path", "child_process", "net", "http", "https", "tls", "os", "crypto", "dgram", "dns"];
const infra = ["@nestjs/*", "@prisma/*", "prisma", "bullmq", "ioredis", "ssh2", "pg", "fastify", "@fastify/*"];
const restrict = (patterns, message) => ({
  "no-restricted-imports": ["error", { patterns: [{ group: patterns, message }] }],
});

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
    files: ["apps/api/**/*.ts"],
    rules: restrict(["@flotilla/ctl", "@flotilla/console", "**/apps/ctl/**", "**/apps/console/**"], "apps never import each other."),
  },
  {
    files: ["apps/ctl/**/*.ts"],
    rules: restrict(["@flotilla/api", "@flotilla/console", "**/apps/api/**", "**/apps/console/**", ...infra], "apps never import each other; ctl talks REST."),
  },
  {
    files: ["apps/console/**/*.{ts,tsx}"],
    rules: restrict(["@flotilla/api", "@flotilla/ctl", "**/apps/api/**", "**/apps/ctl/**", ...infra], "apps never import each other; the console talks REST."),
  },
);
