// Facts written down in two packages, checked to agree at compile time. @flotilla/api-types may
// import nothing (the console uses it in the browser), so the REST shapes repeat some of
// @flotilla/core's and @flotilla/drivers' types; apps/api imports all three and is where a
// difference becomes a compile error (`tsc -b` fails here, naming the pair) instead of a cast
// hiding it. Types only: nothing here runs.
import type * as Api from "@flotilla/api-types";
import type * as Core from "@flotilla/core";
import type * as Drivers from "@flotilla/drivers";
import type { z } from "zod";
import type { StoredServiceSpec } from "../services/stored-spec";

/** True when A and B are the same type (not merely assignable either way). */
export type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Fails to compile unless T is `true`. */
type Assert<T extends true> = T;

/** The same shape with every `readonly` removed, arrays included: core's types are read-only, the REST types are not. */
export type Mutable<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends readonly (infer U)[]
    ? Mutable<U>[]
    : T extends object
      ? { -readonly [K in keyof T]: Mutable<T[K]> }
      : T;

/**
 * Core's spec as the REST API shows it. The one documented difference: specs stored before
 * publish modes existed have ports without `mode` (ingress), so the REST type keeps it optional.
 */
type RestSpecOf<S extends Core.ServiceSpec> = Omit<Mutable<S>, "ports"> & {
  ports: (Omit<Mutable<Core.PortConfig>, "mode"> & { mode?: Core.PublishMode })[];
};
type Flat<T> = T extends (infer U)[] ? Flat<U>[] : T extends object ? { [K in keyof T]: Flat<T[K]> } : T;

export type TypeAgreement = [
  Assert<Equal<Api.TaskState, Core.TaskState>>,
  Assert<Equal<typeof Api.ACTIVE_TASK_STATES, typeof Core.ACTIVE_TASK_STATES>>,
  Assert<Equal<Api.DesiredState, Core.DesiredState>>,
  Assert<Equal<Flat<Api.ServiceSpec>, Flat<RestSpecOf<Core.ServiceSpec>>>>,
  Assert<Equal<Flat<Api.Mount>, Flat<Mutable<Core.Mount>>>>,
  Assert<Equal<Flat<Api.SecretReference>, Flat<Mutable<Core.SecretReference>>>>,
  Assert<Equal<Flat<Api.HealthCheck>, Flat<Mutable<Core.HealthCheck>>>>,
  Assert<Equal<Flat<Api.UpdateConfig>, Flat<Mutable<Core.UpdateConfig>>>>,
  Assert<Equal<Flat<Api.RestartPolicy>, Flat<Mutable<Core.RestartPolicy>>>>,
  Assert<Equal<Api.NodeRole, Core.NodeRole>>,
  Assert<Equal<Api.NodeStatus, Core.NodeStatus>>,
  Assert<Equal<Api.NodeAvailability, Core.NodeAvailability>>,
  Assert<Equal<Api.OptionType, Drivers.OptionType>>,
  Assert<Equal<Api.OptionValue, Drivers.OptionValue>>,
  Assert<Equal<Flat<Api.DriverOption>, Flat<Mutable<Drivers.OptionSpec>>>>,
  // The schema that parses the spec columns reads exactly core's spec.
  Assert<Equal<Flat<z.output<typeof StoredServiceSpec>>, Flat<Mutable<Core.ServiceSpec>>>>,
];

/** Core's spec handed out as the REST type: the same shape (checked above), minus `readonly`. */
export function restSpec(spec: Core.ServiceSpec): Api.ServiceSpec {
  return spec as Mutable<Core.ServiceSpec>;
}
