// Secrets and configs: immutable named values, sealed with the control plane's key (secret-keys.ts)
// before they reach Postgres. A secret's value is never returned after creation, never put into
// an event or a log line (events carry the name and size only); a config's value may be read back.
import { Inject, Injectable } from "@nestjs/common";
import { ConflictError, NotFoundError, validateSecretName, validateSecretSize, type SecretKind } from "@flotilla/core";
import { APP_CONFIG, type AppConfig } from "../config/config";
import { PrismaService } from "../database/prisma.service";
import { EventsService } from "../events/events.service";
import type { Prisma, Secret as SecretRow } from "../generated/prisma/client";
import type { RegistryAuth } from "@flotilla/api-types";
import { TX_OPTIONS } from "../services/mapping";
import { SecretKeys } from "./secret-keys";
import { DB_KIND, servicesUsing } from "./secret-references";

/** What the API shows of a secret or config (a config's view adds `data`). */
export interface SecretView {
  id: string;
  name: string;
  size: number;
  labels: Record<string, string>;
  createdAt: string;
  /** Configs only: the value, base64. */
  data?: string;
}

/** Authenticated data of a row's ciphertext: the value opens only as this kind and name. */
const aad = (kind: SecretKind, name: string) => `${kind}/${name}`;
/** A service's registry credentials: their row is named by the service's id. */
const registryAad = (serviceId: string) => `registry-auth/${serviceId}`;
const aadOf = (row: Pick<SecretRow, "kind" | "name">) =>
  row.kind === "REGISTRY_AUTH" ? registryAad(row.name) : aad(row.kind === "SECRET" ? "secret" : "config", row.name);

function view(row: SecretRow): SecretView {
  return {
    id: row.id,
    name: row.name,
    size: row.size,
    labels: (row.labels ?? {}) as Record<string, string>,
    createdAt: row.createdAt.toISOString(),
  };
}

@Injectable()
export class SecretsService {
  private keysCache?: SecretKeys;

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: EventsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  // Made on first use: a control plane that never stores a secret never writes a key file.
  private get keys(): SecretKeys {
    return (this.keysCache ??= new SecretKeys(this.config.secretsKeyFile));
  }

  /** Stores a new value; a name is taken once (values are immutable: remove and create again). */
  async create(kind: SecretKind, name: string, data: Buffer, labels: Record<string, string> = {}): Promise<SecretView> {
    validateSecretName(kind, name);
    validateSecretSize(kind, data.length);
    const sealed = this.keys.seal(data, aad(kind, name));
    const { row, evs } = await this.prisma
      .$transaction(async (tx) => {
        if (await tx.secret.findUnique({ where: { kind_name: { kind: DB_KIND[kind], name } } }))
          throw new ConflictError(`a ${kind} named "${name}" already exists (${kind}s are immutable: remove it and create it again)`, {
            field: "name",
          });
        const row = await tx.secret.create({
          data: { kind: DB_KIND[kind], name, size: data.length, labels, ...sealed },
        });
        const evs = await this.events.record(tx, [{ kind, subjectId: row.id, action: "create", data: { name, size: data.length } }]);
        return { row, evs };
      }, TX_OPTIONS)
      .catch((e: unknown) => {
        if ((e as { code?: string }).code === "P2002")
          throw new ConflictError(`a ${kind} named "${name}" already exists`, { field: "name" });
        throw e;
      });
    await this.events.publish(evs);
    return view(row);
  }

  async list(kind: SecretKind): Promise<SecretView[]> {
    return (await this.prisma.secret.findMany({ where: { kind: DB_KIND[kind] }, orderBy: { name: "asc" } })).map(view);
  }

  /** A secret's metadata; a config's with its value. */
  async get(kind: SecretKind, ref: string): Promise<SecretView> {
    const row = await this.find(kind, ref);
    if (kind === "secret") return view(row);
    return { ...view(row), data: this.keys.open(row, aad(kind, row.name)).toString("base64") };
  }

