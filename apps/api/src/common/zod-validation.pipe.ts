import { PipeTransform } from "@nestjs/common";
import { InvalidError } from "@flotilla/core";
import type { ZodType } from "zod";

/** Validates a body or query with zod; the error names the first offending field. */
export class ZodValidationPipe<T> implements PipeTransform<unknown, T> {
  constructor(private readonly schema: ZodType<T>) {}

  transform(value: unknown): T {
    const result = this.schema.safeParse(value ?? {});
    if (result.success) return result.data;
    const issues = result.error.issues.map((i) => ({ field: i.path.join(".") || "(body)", message: i.message }));
    const first = issues[0];
    throw new InvalidError(`invalid ${first.field}: ${first.message}`, { field: first.field, issues });
  }
}
