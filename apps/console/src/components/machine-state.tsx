import type { MachineView } from "@flotilla/api-types";
import { useLive } from "../data/live";
import { Badge } from "./feedback";

/** States in which a provision job is working on the machine. */
export const BUSY_STATES = new Set(["CREATING", "PROVISIONING", "STARTING", "STOPPING", "REMOVING"]);

export function MachineState({ m }: { m: MachineView }) {
  const p = useLive().progress[m.id];
  const busy = BUSY_STATES.has(m.state);
  return (
    <div className="state">
      <Badge value={m.state} tone={busy ? "busy" : undefined} />
      {busy && p && (
        <div className="progress">
          <progress max={100} value={p.percent} aria-label={`${m.name}: ${p.percent}% ${p.step}`} />
          <span>
            {p.step}: {p.message}
          </span>
        </div>
      )}
      {m.stateReason && (m.state === "ERROR" || m.state === "UNREACHABLE") && <p className="reason">{m.stateReason}</p>}
    </div>
  );
}
