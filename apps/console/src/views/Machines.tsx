import { useState } from "react";
import type { MachineEnv, MachineOperation, MachineView } from "@flotilla/api-types";
import { seg } from "../data/client";
import { useApi, useResource } from "../data/live";
import { ConfirmButton } from "../components/confirm";
import { ErrorNote, useAction } from "../components/feedback";
import { BUSY_STATES, MachineState } from "../components/machine-state";
import { MachineCreate } from "./MachineCreate";

export function Machines() {
  const machines = useResource<MachineView[]>("/api/v1/machines", ["machine"]);
  return (
    <>
      <h1 tabIndex={-1}>Machines</h1>
      <p className="hint">Hosts with the Flotilla agent, created and provisioned by a driver.</p>
      <ErrorNote error={machines.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Machines</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Driver</th>
              <th scope="col">State</th>
              <th scope="col">IP</th>
              <th scope="col">Agent</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {machines.data?.length === 0 && (
              <tr>
                <td colSpan={6} className="hint">
                  No machines yet: create one below, or with <code>ctl machine create -d DRIVER NAME</code>.
                </td>
              </tr>
            )}
            {machines.data?.map((m) => (
              <MachineRow key={m.id} m={m} />
            ))}
          </tbody>
        </table>
      </div>
      <MachineCreate machines={machines.data ?? []} />
    </>
  );
}

type Op = MachineOperation | "rm-force";

const OPS: { op: Op; label: string; detail: string; when(m: MachineView): boolean; danger?: boolean }[] = [
  {
    op: "start",
    label: "Start",
    detail: "Starts the host and its agent.",
    when: (m) => ["STOPPED", "ERROR", "UNREACHABLE"].includes(m.state),
  },
  {
    op: "stop",
    label: "Stop",
    detail: "Stops the host gracefully; its tasks are moved to other nodes.",
    when: (m) => ["READY", "UNREACHABLE"].includes(m.state),
  },
  {
    op: "restart",
    label: "Restart",
    detail: "Restarts the host and its agent.",
    when: (m) => ["READY", "UNREACHABLE", "ERROR"].includes(m.state),
  },
  {
    op: "rm",
    label: "Remove",
    detail: "The driver deletes the host and everything on it. This cannot be undone.",
    when: (m) => !BUSY_STATES.has(m.state),
    danger: true,
  },
  {
    op: "rm-force",
    label: "Force remove",
    detail:
      "Removes the machine's record even if the driver cannot delete the host (which may then be left running). This cannot be undone.",
    when: (m) => m.state === "ERROR" || BUSY_STATES.has(m.state),
    danger: true,
  },
];

function MachineRow({ m }: { m: MachineView }) {
  const api = useApi();
  const action = useAction();
  const [env, setEnv] = useState(false);
  const path = `/api/v1/machines/${seg(m.name)}`;
  const operate = (op: Op) =>
    action.run(() =>
      op === "rm" || op === "rm-force"
        ? api.request("DELETE", op === "rm" ? path : `${path}?force=true`)
        : api.request("POST", `${path}/${op}`, {}),
    );
  return (
    <>
      <tr>
        <th scope="row">{m.name}</th>
        <td>{m.driver}</td>
        <td>
          <MachineState m={m} />
        </td>
        <td>{m.ip ?? "—"}</td>
        <td>{m.agentVersion ?? "—"}</td>
        <td>
          <div className="row-actions">
            {OPS.filter((o) => o.when(m)).map((o) => (
              <ConfirmButton
                key={o.op}
                question={`${o.label} machine ${m.name}?`}
                detail={o.detail}
                confirmLabel={o.label}
                danger={o.danger}
                disabled={action.busy}
                aria-label={`${o.label} ${m.name}`}
                onConfirm={() => void operate(o.op)}
              >
                {o.label}
              </ConfirmButton>
            ))}
            <button
              type="button"
              aria-expanded={env}
              aria-controls={`env-${m.id}`}
              aria-label={`Docker environment of ${m.name}`}
              onClick={() => setEnv(!env)}
              disabled={!m.ip}
            >
              Env
            </button>
          </div>
          <ErrorNote error={action.error} />
        </td>
      </tr>
      {env && (
        <tr id={`env-${m.id}`}>
          <td colSpan={6}>
            <EnvSnippet name={m.name} />
          </td>
        </tr>
      )}
    </>
  );
}

type Shell = "bash" | "fish" | "powershell";

export function renderEnv(env: MachineEnv, shell: Shell): string {
  const vars: [string, string][] = [
    ["DOCKER_TLS_VERIFY", env.DOCKER_TLS_VERIFY],
    ["DOCKER_HOST", env.DOCKER_HOST],
    ["DOCKER_CERT_PATH", env.DOCKER_CERT_PATH],
    ["DOCKER_MACHINE_NAME", env.DOCKER_MACHINE_NAME],
  ];
  const set = (k: string, v: string) =>
    shell === "fish" ? `set -gx ${k} "${v}";` : shell === "powershell" ? `$Env:${k} = "${v}"` : `export ${k}="${v}"`;
  const cmd = `ctl machine env${shell === "bash" ? "" : ` --shell ${shell}`} ${env.DOCKER_MACHINE_NAME}`;
  const hint = shell === "fish" ? `# eval (${cmd})` : shell === "powershell" ? `# & ${cmd} | Invoke-Expression` : `# eval $(${cmd})`;
  return [...vars.map(([k, v]) => set(k, v)), "# Run this command to configure your shell:", hint].join("\n");
}

function EnvSnippet({ name }: { name: string }) {
  const env = useResource<MachineEnv>(`/api/v1/machines/${seg(name)}/env`, []);
  const [shell, setShell] = useState<Shell>("bash");
  const [copied, setCopied] = useState(false);
  if (env.error) return <ErrorNote error={env.error} />;
  if (!env.data) return <p className="hint">Loading…</p>;
  const text = renderEnv(env.data, shell);
  const copy = () =>
    void navigator.clipboard?.writeText(text).then(
      () => setCopied(true),
      () => setCopied(false),
    );
  return (
    <div className="env">
      <div className="env-bar">
        <label>
          Shell{" "}
          <select value={shell} onChange={(e) => (setShell(e.target.value as Shell), setCopied(false))}>
            <option value="bash">bash / zsh</option>
            <option value="fish">fish</option>
            <option value="powershell">PowerShell</option>
          </select>
        </label>
        <button type="button" onClick={copy}>
          Copy
        </button>
        <span role="status">{copied ? "Copied" : ""}</span>
      </div>
      <pre aria-label={`Docker environment of ${name}`} tabIndex={0}>
        {text}
      </pre>
      <p className="hint">The certificates are on the control plane's host, in the directory DOCKER_CERT_PATH names.</p>
      <CertificateExpiry name={name} />
    </div>
  );
}

/**
 * When the machine's certificates expire (they are renewed before; rotate with `ctl machine
 * regenerate-certs`), and the fingerprint of its pinned SSH host key.
 */
function CertificateExpiry({ name }: { name: string }) {
  const machine = useResource<MachineView>(`/api/v1/machines/${seg(name)}`, ["machine"]);
  const certs = machine.data?.certificates;
  if (!certs) return null;
  const when = (c: { expiresAt: string } | null) => (c ? new Date(c.expiresAt).toLocaleDateString() : "not issued yet");
  const hostKey = machine.data?.sshHostKey;
  return (
    <>
      <p className="hint" aria-label={`Certificates of ${name}`}>
        Client certificate (this machine only) expires {when(certs.client)}; the agent's server certificate expires {when(certs.server)}.
        Rotate with <code>ctl machine regenerate-certs --client-certs {name}</code>.
      </p>
      <p className="hint" aria-label={`SSH host key of ${name}`}>
        SSH host key pinned in the machine record: {hostKey ? <code>{hostKey.sha256}</code> : "none yet (pinned at the first connection)"}
      </p>
    </>
  );
}
