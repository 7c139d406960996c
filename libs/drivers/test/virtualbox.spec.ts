import { cpSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConflictError, InvalidError, NotFoundError, NotSupportedError, UnavailableError } from "@flotilla/core";
import {
  GUEST_IMAGE_VERSION,
  MachineState,
  parseVirtualBoxOptions,
  VirtualBoxDriver,
  virtualboxDriver,
  type RawOptions,
} from "@flotilla/drivers";
import {
  createdOncePerGroup,
  expectRejects,
  expectToolMissing,
  freshHarnessPerTest as perTest,
  makeHarness,
  type Harness,
} from "./harness";
import { info, ipPoll, vboxDriver } from "./vbox-fixtures";

let h: Harness;
const freshHarnessPerTest = () => perTest((x) => (h = x));
const driver = (name?: string, env?: Record<string, string>, raw?: RawOptions) => vboxDriver(h, name, env, raw);

describe("virtualbox preCreateCheck", { timeout: 60_000 }, () => {
  freshHarnessPerTest();
  it("checks the tool, the name and the host-only networks, in that order", async () => {
    await driver().preCreateCheck();
    expect(h.calls()).toEqual([["--version"], info("devdays"), ["list", "hostonlyifs"]]);
  });

  it("fails clearly when VBoxManage is not on PATH", async () => {
    const d = new VirtualBoxDriver(
      { ...h.ctx("devdays"), runner: h.bareRunner() },
      parseVirtualBoxOptions({ "virtualbox-boot2docker-url": h.image }),
    );
    await expectToolMissing(d, "virtualbox: VBoxManage not found on PATH: install VirtualBox 5 or later");
  });

  it("refuses VirtualBox older than 5", async () => {
    const err = await expectRejects(driver("devdays", { STANDIN_VBOX_VERSION: "4.3.40r110317" }).preCreateCheck());
    expect(err).toBeInstanceOf(NotSupportedError);
    expect(err.message).toBe("virtualbox: VirtualBox 4.3.40r110317 is too old; Flotilla needs 5.0 or later");
  });

  it("reads the version after warning lines and accepts 5.x", async () => {
    await driver("devdays", { STANDIN_VBOX_VERSION: "WARNING: The vboxdrv kernel module is not loaded.\n5.2.44r139111" }).preCreateCheck();
  });

  it("names the flag when the image is missing", async () => {
    const err = await expectRejects(driver("devdays", {}, { "virtualbox-boot2docker-url": join(h.dir, "nope") }).preCreateCheck());
    expect(err).toBeInstanceOf(InvalidError);
    expect(err.message).toBe(`--virtualbox-boot2docker-url ${join(h.dir, "nope")}: no such file or directory`);
    expect(err.details).toEqual({ field: "virtualbox-boot2docker-url" });
  });

  it("accepts the image's disk.vmdk or a file:// URL, and refuses a boot2docker ISO or an image without its VMDK", async () => {
    await driver("devdays", {}, { "virtualbox-boot2docker-url": join(h.image, "disk.vmdk") }).preCreateCheck();
    await driver("devdays", {}, { "virtualbox-boot2docker-url": `file://${h.image}` }).preCreateCheck();
    const iso = await expectRejects(
      driver("devdays", {}, { "virtualbox-boot2docker-url": join(h.dir, "boot2docker.iso") }).preCreateCheck(),
    );
    expect(iso).toBeInstanceOf(InvalidError);
    expect(iso.message).toBe(
      `--virtualbox-boot2docker-url ${join(h.dir, "boot2docker.iso")}: boot2docker-style ISOs are not booted; pass a Flotilla guest image (its directory or its disk.vmdk, made by scripts/build-guest-image.sh)`,
    );
    const bare = join(h.dir, "bare");
    mkdirSync(bare);
    const err = await expectRejects(driver("devdays", {}, { "virtualbox-boot2docker-url": bare }).preCreateCheck());
    expect(err.message).toBe(`--virtualbox-boot2docker-url ${bare}: disk.vmdk is missing (not a Flotilla guest image?)`);
  });

  it("refuses a disk smaller than the image and memory below its minimum, naming the flag", async () => {
    const disk = await expectRejects(driver("devdays", {}, { "virtualbox-disk-size": 1100 }).preCreateCheck());
    expect(disk.message).toBe("--virtualbox-disk-size 1100 MB is smaller than the guest image (1200 MB)");
    expect(disk.details).toEqual({ field: "virtualbox-disk-size" });
    const mem = await expectRejects(driver("devdays", {}, { "virtualbox-memory": 200 }).preCreateCheck());
    expect(mem.message).toBe("--virtualbox-memory 200 MB is below the guest image's minimum of 256 MB");
    expect(h.calls().filter((c) => c[0] !== "--version" && c[0] !== "showvminfo")).toEqual([]); // refused before any VirtualBox change
  });

  it("does not download: a URL must already be in the image cache", async () => {
    const url = "https://example.invalid/releases/guest-1";
    const err = await expectRejects(driver("devdays", {}, { "virtualbox-boot2docker-url": url }).preCreateCheck());
    expect(err).toBeInstanceOf(InvalidError);
    expect(err.message).toBe(
      `--virtualbox-boot2docker-url ${url}: not in the image cache (${join(h.cacheDir, "guest-1")}); images are not downloaded at run time: fetch it to that path, or pass a local path`,
    );
    cpSync(h.image, join(h.cacheDir, "guest-1"), { recursive: true });
    await driver("devdays", {}, { "virtualbox-boot2docker-url": url }).preCreateCheck();
  });

  it("without --virtualbox-boot2docker-url uses the cached guest image of this version", async () => {
    const d = new VirtualBoxDriver(h.ctx("devdays"), parseVirtualBoxOptions({ "virtualbox-no-share": true }));
    const err = await expectRejects(d.preCreateCheck());
    expect(err.message).toBe(
      `--virtualbox-boot2docker-url not given and the guest image ${join(h.cacheDir, `guest-${GUEST_IMAGE_VERSION}`)} is not built yet: run scripts/build-guest-image.sh (as root) or pass --virtualbox-boot2docker-url DIR`,
    );
    cpSync(h.image, join(h.cacheDir, `guest-${GUEST_IMAGE_VERSION}`), { recursive: true });
    await d.preCreateCheck();
  });

  it("refuses a CIDR overlapping another host-only interface, and reuses an identical one", async () => {
    const overlapping = { STANDIN_VBOX_HOSTONLYIFS: "vboxnet0=192.168.98.1/255.255.254.0" };
    const err = await expectRejects(driver("devdays", overlapping).preCreateCheck());
    expect(err).toBeInstanceOf(InvalidError);
    expect(err.message).toBe(
      "--virtualbox-hostonly-cidr 192.168.99.1/24 overlaps host-only interface vboxnet0 (192.168.98.1/23); pick another network or reuse 192.168.98.1/23",
    );
    const other = makeHarness();
    try {
      await vboxDriver(other, "devdays", { STANDIN_VBOX_HOSTONLYIFS: "vboxnet3=192.168.99.1/255.255.255.0" }).preCreateCheck();
    } finally {
      other.cleanup();
    }
  });
});

