import { useState } from "react";
import type { NetworkCreateRequest, NetworkView } from "@flotilla/api-types";
import { ApiError } from "../data/client";
import { useApi, useResource } from "../data/live";
import { ErrorNote, useAction } from "../components/feedback";
import { FormPanel, NameField, TextField } from "../components/form-fields";
import { RemovableTable } from "../components/removable-table";

/** Overlay networks: VXLAN segments across the nodes that run their services' tasks (as `ctl network`). */
export function Networks() {
  const networks = useResource<NetworkView[]>("/api/v1/networks", ["network", "service"]);
  return (
    <>
      <h1 tabIndex={-1}>Networks</h1>
      <p className="hint">
        Overlay networks join the nodes that run their services' tasks. Each service gets a virtual IP on each of its networks; its name
        resolves to it (or to its tasks with endpoint mode dnsrr). Encrypted overlays are not supported yet.
      </p>
      <ErrorNote error={networks.error} />
      <RemovableTable
        caption="Overlay networks"
        noun="network"
        columns={["Subnet", "Gateway", "VNI", "Services (VIP)"]}
        items={networks.data}
        empty="No networks yet: create one below."
        name={(n) => n.name}
        cells={(n) => [n.subnet, n.gateway, n.vni, n.services.map((s) => (s.vip ? `${s.name} (${s.vip})` : s.name)).join(", ") || "—"]}
        removeDetail="Refused while a service uses it: take the services off it first."
        path="/api/v1/networks"
        reload={networks.reload}
      />
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
  const submit = async () => {
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
    <FormPanel
      id="create-network"
      title="Create an overlay network"
      action={action}
      submitLabel="Create"
      busyLabel="Creating…"
      onSubmit={submit}
    >
      <NameField id="net-name" value={name} onChange={setName} invalid={blamed === "name"} />
      <TextField
        id="net-subnet"
        label="Subnet"
        value={subnet}
        onChange={setSubnet}
        help="Empty: the first free /24 of 10.0.0.0/8. It may not overlap another network."
        invalid={blamed === "subnet"}
        placeholder="10.0.9.0/24"
        spellCheck={false}
      />
      <TextField
        id="net-gateway"
        label="Gateway"
        value={gateway}
        onChange={setGateway}
        invalid={blamed === "gateway"}
        placeholder="first address"
        spellCheck={false}
      />
    </FormPanel>
  );
}
