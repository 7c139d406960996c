// Checks a parsed (and interpolated) compose document against the Compose specification's JSON
// schema (compose-spec.json, vendored from compose-spec/compose-spec, Apache-2.0; see
// COMPOSE-SPEC.md). Unknown keys are reported with their path (`services.web.deploy.wat`).
import Ajv, { type ErrorObject, type ValidateFunction } from "ajv";
import { InvalidError } from "../errors";
import schema from "./compose-spec.json";

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  // strict off: the spec uses keywords ajv does not know ("deprecated"); formats are not checked
  // here, the translation checks each value it uses with its own message.
  compiled ??= new Ajv({ allErrors: true, strict: false, validateFormats: false, validateSchema: false }).compile(schema);
  return compiled;
}

/** `/services/web/ports/1` → `services.web.ports[1]`. */
export function pathOf(pointer: string): string {
  return pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), "");
}

/** The problems worth telling a user, most specific first: unknown keys, then the rest. */
export function schemaProblems(errors: readonly ErrorObject[]): string[] {
  const unknown = errors
    .filter((e) => e.keyword === "additionalProperties")
    .map((e) => {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const at = pathOf(e.instancePath);
      return `${at ? `${at}.` : ""}${key}: unknown key`;
    });
  if (unknown.length) return [...new Set(unknown)];
  // oneOf/anyOf failures repeat each alternative's complaint: keep one line per path.
  const byPath = new Map<string, string>();
  for (const e of errors) {
    const at = pathOf(e.instancePath) || "(root)";
    if (!byPath.has(at) || e.keyword === "oneOf" || e.keyword === "anyOf") byPath.set(at, `${at}: ${e.message ?? "is invalid"}`);
  }
  return [...byPath.values()];
}

/** Throws InvalidError naming every problem (field: the first path) unless the document is valid. */
export function validateComposeSchema(doc: unknown): void {
  const validate = validator();
  if (validate(doc)) return;
  const problems = schemaProblems(validate.errors ?? []);
  throw new InvalidError(`compose file: ${problems.join("; ")}`, { field: problems[0]?.split(":")[0], problems });
}
