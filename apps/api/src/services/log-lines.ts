/**
 * Splits a task's log stream into lines for `GET /services/{id}/logs`. A line is held until its
 * newline arrives, but never more than MAX_PARTIAL_LINE bytes of it: a container printing
 * without newlines must not grow the control plane's memory without bound. Pure.
 */
export const MAX_PARTIAL_LINE = 64 * 1024;

export function splitLines(partial: string, chunk: string, max = MAX_PARTIAL_LINE): { lines: string[]; partial: string } {
  const parts = (partial + chunk).split("\n");
  let rest = parts.pop() ?? "";
  const lines = parts;
  while (rest.length > max) {
    lines.push(rest.slice(0, max));
    rest = rest.slice(max);
  }
  return { lines, partial: rest };
}
