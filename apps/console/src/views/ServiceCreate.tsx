import { useState, type FormEvent } from "react";
import type { IngressTraffic, PortProtocol, PublishMode, ServiceCreateRequest, ServiceView } from "@flotilla/api-types";
import { ApiError, seg } from "../data/client";
import { useApi } from "../data/live";
import { ErrorNote, useAction } from "../components/feedback";
import { Link } from "../router";
import { parseArgs, parseCpus, parseKeyValues, parseMounts, parseNetworks, parseSecretRefs, parseSize } from "./spec-input";

interface PortRow {
  published: string;
  target: string;
  protocol: PortProtocol;
  mode: PublishMode;
  traffic: IngressTraffic;
}

const EMPTY = {
  name: "",
  image: "",
  mode: "replicated",
  replicas: "1",
  args: "",
  env: "",
  constraints: "",
  reserveCpu: "",
  reserveMemory: "",
  limitMemory: "",
  mounts: "",
  secrets: "",
  configs: "",
  networks: "",
};

/** Form → request body; throws an Error naming the field when the text cannot be read. */
function toBody(f: typeof EMPTY, ports: PortRow[]): ServiceCreateRequest {
  const body: ServiceCreateRequest = { name: f.name.trim(), image: f.image.trim() };
  if (f.mode === "global") body.mode = { kind: "global" };
  else if (f.replicas.trim()) body.replicas = Number(f.replicas);
  const args = parseArgs(f.args);
  if (args.length) body.args = args;
  const env = parseKeyValues("environment", f.env);
  if (Object.keys(env).length) body.env = env;
  const constraints = f.constraints
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  if (constraints.length) body.placement = { constraints };
  const reservations = {
    ...(f.reserveCpu.trim() ? { nanoCpus: parseCpus("reserved CPUs", f.reserveCpu) } : {}),
    ...(f.reserveMemory.trim() ? { memoryBytes: parseSize("reserved memory", f.reserveMemory) } : {}),
  };
  const limits = f.limitMemory.trim() ? { memoryBytes: parseSize("memory limit", f.limitMemory) } : {};
  if (Object.keys(reservations).length || Object.keys(limits).length) body.resources = { reservations, limits };
  const mounts = parseMounts(f.mounts);
  if (mounts.length) body.mounts = mounts;
  const secrets = parseSecretRefs("secrets", f.secrets);
  if (secrets.length) body.secrets = secrets;
  const configs = parseSecretRefs("configs", f.configs);
  if (configs.length) body.configs = configs;
  const networks = parseNetworks(f.networks);
  if (networks.length) body.networks = networks;
  const filled = ports.filter((p) => p.published.trim() || p.target.trim());
  if (filled.length)
    body.ports = filled.map((p) => ({
      published: Number(p.published),
      target: Number(p.target),
      protocol: p.protocol,
      mode: p.mode,
      ...(p.mode === "ingress" && p.traffic === "local" ? { traffic: p.traffic } : {}),
    }));
  return body;
}

