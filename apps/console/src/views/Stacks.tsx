import { useState, type FormEvent } from "react";
import { seg, ApiError } from "../data/client";
import { useApi, useResource } from "../data/live";
import { ConfirmButton } from "../components/confirm";
import { ErrorNote, useAction } from "../components/feedback";

interface StackRow {
  name: string;
  services: number;
}

interface DeployResult {
  name: string;
  created: string[];
  updated: string[];
  unchanged: string[];
  removed: string[];
}

/** Stacks: services deployed together from a compose file (as `ctl stack deploy`). */
export function Stacks() {
  const stacks = useResource<StackRow[]>("/api/v1/stacks", ["service"]);
  const api = useApi();
  const remove = useAction();
  return (
    <>
      <h1 tabIndex={-1}>Stacks</h1>
      <p className="hint">
        Services deployed together from a compose file, named STACK_SERVICE. Redeploying changes only the services whose definition changed.
      </p>
      <ErrorNote error={stacks.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Stacks</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Services</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {stacks.data?.length === 0 && (
              <tr>
                <td colSpan={3} className="hint">
                  No stacks yet: deploy one below.
                </td>
              </tr>
            )}
            {stacks.data?.map((s) => (
              <tr key={s.name}>
                <th scope="row">{s.name}</th>
                <td>{s.services}</td>
                <td>
                  <ConfirmButton
                    question={`Remove stack ${s.name}?`}
                    detail="Every service of the stack is removed and its containers stopped."
                    confirmLabel="Remove"
                    danger
                    disabled={remove.busy}
                    aria-label={`Remove stack ${s.name}`}
                    onConfirm={() =>
                      void remove.run(() => api.request("DELETE", `/api/v1/stacks/${seg(s.name)}`)).then(() => stacks.reload())
                    }
                  >
                    Remove
                  </ConfirmButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <ErrorNote error={remove.error} />
      <StackDeploy reload={stacks.reload} />
    </>
  );
}

function StackDeploy({ reload }: { reload(): Promise<void> }) {
  const api = useApi();
  const action = useAction();
  const [name, setName] = useState("");
  const [compose, setCompose] = useState("");
  const [dotenv, setDotenv] = useState("");
  const [prune, setPrune] = useState(false);
  const [result, setResult] = useState<DeployResult | null>(null);
  const blamed = action.error instanceof ApiError ? action.error.field : undefined;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setResult(null);
    let got: DeployResult | undefined;
    const ok = await action.run(async () => {
      got = await api.request<DeployResult>("POST", "/api/v1/stacks", {
        name,
        compose,
        ...(dotenv ? { dotenv } : {}),
        ...(prune ? { prune } : {}),
      });
    });
    if (ok && got) {
      setResult(got);
      await reload();
    }
  };
  return (
    <section aria-labelledby="deploy-stack" className="panel">
      <h2 id="deploy-stack">Deploy a stack</h2>
      <form onSubmit={(e) => void submit(e)} className="form" noValidate>
        <div className="grid">
          <div className="field">
            <label htmlFor="st-name">Name</label>
            <input
              id="st-name"
              required
              value={name}
              onChange={(e) => setName(e.target.value)}
              aria-invalid={blamed === "name" ? true : undefined}
              autoComplete="off"
              spellCheck={false}
            />
          </div>
          <div className="field wide">
            <label htmlFor="st-compose">Compose file</label>
            <textarea
              id="st-compose"
              rows={12}
              value={compose}
              onChange={(e) => setCompose(e.target.value)}
              aria-describedby="st-compose-help"
              aria-invalid={blamed?.startsWith("services") ? true : undefined}
              spellCheck={false}
              placeholder={
                "services:\n  web:\n    image: busybox\n    command: httpd -f -p 80\n    ports: ['8080:80']\n    deploy:\n      replicas: 2"
              }
            />
            <small id="st-compose-help">
              The Compose specification's services; top-level networks become the stack's overlay networks (STACK_NAME; services that name
              none join STACK_default). What services do not support yet is refused by name.
            </small>
          </div>
          <div className="field wide">
            <label htmlFor="st-env">.env</label>
            <textarea
              id="st-env"
              rows={3}
              value={dotenv}
              onChange={(e) => setDotenv(e.target.value)}
              aria-describedby="st-env-help"
              spellCheck={false}
              placeholder="TAG=1.2"
            />
            <small id="st-env-help">Variables the file interpolates (${"{TAG}"}), one NAME=value per line.</small>
          </div>
          <div className="field">
            <label>
              <input type="checkbox" checked={prune} onChange={(e) => setPrune(e.target.checked)} /> Remove services the file no longer has
            </label>
          </div>
        </div>
        <button type="submit" disabled={action.busy}>
          {action.busy ? "Deploying…" : "Deploy"}
        </button>
        <ErrorNote error={action.error} />
        {result && (
          <p role="status">
            Stack {result.name}:{" "}
            {[
              ["created", result.created],
              ["updated", result.updated],
              ["unchanged", result.unchanged],
              ["removed", result.removed],
            ]
              .filter(([, l]) => (l as string[]).length)
              .map(([k, l]) => `${k} ${(l as string[]).join(", ")}`)
              .join("; ")}
          </p>
        )}
      </form>
    </section>
  );
}
