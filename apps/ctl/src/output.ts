/** Tables for people, JSON for scripts; data on stdout, messages on stderr. */
export function table(rows: Record<string, unknown>[], columns: [header: string, key: string][]): string {
  const cells = rows.map((r) => columns.map(([, k]) => String(r[k] ?? "")));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i])))
      .join("   ")
      .trimEnd();
  return [line(columns.map(([h]) => h)), ...cells.map(line)].join("\n") + "\n";
}

export const out = (s: string): boolean => process.stdout.write(s.endsWith("\n") ? s : s + "\n");
export const note = (s: string) => process.stderr.write(s.endsWith("\n") ? s : s + "\n");
export const json = (v: unknown): void => void out(JSON.stringify(v, null, 2));

/**
 * Exits once stdout and stderr have handed everything to the OS. `process.exit` right after a
 * large write to a pipe drops what the pipe did not take yet (a pipe holds 64 KiB), so
 * `ctl ... --json | jq` would read a cut document. Writes complete in order, so an empty write's
 * callback on each stream means all before it are out.
 */
export function exitWhenFlushed(code: number): void {
  const drained = (stream: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => (stream.writableEnded || stream.destroyed ? resolve() : stream.write("", () => resolve())));
  void Promise.all([drained(process.stdout), drained(process.stderr)]).then(() => process.exit(code));
}
