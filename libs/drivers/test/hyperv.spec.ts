import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConflictError, InvalidError, NotFoundError, UnavailableError } from "@flotilla/core";
import { HyperVDriver, hypervState, MachineState, parseHyperVOptions, psQuote, seedIso, type RawOptions } from "@flotilla/drivers";
import { createdOncePerGroup, expectRejects, expectToolMissing, freshHarnessPerTest as perTest, psCommands, type Harness } from "./harness";

let h: Harness;

const freshHarnessPerTest = () => perTest((x) => (h = x));

function driver(name = "devdays", env: Record<string, string> = {}, raw: RawOptions = {}): HyperVDriver {
  return new HyperVDriver(h.ctx(name, env), parseHyperVOptions({ "hyperv-boot2docker-url": h.image, ...raw }));
}

const ps = () => psCommands(h.calls());

const MODULE = "@(Get-Module -ListAvailable hyper-v).Name | Get-Unique";
const ADMIN =
  "@([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.WindowsBuiltInRole] 'Administrator')";
const HV_ADMIN =
  "@([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.SecurityIdentifier]::new('S-1-5-32-578'))";
const SWITCHES = "Hyper-V\\Get-VMSwitch | ForEach-Object { $_.Name + [char]9 + $_.SwitchType }";
const state = (n: string) => `(Hyper-V\\Get-VM -Name '${n}').state`;
const ip = (n: string) => `((Hyper-V\\Get-VM -Name '${n}').networkadapters[0]).ipaddresses[0]`;

function createSequence(n: string, store: string, switchName = "External Switch"): string[] {
  return [
    SWITCHES,
    `Hyper-V\\Resize-VHD -Path '${join(store, "disk.vhdx")}' -SizeBytes 20000MB`,
    `Hyper-V\\New-VM -Name '${n}' -Generation 1 -Path '${store}' -SwitchName '${switchName}' -MemoryStartupBytes 1024MB`,
    `Hyper-V\\Set-VMMemory -VMName '${n}' -DynamicMemoryEnabled $false`,
    `Hyper-V\\Set-VMProcessor -VMName '${n}' -Count 1`,
    `Hyper-V\\Set-VMDvdDrive -VMName '${n}' -Path '${join(store, "seed.iso")}'`,
    `Hyper-V\\Add-VMHardDiskDrive -VMName '${n}' -Path '${join(store, "disk.vhdx")}'`,
    `Hyper-V\\Start-VM -Name '${n}'`,
  ];
}

