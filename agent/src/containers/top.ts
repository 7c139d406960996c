/**
 * GET /containers/{id}/top: the host's `ps` with the client's ps_args (default -ef), narrowed to
 * the processes of the container's cgroup, as dockerd does. The parsing is pure.
 */
import { execFile } from "node:child_process";
import { HttpError } from "../engine-errors";

export interface TopResult {
  Titles: string[];
  Processes: string[][];
}

/** Keeps the rows of `ps` output whose PID column is one of `pids`. */
export function filterPs(output: string, pids: ReadonlySet<number>): TopResult {
  const lines = output.split("\n").filter((l) => l.trim());
  const header = lines.shift() ?? "";
  const titles = header.trim().split(/\s+/);
  const pidCol = titles.indexOf("PID");
  if (pidCol < 0) throw new HttpError(500, "Couldn't find PID field in ps output");
  const processes: string[][] = [];
  for (const line of lines) {
    // The last column (the command) may contain spaces: split into at most titles.length fields.
    const fields: string[] = [];
    let rest = line.trim();
    while (fields.length < titles.length - 1 && rest) {
      const m = /^(\S+)\s*/.exec(rest)!;
      fields.push(m[1]!);
      rest = rest.slice(m[0].length);
    }
    if (rest) fields.push(rest);
    const pid = Number(fields[pidCol]);
    if (pids.has(pid)) processes.push(fields);
  }
  return { Titles: titles, Processes: processes };
}

/** Runs `ps ARGS` on the host (never a shell). */
export function runPs(psArgs: string): Promise<string> {
  const args = psArgs.trim() ? psArgs.trim().split(/\s+/) : ["-ef"];
  return new Promise((resolve, reject) => {
    execFile("ps", args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new HttpError(500, `Error running ps: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}
