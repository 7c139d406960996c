// The create form is built from the drivers' own description of their options (GET
// /machines/drivers), as `ctl machine create --help` is: a new driver option shows up here without
// a console change.
import { useId, useState, type FormEvent } from "react";
import type { DriverOption, DriversInfo, MachineView, OperationAccepted, OptionValue } from "@flotilla/api-types";
import { ApiError } from "../data/client";
import { useLive, useResource } from "../data/live";
import { ErrorNote, useAction } from "../components/feedback";
import { MachineState } from "../components/machine-state";

type Values = Record<string, string | boolean>;

/** Form values → the API's options: only what the user set, typed as the driver declares. */
export function toOptions(specs: readonly DriverOption[], values: Values): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {};
  for (const o of specs) {
    const v = values[o.name];
    if (v === undefined) continue;
    if (o.type === "bool") {
      if (v !== (o.default ?? false)) out[o.name] = v as boolean;
      continue;
    }
    const s = String(v).trim();
    if (!s || s === String(o.default ?? "")) continue;
    out[o.name] = o.type === "int" && /^-?\d+$/.test(s) ? Number(s) : s;
  }
  return out;
}

export function MachineCreate({ machines }: { machines: readonly MachineView[] }) {
  const { api, recent } = useLive();
  const info = useResource<DriversInfo>("/api/v1/machines/drivers", []);
  const [driver, setDriver] = useState("");
  const [name, setName] = useState("");
  const [values, setValues] = useState<Values>({});
  const [created, setCreated] = useState<{ id: string; name: string } | null>(null);
  const action = useAction();

  const current = info.data?.drivers.find((d) => d.name === (driver || info.data?.drivers[0]?.name));
  const engine = info.data?.engineOptions ?? [];
  const machine = created ? machines.find((m) => m.id === created.id) : undefined;
  // A create its preCreateCheck refuses keeps no machine (docker-machine keeps nothing either):
  // the row is gone, and the "failed" event that went with its removal says why. `recent` holds
  // it whichever of the POST's answer and the event came first.
  const refused =
    created && !machine ? recent.find((e) => e.kind === "machine" && e.subjectId === created.id && e.action === "failed") : undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!current) return;
    const options = { ...toOptions(current.options, values), ...toOptions(engine, values) };
    await action.run(async () => {
      const res = await api.request<OperationAccepted>("POST", "/api/v1/machines", { name: name.trim(), driver: current.name, options });
      setCreated({ id: res.machine.id, name: res.machine.name });
      setName("");
    });
  };

  return (
    <section aria-labelledby="create-machine" className="panel">
      <h2 id="create-machine">Create a machine</h2>
      <ErrorNote error={info.error} />
      {/* noValidate: the API checks every option and names what is wrong; min/max stay as hints. */}
      {info.data && current && (
        <form onSubmit={(e) => void submit(e)} className="form" noValidate>
          <div className="field">
            <label htmlFor="m-driver">Driver</label>
            <select
              id="m-driver"
              value={current.name}
              onChange={(e) => {
                setDriver(e.target.value);
                setValues({});
                action.clear();
              }}
              aria-describedby="m-driver-help"
            >
              {info.data.drivers.map((d) => (
                <option key={d.name} value={d.name}>
                  {d.name}
                </option>
              ))}
            </select>
            <small id="m-driver-help">{current.description}</small>
          </div>
          <div className="field">
            <label htmlFor="m-name">Name</label>
            <input id="m-name" required value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" spellCheck={false} />
          </div>
          <fieldset>
            <legend>{current.name} options</legend>
            {current.options.length === 0 && <p className="hint">This driver has no options.</p>}
            <div className="grid">
              {current.options.map((o) => (
                <OptionField
                  key={`${current.name}:${o.name}`}
                  o={o}
                  value={values[o.name]}
                  blamed={action.error instanceof ApiError && action.error.field === o.name}
                  onChange={(v) => setValues({ ...values, [o.name]: v })}
                />
              ))}
            </div>
          </fieldset>
          {engine.length > 0 && (
            <fieldset>
              <legend>Engine options</legend>
              <div className="grid">
                {engine.map((o) => (
                  <OptionField
                    key={o.name}
                    o={o}
                    value={values[o.name]}
                    blamed={action.error instanceof ApiError && action.error.field === o.name}
                    onChange={(v) => setValues({ ...values, [o.name]: v })}
                  />
                ))}
              </div>
            </fieldset>
          )}
          <ErrorNote error={action.error} />
          <div className="actions">
            <button type="submit" className="primary" disabled={action.busy || !name.trim()}>
              {action.busy ? "Creating…" : "Create"}
            </button>
          </div>
        </form>
      )}
      {refused && created && (
        <p className="error" role="alert">
          Machine {created.name} was not created: {String(refused.data.reason ?? "its driver refused it")}. Nothing was kept.
        </p>
      )}
      {machine && (
        <div className="created" role="status" aria-live="polite">
          <strong>{machine.name}</strong>: <MachineState m={machine} />
          {machine.state === "READY" && <span> — ready. Its agent joins as a node.</span>}
        </div>
      )}
    </section>
  );
}

function OptionField({
  o,
  value,
  blamed,
  onChange,
}: {
  o: DriverOption;
  value: string | boolean | undefined;
  blamed: boolean;
  onChange(v: string | boolean): void;
}) {
  const id = useId();
  const help = `${o.help}${o.unit && !o.help.includes(o.unit) ? ` (${o.unit})` : ""}${o.default !== undefined && o.type !== "bool" ? `; default ${String(o.default)}` : ""}`;
  const label = (
    <label htmlFor={id}>
      {o.name}
      {o.required && <span aria-hidden="true"> *</span>}
    </label>
  );
  if (o.type === "bool") {
    return (
      <div className="field check">
        <input
          id={id}
          type="checkbox"
          checked={value === undefined ? o.default === true : value === true}
          onChange={(e) => onChange(e.target.checked)}
          aria-describedby={`${id}-help`}
        />
        {label}
        <small id={`${id}-help`}>{o.help}</small>
      </div>
    );
  }
  const common = {
    id,
    "aria-describedby": `${id}-help`,
    "aria-invalid": blamed || undefined,
    required: o.required,
    value: value === undefined ? "" : String(value),
  };
  return (
    <div className="field">
      {label}
      {o.type === "enum" ? (
        <select {...common} onChange={(e) => onChange(e.target.value)}>
          <option value="">{o.default !== undefined ? `default (${String(o.default)})` : "—"}</option>
          {(o.choices ?? []).map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      ) : (
        <input
          {...common}
          type={o.type === "int" ? "number" : "text"}
          inputMode={o.type === "int" ? "numeric" : undefined}
          min={o.min}
          max={o.max}
          placeholder={o.default !== undefined ? String(o.default) : undefined}
          spellCheck={false}
          autoComplete="off"
          onChange={(e) => onChange(e.target.value)}
        />
      )}
      <small id={`${id}-help`}>{help}</small>
    </div>
  );
}
