/**
 * The agent's side of a shim's attach socket (agent/shim/src/attach.h): connect to
 * `STATE_DIR/attach.sock` with a mode byte ("i" carries stdin, "o" output only), then raw bytes
 * both ways; and resize lines into the control FIFO. The shim outlives the agent, so a restarted
 * agent reconnects by path.
 */
import * as fs from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";

/**
 * Connects to the attach socket of the shim whose state directory is `stateDir`. The path may be
 * longer than a unix socket address allows (108 bytes), so it goes through a descriptor of the
 * directory, as the shim binds it.
 */
export function connectAttach(stateDir: string, withStdin: boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let dirFd: number;
    try {
      dirFd = fs.openSync(stateDir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (err) {
      reject(err);
      return;
    }
    const sock = connect(`/proc/self/fd/${dirFd}/attach.sock`);
    const done = () => {
      try {
        fs.closeSync(dirFd);
      } catch {
        // closed already
      }
    };
    sock.once("connect", () => {
      done();
      sock.write(withStdin ? "i" : "o");
      resolve(sock);
    });
    sock.once("error", (err) => {
      done();
      reject(err);
    });
  });
}

/** Writes one line to the shim's control FIFO; false when no shim listens. */
export function writeControl(stateDir: string, line: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(join(stateDir, "control"), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    fs.writeSync(fd, `${line}\n`);
    return true;
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** Sets the window size of a tty container or exec (the shim ignores it without a tty). */
export function resizeTty(stateDir: string, rows: number, cols: number): boolean {
  return writeControl(stateDir, `w ${rows} ${cols}`);
}
