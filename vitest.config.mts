import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Tests import workspace packages from source, so `npm test` needs no build first.
const alias = {
  "@flotilla/core": here("./libs/core/src/index.ts"),
  "@flotilla/drivers": here("./libs/drivers/src/index.ts"),
  "@flotilla/provision": here("./libs/provision/src/index.ts"),
  "@flotilla/engine-client": here("./libs/engine-client/src/index.ts"),
  "@flotilla/sse": here("./libs/sse/src/index.ts"),
};

// Vite 8 transforms TS with Oxc, which honours experimentalDecorators + emitDecoratorMetadata,
// so NestJS dependency injection works in tests without SWC.
export default defineConfig({
  resolve: { alias },
  // Vitest orders each project's files by the durations it recorded last time, longest first, so
  // the slow files (VM boots) start early instead of trailing alone at the end of the run. A clean
  // clone has no record; scripts/test.sh keeps one outside the clone (FLOTILLA_VITEST_CACHE_DIR).
  ...(process.env.FLOTILLA_VITEST_CACHE_DIR ? { cacheDir: process.env.FLOTILLA_VITEST_CACHE_DIR } : {}),
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          sequence: { groupOrder: 0 },
          // Property tests run hundreds of cases; on a loaded 2-core machine they take well over
          // vitest's default 5 s. The bound is a hang guard, not a speed check.
          testTimeout: 60_000,
          include: ["libs/*/test/**/*.spec.ts", "apps/*/test/**/*.spec.ts", "agent/test/**/*.spec.ts", "test/**/*.spec.ts"],
          exclude: ["**/*.int.spec.ts", "**/node_modules/**"],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          // Runs after the unit project, with fewer workers (see maxWorkers).
          sequence: { groupOrder: 1 },
          include: ["**/*.int.spec.ts"],
          exclude: ["**/node_modules/**", "test/e2e/**"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // 2 cores: suites share Postgres/Redis and the kernel; keep contention predictable.
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.int.spec.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 300_000,
          hookTimeout: 180_000,
          // Each file builds real machines (namespaces, sshd, agents): one at a time.
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
