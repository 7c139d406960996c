// A small history router: the API answers every non-/api path with index.html, so deep links
// (/services/web) work on reload. Routes are plain paths; nothing secret ever goes in them.
import { useEffect, useState, type AnchorHTMLAttributes, type MouseEvent } from "react";

const CHANGE = "flotilla:navigate";

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === location.pathname) return;
  if (opts.replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  window.dispatchEvent(new Event(CHANGE));
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    window.addEventListener("popstate", update);
    window.addEventListener(CHANGE, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener(CHANGE, update);
    };
  }, []);
  return path;
}

export type Route =
  | { view: "overview" }
  | { view: "machines" }
  | { view: "nodes" }
  | { view: "services" }
  | { view: "service"; ref: string }
  | { view: "stacks" }
  | { view: "networks" }
  | { view: "map" }
  | { view: "missing"; path: string };

export function match(path: string): Route {
  const p = path.replace(/\/+$/, "") || "/";
  if (p === "/") return { view: "overview" };
  if (p === "/machines") return { view: "machines" };
  if (p === "/nodes") return { view: "nodes" };
  if (p === "/services") return { view: "services" };
  if (p === "/map") return { view: "map" };
  if (p === "/stacks") return { view: "stacks" };
  if (p === "/networks") return { view: "networks" };
  const svc = /^\/services\/([^/]+)$/.exec(p);
  if (svc) return { view: "service", ref: decodeURIComponent(svc[1]) };
  return { view: "missing", path };
}

/** An in-app link: a real <a href> (so it opens in a new tab too), navigating without a reload. */
export function Link({ to, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { to: string }) {
  const go = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={go} {...rest} />;
}
