// Parsers for the VBoxManage output the virtualbox driver reads. Kept apart so they can be
// checked against captured output without running anything.
import { MachineState } from "./driver";

/** `showvminfo --machinereadable`: lines of key=value, keys and values optionally double-quoted. */
export function parseMachineReadable(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^("([^"]*)"|[^=]+)=(.*)$/.exec(line);
    if (!m) continue;
    const key = m[2] ?? m[1];
    let value = m[3];
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.set(key, value);
  }
  return out;
}

/**
 * VirtualBox VM states → ours. "aborted" (the VM process died) and "gurumeditation" (guest
 * crashed) are Error: the machine is not running but did not stop cleanly either.
 */
export function vboxState(vmState: string | undefined): MachineState {
  switch (vmState) {
    case "running":
      return MachineState.Running;
    case "poweroff":
      return MachineState.Stopped;
    case "paused":
      return MachineState.Paused;
    case "saved":
      return MachineState.Saved;
    case "starting":
    case "restoring":
      return MachineState.Starting;
    case "stopping":
    case "saving":
      return MachineState.Stopping;
    default:
      // aborted, gurumeditation, inaccessible, or something a newer VirtualBox adds.
      return MachineState.Error;
  }
}

/** `VBoxManage --version`: "7.0.20r163906", possibly after warning lines. */
export function parseVBoxVersion(text: string): { major: number; minor: number; text: string } | undefined {
  for (const line of text.split(/\r?\n/).reverse()) {
    const m = /^(\d+)\.(\d+)\.\d+\S*/.exec(line.trim());
    if (m) return { major: Number(m[1]), minor: Number(m[2]), text: m[0] };
  }
  return undefined;
}

/** Splits listing output into blocks, each starting at a line whose key is `firstKey`. */
function blocks(text: string, firstKey: string): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  let cur: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const m = /^([A-Za-z][A-Za-z0-9 ]*?):\s*(.*)$/.exec(raw.trim());
    if (!m) continue;
    const key = m[1].toLowerCase();
    if (key === firstKey.toLowerCase()) {
      cur = new Map();
      out.push(cur);
    }
    // Indented sub-sections (VirtualBox 7's DHCP option lists) would repeat keys; first one wins.
    if (cur && !raw.startsWith(" ") && !cur.has(key)) cur.set(key, m[2].trim());
  }
  return out;
}

export interface HostOnlyInterface {
  name: string;
  ip: string;
  netmask: string;
}

/** `list hostonlyifs`. */
export function parseHostOnlyIfs(text: string): HostOnlyInterface[] {
  return blocks(text, "Name").map((b) => ({
    name: b.get("name") ?? "",
    ip: b.get("ipaddress") ?? "",
    netmask: b.get("networkmask") ?? "",
  }));
}

export interface DhcpServer {
  networkName: string;
  ip: string;
  netmask: string;
  lowerIp: string;
  upperIp: string;
  enabled: boolean;
}

/** `list dhcpservers` (VirtualBox 5/6 "IP:", 7 "Dhcpd IP:"). */
export function parseDhcpServers(text: string): DhcpServer[] {
  return blocks(text, "NetworkName").map((b) => ({
    networkName: b.get("networkname") ?? "",
    ip: b.get("dhcpd ip") ?? b.get("ip") ?? "",
    netmask: b.get("networkmask") ?? "",
    lowerIp: b.get("loweripaddress") ?? "",
    upperIp: b.get("upperipaddress") ?? "",
    enabled: /^yes$/i.test(b.get("enabled") ?? ""),
  }));
}

/** `guestproperty get`: "Value: 192.168.99.100", or "No value set!". */
export function parseGuestProperty(text: string): string | undefined {
  const m = /^Value:\s*(\S.*)$/m.exec(text);
  return m ? m[1].trim() : undefined;
}

/** NAT rules from showvminfo: Forwarding(0)="ssh,tcp,127.0.0.1,52001,,22". */
export function findNatForward(
  info: Map<string, string>,
  name: string,
): { hostIp: string; hostPort: number; guestPort: number } | undefined {
  for (const [key, value] of info) {
    if (!/^Forwarding\(\d+\)$/.test(key)) continue;
    const [rule, , hostIp, hostPort, , guestPort] = value.split(",");
    if (rule === name) return { hostIp, hostPort: Number(hostPort), guestPort: Number(guestPort) };
  }
  return undefined;
}
