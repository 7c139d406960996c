// The link between services and the secrets and configs they name: a service may only name values
// that exist, and a value a service names may not be removed. Both checks run inside the writer's
// transaction; the service side takes a share lock on the rows it names, so a removal running at
// the same time waits for the service's commit and then sees it.
import { InvalidError, type SecretKind, type ServiceSpec } from "@flotilla/core";
import type { Prisma } from "../generated/prisma/client";

type Tx = Prisma.TransactionClient;

export const DB_KIND = { secret: "SECRET", config: "CONFIG" } as const;

/** Refuses a spec naming a secret or config that does not exist (400 naming the field); locks those that do. */
export async function assertReferencesExist(tx: Tx, spec: Pick<ServiceSpec, "secrets" | "configs">): Promise<void> {
  for (const kind of ["secret", "config"] as const) {
    const refs = spec[`${kind}s`];
    if (refs.length === 0) continue;
    const names = [...new Set(refs.map((r) => r.source))];
    const found = await tx.$queryRawUnsafe<{ name: string }[]>(
      `SELECT name FROM "Secret" WHERE kind = $1::"SecretKind" AND name = ANY($2::text[]) FOR SHARE`,
      DB_KIND[kind],
      names,
    );
    const have = new Set(found.map((r) => r.name));
    const i = refs.findIndex((r) => !have.has(r.source));
    if (i >= 0) {
      throw new InvalidError(`${kind} not found: ${refs[i].source} (create it first: ctl ${kind} create ${refs[i].source} FILE)`, {
        field: `${kind}s[${i}].source`,
      });
    }
  }
}

/**
 * The names of the services whose spec names this secret or config. A previous spec (what a
 * rollback returns to) does not hold a value: a rollback to a removed one is refused instead.
 */
export async function servicesUsing(tx: Tx, kind: SecretKind, name: string): Promise<string[]> {
  const needle = JSON.stringify([{ source: name }]);
  const rows = await tx.$queryRawUnsafe<{ name: string }[]>(
    `SELECT name FROM "Service" WHERE spec -> $1 @> $2::jsonb ORDER BY name`,
    `${kind}s`,
    needle,
  );
  return rows.map((r) => r.name);
}
