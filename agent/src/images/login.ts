/**
 * `docker login` as dockerd does it for POST /auth: GET /v2/ on the registry; a 401 challenge is
 * answered with the credentials (Basic, or a token from the Bearer realm) and the ping retried.
 * Success means the registry accepted them; the agent stores nothing (the CLI keeps them).
 */
import { InvalidError } from "@flotilla/core";
import { discard } from "./http";
import type { Credentials, RegistryClient } from "./registry-client";

/** The registry refused the credentials: the CLI shows this after "Error response from daemon". */
export class LoginFailedError extends InvalidError {}

export async function login(client: RegistryClient, domain: string, credentials: Credentials): Promise<void> {
  const ref = { domain, path: "", tag: undefined, digest: undefined };
  const url = client.baseUrl(domain);
  const res = await client.call(ref as never, "GET", "/v2/", {}, { credentials });
  discard(res);
  if (res.status === 200) return;
  throw new LoginFailedError(
    `login attempt to ${url.origin}/v2/ failed with status: ${res.status} ${res.status === 401 ? "Unauthorized" : res.status === 403 ? "Forbidden" : ""}`.trim(),
  );
}