export function ServiceCreate() {
  const api = useApi();
  const [f, setF] = useState(EMPTY);
  const [ports, setPorts] = useState<PortRow[]>([]);
  const action = useAction();
  const [created, setCreated] = useState<string | null>(null);
  const set = (k: keyof typeof EMPTY) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  const blamed = (field: string) => (action.error instanceof ApiError && action.error.field?.split(/[.[]/)[0] === field) || undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setCreated(null);
    await action.run(async () => {
      const created = await api.request<ServiceView>("POST", "/api/v1/services", toBody(f, ports));
      setF(EMPTY);
      setPorts([]);
      setCreated(created.name);
    });
  };
  const setPort = (i: number, patch: Partial<PortRow>) => setPorts(ports.map((p, j) => (j === i ? { ...p, ...patch } : p)));

  return (
    <section aria-labelledby="create-service" className="panel">
      <h2 id="create-service">Create a service</h2>
      <form onSubmit={(e) => void submit(e)} className="form" noValidate>
        <div className="grid">
          <div className="field">
            <label htmlFor="s-name">Name</label>
            <input
              id="s-name"
              required
              value={f.name}
              onChange={set("name")}
              aria-invalid={blamed("name")}
              autoComplete="off"
              spellCheck={false}
            />
          </div>
          <div className="field">
            <label htmlFor="s-image">Image</label>
            <input
              id="s-image"
              required
              value={f.image}
              onChange={set("image")}
              aria-invalid={blamed("image")}
              placeholder="busybox:latest"
              autoComplete="off"
              spellCheck={false}
            />
          </div>
          <div className="field">
            <label htmlFor="s-mode">Mode</label>
            <select id="s-mode" value={f.mode} onChange={set("mode")} aria-describedby="s-mode-help">
              <option value="replicated">replicated</option>
              <option value="global">global</option>
            </select>
            <small id="s-mode-help">Global runs one task on every eligible node.</small>
          </div>
          {f.mode === "replicated" && (
            <div className="field">
              <label htmlFor="s-replicas">Replicas</label>
              <input
                id="s-replicas"
                type="number"
                min={0}
                inputMode="numeric"
                value={f.replicas}
                onChange={set("replicas")}
                aria-invalid={blamed("replicas")}
              />
            </div>
          )}
          <div className="field wide">
            <label htmlFor="s-args">Command</label>
            <input
              id="s-args"
              value={f.args}
              onChange={set("args")}
              placeholder="httpd -f -p 80"
              aria-describedby="s-args-help"
              autoComplete="off"
              spellCheck={false}
            />
            <small id="s-args-help">What follows the image in `docker run`; quotes group words.</small>
          </div>
          <div className="field">
            <label htmlFor="s-rcpu">Reserved CPUs</label>
            <input
              id="s-rcpu"
              value={f.reserveCpu}
              onChange={set("reserveCpu")}
              placeholder="0.5"
              inputMode="decimal"
              aria-invalid={blamed("resources")}
            />
          </div>
          <div className="field">
            <label htmlFor="s-rmem">Reserved memory</label>
            <input
              id="s-rmem"
              value={f.reserveMemory}
              onChange={set("reserveMemory")}
              placeholder="64m"
              aria-invalid={blamed("resources")}
            />
          </div>
          <div className="field">
            <label htmlFor="s-lmem">Memory limit</label>
            <input id="s-lmem" value={f.limitMemory} onChange={set("limitMemory")} placeholder="256m" aria-invalid={blamed("resources")} />
          </div>
          <div className="field wide">
            <label htmlFor="s-env">Environment</label>
            <textarea
              id="s-env"
              rows={3}
              value={f.env}
              onChange={set("env")}
              placeholder={"KEY=value\nOTHER=value"}
              aria-describedby="s-env-help"
              spellCheck={false}
            />
            <small id="s-env-help">One KEY=value per line.</small>
          </div>
          <div className="field wide">
            <label htmlFor="s-constraints">Placement constraints</label>
            <textarea
              id="s-constraints"
              rows={2}
              value={f.constraints}
              onChange={set("constraints")}
              placeholder="node.labels.zone==a"
              aria-invalid={blamed("placement")}
              aria-describedby="s-constraints-help"
              spellCheck={false}
            />
            <small id="s-constraints-help">One per line; every one must hold.</small>
          </div>
          <div className="field wide">
            <label htmlFor="s-mounts">Mounts</label>
            <textarea
              id="s-mounts"
              rows={2}
              value={f.mounts}
              onChange={set("mounts")}
              placeholder={"type=volume,source=pgdata,target=/var/lib/postgresql/data\ntype=tmpfs,target=/cache,tmpfs-size=64m"}
              aria-invalid={blamed("mounts")}
              aria-describedby="s-mounts-help"
              spellCheck={false}
            />
            <small id="s-mounts-help">
              One per line, as --mount: a volume of the task&apos;s node (kept across replacements), a bind of a node&apos;s path (admin
              tokens only) or a tmpfs; add readonly for read-only.
            </small>
          </div>
          <div className="field">
            <label htmlFor="s-networks">Networks</label>
            <textarea
              id="s-networks"
              rows={2}
              value={f.networks}
              onChange={set("networks")}
              placeholder={"backend\nname=front,alias=www"}
              aria-invalid={blamed("networks")}
              aria-describedby="s-networks-help"
              spellCheck={false}
            />
            <small id="s-networks-help">
              Overlay networks, one per line; the service gets a virtual IP on each and answers to its name there.
            </small>
          </div>
          <div className="field">
            <label htmlFor="s-secrets">Secrets</label>
            <textarea
              id="s-secrets"
              rows={2}
              value={f.secrets}
              onChange={set("secrets")}
              placeholder={"db_password\nsource=tls.key,target=/etc/tls/key,mode=0400"}
              aria-invalid={blamed("secrets")}
              aria-describedby="s-secrets-help"
              spellCheck={false}
            />
            <small id="s-secrets-help">Stored secrets, one per line; each task reads /run/secrets/NAME.</small>
          </div>
          <div className="field">
            <label htmlFor="s-configs">Configs</label>
            <textarea
              id="s-configs"
              rows={2}
              value={f.configs}
              onChange={set("configs")}
              placeholder="source=nginx.conf,target=/etc/nginx/nginx.conf"
              aria-invalid={blamed("configs")}
              aria-describedby="s-configs-help"
              spellCheck={false}
            />
            <small id="s-configs-help">Stored configs, one per line (at /NAME unless a target is given).</small>
          </div>
        </div>
        <fieldset>
          <legend>Published ports</legend>
          {ports.length === 0 && <p className="hint">None.</p>}
          {ports.map((p, i) => (
            <div className="port-row" key={i} role="group" aria-label={`Port ${i + 1}`}>
              <label>
                Published{" "}
                <input
                  type="number"
                  min={1}
                  max={65535}
                  value={p.published}
                  onChange={(e) => setPort(i, { published: e.target.value })}
                  aria-invalid={blamed("ports")}
                />
              </label>
              <label>
                Target{" "}
                <input
                  type="number"
                  min={1}
                  max={65535}
                  value={p.target}
                  onChange={(e) => setPort(i, { target: e.target.value })}
                  aria-invalid={blamed("ports")}
                />
              </label>
              <label>
                Protocol{" "}
                <select value={p.protocol} onChange={(e) => setPort(i, { protocol: e.target.value as PortProtocol })}>
                  <option value="tcp">tcp</option>
                  <option value="udp">udp</option>
                </select>
              </label>
              <label>
                Mode{" "}
                <select value={p.mode} onChange={(e) => setPort(i, { mode: e.target.value as PublishMode })}>
                  <option value="ingress">ingress (every node)</option>
                  <option value="host">host (the task's node)</option>
                </select>
              </label>
              {p.mode === "ingress" && (
                <label>
                  Traffic{" "}
                  <select value={p.traffic} onChange={(e) => setPort(i, { traffic: e.target.value as IngressTraffic })}>
                    <option value="cluster">cluster (any task)</option>
                    <option value="local">local (the node's own tasks, client address kept)</option>
                  </select>
                </label>
              )}
              <button type="button" onClick={() => setPorts(ports.filter((_, j) => j !== i))} aria-label={`Remove port ${i + 1}`}>
                Remove
              </button>
            </div>
          ))}
          <button
            type="button"
            onClick={() => setPorts([...ports, { published: "", target: "", protocol: "tcp", mode: "ingress", traffic: "cluster" }])}
          >
            Add a port
          </button>
        </fieldset>
        <ErrorNote error={action.error} />
        {created && (
          <p role="status">
            Service <Link to={`/services/${seg(created)}`}>{created}</Link> created; its tasks appear above as they are scheduled.
          </p>
        )}
        <div className="actions">
          <button type="submit" className="primary" disabled={action.busy || !f.name.trim() || !f.image.trim()}>
            {action.busy ? "Creating…" : "Create service"}
          </button>
        </div>
      </form>
    </section>
  );
}
