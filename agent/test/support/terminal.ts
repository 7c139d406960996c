// A real terminal for tests of interactive programs (docker run -it, docker exec -it): a tmux
// session on a server of its own, driven with send-keys and read with capture-pane. The
// program runs in the pane's pty, so it sees a terminal of the pane's size and gets SIGWINCH
// when the window is resized.
import { execFileSync } from "node:child_process";

export const HAS_TMUX = (() => {
  try {
    execFileSync("tmux", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

let sessions = 0;

/** Shell-quotes one word for `sh -c`. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export class Terminal {
  private constructor(
    private readonly server: string,
    private readonly target: string,
  ) {}

  /**
   * Runs `command` (a shell command line) in a new cols×rows window; when it ends, the pane
   * prints `__EXIT=<status>__` and stays, so its exit status and last output can be read.
   */
  static start(command: string, env: NodeJS.ProcessEnv, cols = 120, rows = 40): Terminal {
    const server = `flotilla-test-${process.pid}`;
    const name = `t${++sessions}`;
    const vars = Object.entries(env)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${shq(v!)}`)
      .join(" ");
    const script = `env ${vars} ${command}; echo "__EXIT=$?__"; sleep 3600`;
    execFileSync(
      "tmux",
      ["-L", server, "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", String(cols), "-y", String(rows), "sh", "-c", script],
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME ?? "/root", TERM: "xterm" },
      },
    );
    return new Terminal(server, name);
  }

  private tmux(...args: string[]): string {
    return execFileSync("tmux", ["-L", this.server, ...args], { encoding: "utf8" });
  }

  /** Types text literally (no key names). */
  type(text: string): void {
    this.tmux("send-keys", "-t", this.target, "-l", text);
  }

  /** Presses keys by tmux name: Enter, C-p, C-q, C-d. */
  keys(...keys: string[]): void {
    this.tmux("send-keys", "-t", this.target, ...keys);
  }

  /** Types a line and presses Enter. */
  line(text: string): void {
    this.type(text);
    this.keys("Enter");
  }

  /** What the window shows now, wrapped lines joined. */
  screen(): string {
    return this.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", this.target);
  }

  resize(cols: number, rows: number): void {
    this.tmux("resize-window", "-t", this.target, "-x", String(cols), "-y", String(rows));
  }

  /** Waits until the screen matches; returns the match. Throws with the screen on timeout. */
  async waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen();
      const m = pattern.exec(s);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`terminal: timed out waiting for ${pattern}; screen:\n${s}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The exit status printed after the command ended. */
  async exitCode(timeoutMs = 15_000): Promise<number> {
    return Number((await this.waitFor(/__EXIT=(\d+)__/, timeoutMs))[1]);
  }

  kill(): void {
    try {
      this.tmux("kill-session", "-t", this.target);
    } catch {
      // gone already
    }
  }

  /** Ends the tmux server of this process (all its sessions). */
  static killServer(): void {
    try {
      execFileSync("tmux", ["-L", `flotilla-test-${process.pid}`, "kill-server"], { stdio: "ignore" });
    } catch {
      // no server
    }
  }
}
