// Destructive or disruptive actions ask first, in a modal <dialog>: focus moves into it, Escape
// cancels, and the browser returns focus to the button afterwards.
import { useId, useRef, type ReactNode } from "react";

export function ConfirmButton(props: {
  /** The button's text. */
  children: ReactNode;
  /** The question, e.g. "Remove machine devdays?". */
  question: string;
  /** What happens, in a sentence. */
  detail?: string;
  confirmLabel: string;
  onConfirm(): void;
  disabled?: boolean;
  danger?: boolean;
  "aria-label"?: string;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const detailId = useId();
  const close = () => dialog.current?.close();
  return (
    <>
      <button
        type="button"
        className={props.danger ? "danger" : undefined}
        disabled={props.disabled}
        aria-label={props["aria-label"]}
        onClick={() => dialog.current?.showModal()}
      >
        {props.children}
      </button>
      <dialog ref={dialog} aria-labelledby={titleId} aria-describedby={props.detail ? detailId : undefined} className="confirm">
        <h2 id={titleId}>{props.question}</h2>
        {props.detail && <p id={detailId}>{props.detail}</p>}
        <div className="actions">
          <button type="button" onClick={close} autoFocus>
            Cancel
          </button>
          <button
            type="button"
            className={props.danger ? "danger" : "primary"}
            onClick={() => {
              close();
              props.onConfirm();
            }}
          >
            {props.confirmLabel}
          </button>
        </div>
      </dialog>
    </>
  );
}
