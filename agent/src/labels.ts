/** `k` or `k=v` against a label set (Docker's `label` filter). */
export function labelMatches(labels: Record<string, string> | null | undefined, filter: string): boolean {
  const eq = filter.indexOf("=");
  const key = eq >= 0 ? filter.slice(0, eq) : filter;
  if (!labels || !(key in labels)) return false;
  return eq < 0 || labels[key] === filter.slice(eq + 1);
}
