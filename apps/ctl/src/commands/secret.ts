// `ctl secret` and `ctl config`: the same commands on two kinds of value. The value is read from
// a file or stdin (`-`) and sent base64; it is never printed back for a secret, and `ctl config
// inspect` prints a config's value decoded (`--raw` for the value alone).
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { MAX_SECRET_BYTES, validateSecretName, type SecretKind } from "@flotilla/core";
import { ApiClient, CtlError, loadCtlConfig } from "../client";
import { json, note, out, table } from "../output";
import { parse } from "./service-flags";

interface ValueView {
  id: string;
  name: string;
  size: number;
  createdAt: string;
  labels: Record<string, string>;
  data?: string;
}

const client = () => new ApiClient(loadCtlConfig());
const enc = encodeURIComponent;

function readValue(file: string): Buffer {
  try {
    return readFileSync(file === "-" ? 0 : file);
  } catch (e) {
    throw new CtlError(`cannot read ${file === "-" ? "stdin" : file}: ${(e as Error).message}`);
  }
}

function registerKind(program: Command, kind: SecretKind): Command {
  const path = `/api/v1/${kind}s`;
  const cmd = program.command(kind).description(`manage ${kind}s: immutable named values${kind === "secret" ? ", never shown again" : ""}`);
  cmd
    .command("create <name> <file>")
    .description(`create a ${kind} from a file, or from stdin with - (at most ${MAX_SECRET_BYTES / 1024} KiB)`)
    .option("-l, --label <K=V>", "label (repeatable)", (v: string, p: string[] = []) => [...p, v])
    .action(async (name: string, file: string, o: { label?: string[] }) => {
      parse("name", () => validateSecretName(kind, name));
      const data = readValue(file);
      const labels = Object.fromEntries((o.label ?? []).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
      const created = await client().request<ValueView>("POST", path, { name, data: data.toString("base64"), labels });
      out(created.id);
    });
  cmd
    .command("ls")
    .description(`list ${kind}s`)
    .option("--json", "print JSON")
    .option("-q, --quiet", "print names only")
    .action(async (o: { json?: boolean; quiet?: boolean }) => {
      const rows = await client().request<ValueView[]>("GET", path);
      if (o.json) return void json(rows);
      if (o.quiet) return void (rows.length && out(rows.map((r) => r.name).join("\n")));
      out(
        table(
          rows.map((r) => ({ ...r, id: r.id.slice(0, 12) })),
          [
            ["ID", "id"],
            ["NAME", "name"],
            ["SIZE", "size"],
            ["CREATED", "createdAt"],
          ],
        ),
      );
    });
  cmd
    .command("inspect <name...>")
    .description(kind === "secret" ? "show secrets as JSON (without their values)" : "show configs as JSON, values decoded")
    .option(kind === "config" ? "--raw" : "--json", kind === "config" ? "print the value alone (one config)" : "print JSON (the default)")
    .action(async (names: string[], o: { raw?: boolean }) => {
      const c = client();
      const rows = await Promise.all(names.map((n) => c.request<ValueView>("GET", `${path}/${enc(n)}`)));
      if (o.raw) return void process.stdout.write(Buffer.from(rows[0]?.data ?? "", "base64"));
      json(rows.map((r) => (r.data !== undefined ? { ...r, data: Buffer.from(r.data, "base64").toString("utf8") } : r)));
    });
  cmd
    .command("rm <name...>")
    .description(`remove ${kind}s`)
    .action(async (names: string[]) => {
      const c = client();
      for (const n of names) {
        await c.request("DELETE", `${path}/${enc(n)}`);
        out(n);
      }
    });
  return cmd;
}

export function registerSecrets(program: Command): void {
  registerKind(program, "secret")
    .command("rotate-key")
    .description("re-encrypt every secret and config with a new key (admin only)")
    .action(async () => {
      const r = await client().request<{ resealed: number; keyId: string }>("POST", "/api/v1/secrets/rotate-key");
      note(`${r.resealed} values re-encrypted with key ${r.keyId}`);
    });
  registerKind(program, "config");
}
