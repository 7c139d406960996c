import { useState } from "react";
import { ApiError } from "../data/client";
import { useApi, useResource } from "../data/live";
import { ErrorNote, useAction } from "../components/feedback";
import { FormPanel, NameField, TextAreaField } from "../components/form-fields";
import { RemovableTable } from "../components/removable-table";

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
  return (
    <>
      <h1 tabIndex={-1}>Stacks</h1>
      <p className="hint">
        Services deployed together from a compose file, named STACK_SERVICE. Redeploying changes only the services whose definition changed.
      </p>
      <ErrorNote error={stacks.error} />
      <RemovableTable
        caption="Stacks"
        noun="stack"
        columns={["Services"]}
        items={stacks.data}
        empty="No stacks yet: deploy one below."
        name={(s) => s.name}
        cells={(s) => [s.services]}
        removeDetail="Every service of the stack is removed and its containers stopped."
        path="/api/v1/stacks"
        reload={stacks.reload}
      />
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
  const submit = async () => {
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
    <FormPanel
      id="deploy-stack"
      title="Deploy a stack"
      action={action}
      submitLabel="Deploy"
      busyLabel="Deploying…"
      onSubmit={submit}
      after={result && <DeploySummary result={result} />}
    >
      <NameField id="st-name" value={name} onChange={setName} invalid={blamed === "name"} />
      <TextAreaField
        id="st-compose"
        label="Compose file"
        wide
        rows={12}
        value={compose}
        onChange={setCompose}
        help={
          <>
            The Compose specification's services; top-level networks become the stack's overlay networks (STACK_NAME; services that name
            none join STACK_default). What services do not support yet is refused by name.
          </>
        }
        invalid={blamed?.startsWith("services")}
        spellCheck={false}
        placeholder={
          "services:\n  web:\n    image: busybox\n    command: httpd -f -p 80\n    ports: ['8080:80']\n    deploy:\n      replicas: 2"
        }
      />
      <TextAreaField
        id="st-env"
        label=".env"
        wide
        rows={3}
        value={dotenv}
        onChange={setDotenv}
        help={<>Variables the file interpolates (${"{TAG}"}), one NAME=value per line.</>}
        spellCheck={false}
        placeholder="TAG=1.2"
      />
      <div className="field">
        <label>
          <input type="checkbox" checked={prune} onChange={(e) => setPrune(e.target.checked)} /> Remove services the file no longer has
        </label>
      </div>
    </FormPanel>
  );
}

function DeploySummary({ result }: { result: DeployResult }) {
  return (
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
  );
}
