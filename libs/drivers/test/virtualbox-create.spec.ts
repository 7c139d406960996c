import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UnavailableError } from "@flotilla/core";
import { MachineState, parseVirtualBoxOptions, seedIso, VirtualBoxDriver, type RawOptions } from "@flotilla/drivers";
import { expectRejects, freshHarnessPerTest as perTest, normalizePort, type Harness } from "./harness";
import { freshCreateSequence, info, IP_PROP, ipPoll, machineSequence, vboxDriver } from "./vbox-fixtures";

let h: Harness;
const freshHarnessPerTest = () => perTest((x) => (h = x));
const driver = (name?: string, env?: Record<string, string>, raw?: RawOptions) => vboxDriver(h, name, env, raw);

describe("virtualbox create", { timeout: 60_000 }, () => {
  freshHarnessPerTest();
  it("runs the exact VBoxManage sequence and leaves a running, reachable machine", async () => {
    const store = h.storeDir("devdays");
    const d = driver();
    await d.create();
    const { calls, port } = normalizePort(h.calls());
    expect(calls).toEqual([...freshCreateSequence("devdays", store, h.image), ipPoll("devdays"), ipPoll("devdays")]);
    expect(port).toBeGreaterThan(0);

    // The machine's disk is the clone of the guest image's VMDK (the stand-in copies its bytes),
    // and the seed disk carries the hostname, the "docker" user and our public key.
    expect(readFileSync(join(store, "disk.vdi"), "utf8")).toBe("fake stream-optimized VMDK\n");
    const pub = readFileSync(join(store, "id_ed25519.pub"), "utf8").trim();
    expect(pub).toMatch(/^ssh-ed25519 \S+ flotilla@devdays$/);
    const seed = readFileSync(join(store, "seed.iso"));
    expect(seed.subarray(16 * 2048 + 40, 16 * 2048 + 46).toString()).toBe("cidata");
    expect(seed.equals(seedIso({ hostname: "devdays", user: "docker", publicKey: pub }, seedDate(seed)))).toBe(true);
    expect(statSync(join(store, "id_ed25519")).mode & 0o777).toBe(0o600);

    h.clearLog();
    expect(await d.getState()).toBe(MachineState.Running);
    expect(await d.getIP()).toBe("192.168.99.100");
    expect(await d.getURL()).toBe("tcp://192.168.99.100:2376");
    expect(await d.getSSH()).toEqual({
      host: "127.0.0.1",
      port,
      user: "docker",
      keyPath: join(store, "id_ed25519"),
      hostKeyPin: expect.objectContaining({ where: join(store, "ssh_host_key.pub") }),
    });
    expect(h.calls()).toEqual([info("devdays"), info("devdays"), ipPoll("devdays"), info("devdays"), ipPoll("devdays"), info("devdays")]);
    expect(h.events.map((e) => e.step)).toEqual(["key", "seed", "network", "disk", "vm", "storage", "start", "ip", "ready"]);
  });

  it("reuses the host-only interface and its DHCP server for the next machine", async () => {
    await driver("one").create();
    h.clearLog();
    await driver("two").create();
    const { calls } = normalizePort(h.calls());
    expect(calls).toEqual([
      ["list", "hostonlyifs"],
      ["list", "dhcpservers"],
      ...machineSequence("two", h.storeDir("two"), h.image),
      ipPoll("two"),
      ipPoll("two"),
    ]);
  });

  it("shares a host folder when asked", async () => {
    await driver(
      "devdays",
      {},
      { "virtualbox-no-share": false, "virtualbox-share-folder": `${h.dir}:hosthome`, "virtualbox-cpu-count": 2 },
    ).create();
    const calls = h.calls();
    const at = calls.findIndex((c) => c[0] === "startvm");
    expect(calls.slice(at - 2, at)).toEqual([
      ["sharedfolder", "add", "devdays", "--name", "hosthome", "--hostpath", h.dir, "--automount"],
      ["setextradata", "devdays", "VBoxInternal2/SharedFoldersEnableSymlinksCreate/hosthome", "1"],
    ]);
    expect(calls.find((c) => c[0] === "modifyvm")?.slice(4, 6)).toEqual(["--cpus", "2"]);
  });

  it("removes what it made when a step fails after the VM exists", async () => {
    const store = h.storeDir("devdays");
    const err = await expectRejects(driver("devdays", { STANDIN_FAIL: "storageattach:hdd" }).create());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe(
      `VBoxManage storageattach: exit 1: VBoxManage: error: Injected failure for 'VBoxManage storageattach devdays --storagectl SATA --port 0 --device 0 --type hdd --medium ${join(store, "disk.vdi")}' (STANDIN_FAIL=storageattach:hdd)`,
    );
    const calls = h.calls();
    expect(calls.at(-2)?.slice(0, 9)).toEqual([
      "storageattach",
      "devdays",
      "--storagectl",
      "SATA",
      "--port",
      "0",
      "--device",
      "0",
      "--type",
    ]);
    expect(calls.at(-1)).toEqual(["unregistervm", "devdays", "--delete"]);
    for (const f of ["disk.vdi", "seed.iso", "id_ed25519", "id_ed25519.pub", "devdays"]) expect(existsSync(join(store, f))).toBe(false);
    expect(await driver().getState()).toBe(MachineState.NotFound);
    expect(h.events.at(-1)?.step).toBe("cleanup");
  });

  it("deletes the lone disk when createvm fails", async () => {
    const store = h.storeDir("devdays");
    const err = await expectRejects(driver("devdays", { STANDIN_FAIL: "createvm" }).create());
    expect(err.message).toMatch(/^VBoxManage createvm: exit 1: VBoxManage: error: Injected failure/);
    expect(h.calls().slice(-2)).toEqual([
      ["createvm", "--name", "devdays", "--basefolder", store, "--register"],
      ["closemedium", "disk", join(store, "disk.vdi"), "--delete"],
    ]);
    expect(existsSync(join(store, "disk.vdi"))).toBe(false);
    expect(existsSync(join(h.image, "disk.vmdk"))).toBe(true); // the image itself is never touched
  });

  it("powers off and unregisters when the guest never reports an IP", async () => {
    const d = new VirtualBoxDriver(
      h.ctx("devdays", { STANDIN_NO_IP: "1" }, { timing: { pollIntervalMs: 5, ipTimeoutMs: 150 } }),
      parseVirtualBoxOptions({ "virtualbox-boot2docker-url": h.image, "virtualbox-no-share": true }),
    );
    const err = await expectRejects(d.create());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe(
      `virtualbox devdays: waiting for the guest to report its IP (${IP_PROP}): timed out after 150ms (the image needs VirtualBox guest additions and a DHCP lease on the host-only adapter)`,
    );
    expect(h.calls().slice(-2)).toEqual([
      ["controlvm", "devdays", "poweroff"],
      ["unregistervm", "devdays", "--delete"],
    ]);
  });

  it("an AbortSignal stops the IP poll, and the create is undone", async () => {
    const ac = new AbortController();
    const d = new VirtualBoxDriver(
      h.ctx("devdays", { STANDIN_NO_IP: "1" }, { timing: { pollIntervalMs: 20, ipTimeoutMs: 60_000 } }),
      parseVirtualBoxOptions({ "virtualbox-boot2docker-url": h.image, "virtualbox-no-share": true }),
    );
    const p = d.create(ac.signal);
    // Abort once polling has begun.
    while (!h.calls().some((c) => c[0] === "guestproperty")) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    ac.abort();
    const err = await expectRejects(p);
    expect(err.name).toBe("AbortError");
    // Half the 60 s IP limit: the abort, not a timeout, ended it (cleanup included). The bound
    // is that wide because a loaded machine stretches the stand-in's calls, not the logic.
    expect(Date.now() - t0).toBeLessThan(30_000);
    const n = h.calls().length;
    await new Promise((r) => setTimeout(r, 150));
    expect(h.calls().length).toBe(n); // no poll after the abort
    expect(h.calls().slice(-2)).toEqual([
      ["controlvm", "devdays", "poweroff"],
      ["unregistervm", "devdays", "--delete"],
    ]);
  });

  it("serializes parallel creates on one host: one create sequence completes before the other starts", async () => {
    const env = { STANDIN_DELAY_MS: "15" };
    const a = driver("alpha", { ...env, STANDIN_CALLER: "alpha" });
    const b = driver("beta", { ...env, STANDIN_CALLER: "beta" });
    const waits: string[] = [];
    h.events.length = 0;
    await Promise.all([a.create(), b.create()]);
    for (const e of h.events) if (e.step === "lock") waits.push(e.machine);

    const log = h.log();
    const first = log[0].caller!;
    const second = first === "alpha" ? "beta" : "alpha";
    const firstStart = log.findIndex((l) => l.caller === first && l.argv[0] === "startvm");
    const secondBegin = log.findIndex((l) => l.caller === second);
    expect(firstStart).toBeGreaterThanOrEqual(0);
    expect(secondBegin).toBeGreaterThan(firstStart);
    // Everything the second create registers comes after the first one's startvm.
    expect(log.slice(0, firstStart + 1).every((l) => l.caller === first)).toBe(true);
    expect(waits).toEqual([second]);
    expect(normalizePort(h.calls(second)).calls.filter((c) => c[0] !== "guestproperty")).toEqual([
      ["list", "hostonlyifs"],
      ["list", "dhcpservers"],
      ...machineSequence(second, h.storeDir(second), h.image),
    ]);
    expect(await a.getState()).toBe(MachineState.Running);
    expect(await b.getState()).toBe(MachineState.Running);
  });
});

/** The date a seed ISO was written with, read back from its root directory record (7-byte form, UTC). */
function seedDate(iso: Buffer): Date {
  const d = iso.subarray(16 * 2048 + 156 + 18, 16 * 2048 + 156 + 25);
  return new Date(Date.UTC(1900 + d[0], d[1] - 1, d[2], d[3], d[4], d[5]));
}
