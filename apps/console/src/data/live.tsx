// One event stream per signed-in console, shared by every view: views subscribe to event kinds
// and re-fetch their lists when one arrives (throttled, so a burst of task events is one request
// per interval).
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import type { ApiEvent, MachineProgress } from "@flotilla/api-types";
import { Api } from "./client";
import { openEventStream, type StreamStatus } from "./events";

type Listener = (e: ApiEvent | "resync") => void;

interface LiveContext {
  api: Api;
  status: StreamStatus;
  /** The latest progress event of each machine (by id) seen since sign-in. */
  progress: Readonly<Record<string, MachineProgress>>;
  /** The most recent events, newest first. */
  recent: readonly ApiEvent[];
  subscribe(fn: Listener): () => void;
}

const Ctx = createContext<LiveContext | null>(null);
const RECENT = 30;

export function LiveProvider({ api, children }: { api: Api; children: ReactNode }) {
  const [status, setStatus] = useState<StreamStatus>("connecting");
  const [progress, setProgress] = useState<Record<string, MachineProgress>>({});
  const [recent, setRecent] = useState<ApiEvent[]>([]);
  const listeners = useRef(new Set<Listener>());

  useEffect(() => {
    const emit = (e: ApiEvent | "resync") => listeners.current.forEach((l) => l(e));
    const stream = openEventStream(api, {
      onStatus: setStatus,
      onResync: () => emit("resync"),
      onEvent: (e) => {
        if (e.kind === "machine" && e.action === "progress" && e.subjectId) {
          const id = e.subjectId;
          setProgress((p) => ({ ...p, [id]: e.data as unknown as MachineProgress }));
        }
        setRecent((r) => [e, ...r].slice(0, RECENT));
        emit(e);
      },
    });
    return () => stream.stop();
  }, [api]);

  const subscribe = useCallback((fn: Listener) => {
    listeners.current.add(fn);
    return () => void listeners.current.delete(fn);
  }, []);

  const value = useMemo(() => ({ api, status, progress, recent, subscribe }), [api, status, progress, recent, subscribe]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useLive(): LiveContext {
  const c = useContext(Ctx);
  if (!c) throw new Error("useLive outside LiveProvider");
  return c;
}

export const useApi = (): Api => useLive().api;

/**
 * Calls `fn` at most once per `intervalMs` after events of one of `kinds` arrive, and after a
 * reconnect. A throttle, not a debounce: a debounce restarted by every event would not re-fetch
 * at all while a machine's provisioning steps stream in, so the new machine would only appear
 * once its creation had paused.
 */
export function useOnEvents(kinds: readonly string[], fn: () => void, intervalMs = 250): void {
  const { subscribe } = useLive();
  const latest = useRef(fn);
  latest.current = fn;
  const key = kinds.join(",");
  useEffect(() => {
    const wanted = new Set(key.split(","));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const unsubscribe = subscribe((e) => {
      if (e !== "resync" && !wanted.has(e.kind)) return;
      // Events that arrive while one is pending are covered by it: it fetches after them.
      timer ??= setTimeout(() => {
        timer = undefined;
        latest.current();
      }, intervalMs);
    });
    return () => {
      clearTimeout(timer);
      unsubscribe();
    };
  }, [key, subscribe, intervalMs]);
}

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  /** Fetches again now; resolves once the answer is in. */
  reload(): Promise<void>;
}

/**
 * A GET kept fresh from the event stream: fetched on mount and again after events of `kinds`.
 * Only the newest answer is kept, so a slow early response never overwrites a later one.
 */
export function useResource<T>(path: string | null, kinds: readonly string[]): Resource<T> {
  const api = useApi();
  const [state, setState] = useState<{ path: string | null; data?: T; error?: Error }>({ path });
  const seq = useRef(0);

  const load = useCallback(async () => {
    if (!path) return;
    const mine = ++seq.current;
    try {
      const data = await api.get<T>(path);
      if (mine === seq.current) setState({ path, data });
    } catch (e) {
      if (mine === seq.current) setState((s) => ({ path, data: s.path === path ? s.data : undefined, error: e as Error }));
    }
  }, [api, path]);

  useEffect(() => void load(), [load]);
  useOnEvents(kinds, () => void load());
  const current = state.path === path;
  return { data: current ? state.data : undefined, error: current ? state.error : undefined, reload: load };
}
