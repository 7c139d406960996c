import { useState, type FormEvent } from "react";
import type { ControlPlaneReplicaView, NodeAvailability, NodeUpdateRequest, NodeView, TaskView } from "@flotilla/api-types";
import { seg } from "../data/client";
import { useApi, useResource } from "../data/live";
import { Badge, ErrorNote, useAction } from "../components/feedback";
import { ago, bytes, cpus, isLive } from "../format";
import { Link } from "../router";

export function Nodes() {
  const nodes = useResource<NodeView[]>("/api/v1/nodes", ["node", "task"]);
  const tasks = useResource<TaskView[]>("/api/v1/tasks?desired-state=running", ["task", "node", "service"]);
  // Control-plane replicas on manager machines (ctl node promote --control-plane); their
  // installation and removal are machine operations, so machine events say when to re-read.
  const replicas = useResource<ControlPlaneReplicaView[]>("/api/v1/control-plane/replicas", ["machine", "node"]);
  const byNode = new Map<string, TaskView[]>();
  for (const t of tasks.data ?? []) {
    if (!t.nodeId || !isLive(t)) continue;
    byNode.set(t.nodeId, [...(byNode.get(t.nodeId) ?? []), t]);
  }
  return (
    <>
      <h1 tabIndex={-1}>Nodes</h1>
      <p className="hint">
        Agents that joined the cluster. Drain moves a node's tasks away; pause takes no new ones. A manager may run a control-plane API
        replica (<code>ctl node promote --control-plane NODE</code>; <code>ctl node demote NODE</code> removes it).
      </p>
      <ErrorNote error={nodes.error ?? tasks.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Nodes</caption>
          <thead>
            <tr>
              <th scope="col">Hostname</th>
              <th scope="col">Status</th>
              <th scope="col">Availability</th>
              <th scope="col">Labels</th>
              <th scope="col">Resources</th>
              <th scope="col">Tasks</th>
            </tr>
          </thead>
          <tbody>
            {nodes.data?.length === 0 && (
              <tr>
                <td colSpan={6} className="hint">
                  No nodes yet: a provisioned machine's agent joins as a node.
                </td>
              </tr>
            )}
            {nodes.data?.map((n) => (
              <NodeRow
                key={n.id}
                n={n}
                tasks={byNode.get(n.id) ?? []}
                replica={replicas.data?.find((r) => r.node === n.hostname)}
                reload={nodes.reload}
              />
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function NodeRow({
  n,
  tasks,
  replica,
  reload,
}: {
  n: NodeView;
  tasks: TaskView[];
  replica?: ControlPlaneReplicaView;
  reload(): Promise<void>;
}) {
  const api = useApi();
  const action = useAction();
  // Shown while the change is on its way, so the control does not jump back in the meantime.
  const [pending, setPending] = useState<NodeAvailability | null>(null);
  const patch = async (body: NodeUpdateRequest) => {
    const ok = await action.run(() => api.request("PATCH", `/api/v1/nodes/${seg(n.id)}`, body));
    await reload();
    setPending(null);
    return ok;
  };
  return (
    <tr>
      <th scope="row">
        {n.hostname}
        <div className="sub">{n.role}</div>
        {replica && (
          <div className="sub" aria-label={`Control-plane replica on ${n.hostname}`} title={replica.message ?? undefined}>
            control plane {replica.apiUrl} <Badge value={replica.state} />
          </div>
        )}
      </th>
      <td>
        <Badge value={n.status} />
        <div className="sub" title={n.lastHeartbeatAt ?? undefined}>
          beat {ago(n.lastHeartbeatAt)}
        </div>
      </td>
      <td>
        <label className="sr-only" htmlFor={`avail-${n.id}`}>
          Availability of {n.hostname}
        </label>
        <select
          id={`avail-${n.id}`}
          value={pending ?? n.availability}
          disabled={action.busy}
          onChange={(e) => {
            const availability = e.target.value as NodeAvailability;
            setPending(availability);
            void patch({ availability });
          }}
        >
          <option value="active">active</option>
          <option value="pause">pause</option>
          <option value="drain">drain</option>
        </select>
        <ErrorNote error={action.error} />
      </td>
      <td>
        <Labels n={n} onPatch={patch} busy={action.busy} />
      </td>
      <td className="nowrap">
        {cpus(n.resources.nanoCpus)}
        <div className="sub">{bytes(n.resources.memoryBytes)}</div>
      </td>
      <td>
        <details>
          <summary aria-label={`${tasks.length} tasks on ${n.hostname}`}>{tasks.length}</summary>
          <ul className="plain tasks-of-node">
            {tasks.length === 0 && <li className="hint">none</li>}
            {tasks.map((t) => (
              <li key={t.id}>
                <Link to={`/services/${seg(t.serviceName)}`}>{t.name}</Link> <Badge value={t.state} />
              </li>
            ))}
          </ul>
        </details>
      </td>
    </tr>
  );
}

function Labels({ n, onPatch, busy }: { n: NodeView; onPatch(body: NodeUpdateRequest): Promise<boolean>; busy: boolean }) {
  const [text, setText] = useState("");
  const [bad, setBad] = useState<string | null>(null);
  const add = async (e: FormEvent) => {
    e.preventDefault();
    const at = text.indexOf("=");
    if (at <= 0) return setBad("write a label as key=value");
    setBad(null);
    if (await onPatch({ labelAdd: { [text.slice(0, at).trim()]: text.slice(at + 1).trim() } })) setText("");
  };
  const entries = Object.entries(n.labels);
  return (
    <div className="labels">
      <ul className="chips" aria-label={`Labels of ${n.hostname}`}>
        {entries.map(([k, v]) => (
          <li key={k} className="chip">
            {k}={v}
            <button
              type="button"
              className="chip-x"
              aria-label={`Remove label ${k} from ${n.hostname}`}
              disabled={busy}
              onClick={() => void onPatch({ labelRm: [k] })}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
      <form onSubmit={(e) => void add(e)} className="inline">
        <label className="sr-only" htmlFor={`label-${n.id}`}>
          Add a label to {n.hostname} (key=value)
        </label>
        <input
          id={`label-${n.id}`}
          placeholder="key=value"
          value={text}
          onChange={(e) => setText(e.target.value)}
          size={12}
          spellCheck={false}
          autoComplete="off"
        />
        <button type="submit" disabled={busy || !text.trim()}>
          Add
        </button>
      </form>
      {bad && (
        <p className="error" role="alert">
          {bad}
        </p>
      )}
    </div>
  );
}
