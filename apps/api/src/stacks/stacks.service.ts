// Stacks: the services of one compose file, tied together by the com.docker.stack.namespace
// label (as `docker stack deploy` does). A deploy parses the file (libs/core parseCompose: every
// refusal happens here, before anything is created), compares it with the stack's services
// (planStackDeploy) and creates or updates only what changed, through ServicesService, so each
// change is the same transaction and reconcile as a `ctl service` command.
import { ForbiddenException, Injectable } from "@nestjs/common";
import type { ServiceView, TaskView } from "@flotilla/api-types";
import {
  addedBindSources,
  DomainError,
  InvalidError,
  NotFoundError,
  parseCompose,
  planStackDeploy,
  STACK_LABEL,
  type ComposeStack,
  type ServiceSpec,
} from "@flotilla/core";
import { NetworksRepository } from "../networks/networks.repository";
import { NetworksService } from "../networks/networks.service";
import { ServicesService, type Caller } from "../services/services.service";
import { TasksService } from "../tasks/tasks.service";
import { PrismaService } from "../database/prisma.service";
import { assertReferencesExist } from "../secrets/secret-references";

/** What POST /api/v1/stacks takes. */
export interface DeployStackBody {
  name: string;
  /** The compose file's text. */
  compose: string;
  /** Variables for interpolation (the CLI sends those the file names, from its environment). */
  env?: Record<string, string>;
  /** The `.env` beside the file. */
  dotenv?: string;
  /** env_file texts by the path the file gives. */
  envFiles?: Record<string, string>;
  /** Remove the stack's services the file no longer has. */
  prune?: boolean;
}

/** What a deploy did, by service name. */
export interface StackDeployResult {
  name: string;
  created: string[];
  updated: string[];
  unchanged: string[];
  removed: string[];
  /** The stack's overlay networks created by this deploy (external ones are never created). */
  networksCreated: string[];
}

/** A stack in the list. */
export interface StackView {
  name: string;
  services: number;
}

const notFound = (name: string) =>
  new DomainError("not_found", `stack ${name} not found: no service has ${STACK_LABEL}=${name}`, { stack: name });

@Injectable()
export class StacksService {
  constructor(
    private readonly services: ServicesService,
    private readonly tasks: TasksService,
    private readonly prisma: PrismaService,
    private readonly networks: NetworksService,
    private readonly networkRows: NetworksRepository,
  ) {}

  async deploy(body: DeployStackBody, caller: Caller): Promise<StackDeployResult> {
    const parsed = parseCompose({
      text: body.compose,
      stack: body.name,
      env: body.env ?? {},
      ...(body.dotenv !== undefined ? { dotenv: body.dotenv } : {}),
      envFiles: body.envFiles ?? {},
    });
    const current = (await this.servicesOf(parsed.stack)).map((s) => s.spec as unknown as ServiceSpec);
    const plan = planStackDeploy(current, parsed.services, { prune: !!body.prune });
    // Every refusal before the first change: a stack is deployed whole or not at all.
    const byName = new Map(current.map((s) => [s.name, s]));
    const binds = [...plan.create, ...plan.update].flatMap((s) => addedBindSources(byName.get(s.name), s).map((p) => `${s.name}: ${p}`));
    if (binds.length && !caller.admin) {
      throw new ForbiddenException(`only an admin token may bind a node's paths into a service (${binds.join(", ")})`);
    }
    // The secrets and configs named must exist before anything is created or changed.
    for (const spec of [...plan.create, ...plan.update]) {
      await assertReferencesExist(this.prisma, spec).catch((e: unknown) => {
        if (e instanceof DomainError) throw new InvalidError(`${spec.name}: ${e.message}`, e.details);
        throw e;
      });
    }
    await this.assertExternalNetworks(parsed);
    // The stack's networks first (its services attach to them by id); a deploy that fails after
    // creating some removes those again, so a refused file leaves nothing behind.
    const networksCreated: string[] = [];
    try {
      const ids = new Map<string, string>();
      for (const n of parsed.networks) {
        const existing = await this.networkRows.find(n.name).catch((e: unknown) => {
          if (e instanceof NotFoundError) return undefined;
          throw e;
        });
        if (existing) ids.set(n.name, existing.id);
        else {
          const made = await this.networks.create({
            name: n.name,
            ...(n.subnet ? { subnet: n.subnet } : {}),
            ...(n.gateway ? { gateway: n.gateway } : {}),
            labels: { ...n.labels, [STACK_LABEL]: parsed.stack },
          });
          networksCreated.push(n.name);
          ids.set(n.name, made.id);
        }
      }
      // Stored specs name networks by id: compare like with like, so an unchanged service stays so.
      const wanted = parsed.services.map((s) => ({ ...s, networks: s.networks.map((a) => ({ ...a, target: ids.get(a.target)! })) }));
      const resolved = planStackDeploy(current, wanted, { prune: !!body.prune });
      for (const spec of resolved.create) await this.services.create(toBody(spec), caller);
      for (const spec of resolved.update) {
        const { name: _name, ...patch } = toBody(spec);
        await this.services.update(spec.name, patch, caller);
      }
      for (const name of resolved.remove) await this.services.remove(name);
      if (body.prune) await this.removeNetworks(parsed.stack, new Set(parsed.networks.map((n) => n.name)));
      return {
        name: parsed.stack,
        created: resolved.create.map((s) => s.name),
        updated: resolved.update.map((s) => s.name),
        unchanged: resolved.unchanged,
        removed: resolved.remove,
        networksCreated,
      };
    } catch (e) {
      for (const name of networksCreated) await this.networks.remove(name).catch(() => undefined);
      throw e;
    }
  }