describe("hyperv preCreateCheck", { timeout: 60_000 }, () => {
  freshHarnessPerTest();

  it("checks module, rights, switch, image and name", async () => {
    await driver().preCreateCheck();
    expect(ps()).toEqual([MODULE, ADMIN, SWITCHES, state("devdays")]);
    for (const argv of h.calls()) expect(argv.slice(0, 2)).toEqual(["-NoProfile", "-NonInteractive"]);
  });

  it("fails clearly when powershell.exe is not on PATH", async () => {
    const d = new HyperVDriver({ ...h.ctx("devdays"), runner: h.bareRunner() }, parseHyperVOptions({ "hyperv-boot2docker-url": h.image }));
    await expectToolMissing(d, "hyperv: powershell.exe not found on PATH: the hyperv driver runs on Windows with Hyper-V");
  });

  it("fails without the Hyper-V module", async () => {
    const err = await expectRejects(driver("devdays", { STANDIN_HYPERV_MODULE: "0" }).preCreateCheck());
    expect(err.message).toBe(
      "hyperv: the Hyper-V PowerShell module is not installed: enable Hyper-V (with its management tools) in Windows features",
    );
    expect(ps()).toEqual([MODULE]);
  });

  it("fails for a user who is neither admin nor in Hyper-V Administrators", async () => {
    const err = await expectRejects(driver("devdays", { STANDIN_HYPERV_ADMIN: "0" }).preCreateCheck());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe(
      'hyperv: managing Hyper-V needs administrator rights: run as Administrator or join the "Hyper-V Administrators" group',
    );
    expect(ps()).toEqual([MODULE, ADMIN, HV_ADMIN]);
  });

  it("accepts a member of Hyper-V Administrators", async () => {
    await driver("devdays", { STANDIN_HYPERV_ADMIN: "0", STANDIN_HYPERV_ADMIN_GROUP: "1" }).preCreateCheck();
    expect(ps()).toEqual([MODULE, ADMIN, HV_ADMIN, SWITCHES, state("devdays")]);
  });

  it("fails when there is no external switch and none was named", async () => {
    const err = await expectRejects(driver("devdays", { STANDIN_HYPERV_SWITCHES: "Default Switch=Internal" }).preCreateCheck());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe(
      "hyperv: no external virtual switch: create one in Hyper-V Manager or name a switch with --hyperv-virtual-switch (have: Default Switch (Internal))",
    );
  });

  it("names the flag when the named switch does not exist", async () => {
    const err = await expectRejects(driver("devdays", {}, { "hyperv-virtual-switch": "LAN" }).preCreateCheck());
    expect(err).toBeInstanceOf(InvalidError);
    expect(err.message).toBe(
      '--hyperv-virtual-switch "LAN": no such virtual switch (have: External Switch (External), Default Switch (Internal))',
    );
  });

  it("names the flag when the image is missing", async () => {
    const err = await expectRejects(driver("devdays", {}, { "hyperv-boot2docker-url": join(h.dir, "gone") }).preCreateCheck());
    expect(err).toBeInstanceOf(InvalidError);
    expect(err.message).toBe(`--hyperv-boot2docker-url ${join(h.dir, "gone")}: no such file or directory`);
  });

  it("accepts the image's disk.vhdx itself, and refuses a boot2docker ISO or another format", async () => {
    await driver("devdays", {}, { "hyperv-boot2docker-url": join(h.image, "disk.vhdx") }).preCreateCheck();
    const iso = await expectRejects(driver("devdays", {}, { "hyperv-boot2docker-url": join(h.dir, "boot2docker.iso") }).preCreateCheck());
    expect(iso.message).toBe(
      `--hyperv-boot2docker-url ${join(h.dir, "boot2docker.iso")}: boot2docker-style ISOs are not booted; pass a Flotilla guest image (its directory or its disk.vhdx, made by scripts/build-guest-image.sh)`,
    );
    const vmdk = await expectRejects(driver("devdays", {}, { "hyperv-boot2docker-url": join(h.image, "disk.vmdk") }).preCreateCheck());
    expect(vmdk.message).toBe(
      `--hyperv-boot2docker-url ${join(h.image, "disk.vmdk")}: not a .vhdx disk; pass the guest image's directory or its disk.vhdx`,
    );
    expect(vmdk.details).toEqual({ field: "hyperv-boot2docker-url" });
  });

  it("refuses a disk smaller than the image and memory below its minimum, naming the flag", async () => {
    const disk = await expectRejects(driver("devdays", {}, { "hyperv-disk-size": 1100 }).preCreateCheck());
    expect(disk).toBeInstanceOf(InvalidError);
    expect(disk.message).toBe("--hyperv-disk-size 1100 MB is smaller than the guest image (1200 MB)");
    expect(disk.details).toEqual({ field: "hyperv-disk-size" });
    const mem = await expectRejects(driver("devdays", {}, { "hyperv-memory": 128 }).preCreateCheck());
    expect(mem.message).toBe("--hyperv-memory 128 MB is below the guest image's minimum of 256 MB");
    expect(mem.details).toEqual({ field: "hyperv-memory" });
  });
});

