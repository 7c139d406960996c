import { useEffect, useState, type FormEvent } from "react";
import type { ServiceUpdateRequest, ServiceView, TaskView } from "@flotilla/api-types";
import { seg } from "../data/client";
import { useApi, useResource } from "../data/live";
import { ConfirmButton } from "../components/confirm";
import { Badge, ErrorNote, useAction } from "../components/feedback";
import { ago, bytes, cpus, fileRef, healthcheck, mount, port } from "../format";
import { Link } from "../router";
import { LogsViewer } from "./LogsViewer";
import { Replicas } from "./Services";
import { parseArgs, parseKeyValues } from "./spec-input";

export function ServiceDetail({ refName }: { refName: string }) {
  const service = useResource<ServiceView>(`/api/v1/services/${seg(refName)}`, ["service", "task"]);
  const tasks = useResource<TaskView[]>(`/api/v1/tasks?service=${seg(refName)}`, ["task", "service", "node"]);
  const s = service.data;
  return (
    <>
      <p className="crumbs">
        <Link to="/services">Services</Link> /
      </p>
      <h1 tabIndex={-1}>{refName}</h1>
      <ErrorNote error={service.error} />
      {s && (
        <>
          <Summary s={s} reload={service.reload} />
          <UpdateForm s={s} reload={service.reload} />
          <TasksTable tasks={tasks.data} error={tasks.error} />
          <LogsViewer service={s} tasks={tasks.data ?? []} />
          <details className="panel">
            <summary>Full spec (version {s.version})</summary>
            <pre className="spec" tabIndex={0}>
              {JSON.stringify(s.spec, null, 2)}
            </pre>
          </details>
        </>
      )}
    </>
  );
}

function Summary({ s, reload }: { s: ServiceView; reload(): Promise<void> }) {
  const r = s.spec.resources;
  const update = s.updateState;
  return (
    <section aria-labelledby="svc-summary" className="panel">
      <h2 id="svc-summary">Summary</h2>
      <dl className="facts">
        <dt>Image</dt>
        <dd className="mono">{s.spec.image}</dd>
        <dt>Mode</dt>
        <dd>{s.mode}</dd>
        <dt>Replicas</dt>
        <dd>
          <Replicas s={s} reload={reload} />
        </dd>
        <dt>Command</dt>
        <dd className="mono">{[...s.spec.command, ...s.spec.args].join(" ") || "(image default)"}</dd>
        <dt>Ports</dt>
        <dd>{s.spec.ports.length ? s.spec.ports.map(port).join(", ") : "—"}</dd>
        <dt>Mounts</dt>
        <dd className="mono">{(s.spec.mounts ?? []).map(mount).join(", ") || "—"}</dd>
        <dt>Secrets</dt>
        <dd className="mono">{(s.spec.secrets ?? []).map(fileRef).join(", ") || "—"}</dd>
        <dt>Configs</dt>
        <dd className="mono">{(s.spec.configs ?? []).map(fileRef).join(", ") || "—"}</dd>
        <dt>Networks</dt>
        <dd className="mono">
          {(s.virtualIps ?? []).map((v) => `${v.network} (VIP ${v.addr})`).join(", ") ||
            (s.spec.networks?.length ? `${s.spec.networks.length} (endpoint mode ${s.spec.endpointMode})` : "—")}
        </dd>
        <dt>Registry auth</dt>
        <dd>{s.registryAuth ? s.registryAuth.serverAddress : "—"}</dd>
        <dt>Health check</dt>
        <dd className="mono">{healthcheck(s.spec.healthcheck)}</dd>
        <dt>Reserved</dt>
        <dd>
          {cpus(r.reservations.nanoCpus)}, {bytes(r.reservations.memoryBytes)}
        </dd>
        <dt>Constraints</dt>
        <dd className="mono">{s.spec.placement.constraints.join(", ") || "—"}</dd>
        <dt>Version</dt>
        <dd>
          {s.version} (tasks at {s.taskVersion})
        </dd>
        <dt>Update</dt>
        <dd role="status">{update ? `${update.status}: ${update.message}` : "—"}</dd>
      </dl>
    </section>
  );
}

