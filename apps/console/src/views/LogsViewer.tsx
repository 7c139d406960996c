// `GET /services/{id}/logs?follow=1`, streamed into the page as it arrives. The API reads the
// tasks running when the request starts, so the stream is reopened when that set changes.
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import type { ServiceView, TaskView } from "@flotilla/api-types";
import { seg } from "../data/client";
import { useApi } from "../data/live";
import { ErrorNote } from "../components/feedback";

const MAX_LINES = 2_000;

type Status = "connecting" | "following" | "ended" | "loaded";

export function LogsViewer({ service, tasks }: { service: ServiceView; tasks: readonly TaskView[] }) {
  const api = useApi();
  const [follow, setFollow] = useState(true);
  const [tail, setTail] = useState(100);
  const [lines, setLines] = useState<string[]>([]);
  const [status, setStatus] = useState<Status>("connecting");
  const [error, setError] = useState<unknown>(undefined);
  const [generation, setGeneration] = useState(0);
  const box = useRef<HTMLPreElement>(null);
  const stick = useRef(true);

  const running = tasks
    .filter((t) => t.desiredState === "running" && (t.state === "RUNNING" || t.state === "STARTING"))
    .map((t) => t.id)
    .sort()
    .join(",");
  const restartKey = follow ? running : "";

  useEffect(() => {
    const ac = new AbortController();
    setLines([]);
    setError(undefined);
    setStatus("connecting");
    (async () => {
      const res = await api.raw("GET", `/api/v1/services/${seg(service.id)}/logs?tail=${tail}${follow ? "&follow=1" : ""}`, {
        accept: "text/plain",
        signal: ac.signal,
      });
      setStatus(follow ? "following" : "loaded");
      const reader = res.body!.getReader();
      ac.signal.addEventListener("abort", () => void reader.cancel().catch(() => undefined), { once: true });
      const decoder = new TextDecoder();
      let partial = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const text = partial + decoder.decode(value, { stream: true });
        const parts = text.split("\n");
        partial = parts.pop() ?? "";
        if (parts.length) setLines((l) => [...l, ...parts].slice(-MAX_LINES));
      }
      if (partial) setLines((l) => [...l, partial].slice(-MAX_LINES));
      if (!ac.signal.aborted) setStatus(follow ? "ended" : "loaded");
    })().catch((e: unknown) => {
      if (!ac.signal.aborted) setError(e);
    });
    return () => ac.abort();
  }, [api, service.id, follow, tail, restartKey, generation]);

  // Keep the newest line in view unless the reader scrolled up to read something.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  const statusText = {
    connecting: "Connecting…",
    following: `Following ${running ? running.split(",").length : 0} running task(s)`,
    ended: "The stream ended: no task is running. It resumes when one starts.",
    loaded: `Showing the last ${tail} lines per task`,
  }[status];

  return (
    <section aria-labelledby="svc-logs" className="panel">
      <div className="section-head">
        <h2 id="svc-logs">Logs</h2>
        <div className="logs-bar">
          <label className="check">
            <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
          </label>
          <label>
            Lines per task{" "}
            <select value={tail} onChange={(e) => setTail(Number(e.target.value))}>
              {[20, 100, 500, 1000].map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <button type="button" onClick={() => setGeneration((g) => g + 1)}>
            Reload
          </button>
        </div>
      </div>
      <p className="hint" role="status">
        {statusText}
      </p>
      <ErrorNote error={error} />
      <pre
        ref={box}
        className="logs"
        role="log"
        aria-live="off"
        aria-label={`Logs of ${service.name}`}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.length ? lines.join("\n") : status === "connecting" ? "" : "(no log lines)"}
      </pre>
    </section>
  );
}
