// The API token lives in this tab's sessionStorage (gone when the tab closes) and in memory; it
// is sent only in the Authorization header.
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { Api } from "./data/client";

const KEY = "flotilla.console.token";

interface Session {
  api: Api | null;
  /** Why the last session ended, when the API ended it (a revoked token). */
  endedBecause: string | null;
  signIn(token: string): void;
  signOut(reason?: string): void;
}

const Ctx = createContext<Session | null>(null);

function stored(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [token, setToken] = useState<string | null>(stored);
  const [endedBecause, setEndedBecause] = useState<string | null>(null);

  const signOut = useCallback((reason?: string) => {
    try {
      sessionStorage.removeItem(KEY);
    } catch {
      // Storage may be disabled; the in-memory token is cleared below either way.
    }
    setToken(null);
    setEndedBecause(reason ?? null);
  }, []);

  const signIn = useCallback((t: string) => {
    try {
      sessionStorage.setItem(KEY, t);
    } catch {
      // Without storage the session lasts until reload.
    }
    setEndedBecause(null);
    setToken(t);
  }, []);

  const api = useMemo(() => {
    if (!token) return null;
    const a = new Api(token, (message) => signOut(message));
    // The other replicas, to fail over to; without them the console stays with the one that served it.
    a.discoverReplicas().catch(() => undefined);
    return a;
  }, [token, signOut]);
  const value = useMemo(() => ({ api, endedBecause, signIn, signOut }), [api, endedBecause, signIn, signOut]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): Session {
  const c = useContext(Ctx);
  if (!c) throw new Error("useSession outside SessionProvider");
  return c;
}
