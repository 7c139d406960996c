// A form's rows: a label, the control, and an optional help line the control is described by. A
// field the API's error names is marked invalid (aria-invalid), so the error reads next to it.
import type { FormEvent, InputHTMLAttributes, ReactNode, TextareaHTMLAttributes } from "react";
import { ErrorNote, type Action } from "./feedback";

interface FieldProps {
  id: string;
  label: string;
  value: string;
  onChange(value: string): void;
  /** The help line under the control (its id is `<id>-help`). */
  help?: ReactNode;
  /** True when the API's last error names this field. */
  invalid?: boolean;
  /** Spans the form's grid. */
  wide?: boolean;
}

type Native<E> = Omit<E, "id" | "value" | "onChange">;

/** The control's own attributes: its id, value and change handler, help and invalid state. */
function controlProps(p: FieldProps) {
  return {
    id: p.id,
    value: p.value,
    onChange: (e: { target: { value: string } }) => p.onChange(e.target.value),
    "aria-describedby": p.help ? `${p.id}-help` : undefined,
    "aria-invalid": p.invalid ? true : undefined,
  };
}

function FieldRow({ field, children }: { field: FieldProps; children: ReactNode }) {
  return (
    <div className={field.wide ? "field wide" : "field"}>
      <label htmlFor={field.id}>{field.label}</label>
      {children}
      {field.help && <small id={`${field.id}-help`}>{field.help}</small>}
    </div>
  );
}

/** Separates a field's own props from the attributes passed on to its control. */
function split<N extends object>({ id, label, value, onChange, help, invalid, wide, ...native }: FieldProps & N) {
  return { field: { id, label, value, onChange, help, invalid, wide }, native };
}

/** A one-line text field. */
export function TextField(props: FieldProps & Native<InputHTMLAttributes<HTMLInputElement>>) {
  const { field, native } = split(props);
  return (
    <FieldRow field={field}>
      <input {...native} {...controlProps(field)} />
    </FieldRow>
  );
}

/** The name a create form gives the new thing (the API names it in its error when it is taken or malformed). */
export function NameField(props: { id: string; value: string; onChange(value: string): void; invalid?: boolean }) {
  return <TextField {...props} label="Name" required autoComplete="off" spellCheck={false} />;
}

/** A multi-line text field. */
export function TextAreaField(props: FieldProps & Native<TextareaHTMLAttributes<HTMLTextAreaElement>>) {
  const { field, native } = split(props);
  return (
    <FieldRow field={field}>
      <textarea {...native} {...controlProps(field)} />
    </FieldRow>
  );
}

/**
 * A panel with a titled form: its fields in the grid, a submit button that says what it does
 * (and `busyLabel` while the action runs), the action's error, then `after` (e.g. the result).
 */
export function FormPanel(props: {
  id: string;
  title: string;
  action: Action;
  submitLabel: string;
  busyLabel: string;
  onSubmit(): Promise<void>;
  children: ReactNode;
  after?: ReactNode;
}) {
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void props.onSubmit();
  };
  return (
    <section aria-labelledby={props.id} className="panel">
      <h2 id={props.id}>{props.title}</h2>
      <form onSubmit={submit} className="form" noValidate>
        <div className="grid">{props.children}</div>
        <button type="submit" disabled={props.action.busy}>
          {props.action.busy ? props.busyLabel : props.submitLabel}
        </button>
        <ErrorNote error={props.action.error} />
        {props.after}
      </form>
    </section>
  );
}
