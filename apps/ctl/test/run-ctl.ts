// Runs `ctl` from source as a user would: its own process, a clean environment, exit code and
// both streams captured.
import { execFile } from "node:child_process";
import { join } from "node:path";

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const ctlArgv = (args: string[]) => ["--import", "tsx", join(__dirname, "../src/main.ts"), ...args];
export const ctlEnv = (env: Record<string, string>) => ({
  PATH: process.env.PATH,
  HOME: "/nonexistent",
  TSX_TSCONFIG_PATH: join(__dirname, "../tsconfig.json"),
  ...env,
});

export function ctl(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CtlResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ctlArgv(args), { env: ctlEnv(env), encoding: "utf8", timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
