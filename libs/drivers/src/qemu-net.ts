// A qemu machine's network: a namespace of its own (flq-<name>) holding a bridge, the VM's tap
// device and one end of a veth pair whose other end sits on the host bridge the netns machines
// use. qemu runs inside that namespace, so it has no route anywhere but the bridge; the VM
// appears on the host bridge with its own address, reached as a netns machine is.
import { createHash } from "node:crypto";
import type { CommandRunner } from "./command-runner";
import type { Cidr } from "./net";
import { ensureBridge, ipRun, linkExists, netnsExists } from "./netns-host";

export const qemuNetnsName = (machine: string) => `flq-${machine}`;
/** Host end of the uplink veth: "fqv" + 10 hex digits (interface names are at most 15 bytes). */
export const qemuVethName = (machine: string) => `fqv${createHash("sha256").update(machine).digest("hex").slice(0, 10)}`;
export const QEMU_TAP = "tap0";
const NS_BRIDGE = "br0";
const NS_UPLINK = "uplink";

/** Makes (or re-makes after a host reboot) the namespace, its bridge, the tap and the uplink. */
export async function plumbQemuNetwork(
  runner: CommandRunner,
  machine: string,
  hostBridge: string,
  cidr: Cidr,
  lockedEnsureBridge: (fn: () => Promise<void>) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const ns = qemuNetnsName(machine);
  const veth = qemuVethName(machine);
  await lockedEnsureBridge(() => ensureBridge(runner, hostBridge, cidr, signal));
  if (!(await netnsExists(ns))) await ipRun(runner, `ip netns add ${ns}`, ["netns", "add", ns], signal);
  const inNs = (step: string, args: string[]) => ipRun(runner, `ip -n ${ns} ${step}`, ["-n", ns, ...args], signal);
  const present = async (dev: string) => new RegExp(`^\\d+: ${dev}[:@]`, "m").test(await inNs("link show", ["-o", "link", "show"]));
  if (!(await present(NS_BRIDGE))) await inNs("link add br0", ["link", "add", NS_BRIDGE, "type", "bridge"]);
  if (!(await present(QEMU_TAP))) await inNs("tuntap add tap0", ["tuntap", "add", "dev", QEMU_TAP, "mode", "tap"]);
  await inNs("link set tap0 master br0", ["link", "set", QEMU_TAP, "master", NS_BRIDGE, "up"]);
  if (!(await present(NS_UPLINK))) {
    if (await linkExists(veth)) await ipRun(runner, `ip link del ${veth}`, ["link", "del", veth], signal);
    const peer = `${veth}p`;
    await ipRun(runner, `ip link add ${veth}`, ["link", "add", veth, "type", "veth", "peer", "name", peer], signal);
    await ipRun(runner, `ip link set ${peer} netns ${ns}`, ["link", "set", peer, "netns", ns], signal);
    await inNs(`link set ${peer} name uplink`, ["link", "set", peer, "name", NS_UPLINK]);
  }
  await inNs("link set uplink master br0", ["link", "set", NS_UPLINK, "master", NS_BRIDGE, "up"]);
  await inNs("link set br0 up", ["link", "set", NS_BRIDGE, "up"]);
  await ipRun(runner, `ip link set ${veth} master ${hostBridge}`, ["link", "set", veth, "master", hostBridge, "up"], signal);
}

/** Deletes the uplink and the namespace (its bridge and tap go with it). Idempotent. */
export async function unplumbQemuNetwork(runner: CommandRunner, machine: string): Promise<void> {
  const ns = qemuNetnsName(machine);
  const veth = qemuVethName(machine);
  // The host end first: it takes its peer at once; a deleted namespace's links linger a while.
  if (await linkExists(veth)) {
    await ipRun(runner, `ip link del ${veth}`, ["link", "del", veth]).catch(async (e) => {
      if (await linkExists(veth)) throw e;
    });
  }
  if (await netnsExists(ns)) await ipRun(runner, `ip netns del ${ns}`, ["netns", "del", ns]);
}
