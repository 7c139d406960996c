import { useEffect, useRef, useState, type KeyboardEvent } from "react";
import type { ServiceView } from "@flotilla/api-types";
import { seg } from "../data/client";
import { useApi, useResource } from "../data/live";
import { ConfirmButton } from "../components/confirm";
import { ErrorNote, useAction } from "../components/feedback";
import { hueOf, port } from "../format";
import { Link } from "../router";
import { ServiceCreate } from "./ServiceCreate";

export function Services() {
  const services = useResource<ServiceView[]>("/api/v1/services", ["service", "task"]);
  return (
    <>
      <h1 tabIndex={-1}>Services</h1>
      <p className="hint">
        Desired state kept running across nodes. Change the replica count in place; Enter or leaving the field applies it.
      </p>
      <ErrorNote error={services.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Services</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Image</th>
              <th scope="col">Mode</th>
              <th scope="col">Ports</th>
              <th scope="col">Replicas</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {services.data?.length === 0 && (
              <tr>
                <td colSpan={6} className="hint">
                  No services yet: create one below.
                </td>
              </tr>
            )}
            {services.data?.map((s) => (
              <ServiceRow key={s.id} s={s} reload={services.reload} />
            ))}
          </tbody>
        </table>
      </div>
      <ServiceCreate />
    </>
  );
}

function ServiceRow({ s, reload }: { s: ServiceView; reload(): Promise<void> }) {
  const api = useApi();
  const remove = useAction();
  const update = s.updateState && !/completed$/.test(s.updateState.status) ? s.updateState.message : null;
  return (
    <tr>
      <th scope="row">
        <span className="swatch" style={{ background: `hsl(${hueOf(s.name)} 65% 55%)` }} aria-hidden="true" />
        <Link to={`/services/${seg(s.name)}`}>{s.name}</Link>
      </th>
      <td className="mono">{s.spec.image}</td>
      <td>{s.mode}</td>
      <td>{s.spec.ports.length ? s.spec.ports.map(port).join(", ") : "—"}</td>
      <td>
        <Replicas s={s} reload={reload} />
        {update && <div className="sub">{update}</div>}
      </td>
      <td>
        <ConfirmButton
          question={`Remove service ${s.name}?`}
          detail="Its tasks are stopped and their containers removed."
          confirmLabel="Remove"
          danger
          disabled={remove.busy}
          aria-label={`Remove ${s.name}`}
          onConfirm={() => void remove.run(() => api.request("DELETE", `/api/v1/services/${seg(s.id)}`))}
        >
          Remove
        </ConfirmButton>
        <ErrorNote error={remove.error} />
      </td>
    </tr>
  );
}

/** running/desired, and for replicated services a number input that scales on Enter or blur. */
export function Replicas({ s, reload }: { s: ServiceView; reload(): Promise<void> }) {
  const api = useApi();
  const action = useAction();
  const [draft, setDraft] = useState<string | null>(null);
  // Enter and the blur that may follow it must not send the same scale twice.
  const sending = useRef(false);
  // Another client's scale moves `desired`; an untouched field follows it.
  useEffect(() => setDraft((d) => (d === String(s.desired) ? null : d)), [s.desired]);
  const text = (
    <span className="replicas" aria-label={`${s.running} of ${s.desired} tasks running`}>
      {s.running}/{s.desired}
    </span>
  );
  if (s.mode !== "replicated") return text;
  const commit = async () => {
    // Whatever else was typed goes to the API, which says what is wrong with it.
    if (draft === null || draft.trim() === "" || draft === String(s.desired)) return setDraft(null);
    if (sending.current) return;
    sending.current = true;
    try {
      if (await action.run(() => api.request("POST", `/api/v1/services/${seg(s.id)}/scale`, { replicas: Number(draft) }))) {
        await reload();
        setDraft(null);
      }
    } finally {
      sending.current = false;
    }
  };
  const key = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Enter") {
      e.preventDefault();
      void commit();
    } else if (e.key === "Escape") {
      setDraft(null);
      action.clear();
    }
  };
  const errId = `scale-err-${s.id}`;
  return (
    <div className="scale">
      {text}
      <input
        type="number"
        min={0}
        step={1}
        inputMode="numeric"
        className="scale-input"
        aria-label={`Replicas of ${s.name}`}
        aria-describedby={action.error ? errId : undefined}
        aria-invalid={action.error ? true : undefined}
        value={draft ?? String(s.desired)}
        disabled={action.busy}
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={key}
        onBlur={() => void commit()}
      />
      <ErrorNote error={action.error} id={errId} />
    </div>
  );
}