describe("virtualbox lifecycle", { timeout: 60_000 }, () => {
  // One real create (through the stand-in), restored before each test: the tests start from a
  // running machine without paying for a create each.
  createdOncePerGroup(
    (x) => (h = x),
    () => driver().create(),
  );

  async function created(env: Record<string, string> = {}): Promise<VirtualBoxDriver> {
    return driver("devdays", env);
  }

  it("preCreateCheck refuses a name that is already a VM", async () => {
    const err = await expectRejects(driver().preCreateCheck());
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.message).toBe("virtualbox: a VM named devdays already exists");
  });

  it("stop: ACPI power button, then polls until poweroff", async () => {
    const d = await created();
    await d.stop();
    expect(h.calls()).toEqual([info("devdays"), ["controlvm", "devdays", "acpipowerbutton"], info("devdays"), info("devdays")]);
    expect(await d.getState()).toBe(MachineState.Stopped);
  });

  it("stop fails after the stop timeout when the guest ignores ACPI, and says to kill", async () => {
    const d = new VirtualBoxDriver(
      h.ctx("devdays", { STANDIN_ACPI_IGNORE: "1" }, { timing: { pollIntervalMs: 5, stopTimeoutMs: 300 } }),
      parseVirtualBoxOptions({ "virtualbox-boot2docker-url": h.image, "virtualbox-no-share": true }),
    );
    const err = await expectRejects(d.stop());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe(
      "virtualbox devdays: waiting for the guest to power off: timed out after 300ms (still Running; use kill to power it off)",
    );
  });

  it("an AbortSignal cancels the stop poll", async () => {
    const d = await created({ STANDIN_ACPI_IGNORE: "1" });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("user pressed ^C")), 100);
    const err = await expectRejects(d.stop(ac.signal));
    expect(err.message).toBe("user pressed ^C");
  });

  it("start: startvm headless, then waits for the IP; no-op when running", async () => {
    const d = await created();
    await d.stop();
    h.clearLog();
    await d.start();
    expect(h.calls()).toEqual([info("devdays"), ["startvm", "devdays", "--type", "headless"], ipPoll("devdays"), ipPoll("devdays")]);
    h.clearLog();
    await d.start();
    expect(h.calls()).toEqual([info("devdays"), ipPoll("devdays")]);
  });

  it("kill: poweroff; nothing when already off", async () => {
    const d = await created();
    await d.kill();
    expect(h.calls()).toEqual([info("devdays"), ["controlvm", "devdays", "poweroff"]]);
    expect(await d.getState()).toBe(MachineState.Stopped);
    h.clearLog();
    await d.kill();
    expect(h.calls()).toEqual([info("devdays")]);
  });

  it("restart: stop then start", async () => {
    const d = await created();
    await d.restart();
    expect(h.calls()).toEqual([
      info("devdays"),
      info("devdays"),
      ["controlvm", "devdays", "acpipowerbutton"],
      info("devdays"),
      info("devdays"),
      info("devdays"),
      ["startvm", "devdays", "--type", "headless"],
      ipPoll("devdays"),
      ipPoll("devdays"),
    ]);
  });

  it("remove: powers off, waits, unregisters with --delete, deletes the driver's files", async () => {
    const d = await created();
    const store = h.storeDir("devdays");
    await d.remove();
    expect(h.calls()).toEqual([
      info("devdays"),
      ["controlvm", "devdays", "poweroff"],
      info("devdays"),
      ["unregistervm", "devdays", "--delete"],
    ]);
    for (const f of ["disk.vdi", "seed.iso", "id_ed25519", "devdays"]) expect(existsSync(join(store, f))).toBe(false);
    expect(await d.getState()).toBe(MachineState.NotFound);
  });

  it("remove of a VM that is already gone only cleans files", async () => {
    await driver("ghost").remove();
    expect(h.calls()).toEqual([info("ghost")]);
  });

  it("calls on a missing VM say so with NotFoundError", async () => {
    const d = driver("ghost");
    expect(await d.getState()).toBe(MachineState.NotFound);
    for (const call of [() => d.start(), () => d.stop(), () => d.kill(), () => d.getIP(), () => d.getSSH()]) {
      const err = await expectRejects(call());
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err.message).toBe("machine not found: ghost");
    }
  });

  it("getIP on a stopped machine is an error, not a stale address", async () => {
    const d = await created();
    await d.kill();
    const err = await expectRejects(d.getIP());
    expect(err.message).toBe("virtualbox devdays: no IP while the machine is Stopped");
  });

  it("maps the VM states VirtualBox reports", async () => {
    const d = await created();
    expect(await d.getState()).toBe(MachineState.Running);
    await h.runner().run("VBoxManage", ["controlvm", "devdays", "pause"]);
    expect(await d.getState()).toBe(MachineState.Paused);
    await h.runner({ STANDIN_ACPI_POLLS: "5" }).run("VBoxManage", ["controlvm", "devdays", "acpipowerbutton"]);
    expect(await d.getState()).toBe(MachineState.Stopping);
  });

  it("a failing VBoxManage names the step", async () => {
    const d = await created({ STANDIN_FAIL: "showvminfo" });
    const err = await expectRejects(d.getState());
    expect(err.message).toBe(
      "VBoxManage showvminfo: exit 1: VBoxManage: error: Injected failure for 'VBoxManage showvminfo devdays --machinereadable' (STANDIN_FAIL=showvminfo)",
    );
    expect(err.details).toMatchObject({ step: "VBoxManage showvminfo", exitCode: 1 });
  });
});

describe("virtualbox factory", () => {
  freshHarnessPerTest();
  it("binds through the factory with parsed options", () => {
    const d = virtualboxDriver.bind(h.ctx("devdays"), virtualboxDriver.parseOptions({ "virtualbox-memory": "2048" }));
    expect(d.driverName).toBe("virtualbox");
    expect((d as VirtualBoxDriver).options.memoryMB).toBe(2048);
  });

  it("refuses machine names that are not host names", () => {
    expect(() => virtualboxDriver.bind(h.ctx("dev days; rm -rf"), virtualboxDriver.parseOptions({}))).toThrow(InvalidError);
  });
});
