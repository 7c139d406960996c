// The listing views of things a user creates and removes by name (networks, stacks): a table with
// an "empty" row, a Remove button on each row that asks first, and the removal's error under the
// table. The list reloads after a removal, whether it was refused or not.
import type { ReactNode } from "react";
import { seg } from "../data/client";
import { useApi } from "../data/live";
import { ConfirmButton } from "./confirm";
import { ErrorNote, useAction } from "./feedback";

export function RemovableTable<T>(props: {
  /** The table's caption, for screen readers. */
  caption: string;
  /** The item's kind in the Remove question and label, e.g. "network". */
  noun: string;
  /** The column headings after "Name" (an "Actions" column follows them). */
  columns: string[];
  /** The items; undefined while the first load runs. */
  items: T[] | undefined;
  /** The row shown when there are none, e.g. "No networks yet: create one below." */
  empty: string;
  /** The item's name: the row's heading and the last segment of its DELETE path. */
  name(item: T): string;
  /** The cells after the name, one per column. */
  cells(item: T): ReactNode[];
  /** What removing does (or when it is refused), in a sentence. */
  removeDetail: string;
  /** The collection's path: an item is removed by DELETE `<path>/<name>`. */
  path: string;
  reload(): Promise<void>;
}) {
  const api = useApi();
  const remove = useAction();
  return (
    <>
      <div className="table-wrap">
        <table>
          <caption className="sr-only">{props.caption}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              {props.columns.map((c) => (
                <th scope="col" key={c}>
                  {c}
                </th>
              ))}
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.items?.length === 0 && (
              <tr>
                <td colSpan={props.columns.length + 2} className="hint">
                  {props.empty}
                </td>
              </tr>
            )}
            {props.items?.map((item) => {
              const name = props.name(item);
              return (
                <tr key={name}>
                  <th scope="row">{name}</th>
                  {props.cells(item).map((cell, i) => (
                    <td key={i}>{cell}</td>
                  ))}
                  <td>
                    <ConfirmButton
                      question={`Remove ${props.noun} ${name}?`}
                      detail={props.removeDetail}
                      confirmLabel="Remove"
                      danger
                      disabled={remove.busy}
                      aria-label={`Remove ${props.noun} ${name}`}
                      onConfirm={() =>
                        void remove.run(() => api.request("DELETE", `${props.path}/${seg(name)}`)).then(() => props.reload())
                      }
                    >
                      Remove
                    </ConfirmButton>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <ErrorNote error={remove.error} />
    </>
  );
}
