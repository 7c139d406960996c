import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConflictError, InvalidError, NotFoundError, UnavailableError } from "@flotilla/core";
import { FORMAT_ME_MAGIC, HyperVDriver, hypervState, MachineState, parseHyperVOptions, psQuote, type RawOptions } from "@flotilla/drivers";
import { createdOncePerGroup, expectRejects, expectToolMissing, freshHarnessPerTest as perTest, psCommands, type Harness } from "./harness";

let h: Harness;

const freshHarnessPerTest = () => perTest((x) => (h = x));

function driver(name = "devdays", env: Record<string, string> = {}, raw: RawOptions = {}): HyperVDriver {
  return new HyperVDriver(h.ctx(name, env), parseHyperVOptions({ "hyperv-boot2docker-url": h.iso, ...raw }));
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
    `Hyper-V\\New-VHD -Path '${join(store, "fixed.vhd")}' -SizeBytes 10MB -Fixed`,
    `Hyper-V\\Convert-VHD -Path '${join(store, "fixed.vhd")}' -DestinationPath '${join(store, "disk.vhd")}' -VHDType Dynamic -DeleteSource`,
    `Hyper-V\\Resize-VHD -Path '${join(store, "disk.vhd")}' -SizeBytes 20000MB`,
    `Hyper-V\\New-VM -Name '${n}' -Path '${store}' -SwitchName '${switchName}' -MemoryStartupBytes 1024MB`,
    `Hyper-V\\Set-VMMemory -VMName '${n}' -DynamicMemoryEnabled $false`,
    `Hyper-V\\Set-VMProcessor -VMName '${n}' -Count 1`,
    `Hyper-V\\Set-VMDvdDrive -VMName '${n}' -Path '${join(store, "boot2docker.iso")}'`,
    `Hyper-V\\Add-VMHardDiskDrive -VMName '${n}' -Path '${join(store, "disk.vhd")}'`,
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
    const d = new HyperVDriver({ ...h.ctx("devdays"), runner: h.bareRunner() }, parseHyperVOptions({ "hyperv-boot2docker-url": h.iso }));
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
    const err = await expectRejects(driver("devdays", {}, { "hyperv-boot2docker-url": join(h.dir, "gone.iso") }).preCreateCheck());
    expect(err).toBeInstanceOf(InvalidError);
    expect(err.message).toBe(`--hyperv-boot2docker-url ${join(h.dir, "gone.iso")}: no such file`);
  });
});

describe("hyperv create", { timeout: 60_000 }, () => {
  freshHarnessPerTest();

  it("runs the exact PowerShell sequence and leaves a running machine", async () => {
    const store = h.storeDir("devdays");
    const d = driver();
    await d.create();
    expect(ps()).toEqual([...createSequence("devdays", store), ip("devdays"), ip("devdays")]);
    const disk = readFileSync(join(store, "disk.vhd"));
    expect(disk.subarray(0, FORMAT_ME_MAGIC.length).toString()).toBe(FORMAT_ME_MAGIC);
    expect(disk.toString("latin1")).toContain(readFileSync(join(store, "id_ed25519.pub"), "utf8").trim());
    expect(existsSync(join(store, "fixed.vhd"))).toBe(false);

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
    expect(cmds).toContain(`Hyper-V\\New-VM -Name 'devdays' -Path '${h.storeDir("devdays")}' -SwitchName 'LAN' -MemoryStartupBytes 2048MB`);
    expect(cmds).toContain("Hyper-V\\Set-VMProcessor -VMName 'devdays' -Count 2");
  });

  it("removes the VM and its files when a step fails after New-VM", async () => {
    const store = h.storeDir("devdays");
    const err = await expectRejects(driver("devdays", { STANDIN_FAIL: "Start-VM" }).create());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe("powershell.exe Start-VM: exit 1: Start-VM : Injected failure (STANDIN_FAIL=Start-VM).");
    expect(ps().slice(-2)).toEqual(["Hyper-V\\Start-VM -Name 'devdays'", "Hyper-V\\Remove-VM -Name 'devdays' -Force"]);
    for (const f of ["disk.vhd", "fixed.vhd", "boot2docker.iso", "id_ed25519", "devdays"]) expect(existsSync(join(store, f))).toBe(false);
    expect(await driver().getState()).toBe(MachineState.NotFound);
  });

  it("turns the VM off before removing it when the failure comes after Start-VM", async () => {
    const d = new HyperVDriver(
      h.ctx("devdays", { STANDIN_NO_IP: "1" }, { timing: { pollIntervalMs: 5, ipTimeoutMs: 100 } }),
      parseHyperVOptions({ "hyperv-boot2docker-url": h.iso }),
    );
    const err = await expectRejects(d.create());
    expect(err.message).toMatch(/^hyperv devdays: waiting for the guest to report its IP: timed out after 100ms/);
    expect(ps().slice(-2)).toEqual(["Hyper-V\\Stop-VM -Name 'devdays' -TurnOff", "Hyper-V\\Remove-VM -Name 'devdays' -Force"]);
  });

  it("makes nothing to undo when the disk cannot be created", async () => {
    const err = await expectRejects(driver("devdays", { STANDIN_FAIL: "New-VHD" }).create());
    expect(err.message).toMatch(/^powershell\.exe New-VHD: exit 1: New-VHD : Injected failure/);
    expect(ps().at(-1)).toMatch(/^Hyper-V\\New-VHD /);
    expect(existsSync(join(h.storeDir("devdays"), "id_ed25519"))).toBe(false);
  });

  it("an AbortSignal stops the IP poll", async () => {
    const ac = new AbortController();
    const d = new HyperVDriver(
      h.ctx("devdays", { STANDIN_NO_IP: "1" }, { timing: { pollIntervalMs: 20, ipTimeoutMs: 60_000 } }),
      parseHyperVOptions({ "hyperv-boot2docker-url": h.iso }),
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
