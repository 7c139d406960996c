/** `GET /api/v1/networks`, `GET /api/v1/networks/{idOrName}`: a cluster-wide overlay network. */
export interface NetworkView {
  id: string;
  name: string;
  driver: "overlay";
  /** IPv4 CIDR. */
  subnet: string;
  gateway: string;
  /** VXLAN network identifier. */
  vni: number;
  labels: Record<string, string>;
  internal: boolean;
  attachable: boolean;
  createdAt: string;
  /** The services attached to it (inspect and list). */
  services: { id: string; name: string; vip: string | null }[];
  /** Addresses given out on it: service VIPs and live tasks' addresses. */
  addressesInUse: number;
}

/** `POST /api/v1/networks`. */
export interface NetworkCreateRequest {
  name: string;
  /** Only "overlay" (the default). */
  driver?: "overlay";
  /** An IPv4 CIDR; default: the first free /24 of 10.0.0.0/8. */
  subnet?: string;
  /** Default: the subnet's first host address. */
  gateway?: string;
  labels?: Record<string, string>;
  internal?: boolean;
  attachable?: boolean;
}
