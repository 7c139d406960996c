import type { ApiEvent, MachineView, NodeView, ServiceView, TaskView } from "@flotilla/api-types";
import { useLive, useResource } from "../data/live";
import { ErrorNote, Meter } from "../components/feedback";
import { bytes, cpus, isLive, reserved } from "../format";
import { Link } from "../router";

function countBy<T>(items: readonly T[], key: (t: T) => string): [string, number][] {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return [...m.entries()].sort();
}

export function Overview() {
  const machines = useResource<MachineView[]>("/api/v1/machines", ["machine"]);
  const nodes = useResource<NodeView[]>("/api/v1/nodes", ["node", "task"]);
  const services = useResource<ServiceView[]>("/api/v1/services", ["service", "task"]);
  const tasks = useResource<TaskView[]>("/api/v1/tasks?desired-state=running", ["task", "service", "node"]);
  const { recent } = useLive();

  const ns = nodes.data ?? [];
  const ss = services.data ?? [];
  const ready = ns.filter((n) => n.status === "ready");
  const capacity = ready.reduce(
    (a, n) => ({ nanoCpus: a.nanoCpus + n.resources.nanoCpus, memoryBytes: a.memoryBytes + n.resources.memoryBytes }),
    { nanoCpus: 0, memoryBytes: 0 },
  );
  const used = reserved(tasks.data ?? [], ss).total;
  const running = ss.reduce((a, s) => a + s.running, 0);
  const desired = ss.reduce((a, s) => a + s.desired, 0);
  const pending = (tasks.data ?? []).filter((t) => isLive(t) && t.state === "PENDING").length;

  return (
    <>
      <h1 tabIndex={-1}>Overview</h1>
      <ErrorNote error={machines.error ?? nodes.error ?? services.error ?? tasks.error} />
      <div className="cards">
        <section className="card" aria-labelledby="ov-machines">
          <h2 id="ov-machines">
            <Link to="/machines">Machines</Link>
          </h2>
          <p className="big">{machines.data?.length ?? "…"}</p>
          <ul className="plain">
            {countBy(machines.data ?? [], (m) => m.state).map(([state, n]) => (
              <li key={state}>
                {n} {state.toLowerCase()}
              </li>
            ))}
          </ul>
        </section>
        <section className="card" aria-labelledby="ov-nodes">
          <h2 id="ov-nodes">
            <Link to="/nodes">Nodes</Link>
          </h2>
          <p className="big">
            {ready.length}
            <span className="of"> / {ns.length} ready</span>
          </p>
          <ul className="plain">
            {countBy(ns, (n) => n.status)
              .filter(([s]) => s !== "ready")
              .map(([s, n]) => (
                <li key={s}>
                  {n} {s}
                </li>
              ))}
            {countBy(ns, (n) => n.availability)
              .filter(([a]) => a !== "active")
              .map(([a, n]) => (
                <li key={a}>
                  {n} {a === "pause" ? "paused" : "draining"}
                </li>
              ))}
          </ul>
        </section>
        <section className="card" aria-labelledby="ov-services">
          <h2 id="ov-services">
            <Link to="/services">Services</Link>
          </h2>
          <p className="big">{services.data?.length ?? "…"}</p>
          <p>
            Tasks running: <strong>{running}</strong> of <strong>{desired}</strong> desired
            {pending > 0 && <> · {pending} pending</>}
          </p>
        </section>
        <section className="card" aria-labelledby="ov-resources">
          <h2 id="ov-resources">
            <Link to="/map">Resources</Link>
          </h2>
          <p className="hint">Reserved by live tasks, of what ready nodes offer.</p>
          <Meter label="CPU" value={used.nanoCpus} max={capacity.nanoCpus} text={`${cpus(used.nanoCpus)} of ${cpus(capacity.nanoCpus)}`} />
          <Meter
            label="Memory"
            value={used.memoryBytes}
            max={capacity.memoryBytes}
            text={`${bytes(used.memoryBytes)} of ${bytes(capacity.memoryBytes)}`}
          />
        </section>
      </div>
      <section aria-labelledby="ov-events">
        <h2 id="ov-events">Recent events</h2>
        {recent.length === 0 ? <p className="hint">Nothing yet; changes appear here as they happen.</p> : <EventList events={recent} />}
      </section>
    </>
  );
}

function describe(e: ApiEvent): string {
  const d = e.data;
  const name = String(d.name ?? d.hostname ?? d.node ?? "");
  if (e.kind === "task")
    return `task ${e.subjectId?.slice(0, 8)} ${String(d.state ?? e.action).toLowerCase()}${d.node ? ` on ${String(d.node)}` : ""}${d.error ? `: ${String(d.error)}` : ""}`;
  if (e.kind === "machine" && e.action === "progress")
    return `machine ${name} ${String(d.percent)}% ${String(d.step)}: ${String(d.message)}`;
  const state = d.state ?? d.availability;
  return `${e.kind} ${name} ${e.action}${state ? ` → ${String(state).toLowerCase()}` : ""}${d.reason ? `: ${String(d.reason)}` : ""}`;
}

function EventList({ events }: { events: readonly ApiEvent[] }) {
  return (
    <ol className="events" aria-live="off">
      {events.map((e) => (
        <li key={e.id}>
          <time dateTime={e.at}>{new Date(e.at).toLocaleTimeString()}</time> {describe(e)}
        </li>
      ))}
    </ol>
  );
}
