// Machines API + provision worker against a real database, Redis, kernel (netns driver) and agent.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureMachineClientCert, restartAgent } from "@flotilla/provision";
import { PrismaService } from "../src/database/prisma.service";
import { MachineHost } from "../src/machines/machine-host";
import { MachineJobsService } from "../src/machines/machine-jobs.service";
import { MachinesRepository } from "../src/machines/machines.repository";
import { startTestApi, type TestApi } from "./support";
import { testBridge } from "../../../test/support/leftovers";

const repo = resolve(__dirname, "../../..");
const root = process.getuid?.() === 0;
const tag = process.pid.toString(36);
const NETNS = { "netns-cidr": "198.19.79.1/24", "netns-bridge": testBridge("flma") };
// Agents reach the API through its relay on the bridge's gateway (FLOTILLA_AGENT_LISTEN).
const AGENT_PORT = 40000 + (process.pid % 20000);

interface View {
  id: string;
  name: string;
  state: string;
  stateReason: string | null;
  ip: string | null;
  agentVersion: string | null;
  certificates?: { client: { expiresAt: string; sha256: string } | null; server: { expiresAt: string; sha256: string } | null };
}

describe.skipIf(!root)("machines API", () => {
  const base = mkdtempSync(join(tmpdir(), "flotilla-machines-api-"));
  let api: TestApi;

  async function json<T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
    const res = await api.fetch(path, init);
    return { status: res.status, body: (res.status === 204 ? undefined : await res.json()) as T };
  }

  async function waitFor(name: string, states: string[], timeoutMs = 90_000): Promise<View> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { status, body } = await json<View>(`/api/v1/machines/${name}`);
      if (status === 200 && states.includes(body.state)) return body;
      if (Date.now() > deadline) throw new Error(`machine ${name} never reached ${states.join("|")}: ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Until the machine's agent joined (after `after`) and its node is linked and ready. */
  async function waitForAgent(
    name: string,
    after = "",
    timeoutMs = 30_000,
  ): Promise<View & { agentJoinedAt: string | null; node: { hostname: string; status: string } | null }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await json<View & { agentJoinedAt: string | null; node: { hostname: string; status: string } | null }>(
        `/api/v1/machines/${name}`,
      );
      if (body.agentJoinedAt && body.agentJoinedAt > after && body.node?.status === "ready") return body;
      if (Date.now() > deadline) throw new Error(`the agent of ${name} never joined: ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function waitGone(name: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await api.fetch(`/api/v1/machines/${name}`)).status !== 404) {
      if (Date.now() > deadline) throw new Error(`machine ${name} was never removed`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  beforeAll(async () => {
    const bundle = join(base, "flotilla-agent.tar.gz");
    execFileSync("node", [join(repo, "scripts/build-agent-bundle.mjs"), "--out", bundle], { stdio: "ignore" });
    process.env.FLOTILLA_DATA_DIR = join(base, "data");
    process.env.FLOTILLA_AGENT_BUNDLE = bundle;
    process.env.FLOTILLA_AGENT_TIMEOUT_MS = "30000";
    // Two agent-facing URLs, as two replicas would have (here two listeners of one API).
    process.env.FLOTILLA_AGENT_API_URL = `https://198.19.79.1:${AGENT_PORT},https://198.19.79.1:${AGENT_PORT + 1}`;
    api = await startTestApi({
      FLOTILLA_AGENT_LISTEN: `198.19.79.1:${AGENT_PORT},198.19.79.1:${AGENT_PORT + 1}`,
      FLOTILLA_HEARTBEAT_MS: "1000",
    });
  }, 120_000);

  afterAll(async () => {
    for (const name of [`ma-${tag}`, `mb-${tag}`, `mc-${tag}`, `mg-${tag}`]) {
      await api?.fetch(`/api/v1/machines/${name}?force=true`, { method: "DELETE" }).catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 2000));
    await api?.stop();
    for (const name of [`ma-${tag}`, `mb-${tag}`, `mc-${tag}`]) {
      try {
        execFileSync("ip", ["netns", "del", `flt-${name}`], { stdio: "ignore" });
      } catch {
        // gone, as it should be
      }
    }
    rmSync(base, { recursive: true, force: true });
  });

  it("describes the drivers and their options", async () => {
    const { status, body } = await json<{ drivers: { name: string; options: { name: string }[] }[]; engineOptions: { name: string }[] }>(
      "/api/v1/machines/drivers",
    );
    expect(status).toBe(200);
    expect(body.drivers.map((d) => d.name)).toEqual(["generic", "hyperv", "netns", "qemu", "virtualbox"]);
    expect(body.drivers.find((d) => d.name === "netns")!.options.map((o) => o.name)).toContain("netns-cidr");
    expect(body.engineOptions.map((o) => o.name)).toEqual([
      "engine-insecure-registry",
      "engine-registry-mirror",
      "engine-env",
      "engine-label",
    ]);
  });

  it("rejects bad input: unknown driver, bad options, bad name, duplicates", async () => {
    const post = (b: unknown) =>
      json<{ error: string; message: string; details: { field?: string } }>("/api/v1/machines", {
        method: "POST",
        body: JSON.stringify(b),
      });
    let r = await post({ name: "x1", driver: "vmware" });
    expect(r.status).toBe(400);
    expect(r.body.message).toBe('unknown driver "vmware"; known drivers: generic, hyperv, netns, qemu, virtualbox');
    r = await post({ name: "x1", driver: "netns", options: { "netns-cidr": "10.1.0.1/24" } });
    expect([r.status, r.body.details.field]).toEqual([400, "netns-cidr"]);
    r = await post({ name: "x1", driver: "virtualbox", options: { "virtualbox-memory": "lots" } });
    expect([r.status, r.body.details.field]).toEqual([400, "virtualbox-memory"]);
    expect(r.body.message).toContain("--virtualbox-memory must be");
    r = await post({ name: "x1", driver: "netns", options: { "engine-insecure-registry": "not a host" } });
    expect([r.status, r.body.details.field]).toEqual([400, "engine-insecure-registry"]);
    r = await post({ name: "-bad", driver: "netns" });
    expect([r.status, r.body.details.field]).toEqual([400, "name"]);
    r = await post({ name: "x1", driver: "generic" });
    expect(r.body.message).toBe("--generic-ip-address is required for the generic driver");
    expect((await json("/api/v1/machines/nope")).status).toBe(404);
    expect((await json("/api/v1/machines/nope/start", { method: "POST" })).status).toBe(404);
  });

  it("creates a netns machine up to READY, with progress events, env, status, stop/start, certs, rm", async () => {
    const name = `ma-${tag}`;
    const created = await json<{ machine: View; jobId: string; eventId: string }>("/api/v1/machines", {
      method: "POST",
      body: JSON.stringify({
        name,
        driver: "netns",
        options: { ...NETNS, "engine-insecure-registry": "198.19.79.1:5000", "engine-label": "zone=east" },
      }),
    });
    expect(created.status).toBe(202);
    expect(created.body.machine.state).toBe("CREATING");
    expect(created.body.jobId).toBe(`provision-create-${created.body.machine.id}`);
    const dup = await json<{ message: string }>("/api/v1/machines", {
      method: "POST",
      body: JSON.stringify({ name, driver: "netns", options: NETNS }),
    });
    expect([dup.status, dup.body.message]).toEqual([409, `machine "${name}" already exists`]);

    const ready = await waitFor(name, ["READY", "ERROR"]);
    expect(ready.stateReason).toBeNull();
    expect(ready.state).toBe("READY");
    expect(ready.ip).toMatch(/^198\.19\.79\.\d+$/);
    expect(ready.agentVersion).toBe("0.1.0");

    const prisma = api.running.app.get(PrismaService);
    const events = await prisma.event.findMany({ where: { subjectId: ready.id }, orderBy: { id: "asc" } });
    const steps = events.filter((e) => e.action === "progress").map((e) => (e.data as { step: string }).step);
    expect(steps).toEqual(
      expect.arrayContaining(["preCreateCheck", "create", "network", "upload agent", "certificates", "wait for agent", "ready"]),
    );
    const percents = events.filter((e) => e.action === "progress").map((e) => (e.data as { percent: number }).percent);
    expect(percents.at(-1)).toBe(100);

    // The agent got a one-time join token and the control plane's URL, never a long-lived token.
    const agentEnvPath = join(base, "data", "machines", name, "root", "flotilla", "etc", "agent.env");
    const agentEnv = readFileSync(agentEnvPath, "utf8");
    expect(statSync(agentEnvPath).mode & 0o777).toBe(0o600);
    // Every replica's URL, to fail over along.
    expect(agentEnv).toContain(`FLOTILLA_API_URL='https://198.19.79.1:${AGENT_PORT},https://198.19.79.1:${AGENT_PORT + 1}'\n`);
    expect(agentEnv).toContain("NODE_EXTRA_CA_CERTS='/var/lib/flotilla-agent/flotilla/etc/ca.pem'\n");
    expect(agentEnv).toMatch(/FLOTILLA_JOIN_TOKEN='flj_[A-Za-z0-9_-]{43}'\n/);
    expect(agentEnv).toContain("FLOTILLA_NODE_LABELS='zone=east'\n");
    expect(agentEnv).not.toContain("FLOTILLA_API_TOKEN");
    // The machine shares this host's filesystem: its agent refuses binds of the control plane's files.
    const runScript = readFileSync(join(base, "data", "machines", name, "root", "flotilla", "agent-run.sh"), "utf8");
    expect(runScript).toContain(`--deny-bind '${api.config.configDir}'`);
    expect(runScript).toContain(`--deny-bind '${join(base, "data")}'`);
    // It trades it (through the relay) for its own agent token, saved 0600, and heartbeats: its
    // node (host name = machine name) is linked to the machine, and the machine says it joined.
    const tokens = async () => (await json<{ name: string; role: string }[]>("/api/v1/tokens")).body;
    const tokenNames = async () => (await tokens()).map((t) => t.name);
    const joined = await waitForAgent(name);
    expect(joined.node).toMatchObject({ hostname: name, status: "ready" });
    // --engine-label: the node carries the label, for placement constraints.
    expect((await prisma.node.findFirst({ where: { hostname: name } }))?.labels).toMatchObject({ zone: "east" });
    expect((await tokens()).find((t) => t.name === `agent-${name}`)).toMatchObject({ role: "agent" });
    expect(statSync(join(base, "data", "machines", name, "root", "control-plane-token.json")).mode & 0o777).toBe(0o600);
    expect(steps).toContain("join token");
    const joinedSteps = await prisma.event.findMany({ where: { subjectId: ready.id, action: "progress" } });
    expect(joinedSteps.map((e) => (e.data as { step: string }).step)).toContain("agent joined");

    const env = await json<Record<string, string>>(`/api/v1/machines/${name}/env`);
    expect(env.body).toMatchObject({ DOCKER_TLS_VERIFY: "1", DOCKER_HOST: `tcp://${ready.ip}:2376`, DOCKER_MACHINE_NAME: name });
    expect(env.body.DOCKER_CERT_PATH).toBe(join(api.config.configDir, "machines", name));
    expect(statSync(join(env.body.DOCKER_CERT_PATH, "key.pem")).mode & 0o777).toBe(0o600);
    expect((await json<{ ip: string }>(`/api/v1/machines/${name}/ip`)).body.ip).toBe(ready.ip);
    expect((await json<{ url: string }>(`/api/v1/machines/${name}/url`)).body.url).toBe(`tcp://${ready.ip}:2376`);
    expect((await json<{ status: string }>(`/api/v1/machines/${name}/status`)).body.status).toBe("Running");
    expect((await json<{ flags: string[] }>(`/api/v1/machines/${name}/config`)).body.flags).toContain(`-H=tcp://${ready.ip}:2376`);
    // The agent answers the docker CLI's mutual TLS with the user's certificates.
    const ping = execFileSync(
      "curl",
      [
        "-s",
        "--cacert",
        `${env.body.DOCKER_CERT_PATH}/ca.pem`,
        "--cert",
        `${env.body.DOCKER_CERT_PATH}/cert.pem`,
        "--key",
        `${env.body.DOCKER_CERT_PATH}/key.pem`,
        `https://${ready.ip}:2376/_ping`,
      ],
      { encoding: "utf8" },
    );
    expect(ping).toBe("OK");

    expect((await json(`/api/v1/machines/${name}/stop`, { method: "POST" })).status).toBe(202);
    expect((await waitFor(name, ["STOPPED", "ERROR"])).state).toBe("STOPPED");
    expect((await json<{ status: string }>(`/api/v1/machines/${name}/status`)).body.status).toBe("Stopped");
    expect((await json(`/api/v1/machines/${name}/start`, { method: "POST" })).status).toBe(202);
    expect((await waitFor(name, ["READY", "ERROR"])).state).toBe("READY");
    expect((await json(`/api/v1/machines/${name}/regenerate-certs`, { method: "POST", body: JSON.stringify({}) })).status).toBe(202);
    expect((await waitFor(name, ["READY", "ERROR"])).state).toBe("READY");

    // Issue 11, finding 4: --client-certs rotates the machine's own client certificate; its agent
    // refuses the old one at once. inspect shows the certificates' expiry.
    const oldCert = join(base, "old-client");
    cpSync(env.body.DOCKER_CERT_PATH, oldCert, { recursive: true });
    const curlPing = (dir: string) =>
      execFileSync(
        "curl",
        [
          "-s",
          "-w",
          " %{http_code}",
          "--cacert",
          `${dir}/ca.pem`,
          "--cert",
          `${dir}/cert.pem`,
          "--key",
          `${dir}/key.pem`,
          `https://${ready.ip}:2376/_ping`,
        ],
        { encoding: "utf8" },
      );
    expect(curlPing(oldCert)).toBe("OK 200");
    const before = (await json<View>(`/api/v1/machines/${name}`)).body.certificates!;
    expect(new Date(before.client!.expiresAt).getTime()).toBeGreaterThan(Date.now() + 800 * 86_400_000);
    expect(before.server).not.toBeNull();
    const rotate = await json(`/api/v1/machines/${name}/regenerate-certs`, { method: "POST", body: JSON.stringify({ clientCerts: true }) });
    expect(rotate.status).toBe(202);
    expect((await waitFor(name, ["READY", "ERROR"])).state).toBe("READY");
    expect(curlPing(oldCert)).toMatch(/is not accepted by this machine: it was revoked, rotated, or issued for another machine"\} 403$/);
    expect(curlPing(env.body.DOCKER_CERT_PATH)).toBe("OK 200");
    const after = (await json<View>(`/api/v1/machines/${name}`)).body.certificates!;
    expect(after.client!.sha256).not.toBe(before.client!.sha256);

    for (const op of ["restart", "upgrade", "provision"]) {
      expect((await json(`/api/v1/machines/${name}/${op}`, { method: "POST" })).status).toBe(202);
      const after = await waitFor(name, ["READY", "ERROR"]);
      expect([op, after.state, after.stateReason]).toEqual([op, "READY", null]);
    }
    // The re-provisioning gave the agent a new join token: it joined again (a new agent token).
    await waitForAgent(name, joined.agentJoinedAt!);
    expect(
      execFileSync(
        "curl",
        [
          "-s",
          "--cacert",
          `${env.body.DOCKER_CERT_PATH}/ca.pem`,
          "--cert",
          `${env.body.DOCKER_CERT_PATH}/cert.pem`,
          "--key",
          `${env.body.DOCKER_CERT_PATH}/key.pem`,
          `https://${ready.ip}:2376/_ping`,
        ],
        { encoding: "utf8" },
      ),
    ).toBe("OK");
    expect((await json(`/api/v1/machines/${name}/kill`, { method: "POST" })).status).toBe(202);
    expect((await waitFor(name, ["STOPPED", "ERROR"])).state).toBe("STOPPED");

    const list = await json<View[]>("/api/v1/machines");
    expect(list.body.map((m) => m.name)).toContain(name);

    expect(await prisma.node.count({ where: { hostname: name } })).toBe(1);
    expect((await json(`/api/v1/machines/${name}`, { method: "DELETE" })).status).toBe(202);
    await waitGone(name);
    // Its node went with it (its tasks, if any, orphaned and replaced at once).
    expect(await prisma.node.count({ where: { hostname: name } })).toBe(0);
    expect(await prisma.event.count({ where: { kind: "node", action: "remove", data: { path: ["hostname"], equals: name } } })).toBe(1);
    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toContain(`flt-${name}`);
    expect(existsSync(join(base, "data", "machines", name))).toBe(false);
    expect(existsSync(env.body.DOCKER_CERT_PATH)).toBe(false);
    expect(await tokenNames()).not.toContain(`agent-${name}`);
    expect(await prisma.joinToken.count({ where: { machineName: name } })).toBe(0);
    const removed = await prisma.event.findFirst({ where: { subjectId: ready.id, action: "removed" } });
    expect(removed).not.toBeNull();
  }, 180_000); // A hang guard: a dozen machine operations, each provisioning over SSH, on a shared 2-core host.

  it("gives a machine provisioned before agents had a client allow list its list when the worker starts", async () => {
    // Issue 11, finding 4, for machines an older version provisioned: their agents ran without
    // --tlsclients, so another machine's client certificate (same CA) opened them, until a
    // provision, start or regenerate-certs someone had to remember. The worker now does it at start.
    const name = `mc-${tag}`;
    expect(
      (await json("/api/v1/machines", { method: "POST", body: JSON.stringify({ name, driver: "netns", options: NETNS }) })).status,
    ).toBe(202);
    const ready = await waitFor(name, ["READY", "ERROR"]);
    expect([ready.state, ready.stateReason]).toEqual(["READY", null]);
    const prisma = api.running.app.get(PrismaService);
    const row = await prisma.machine.findUniqueOrThrow({ where: { name } });
    expect(row.clientsWrittenAt).not.toBeNull();
    // The key the netns driver made is in the record too, and inspect shows it.
    expect(row.sshHostKey).toBe(readFileSync(join(base, "data", "machines", name, "ssh_host_ed25519_key.pub"), "utf8").trim());
    expect((await json<{ sshHostKey: { sha256: string } }>(`/api/v1/machines/${name}`)).body.sshHostKey.sha256).toMatch(/^SHA256:/);

    // What an older version left: a run script without --tlsclients, no list, nothing recorded.
    const flotilla = join(base, "data", "machines", name, "root", "flotilla");
    const runScript = join(flotilla, "agent-run.sh");
    writeFileSync(runScript, readFileSync(runScript, "utf8").replace(/ --tlsclients '[^']*'/, ""));
    rmSync(join(flotilla, "etc", "clients.allow"));
    const host = api.running.app.get(MachineHost);
    const repository = api.running.app.get(MachinesRepository);
    const ca = await host.authority();
    await restartAgent({
      ssh: await host.driver(row, repository.hostKeyPin(row, host.legacyHostKeyFile(name))).getSSH(),
      machineName: name,
      ip: ready.ip!,
      ca,
      client: await host.controlPlaneClient(),
    });
    await prisma.machine.update({ where: { name }, data: { clientsWrittenAt: null } });
    const otherDir = join(base, "other-machine");
    await ensureMachineClientCert(ca, otherDir, "other-machine");
    const ping = (dir: string) =>
      execFileSync(
        "curl",
        [
          "-s",
          "-w",
          " %{http_code}",
          "--cacert",
          `${dir}/ca.pem`,
          "--cert",
          `${dir}/cert.pem`,
          "--key",
          `${dir}/key.pem`,
          `https://${ready.ip}:2376/_ping`,
        ],
        { encoding: "utf8" },
      );
    // The attack: another machine's certificate opens this one.
    expect(ping(otherDir)).toBe("OK 200");

    expect(await api.running.app.get(MachineJobsService).catchUpClientLists()).toEqual([name]);
    const after = await waitFor(name, ["READY", "ERROR"]);
    expect([after.state, after.stateReason]).toEqual(["READY", null]);
    expect(ping(otherDir)).toMatch(/is not accepted by this machine: it was revoked, rotated, or issued for another machine"\} 403$/);
    expect(ping(join(api.config.configDir, "machines", name))).toBe("OK 200");
    expect(readFileSync(runScript, "utf8")).toContain(" --tlsclients '");
    expect((await prisma.machine.findUniqueOrThrow({ where: { name } })).clientsWrittenAt).not.toBeNull();
    const events = await prisma.event.findMany({ where: { subjectId: row.id, action: "progress" }, orderBy: { id: "asc" } });
    expect(events.map((e) => (e.data as { step: string }).step)).toContain("client certificates");
    // Once given, the next start of the worker leaves it alone.
    expect(await api.running.app.get(MachineJobsService).catchUpClientLists()).toEqual([]);

    expect((await json(`/api/v1/machines/${name}`, { method: "DELETE" })).status).toBe(202);
    await waitGone(name);
  }, 180_000);

  it("keeps nothing of a create its preCreateCheck refuses (virtualbox without VBoxManage), and says why", async () => {
    const prisma = api.running.app.get(PrismaService);
    const name = `pc-${tag}`;
    const created = await json<{ machine: View }>("/api/v1/machines", {
      method: "POST",
      body: JSON.stringify({ name, driver: "virtualbox" }),
    });
    expect(created.status).toBe(202);
    await waitGone(name);
    const events = await prisma.event.findMany({ where: { subjectId: created.body.machine.id }, orderBy: { id: "asc" } });
    const failed = events.find((e) => e.action === "failed");
    expect((failed?.data as { reason?: string })?.reason).toBe(
      "preCreateCheck: virtualbox: VBoxManage not found on PATH: install VirtualBox 5 or later",
    );
    expect(events.at(-1)?.action).toBe("removed");
    expect(existsSync(join(base, "data", "machines", name))).toBe(false);
    expect(await prisma.machine.count({ where: { name } })).toBe(0);
  });

  it("removes with --force a machine whose stored options its driver no longer accepts", async () => {
    const prisma = api.running.app.get(PrismaService);
    await prisma.machine.create({ data: { name: `mo-${tag}`, driver: "netns", options: { "netns-colour": "red" }, state: "READY" } });
    expect((await json(`/api/v1/machines/mo-${tag}`, { method: "DELETE" })).status).toBe(202);
    const failed = await waitFor(`mo-${tag}`, ["ERROR"]);
    expect(failed.stateReason).toContain("unknown option --netns-colour");
    expect((await json(`/api/v1/machines/mo-${tag}?force=true`, { method: "DELETE" })).status).toBe(202);
    await waitGone(`mo-${tag}`);
  });

  it("fails a create with a wrong SSH key: ERROR naming the step, nothing left running", async () => {
    // A netns host to aim the generic driver at.
    const hostName = `mb-${tag}`;
    await json("/api/v1/machines", { method: "POST", body: JSON.stringify({ name: hostName, driver: "netns", options: NETNS }) });
    // Only the host is needed, not its agent; READY or not, its sshd runs once the IP is known.
    const host = await waitFor(hostName, ["PROVISIONING", "READY", "ERROR"]);
    expect(host.ip).toBeTruthy();
    const wrongKey = join(base, "wrong-key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", wrongKey]);
    const name = `mg-${tag}`;
    const r = await json("/api/v1/machines", {
      method: "POST",
      body: JSON.stringify({ name, driver: "generic", options: { "generic-ip-address": host.ip!, "generic-ssh-key": wrongKey } }),
    });
    expect(r.status).toBe(202);
    const failed = await waitFor(name, ["ERROR", "READY"]);
    expect(failed.state).toBe("ERROR");
    expect(failed.stateReason).toBe(`create: ssh ${host.ip}:22: authentication failed for root`);
    expect(existsSync(join(base, "data", "machines", name, "id_ssh"))).toBe(false);
    // A failed machine can still be removed.
    expect((await json(`/api/v1/machines/${name}`, { method: "DELETE" })).status).toBe(202);
    await waitGone(name);
    await waitFor(hostName, ["READY", "ERROR"]);
    await json(`/api/v1/machines/${hostName}?force=true`, { method: "DELETE" });
    await waitGone(hostName);
  });
});
