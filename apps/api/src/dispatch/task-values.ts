// The values a task needs beyond its spec, fetched at dispatch on their way to the agent: its
// secrets' and configs' contents and its service's registry credentials, decrypted only here and
// sent over the agent's mutual TLS connection. Nothing here is logged; an error names the value,
// never its content.
import { Injectable } from "@nestjs/common";
import type { SecretKind, ServiceSpec } from "@flotilla/core";
import type { FlotillaFile } from "@flotilla/engine-client";
import { Batcher } from "../common/batcher";
import { SecretsService } from "../secrets/secrets.service";

/** What one launch adds to the container body. */
export interface TaskValues {
  files: FlotillaFile[];
  /** X-Registry-Auth for the image's pull, when the service was given credentials. */
  registryAuth?: string;
}

/** Loads each value once per dispatch job (a job may start many tasks of one service). */
export class TaskValuesLoader {
  private readonly cache = new Map<string, Promise<Buffer>>();
  private readonly auths = new Map<string, Promise<string | undefined>>();

  constructor(
    private readonly secrets: SecretsService,
    private readonly registryAuth: (serviceId: string) => Promise<string | undefined>,
  ) {}

  private value(kind: SecretKind, name: string): Promise<Buffer> {
    const key = `${kind}/${name}`;
    let p = this.cache.get(key);
    if (!p) {
      p = this.secrets.valueOf(kind, name);
      this.cache.set(key, p);
    }
    return p;
  }

  /** A task of this service: its files (secrets, then configs) and the service's registry credentials. */
  async forTask(serviceId: string, spec: Pick<ServiceSpec, "secrets" | "configs">): Promise<TaskValues> {
    let auth = this.auths.get(serviceId);
    if (!auth) {
      auth = this.registryAuth(serviceId);
      this.auths.set(serviceId, auth);
    }
    const registryAuth = await auth.catch((e: unknown) => {
      throw new Error(`registry credentials: ${(e as Error).message}`);
    });
    return { ...(await this.forSpec(spec)), ...(registryAuth ? { registryAuth } : {}) };
  }

  /** The files of a task of this spec: its secrets, then its configs. */
  async forSpec(spec: Pick<ServiceSpec, "secrets" | "configs">): Promise<TaskValues> {
    const files: FlotillaFile[] = [];
    for (const kind of ["secret", "config"] as const) {
      for (const r of spec[`${kind}s`]) {
        const data = await this.value(kind, r.source).catch((e: unknown) => {
          throw new Error(`${kind} ${r.source}: ${(e as Error).message}`);
        });
        files.push({ Target: r.target, Data: data.toString("base64"), UID: Number(r.uid), GID: Number(r.gid), Mode: r.mode });
      }
    }
    return { files };
  }
}

@Injectable()
export class TaskValuesService {
  // Dispatch jobs of many nodes run at once, each wanting its services' credentials: one read
  // answers them together (a read per job and service was the worker's busiest query).
  private readonly registryAuths = new Batcher<string, string | undefined>(
    async (ids) => {
      const found = await this.secrets.registryAuthHeaders(ids);
      return ids.map((id) => found.get(id));
    },
    { maxInFlight: 2, maxBatch: 500 },
  );

  constructor(private readonly secrets: SecretsService) {}

  /** A loader for one dispatch job. */
  loader(): TaskValuesLoader {
    return new TaskValuesLoader(this.secrets, (id) => this.registryAuths.call(id));
  }
}
