import { useEffect, useRef } from "react";
import { LiveProvider, useLive } from "./data/live";
import { Link, match, usePath, type Route } from "./router";
import { useSession } from "./session";
import { ClusterMap } from "./views/ClusterMap";
import { Machines } from "./views/Machines";
import { Nodes } from "./views/Nodes";
import { Overview } from "./views/Overview";
import { ServiceDetail } from "./views/ServiceDetail";
import { Services } from "./views/Services";
import { SignIn } from "./views/SignIn";
import { Stacks } from "./views/Stacks";
import { Networks } from "./views/Networks";

const NAV: { to: string; label: string; views: Route["view"][] }[] = [
  { to: "/", label: "Overview", views: ["overview"] },
  { to: "/machines", label: "Machines", views: ["machines"] },
  { to: "/nodes", label: "Nodes", views: ["nodes"] },
  { to: "/services", label: "Services", views: ["services", "service"] },
  { to: "/stacks", label: "Stacks", views: ["stacks"] },
  { to: "/networks", label: "Networks", views: ["networks"] },
  { to: "/map", label: "Cluster map", views: ["map"] },
];

export function App() {
  const { api } = useSession();
  if (!api) return <SignIn />;
  return (
    <LiveProvider api={api}>
      <Shell />
    </LiveProvider>
  );
}

function Shell() {
  const { signOut } = useSession();
  const { status } = useLive();
  const path = usePath();
  const route = match(path);
  const main = useRef<HTMLElement>(null);

  // After in-app navigation, move focus to the new page's heading, as a page load would.
  const first = useRef(true);
  useEffect(() => {
    const r = match(path);
    const title = NAV.find((n) => n.views.includes(r.view))?.label ?? "Not found";
    document.title = `${r.view === "service" ? r.ref : title} · Flotilla`;
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.querySelector<HTMLElement>("h1")?.focus();
  }, [path]);

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Flotilla</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.to}>
                <Link to={n.to} aria-current={n.views.includes(route.view) ? "page" : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span className={`conn conn-${status}`} role="status" title="Event stream">
          {status === "live" ? "live" : status === "stopped" ? "offline" : `${status}…`}
        </span>
        <button type="button" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <View route={route} />
      </main>
    </>
  );
}

function View({ route }: { route: Route }) {
  switch (route.view) {
    case "overview":
      return <Overview />;
    case "machines":
      return <Machines />;
    case "nodes":
      return <Nodes />;
    case "services":
      return <Services />;
    case "stacks":
      return <Stacks />;
    case "networks":
      return <Networks />;
    case "service":
      return <ServiceDetail key={route.ref} refName={route.ref} />;
    case "map":
      return <ClusterMap />;
    case "missing":
      return (
        <>
          <h1 tabIndex={-1}>Not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. <Link to="/">Back to the overview</Link>.
          </p>
        </>
      );
  }
}
