// `--with-registry-auth`: the caller's credentials for the service image's registry, read where
// `docker login` keeps them (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, `auths`,
// base64 `user:password`), sent to the API, which stores them encrypted for that service's pulls.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { RegistryAuth } from "@flotilla/api-types";
import { CtlError } from "../client";

/** Docker Hub's key in config.json, as `docker login` writes it. */
const HUB = "https://index.docker.io/v1/";

/** The registry part of an image reference, as docker reads it: docker.io unless the first part is a host. */
export function registryOf(image: string): string {
  const slash = image.indexOf("/");
  if (slash < 0) return "docker.io";
  const first = image.slice(0, slash);
  return first.includes(".") || first.includes(":") || first === "localhost" ? first : "docker.io";
}

/** A config.json key (`https://host:port/v1/`, `host:port`) as a bare host[:port]. */
const hostOf = (key: string) => (key === HUB ? "docker.io" : key.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, ""));

/** The credentials `docker login` stored for the image's registry; a CtlError naming the flag otherwise. */
export function registryAuthFor(image: string, env: NodeJS.ProcessEnv = process.env): RegistryAuth {
  const registry = registryOf(image);
  const file = join(env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), ".docker"), "config.json");
  let config: {
    auths?: Record<string, { auth?: string; identitytoken?: string }>;
    credsStore?: string;
    credHelpers?: Record<string, string>;
  };
  try {
    config = JSON.parse(readFileSync(file, "utf8")) as typeof config;
  } catch (e) {
    throw new CtlError(`--with-registry-auth: cannot read ${file}: ${(e as Error).message} (docker login ${registry} first)`);
  }
  const entry = Object.entries(config.auths ?? {}).find(([key]) => hostOf(key) === registry)?.[1];
  if (!entry?.auth) {
    // Credential helpers keep the password outside config.json, where ctl does not reach.
    const helper = config.credHelpers?.[registry] ?? config.credsStore;
    if (helper)
      throw new CtlError(
        `--with-registry-auth: the credentials for ${registry} are kept by the credential helper "${helper}", which is not supported: log in without it`,
      );
    throw new CtlError(`--with-registry-auth: no credentials for ${registry} in ${file} (docker login ${registry} first)`);
  }
  const plain = Buffer.from(entry.auth, "base64").toString("utf8");
  const colon = plain.indexOf(":");
  if (colon <= 0) throw new CtlError(`--with-registry-auth: the credentials for ${registry} in ${file} are not base64 "user:password"`);
  return { username: plain.slice(0, colon), password: plain.slice(colon + 1), serverAddress: registry };
}
