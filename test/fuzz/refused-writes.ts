// "Nothing written by a refused request": the refused (4xx) mutating calls of the fuzz run are
// sent again one at a time, with a digest of the database's contents taken before and after each;
// a 4xx whose digest changed wrote something. Left out of the digest are what every request may
// write by design: the audit event (refusals included), a token's lastUsedAt, and the
// ControlPlane health row the process keeps up to date by itself.
import pg from "pg";
import type { RestCall } from "./arbitraries";

const DIGEST = `
  SELECT concat_ws('|',
    (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM "Machine" t),
    (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM "Node" t),
    (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM "Service" t),
    (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM "Task" t),
    (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM "JoinToken" t),
    (SELECT md5(coalesce(string_agg((to_jsonb(t) - 'lastUsedAt')::text, ',' ORDER BY t.id), '')) FROM "ApiToken" t),
    (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM "Event" t WHERE t.kind <> 'audit')
  ) AS digest`;

export async function databaseDigest(db: pg.Client): Promise<string> {
  return ((await db.query(DIGEST)).rows[0] as { digest: string }).digest;
}

export interface RefusedWrites {
  /** Refused calls sent again and still refused, each checked. */
  checked: number;
  /** Of those, how many changed the database. */
  refusedWrites: number;
  samples: string[];
}

export async function checkRefusedWrites(
  url: string,
  token: string,
  calls: readonly RestCall[],
  databaseUrl: string,
): Promise<RefusedWrites> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    let before = await databaseDigest(db);
    let checked = 0;
    let refusedWrites = 0;
    const samples: string[] = [];
    for (const c of calls) {
      const res = await fetch(url + c.path, {
        method: c.method,
        headers: { authorization: `Bearer ${c.noToken ? "flt_wrong" : token}`, "content-type": "application/json" },
        body: c.body,
      });
      const text = await res.text();
      const after = await databaseDigest(db);
      // Refused the first time but accepted now (the state moved on): a write by an accepted call.
      if (res.status >= 400 && res.status < 500) {
        checked++;
        if (after !== before) {
          refusedWrites++;
          if (samples.length < 5)
            samples.push(`${c.method} ${c.path} ${(c.body ?? "").slice(0, 200)} -> ${res.status} ${text.slice(0, 200)}`);
        }
      }
      before = after;
    }
    return { checked, refusedWrites, samples };
  } finally {
    await db.end();
  }
}
