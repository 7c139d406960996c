// The migration runner is plain ESM JavaScript (it must run before any build); load it here.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "./stack";

type Runner = {
  deploy(url: string, opts?: { log?: (m: string) => void }): Promise<string[]>;
  drift(): { code: number; out: string };
};

export async function migrationRunner(): Promise<Runner> {
  return (await import(pathToFileURL(join(repoRoot, "prisma/migrate.mjs")).href)) as Runner;
}

export async function deployMigrations(url: string): Promise<string[]> {
  return (await migrationRunner()).deploy(url, { log: () => {} });
}
