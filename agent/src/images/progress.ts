/**
 * Docker's pull progress messages, the JSON objects `POST /images/create` streams one per line
 * and the docker CLI renders as the familiar per-layer bars. Pure.
 */

export interface ProgressMessage {
  status: string;
  /** Layer short ID (12 hex digits), or the tag for the "Pulling from" line. */
  id?: string;
  progressDetail?: { current?: number; total?: number };
  /** The pre-rendered bar, for clients that do not draw their own. */
  progress?: string;
}

export type ProgressListener = (message: ProgressMessage) => void;

/** The 12 hex digits Docker shows for a layer or image. */
export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

/** Docker's human sizes: decimal units, four significant digits (`1.088MB`). */
export function humanSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${Number(value.toPrecision(4))}${units[unit]}`;
}

/** `[=====>      ]  1.2MB/2.3MB`, as the Docker daemon renders it (50 columns). */
export function progressBar(current: number, total: number): string {
  const width = 50;
  if (total <= 0) return humanSize(current);
  const filled = Math.min(width, Math.floor((current / total) * width));
  const bar = filled >= width ? "=".repeat(width) : `${"=".repeat(filled)}>${" ".repeat(width - filled - 1)}`;
  return `[${bar}]  ${humanSize(current)}/${humanSize(total)}`;
}

/** A byte-progress message for a layer: Downloading or Extracting. */
export function byteProgress(status: "Downloading" | "Extracting", id: string, current: number, total: number): ProgressMessage {
  return { status, progressDetail: { current, total }, progress: progressBar(current, total), id };
}

/** A layer step without numbers: Pulling fs layer, Waiting, Verifying Checksum, Pull complete… */
export function layerStatus(status: string, id: string): ProgressMessage {
  return { status, progressDetail: {}, id };
}

/**
 * Limits byte-progress events to one per `intervalMs` per layer (and always lets the last one
 * through), so a fast local pull does not flood the client with thousands of lines.
 */
export function throttled(send: (current: number, total: number) => void, intervalMs = 100, now: () => number = Date.now) {
  let last = -Infinity;
  return (current: number, total: number) => {
    const t = now();
    if (current >= total || t - last >= intervalMs) {
      last = t;
      send(current, total);
    }
  };
}