describe("hyperv create", { timeout: 60_000 }, () => {
  freshHarnessPerTest();

  it("runs the exact PowerShell sequence and leaves a running machine", async () => {
    const store = h.storeDir("devdays");
    const d = driver();
    await d.create();
    expect(ps()).toEqual([...createSequence("devdays", store), ip("devdays"), ip("devdays")]);
    // The attached disk is the machine's copy of the guest image's VHDX; the seed carries the key.
    expect(readFileSync(join(store, "disk.vhdx"), "utf8")).toBe("fake dynamic VHDX\n");
    const publicKey = readFileSync(join(store, "id_ed25519.pub"), "utf8").trim();
    const seed = readFileSync(join(store, "seed.iso"));
    const d7 = seed.subarray(16 * 2048 + 156 + 18, 16 * 2048 + 156 + 25);
    const written = new Date(Date.UTC(1900 + d7[0], d7[1] - 1, d7[2], d7[3], d7[4], d7[5]));
    expect(seed.equals(seedIso({ hostname: "devdays", user: "docker", publicKey }, written))).toBe(true);

    h.clearLog();
    expect(await d.getState()).toBe(MachineState.Running);
    expect(await d.getIP()).toBe("172.22.96.10");
    expect(await d.getSSH()).toEqual({
      host: "172.22.96.10",
      port: 22,
      user: "docker",
      keyPath: join(store, "id_ed25519"),
      hostKeyPin: expect.objectContaining({ where: join(store, "ssh_host_key.pub") }),
    });
    expect(await d.getURL()).toBe("tcp://172.22.96.10:2376");
  });

  it("uses the named switch, memory and CPUs", async () => {
    await driver(
      "devdays",
      { STANDIN_HYPERV_SWITCHES: "LAN=External" },
      { "hyperv-virtual-switch": "LAN", "hyperv-memory": 2048, "hyperv-cpu-count": "2" },
    ).create();
    const cmds = ps();
    expect(cmds).toContain(
      `Hyper-V\\New-VM -Name 'devdays' -Generation 1 -Path '${h.storeDir("devdays")}' -SwitchName 'LAN' -MemoryStartupBytes 2048MB`,
    );
    expect(cmds).toContain("Hyper-V\\Set-VMProcessor -VMName 'devdays' -Count 2");
  });

  it("removes the VM and its files when a step fails after New-VM", async () => {
    const store = h.storeDir("devdays");
    const err = await expectRejects(driver("devdays", { STANDIN_FAIL: "Start-VM" }).create());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe("powershell.exe Start-VM: exit 1: Start-VM : Injected failure (STANDIN_FAIL=Start-VM).");
    expect(ps().slice(-2)).toEqual(["Hyper-V\\Start-VM -Name 'devdays'", "Hyper-V\\Remove-VM -Name 'devdays' -Force"]);
    for (const f of ["disk.vhdx", "seed.iso", "id_ed25519", "devdays"]) expect(existsSync(join(store, f))).toBe(false);
    expect(await driver().getState()).toBe(MachineState.NotFound);
  });

  it("turns the VM off before removing it when the failure comes after Start-VM", async () => {
    const d = new HyperVDriver(
      h.ctx("devdays", { STANDIN_NO_IP: "1" }, { timing: { pollIntervalMs: 5, ipTimeoutMs: 100 } }),
      parseHyperVOptions({ "hyperv-boot2docker-url": h.image }),
    );
    const err = await expectRejects(d.create());
    expect(err.message).toMatch(/^hyperv devdays: waiting for the guest to report its IP: timed out after 100ms/);
    expect(ps().slice(-2)).toEqual(["Hyper-V\\Stop-VM -Name 'devdays' -TurnOff", "Hyper-V\\Remove-VM -Name 'devdays' -Force"]);
  });

  it("removes its files, and never the image, when the disk cannot be resized", async () => {
    const store = h.storeDir("devdays");
    const err = await expectRejects(driver("devdays", { STANDIN_FAIL: "Resize-VHD" }).create());
    expect(err.message).toMatch(/^powershell\.exe Resize-VHD: exit 1: Resize-VHD : Injected failure/);
    expect(ps().at(-1)).toMatch(/^Hyper-V\\Resize-VHD /);
    for (const f of ["disk.vhdx", "seed.iso", "id_ed25519"]) expect(existsSync(join(store, f))).toBe(false);
    expect(existsSync(join(h.image, "disk.vhdx"))).toBe(true);
  });

  it("an AbortSignal stops the IP poll", async () => {
    const ac = new AbortController();
    const d = new HyperVDriver(
      h.ctx("devdays", { STANDIN_NO_IP: "1" }, { timing: { pollIntervalMs: 20, ipTimeoutMs: 60_000 } }),
      parseHyperVOptions({ "hyperv-boot2docker-url": h.image }),
    );
    const p = d.create(ac.signal);
    while (!psCommands(h.calls()).some((c) => c.startsWith("((Hyper-V\\Get-VM"))) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    const err = await expectRejects(p);
    expect(err.name).toBe("AbortError");
    expect(ps().slice(-2)).toEqual(["Hyper-V\\Stop-VM -Name 'devdays' -TurnOff", "Hyper-V\\Remove-VM -Name 'devdays' -Force"]);
  });
});

