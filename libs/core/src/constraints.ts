// Placement constraints (`node.labels.zone==a`) and preferences (`spread=node.labels.zone`):
// parsed once from the spec's strings, then matched against nodes by the scheduler and the
// orchestrator.
import { InvalidError } from "./errors";
import type { NodeInfo, PlacementPreference } from "./types";

export type ConstraintOperator = "==" | "!=";

/** A parsed constraint expression. */
export type Constraint =
  | {
      readonly attribute: "id" | "hostname" | "role";
      readonly operator: ConstraintOperator;
      readonly value: string;
      /** The expression in canonical form, e.g. `node.role==manager`. */
      readonly expression: string;
    }
  | {
      readonly attribute: "label";
      /** The label name after `node.labels.`. */
      readonly label: string;
      readonly operator: ConstraintOperator;
      readonly value: string;
      readonly expression: string;
    };

const KEYS_HINT = "use node.id, node.hostname, node.role or node.labels.<name>";
const LABEL_NAME = /^[A-Za-z0-9_.\-/]+$/;

/**
 * Parses `<key> == <value>` or `<key> != <value>` where key is `node.id`, `node.hostname`,
 * `node.role` or `node.labels.<name>`. Spaces around the operator are allowed.
 */
export function parseConstraint(input: string, field?: string): Constraint {
  const details = field === undefined ? { value: input } : { field, value: input };
  const m = /^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$/.exec(input);
  if (!m) {
    const hint = /[^=!]=[^=]/.test(input) ? "use == or != between key and value" : `use <key>==<value> or <key>!=<value>`;
    throw new InvalidError(`invalid constraint ${JSON.stringify(input)}: ${hint}`, details);
  }
  const [, key, op, value] = m;
  const operator = op as ConstraintOperator;
  if (value === "" || /[=!]=/.test(value)) {
    throw new InvalidError(`invalid constraint ${JSON.stringify(input)}: missing or malformed value`, details);
  }
  const lowerKey = key.toLowerCase();
  if (lowerKey.startsWith("node.labels.")) {
    const label = key.slice("node.labels.".length);
    if (!LABEL_NAME.test(label)) {
      throw new InvalidError(`invalid constraint ${JSON.stringify(input)}: bad label name ${JSON.stringify(label)}`, details);
    }
    return { attribute: "label", label, operator, value, expression: `node.labels.${label}${operator}${value}` };
  }
  if (lowerKey === "node.id" || lowerKey === "node.hostname" || lowerKey === "node.role") {
    const attribute = lowerKey.slice("node.".length) as "id" | "hostname" | "role";
    if (attribute === "role" && !["manager", "worker"].includes(value.toLowerCase())) {
      throw new InvalidError(`invalid constraint ${JSON.stringify(input)}: node.role is manager or worker`, details);
    }
    return { attribute, operator, value, expression: `node.${attribute}${operator}${value}` };
  }
  throw new InvalidError(`unsupported constraint key ${JSON.stringify(key)} in ${JSON.stringify(input)}: ${KEYS_HINT}`, details);
}

/**
 * Whether a node satisfies one constraint. Hostnames and roles compare without case, as DNS
 * names do; ids and label values compare exactly, since users choose them. A missing label
 * never equals a value, so `node.labels.x!=a` holds on a node without `x`.
 */
export function matchesConstraint(node: NodeInfo, c: Constraint): boolean {
  let equal: boolean;
  switch (c.attribute) {
    case "id":
      equal = node.id === c.value;
      break;
    case "hostname":
      equal = node.hostname.toLowerCase() === c.value.toLowerCase();
      break;
    case "role":
      equal = node.role === c.value.toLowerCase();
      break;
    case "label":
      equal = Object.prototype.hasOwnProperty.call(node.labels, c.label) && node.labels[c.label] === c.value;
      break;
  }
  return c.operator === "==" ? equal : !equal;
}

/** Whether a node satisfies every constraint. */
export function matchesConstraints(node: NodeInfo, constraints: readonly Constraint[]): boolean {
  for (const c of constraints) if (!matchesConstraint(node, c)) return false;
  return true;
}

/** Parses every constraint of a spec; the error's `details.field` is `placement.constraints[i]`. */
export function parseConstraints(expressions: readonly string[]): Constraint[] {
  return expressions.map((e, i) => parseConstraint(e, `placement.constraints[${i}]`));
}

/** Parses `spread=node.labels.<name>`, the only placement preference there is. */
export function parsePlacementPref(input: string, field?: string): PlacementPreference {
  const details = field === undefined ? { value: input } : { field, value: input };
  const m = /^\s*(\w+)\s*=\s*(\S+)\s*$/.exec(input);
  if (!m) {
    throw new InvalidError(`invalid placement preference ${JSON.stringify(input)}: use spread=node.labels.<name>`, details);
  }
  if (m[1].toLowerCase() !== "spread") {
    throw new InvalidError(`unsupported placement preference ${JSON.stringify(m[1])}: only spread is supported`, details);
  }
  const pref = { spread: m[2] };
  spreadLabel(pref, field);
  return pref;
}

/** The label name a spread preference balances over (`node.labels.zone` → `zone`). */
export function spreadLabel(pref: PlacementPreference, field?: string): string {
  const prefix = "node.labels.";
  const label = pref.spread.startsWith(prefix) ? pref.spread.slice(prefix.length) : "";
  if (!LABEL_NAME.test(label)) {
    const details = field === undefined ? { value: pref.spread } : { field, value: pref.spread };
    throw new InvalidError(`invalid spread descriptor ${JSON.stringify(pref.spread)}: use node.labels.<name>`, details);
  }
  return label;
}
