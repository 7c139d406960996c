// Machines benchmark: seconds from `create` to the agent answering mutual TLS, for a qemu VM
// booted from the Flotilla guest image and for a netns machine, with the idle memory of each
// (qemu: the guest's used memory, MemTotal - MemAvailable, once the agent runs; netns: the
// agent's RSS) and the accelerator the VM used. Each machine is made and removed here.
//
//   npm run bench:machines [-- --json] [-- --accel auto|kvm|tcg] [-- --steps]
//       [-- --qemu-cidr 198.19.91.1/24] [-- --netns-cidr 198.19.92.1/24]
//
// --steps prints where the time went: seconds from `create` to the start of each driver and
// provisioning step (boot, seed, upload, runtime check, agent start, ...), on stderr.
//
// Needs root, qemu and the guest image (built on first use, see scripts/build-guest-image.sh).
// With --accel auto on a host whose KVM guests hang (nested virtualisation), the first run pays
// the boot watchdog (30 s) before falling back; later runs remember it (the kvm-hangs marker in
// the host's lock dir) and boot with TCG at once.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createExecRunner, getDriver, sshRun, type Driver, type DriverEvent, type QemuDriver } from "@flotilla/drivers";
import { CertificateAuthority, CONTROL_PLANE_CLIENT, ensureClientCert, provision } from "../src";
import { ensureGuestImage } from "../../../test/support/guest-image";

const repo = resolve(__dirname, "../../..");
const args = process.argv.slice(2);
const asJson = args.includes("--json");
const flag = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const accel = flag("--accel", "auto");
const qemuCidr = flag("--qemu-cidr", "198.19.91.1/24");
const netnsCidr = flag("--netns-cidr", "198.19.92.1/24");
const showSteps = args.includes("--steps");

interface Row {
  createToReadyS: number;
  idleMemMb: number;
}

async function guestCommand(d: Driver, command: string): Promise<string> {
  const ssh = await d.getSSH();
  const r = await sshRun(
    { host: ssh.host, port: ssh.port, user: ssh.user, privateKey: readFileSync(ssh.keyPath), timeoutMs: 30_000 },
    command,
    { timeoutMs: 60_000 },
  );
  if (r.code !== 0) throw new Error(`${command}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function measure(
  base: string,
  driverName: "qemu" | "netns",
  raw: Record<string, string | number>,
  bundle: string,
  made: Driver[],
): Promise<{ row: Row; driver: Driver; events: DriverEvent[] }> {
  const name = `bench-${driverName}-${process.pid.toString(36)}`;
  const factory = getDriver(driverName);
  const events: DriverEvent[] = [];
  // Seconds since `create` at which each step began: where the time goes.
  const steps: Array<{ at: number; step: string }> = [];
  const mark = (step: string) => steps.push({ at: Number(process.hrtime.bigint() - started) / 1e9, step });
  let started = process.hrtime.bigint();
  // The default lock dir: the KVM watchdog's marker is host-wide.
  const driver = factory.bind(
    {
      machineName: name,
      storeDir: join(base, "machines", name),
      runner: createExecRunner(),
      progress: (e) => {
        events.push(e);
        mark(`${driverName} ${e.step}`);
      },
    },
    factory.parseOptions(raw),
  );
  made.push(driver); // removed by the caller even when this fails midway
  const ca = await CertificateAuthority.open(join(base, "ca"));
  const client = await ensureClientCert(ca, CONTROL_PLANE_CLIENT);
  started = process.hrtime.bigint();
  await driver.preCreateCheck();
  await driver.create();
  const ip = await driver.getIP();
  await provision({
    ssh: await driver.getSSH(),
    machineName: name,
    ip,
    ca,
    client,
    agentBundle: { path: bundle },
    agentTimeoutMs: 120_000,
    progress: (e) => mark(`provision ${e.step}`),
  });
  const createToReadyS = Number(process.hrtime.bigint() - started) / 1e9;
  if (showSteps) {
    for (const [i, s] of steps.entries()) {
      const next = steps[i + 1]?.at ?? createToReadyS;
      console.error(`${driverName.padEnd(5)} ${s.at.toFixed(1).padStart(6)} s  +${(next - s.at).toFixed(1).padStart(5)} s  ${s.step}`);
    }
  }
  let idleMemMb: number;
  if (driverName === "qemu") {
    const mem = await guestCommand(driver, "cat /proc/meminfo");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(mem)![1]);
    idleMemMb = (kb("MemTotal") - kb("MemAvailable")) / 1024;
  } else {
    const pid = (await guestCommand(driver, "cat /var/lib/flotilla-agent/flotilla/run/agent.pid")).trim();
    idleMemMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
  }
  return { row: { createToReadyS: Math.round(createToReadyS * 10) / 10, idleMemMb: Math.round(idleMemMb) }, driver, events };
}

async function main(): Promise<void> {
  ensureGuestImage();
  const base = mkdtempSync(join(tmpdir(), "flotilla-bench-machines-"));
  const bundle = join(base, "flotilla-agent.tar.gz");
  execFileSync("node", [join(repo, "scripts/build-agent-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
  const made: Driver[] = [];
  try {
    const q = await measure(base, "qemu", { "qemu-accel": accel, "qemu-network-cidr": qemuCidr, "qemu-bridge": "flbench0" }, bundle, made);
    const used = (await (q.driver as QemuDriver).accel()) ?? "?";
    const fellBack = q.events.some((e) => e.message.includes("falling back to TCG"));
    await q.driver.remove();
    const n = await measure(base, "netns", { "netns-cidr": netnsCidr, "netns-bridge": "flbench1" }, bundle, made);
    await n.driver.remove();
    if (!asJson) {
      console.log(
        `qemu  (${used}${fellBack ? ", after the KVM watchdog fell back" : ""}): create → agent answers mTLS in ${q.row.createToReadyS} s; guest memory in use ${q.row.idleMemMb} MB`,
      );
      console.log(`netns: create → agent answers mTLS in ${n.row.createToReadyS} s; agent RSS ${n.row.idleMemMb} MB`);
    }
    console.log(JSON.stringify({ qemu: { accel: used, kvmFallback: fellBack, ...q.row }, netns: n.row }));
  } finally {
    for (const d of made) await d.remove().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
  }
}

// Exit explicitly: an SSH connection closed just before its VM was removed lingers in FIN-WAIT
// for minutes and would keep the process alive.
main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`bench:machines: ${e.message}`);
    process.exit(1);
  },
);