  /** An external network must exist before anything is created: 400 naming it. */
  private async assertExternalNetworks(parsed: ComposeStack): Promise<void> {
    for (const n of parsed.networks.filter((x) => x.external)) {
      await this.networkRows.find(n.name).catch((e: unknown) => {
        if (e instanceof NotFoundError)
          throw new InvalidError(
            `networks.${n.key}: external network "${n.name}" does not exist (ctl network create --driver overlay ${n.name})`,
            {
              field: `networks.${n.key}`,
            },
          );
        throw e;
      });
    }
  }

  /** Removes the stack's own networks (labelled with it), but those in `keep`. */
  private async removeNetworks(stack: string, keep: ReadonlySet<string> = new Set()): Promise<string[]> {
    const removed: string[] = [];
    for (const n of await this.networks.list()) {
      if (n.labels[STACK_LABEL] !== stack || keep.has(n.name)) continue;
      await this.networks.remove(n.id);
      removed.push(n.name);
    }
    return removed;
  }

  async list(): Promise<StackView[]> {
    const counts = new Map<string, number>();
    for (const s of await this.services.list()) {
      const stack = s.spec.labels[STACK_LABEL];
      if (stack) counts.set(stack, (counts.get(stack) ?? 0) + 1);
    }
    return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([name, services]) => ({ name, services }));
  }

  async servicesOf(name: string): Promise<ServiceView[]> {
    return (await this.services.list()).filter((s) => s.spec.labels[STACK_LABEL] === name);
  }

  async servicesOrThrow(name: string): Promise<ServiceView[]> {
    const list = await this.servicesOf(name);
    if (!list.length) throw notFound(name);
    return list;
  }

  async tasksOf(name: string): Promise<TaskView[]> {
    const services = await this.servicesOrThrow(name);
    return (await Promise.all(services.map((s) => this.tasks.list({ service: s.id })))).flat();
  }

  /** Removes every service of the stack, then its networks. */
  async remove(name: string): Promise<{ services: string[]; networks: string[] }> {
    const services = await this.servicesOrThrow(name);
    for (const s of services) await this.services.remove(s.id);
    return { services: services.map((s) => s.name), networks: await this.removeNetworks(name) };
  }
}

/** A core spec as ServicesService's create body (same fields; lists made mutable). */
function toBody(spec: ServiceSpec) {
  return JSON.parse(JSON.stringify(spec)) as Parameters<ServicesService["create"]>[0];
}
