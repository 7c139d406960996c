export type MachineState =
  "CREATING" | "PROVISIONING" | "READY" | "STARTING" | "STOPPING" | "STOPPED" | "UNREACHABLE" | "ERROR" | "REMOVING";

/** `GET /api/v1/machines`, `GET /api/v1/machines/{name}`. */
export interface MachineView {
  id: string;
  name: string;
  driver: string;
  state: MachineState;
  /** Why the machine is in its state (the failed step's message for ERROR). */
  stateReason: string | null;
  ip: string | null;
  /** The agent's Engine API URL, tcp://IP:2376. */
  url: string | null;
  sshUser: string | null;
  sshPort: number | null;
  agentVersion: string | null;
  /**
   * The SSH host key pinned in the machine record (the one its driver made, or the one seen at
   * the first connection) and its SHA256 fingerprint: any other key is refused. null: none yet.
   */
  sshHostKey: { key: string; sha256: string } | null;
  /** When the agent traded its one-time join token for its API token; null: never (list and inspect). */
  agentJoinedAt?: string | null;
  /** The node the agent registered as, once it reported (list and inspect). */
  node?: { id: string; hostname: string; status: string; lastHeartbeatAt: string | null } | null;
  options: Record<string, unknown>;
  /** The machine's TLS certificates (inspect only): rotate with `ctl machine regenerate-certs [--client-certs]`. */
  certificates?: MachineCertificates;
  createdAt: string;
  updatedAt: string;
}

/** One certificate's expiry and SHA-256 fingerprint. */
export interface CertificateInfo {
  expiresAt: string;
  sha256: string;
}

/**
 * `client`: the machine's own client certificate (`ctl machine env`), the only one besides the
 * control plane's its agent accepts; `server`: the agent's. null: none issued yet.
 */
export interface MachineCertificates {
  client: CertificateInfo | null;
  server: CertificateInfo | null;
}

/** Operations on a machine; each moves it to a transitional state and runs as a provision job. */
export type MachineOperation = "start" | "stop" | "restart" | "kill" | "rm" | "provision" | "regenerate-certs" | "upgrade";

/** 202 answer of `POST /api/v1/machines` and of every machine operation. */
export interface OperationAccepted {
  machine: MachineView;
  jobId: string;
  /** The event recorded with the request: follow `GET /api/v1/events?kind=machine&since=<id>`. */
  eventId: string;
}

export type OptionType = "int" | "string" | "bool" | "path" | "cidr" | "enum";
export type OptionValue = string | number | boolean;

/** A driver option as the driver describes it: enough to build a flag or a form field. */
export interface DriverOption {
  /** Flag name without dashes: "virtualbox-cpu-count". */
  name: string;
  type: OptionType;
  default?: OptionValue;
  help: string;
  required?: boolean;
  /** For "int": the unit ("MB"). */
  unit?: string;
  /** For "int": inclusive bounds. */
  min?: number;
  max?: number;
  /** For "enum": the accepted values. */
  choices?: string[];
}

export interface DriverInfo {
  name: string;
  description: string;
  options: DriverOption[];
}

/** `GET /api/v1/machines/drivers`. */
export interface DriversInfo {
  drivers: DriverInfo[];
  /** Options every driver accepts (engine-insecure-registry, ...). */
  engineOptions: DriverOption[];
}

/** `POST /api/v1/machines`. */
export interface CreateMachineRequest {
  name: string;
  driver: string;
  /** Keyed by option name without dashes. */
  options?: Record<string, OptionValue>;
}

/** `GET /api/v1/machines/{name}/env`: the DOCKER_* variables; clients render them per shell. */
export interface MachineEnv {
  DOCKER_TLS_VERIFY: string;
  DOCKER_HOST: string;
  DOCKER_CERT_PATH: string;
  DOCKER_MACHINE_NAME: string;
  certPath: string;
}

/** Data of a machine `progress` event. */
export interface MachineProgress {
  step: string;
  message: string;
  percent: number;
}