describe("hyperv lifecycle", { timeout: 60_000 }, () => {
  createdOncePerGroup(
    (x) => (h = x),
    () => driver().create(),
  );

  it("preCreateCheck refuses an existing VM name", async () => {
    const err = await expectRejects(driver().preCreateCheck());
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.message).toBe("hyperv: a VM named devdays already exists");
  });

  it("stop: Stop-VM, then confirms Off", async () => {
    const d = driver();
    await d.stop();
    expect(ps()).toEqual([state("devdays"), "Hyper-V\\Stop-VM -Name 'devdays'", state("devdays")]);
    expect(await d.getState()).toBe(MachineState.Stopped);
  });

  it("start: Start-VM and wait for the IP", async () => {
    const d = driver();
    await d.kill();
    h.clearLog();
    await d.start();
    expect(ps()).toEqual([state("devdays"), "Hyper-V\\Start-VM -Name 'devdays'", ip("devdays"), ip("devdays")]);
  });

  it("kill: Stop-VM -TurnOff", async () => {
    await driver().kill();
    expect(ps()).toEqual([state("devdays"), "Hyper-V\\Stop-VM -Name 'devdays' -TurnOff"]);
  });

  it("restart: Restart-VM -Force and wait for the IP", async () => {
    await driver().restart();
    expect(ps()).toEqual([state("devdays"), "Hyper-V\\Restart-VM -Name 'devdays' -Force", ip("devdays"), ip("devdays")]);
  });

  it("remove: turn off, Remove-VM -Force, delete the files", async () => {
    const store = h.storeDir("devdays");
    const d = driver();
    await d.remove();
    expect(ps()).toEqual([state("devdays"), "Hyper-V\\Stop-VM -Name 'devdays' -TurnOff", "Hyper-V\\Remove-VM -Name 'devdays' -Force"]);
    for (const f of ["disk.vhd", "boot2docker.iso", "id_ed25519", "devdays"]) expect(existsSync(join(store, f))).toBe(false);
    expect(await d.getState()).toBe(MachineState.NotFound);
  });

  it("a missing VM is NotFound for getState and NotFoundError for the rest", async () => {
    const d = driver("ghost");
    expect(await d.getState()).toBe(MachineState.NotFound);
    await expect(d.stop()).rejects.toBeInstanceOf(NotFoundError);
    await expect(d.getIP()).rejects.toThrow("machine not found: ghost");
    await d.remove(); // already gone: files only
  });
});

describe("hyperv pure parts", () => {
  it("quotes PowerShell literals so nothing is interpreted", () => {
    expect(psQuote("devdays")).toBe("'devdays'");
    expect(psQuote("it's")).toBe("'it''s'");
    expect(psQuote("C:\\Users\\me\\$HOME `n")).toBe("'C:\\Users\\me\\$HOME `n'");
    expect(psQuote("a\u2019b")).toBe("'a\u2019\u2019b'");
  });

  it.each([
    ["Running", MachineState.Running],
    ["Off", MachineState.Stopped],
    ["Starting", MachineState.Starting],
    ["Stopping", MachineState.Stopping],
    ["Saving", MachineState.Stopping],
    ["Paused", MachineState.Paused],
    ["Saved", MachineState.Saved],
    ["OffCritical", MachineState.Error],
    ["RunningCritical", MachineState.Error],
  ])("maps Hyper-V state %s to %s", (hv, ours) => {
    expect(hypervState(`${hv}\r\n`)).toBe(ours);
  });
});
