// A card per node, a tile per live task coloured by its service: the fleet at a glance, kept
// current by the event stream (as Portainer's swarm visualizer, without its refresh button).
import type { CSSProperties } from "react";
import type { NodeView, ServiceView, TaskView } from "@flotilla/api-types";
import { seg } from "../data/client";
import { useResource } from "../data/live";
import { Badge, ErrorNote, Meter } from "../components/feedback";
import { bytes, cpus, hueOf, isLive, reserved } from "../format";
import { Link } from "../router";

export function ClusterMap() {
  const nodes = useResource<NodeView[]>("/api/v1/nodes", ["node"]);
  const services = useResource<ServiceView[]>("/api/v1/services", ["service"]);
  const tasks = useResource<TaskView[]>("/api/v1/tasks?desired-state=running", ["task", "service", "node"]);
  const live = (tasks.data ?? []).filter(isLive);
  const use = reserved(live, services.data ?? []).byNode;
  const unplaced = live.filter((t) => !t.nodeId);
  const names = [...new Set((services.data ?? []).map((s) => s.name))].sort();

  return (
    <>
      <h1 tabIndex={-1}>Cluster map</h1>
      <ErrorNote error={nodes.error ?? services.error ?? tasks.error} />
      {names.length > 0 && (
        <ul className="legend" aria-label="Services">
          {names.map((n) => (
            <li key={n}>
              <span className="swatch" style={{ background: `hsl(${hueOf(n)} 65% 55%)` }} aria-hidden="true" />
              <Link to={`/services/${seg(n)}`}>{n}</Link>
            </li>
          ))}
        </ul>
      )}
      <div className="map" data-testid="cluster-map">
        {nodes.data?.length === 0 && <p className="hint">No nodes yet.</p>}
        {nodes.data?.map((n) => {
          const mine = live.filter((t) => t.nodeId === n.id).sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
          const r = use.get(n.id) ?? { nanoCpus: 0, memoryBytes: 0 };
          return (
            <section key={n.id} className={`node-card status-${n.status} avail-${n.availability}`} aria-labelledby={`map-${n.id}`}>
              <header>
                <h2 id={`map-${n.id}`}>{n.hostname}</h2>
                <div className="badges">
                  <Badge value={n.status} />
                  {n.availability !== "active" && <Badge value={n.availability} />}
                </div>
              </header>
              <Meter
                label="CPU"
                value={r.nanoCpus}
                max={n.resources.nanoCpus}
                text={`${cpus(r.nanoCpus)} / ${cpus(n.resources.nanoCpus)}`}
              />
              <Meter
                label="Memory"
                value={r.memoryBytes}
                max={n.resources.memoryBytes}
                text={`${bytes(r.memoryBytes)} / ${bytes(n.resources.memoryBytes)}`}
              />
              <Tiles tasks={mine} label={`Tasks on ${n.hostname}`} />
            </section>
          );
        })}
        {unplaced.length > 0 && (
          <section className="node-card unplaced" aria-labelledby="map-unplaced">
            <header>
              <h2 id="map-unplaced">Not placed</h2>
            </header>
            <Tiles tasks={unplaced} label="Tasks waiting for a node" />
          </section>
        )}
      </div>
    </>
  );
}

function Tiles({ tasks, label }: { tasks: TaskView[]; label: string }) {
  if (tasks.length === 0) return <p className="hint">No tasks.</p>;
  return (
    <ul className="tiles" aria-label={label}>
      {tasks.map((t) => (
        <li
          key={t.id}
          className={`tile state-${t.state.toLowerCase()}`}
          style={{ "--hue": hueOf(t.serviceName) } as CSSProperties}
          title={`${t.name}: ${t.state}${t.message ? ` — ${t.message}` : ""}`}
          data-task={t.name}
          data-state={t.state}
        >
          <span className="tile-name">{t.name}</span>
          <span className="tile-state">{t.state.toLowerCase()}</span>
        </li>
      ))}
    </ul>
  );
}