function UpdateForm({ s, reload }: { s: ServiceView; reload(): Promise<void> }) {
  const api = useApi();
  const envText = (env: Record<string, string>) =>
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n");
  const initial = {
    image: s.spec.image,
    args: s.spec.args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" "),
    env: envText(s.spec.env),
  };
  const [f, setF] = useState(initial);
  const inForce = JSON.stringify(initial);
  const [base, setBase] = useState(inForce);
  const update = useAction();
  const rollback = useAction();
  // When the fields this form edits change (an update or rollback, from here or elsewhere), show
  // what is now in force; a scale leaves a half-typed edit alone.
  useEffect(() => {
    if (inForce !== base) {
      setBase(inForce);
      setF(JSON.parse(inForce) as typeof initial);
    }
  }, [inForce, base]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    await update.run(async () => {
      const body: ServiceUpdateRequest = {};
      if (f.image.trim() !== s.spec.image) body.image = f.image.trim();
      if (f.args !== initial.args) body.args = parseArgs(f.args);
      if (f.env !== initial.env) body.env = parseKeyValues("environment", f.env);
      if (Object.keys(body).length === 0) throw new Error("nothing changed: edit the image, the command or the environment first");
      await api.request("PATCH", `/api/v1/services/${seg(s.id)}`, body);
      await reload();
    });
  };

  return (
    <section aria-labelledby="svc-update" className="panel">
      <h2 id="svc-update">Update</h2>
      <p className="hint">
        A change rolls out task by task ({s.spec.updateConfig.parallelism || "all"} at a time, {s.spec.updateConfig.order}); rollback
        returns to the previous spec.
      </p>
      <form onSubmit={(e) => void submit(e)} className="form" noValidate>
        <div className="grid">
          <div className="field">
            <label htmlFor="u-image">Image</label>
            <input
              id="u-image"
              value={f.image}
              onChange={(e) => setF({ ...f, image: e.target.value })}
              spellCheck={false}
              autoComplete="off"
            />
          </div>
          <div className="field wide">
            <label htmlFor="u-args">Command</label>
            <input
              id="u-args"
              value={f.args}
              onChange={(e) => setF({ ...f, args: e.target.value })}
              spellCheck={false}
              autoComplete="off"
            />
          </div>
          <div className="field wide">
            <label htmlFor="u-env">Environment</label>
            <textarea
              id="u-env"
              rows={3}
              value={f.env}
              onChange={(e) => setF({ ...f, env: e.target.value })}
              spellCheck={false}
              aria-describedby="u-env-help"
            />
            <small id="u-env-help">One KEY=value per line.</small>
          </div>
        </div>
        <ErrorNote error={update.error} />
        <div className="actions">
          <button type="submit" className="primary" disabled={update.busy}>
            {update.busy ? "Updating…" : "Update"}
          </button>
          <ConfirmButton
            question={`Roll ${s.name} back?`}
            detail={s.previousSpec ? `Returns to the previous spec (image ${s.previousSpec.image}) as a new version.` : undefined}
            confirmLabel="Roll back"
            disabled={!s.previousSpec || rollback.busy}
            onConfirm={() => void rollback.run(() => api.request("POST", `/api/v1/services/${seg(s.id)}/rollback`).then(reload))}
          >
            Roll back
          </ConfirmButton>
        </div>
        <ErrorNote error={rollback.error} />
      </form>
    </section>
  );
}

function TasksTable({ tasks, error }: { tasks: TaskView[] | undefined; error: Error | undefined }) {
  const [all, setAll] = useState(false);
  // Re-render every few seconds so "last change" stays true without new data.
  const [, tick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => tick((n) => n + 1), 5_000);
    return () => clearInterval(t);
  }, []);
  const shown = (tasks ?? []).filter((t) => all || t.desiredState === "running");
  return (
    <section aria-labelledby="svc-tasks" className="panel">
      <div className="section-head">
        <h2 id="svc-tasks">Tasks</h2>
        <label className="check">
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> Include finished tasks
        </label>
      </div>
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Tasks</caption>
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Slot</th>
              <th scope="col">Node</th>
              <th scope="col">State</th>
              <th scope="col">Desired</th>
              <th scope="col">Error / reason</th>
              <th scope="col">Last change</th>
            </tr>
          </thead>
          <tbody>
            {shown.length === 0 && (
              <tr>
                <td colSpan={7} className="hint">
                  No tasks.
                </td>
              </tr>
            )}
            {shown.map((t) => (
              <tr key={t.id} data-task={t.name}>
                <th scope="row" className="mono">
                  {t.name}
                  <div className="sub">v{t.specVersion}</div>
                </th>
                <td>{t.slot ?? "—"}</td>
                <td>{t.nodeHostname ?? "—"}</td>
                <td>
                  <Badge value={t.state} />
                </td>
                <td>{t.desiredState}</td>
                <td className="reason">{t.error ?? t.message ?? (t.exitCode !== null ? `exit ${t.exitCode}` : "")}</td>
                <td title={t.updatedAt}>{ago(t.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
