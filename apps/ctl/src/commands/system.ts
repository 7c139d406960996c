import type { Command } from "commander";
import type { ControlPlaneView, HealthView as Health } from "@flotilla/api-types";
import { writeFileSync, mkdirSync, chmodSync, renameSync } from "node:fs";
import { join } from "node:path";
import { ApiClient, configDir, loadCtlConfig } from "../client";
import { json, out, table } from "../output";

export function registerSystem(program: Command): void {
  program
    .command("status")
    .description("show whether the control plane, Postgres and Redis answer, and the API replicas it lists")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const config = loadCtlConfig();
      const client = new ApiClient(config);
      const health = await client.request<Health>("GET", "/api/v1/health", undefined, { acceptStatus: [503] });
      // The replicas the control plane lists (FLOTILLA_PUBLIC_URLS): what FLOTILLA_URL should name.
      // Needs a token; an API without the route, or none configured, shows none.
      const replicas = config.token
        ? await client.request<ControlPlaneView>("GET", "/api/v1/control-plane").then(
            (v) => v.apiUrls,
            () => [],
          )
        : [];
      // The replica that answered (with several in FLOTILLA_URL, not always the first).
      if (opts.json) return void json({ url: client.currentUrl, ...health, replicas });
      out(`API:      ${client.currentUrl} (${health.status}, version ${health.version}, role ${health.role})`);
      if (replicas.length) out(`Replicas: ${replicas.join(", ")}`);
      out(`Postgres: ${health.postgres.ok ? "ok" : `down: ${health.postgres.error ?? "no answer"}`}`);
      out(`Redis:    ${health.redis.ok ? "ok" : `down: ${health.redis.error ?? "no answer"}`}`);
      if (health.status !== "ok") process.exitCode = 1;
    });

  program
    .command("login")
    .description(
      "save the API URL and token ctl uses (in the user config dir, mode 0600), with the other API replicas the control plane lists",
    )
    .requiredOption("--token <token>", "API token")
    .option("--url <url>", "API base URL", loadCtlConfig().url)
    .action(async (opts: { token: string; url: string }) => {
      const given = loadCtlConfig({ FLOTILLA_URL: opts.url, FLOTILLA_CONFIG_DIR: "/nonexistent" }).urls ?? [];
      const client = new ApiClient({ url: given[0] ?? opts.url, urls: given, token: opts.token, source: "login" });
      // Any person's token (admin, operator, viewer) may read services: checks it is one.
      await client.request("GET", "/api/v1/services");
      // The control plane's other replicas (FLOTILLA_PUBLIC_URLS) are saved too, after the URLs
      // given, so later commands fail over to them. An API without the list adds none.
      const listed = await client.request<ControlPlaneView>("GET", "/api/v1/control-plane").then(
        (v) => v.apiUrls,
        () => [],
      );
      const urls = [...given, ...listed.filter((u) => !given.includes(u))];
      const dir = configDir();
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, "config.json");
      writeFileSync(`${file}.tmp`, JSON.stringify({ url: urls.join(","), token: opts.token }, null, 2) + "\n", { mode: 0o600 });
      chmodSync(`${file}.tmp`, 0o600);
      renameSync(`${file}.tmp`, file);
      process.stderr.write(`logged in to ${urls.join(", ")}; saved to ${file}\n`);
    });

  const token = program.command("token").description("manage API tokens");
  token
    .command("ls")
    .description("list API tokens")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const rows = await new ApiClient(loadCtlConfig()).request<Record<string, unknown>[]>("GET", "/api/v1/tokens");
      if (opts.json) return void json(rows);
      out(
        table(rows, [
          ["NAME", "name"],
          ["ROLE", "role"],
          ["CREATED", "createdAt"],
          ["LAST USED", "lastUsedAt"],
        ]),
      );
    });
  token
    .command("create <name>")
    .description("create an API token and print its secret (shown once)")
    .option(
      "--role <role>",
      "admin (everything), operator (services, nodes, machines; no tokens, no host paths) or viewer (read only)",
      "admin",
    )
    .action(async (name: string, opts: { role: string }) => {
      const created = await new ApiClient(loadCtlConfig()).request<{ token: string }>("POST", "/api/v1/tokens", { name, role: opts.role });
      out(created.token);
    });
  token
    .command("rm <name>")
    .description("revoke an API token")
    .action(async (name: string) => {
      await new ApiClient(loadCtlConfig()).request("DELETE", `/api/v1/tokens/${encodeURIComponent(name)}`);
      process.stderr.write(`revoked ${name}\n`);
    });
}
