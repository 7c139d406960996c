import { defineConfig } from "prisma/config";

// Prisma 7's CLI wants a native schema engine for some commands and would download one;
// `prisma generate` never uses it, so point it at an existing file to keep installs offline.
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= "/bin/false";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  // process.env, not env(): a postinstall without DATABASE_URL must not throw.
  datasource: { url: process.env.DATABASE_URL },
});
