import { useState, type FormEvent } from "react";
import type { NetworkCreateRequest, NetworkView } from "@flotilla/api-types";
import { seg, ApiError } from "../data/client";
import { useApi, useResource } from "../data/live";
import { ConfirmButton } from "../components/confirm";
import { ErrorNote, useAction } from "../components/feedback";

/** Overlay networks: VXLAN segments across the nodes that run their services' tasks (as `ctl network`). */
export function Networks() {
  const networks = useResource<NetworkView[]>("/api/v1/networks", ["network", "service"]);
  const api = useApi();
  const remove = useAction();
  return (
    <>
      <h1 tabIndex={-1}>Networks</h1>
      <p className="hint">
        Overlay networks join the nodes that run their services' tasks. Each service gets a virtual IP on each of its networks; its name
        resolves to it (or to its tasks with endpoint mode dnsrr). Encrypted overlays are not supported yet.
      </p>
      <ErrorNote error={networks.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Overlay networks</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Subnet</th>
              <th scope="col">Gateway</th>
              <th scope="col">VNI</th>
              <th scope="col">Services (VIP)</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {networks.data?.length === 0 && (
              <tr>
                <td colSpan={6} className="hint">
                  No networks yet: create one below.
                </td>
              </tr>
            )}
            {networks.data?.map((n) => (
              <tr key={n.id}>
                <th scope="row">{n.name}</th>
                <td>{n.subnet}</td>
                <td>{n.gateway}</td>
                <td>{n.vni}</td>
                <td>{n.services.map((s) => (s.vip ? `${s.name} (${s.vip})` : s.name)).join(", ") || "—"}</td>
                <td>
                  <ConfirmButton
                    question={`Remove network ${n.name}?`}
                    detail="Refused while a service uses it: take the services off it first."
                    confirmLabel="Remove"
                    danger
                    disabled={remove.busy}
                    aria-label={`Remove network ${n.name}`}
                    onConfirm={() =>
                      void remove.run(() => api.request("DELETE", `/api/v1/networks/${seg(n.name)}`)).then(() => networks.reload())
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
      <NetworkCreate reload={networks.reload} />
    </>
  );
}

function NetworkCreate({ reload }: { reload(): Promise<void> }) {
  const api = useApi();
  const action = useAction();
  const [name, setName] = useState("");
  const [subnet, setSubnet] = useState("");
  const [gateway, setGateway] = useState("");
  const blamed = action.error instanceof ApiError ? action.error.field : undefined;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const body: NetworkCreateRequest = { name, driver: "overlay", ...(subnet ? { subnet } : {}), ...(gateway ? { gateway } : {}) };
    const ok = await action.run(() => api.request("POST", "/api/v1/networks", body));
    if (ok) {
      setName("");
      setSubnet("");
      setGateway("");
      await reload();
    }
  };
  return (
    <section aria-labelledby="create-network" className="panel">
      <h2 id="create-network">Create an overlay network</h2>
      <form onSubmit={(e) => void submit(e)} className="form" noValidate>
        <div className="grid">
          <div className="field">
            <label htmlFor="net-name">Name</label>
            <input
              id="net-name"
              required
              value={name}
              onChange={(e) => setName(e.target.value)}
              aria-invalid={blamed === "name" ? true : undefined}
              autoComplete="off"
              spellCheck={false}
            />
          </div>
          <div className="field">
            <label htmlFor="net-subnet">Subnet</label>
            <input
              id="net-subnet"
              value={subnet}
              onChange={(e) => setSubnet(e.target.value)}
              aria-describedby="net-subnet-help"
              aria-invalid={blamed === "subnet" ? true : undefined}
              placeholder="10.0.9.0/24"
              spellCheck={false}
            />
            <small id="net-subnet-help">Empty: the first free /24 of 10.0.0.0/8. It may not overlap another network.</small>
          </div>
          <div className="field">
            <label htmlFor="net-gateway">Gateway</label>
            <input
              id="net-gateway"
              value={gateway}
              onChange={(e) => setGateway(e.target.value)}
              aria-invalid={blamed === "gateway" ? true : undefined}
              placeholder="first address"
              spellCheck={false}
            />
          </div>
        </div>
        <button type="submit" disabled={action.busy}>
          {action.busy ? "Creating…" : "Create"}
        </button>
        <ErrorNote error={action.error} />
      </form>
    </section>
  );
}