  /** Removes a value no service uses; 409 naming the services otherwise. */
  async remove(kind: SecretKind, ref: string): Promise<void> {
    const evs = await this.prisma.$transaction(async (tx) => {
      const row = await this.find(kind, ref);
      // Deleted first: the row lock waits for a service write naming it (which holds a share
      // lock), so the check below sees that service.
      await tx.secret.delete({ where: { id: row.id } });
      const users = await servicesUsing(tx, kind, row.name);
      if (users.length) {
        throw new ConflictError(`${kind} ${row.name} is in use by service${users.length > 1 ? "s" : ""} ${users.join(", ")}`, {
          field: "name",
          services: users,
        });
      }
      return this.events.record(tx, [{ kind, subjectId: row.id, action: "remove", data: { name: row.name } }]);
    }, TX_OPTIONS);
    await this.events.publish(evs);
  }

  /**
   * Re-seals every secret and config with a new key (see secret-keys.ts for the order of steps).
   * Returns how many values were re-sealed and the new key's id.
   */
  async rotateKey(): Promise<{ resealed: number; keyId: string }> {
    const next = this.keys.prepareNext();
    const { resealed, evs } = await this.prisma.$transaction(async (tx) => {
      const rows = await tx.secret.findMany();
      for (const row of rows) {
        if (row.keyId === next) continue;
        const sealed = this.keys.seal(this.keys.open(row, aadOf(row)), aadOf(row), next);
        await tx.secret.update({ where: { id: row.id }, data: sealed });
      }
      const evs = await this.events.record(tx, [
        { kind: "secret", subjectId: null, action: "rotate-key", data: { keyId: next, values: rows.length } },
      ]);
      return { resealed: rows.length, evs };
    }, TX_OPTIONS);
    this.keys.commitNext();
    await this.events.publish(evs);
    return { resealed, keyId: next };
  }

  /** A value for a task (dispatch): decrypted only here, on its way to the agent. */
  async valueOf(kind: SecretKind, name: string): Promise<Buffer> {
    const row = await this.find(kind, name);
    return this.keys.open(row, aad(kind, row.name));
  }

  /**
   * Stores (or replaces) a service's registry credentials in the caller's transaction, sealed
   * like a secret. Only the registry's address stays readable (labels), for the service's view.
   */
  async setRegistryAuth(tx: Prisma.TransactionClient, serviceId: string, auth: RegistryAuth): Promise<void> {
    const plain = Buffer.from(JSON.stringify({ username: auth.username, password: auth.password, serveraddress: auth.serverAddress }));
    const sealed = this.keys.seal(plain, registryAad(serviceId));
    const fields = { size: plain.length, labels: { serverAddress: auth.serverAddress }, ...sealed };
    await tx.secret.upsert({
      where: { kind_name: { kind: "REGISTRY_AUTH", name: serviceId } },
      create: { kind: "REGISTRY_AUTH", name: serviceId, ...fields },
      update: fields,
    });
  }

  /** A service's credentials as Docker's X-Registry-Auth header (for dispatch only); undefined: anonymous. */
  async registryAuthHeader(serviceId: string): Promise<string | undefined> {
    return (await this.registryAuthHeaders([serviceId])).get(serviceId);
  }

  /** The X-Registry-Auth values of these services (those given credentials), in one read. */
  async registryAuthHeaders(serviceIds: readonly string[]): Promise<Map<string, string>> {
    const rows = await this.prisma.secret.findMany({ where: { kind: "REGISTRY_AUTH", name: { in: [...new Set(serviceIds)] } } });
    return new Map(rows.map((row) => [row.name, this.keys.open(row, registryAad(row.name)).toString("base64url")]));
  }

  /** The registries services pull from with credentials, by service id. */
  async registryAuthViews(serviceIds: readonly string[]): Promise<Map<string, { serverAddress: string }>> {
    const rows = await this.prisma.secret.findMany({
      where: { kind: "REGISTRY_AUTH", name: { in: [...serviceIds] } },
      select: { name: true, labels: true },
    });
    return new Map(rows.map((r) => [r.name, { serverAddress: String((r.labels as { serverAddress?: string }).serverAddress ?? "") }]));
  }

  private async find(kind: SecretKind, ref: string): Promise<SecretRow> {
    const isId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(ref);
    const row = await this.prisma.secret.findFirst({ where: { kind: DB_KIND[kind], ...(isId ? { id: ref } : { name: ref }) } });
    if (!row) throw new NotFoundError(kind, ref);
    return row;
  }
}
