// What the virtualbox and hyperv drivers hand a hypervisor, booted for real as far as this host
// allows: the guest image's converted disk.vmdk as the first IDE disk and the driver's seed ISO
// in an IDE CD drive (the devices VirtualBox's SATA/IDE and Hyper-V generation 1 present), under
// qemu with TCG. The guest's flotilla-seed must find the "cidata" CD and apply its host name and
// SSH user: its line on the serial console says so. The image has no boot loader yet, so the
// kernel comes from -kernel, as the qemu driver boots it. No network: nothing leaves the VM.
// One TCG boot: run under /run/flotilla-kernel.lock.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { seedIso } from "@flotilla/drivers";
import { canBootVms, ensureGuestImage } from "../../../test/support/guest-image";

const BOOT_LIMIT_MS = 300_000;

describe.skipIf(!canBootVms())("guest image as VirtualBox and Hyper-V get it (disk.vmdk + seed CD, TCG)", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-guest-seed-"));
  let qemu: ChildProcess | undefined;
  afterAll(() => {
    qemu?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("boots the converted disk and applies the seed ISO's host name and user", { timeout: BOOT_LIMIT_MS + 30_000 }, async () => {
    const image = ensureGuestImage();
    const manifest = JSON.parse(readFileSync(join(image, "manifest.json"), "utf8")) as { cmdline: string };
    const seed = join(dir, "seed.iso");
    writeFileSync(
      seed,
      seedIso({ hostname: "seeded-vm", user: "docker", publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0dGVzdGtleQ flotilla@seeded-vm" }),
    );
    qemu = spawn(
      "qemu-system-x86_64",
      [
        "-accel",
        "tcg",
        "-m",
        "512",
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        join(image, "vmlinuz"),
        "-initrd",
        join(image, "initrd.img"),
        "-append",
        manifest.cmdline,
        // snapshot=on: the cached image is never written.
        "-drive",
        `file=${join(image, "disk.vmdk")},format=vmdk,if=ide,index=0,snapshot=on`,
        "-drive",
        `file=${seed},format=raw,if=ide,index=2,media=cdrom,readonly=on`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let console = "";
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no flotilla-seed line within ${BOOT_LIMIT_MS} ms; console tail:\n${console.slice(-3000)}`)),
        BOOT_LIMIT_MS,
      );
      const onData = (b: Buffer) => {
        console += b.toString("latin1");
        // The whole line: the serial console arrives in pieces, a line's end may not be here yet.
        const m = /(flotilla-seed: [^\r\n]*)\r?\n/.exec(console);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      qemu!.stdout!.on("data", onData);
      qemu!.stderr!.on("data", onData);
      qemu!.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`qemu exited (${code}) before flotilla-seed ran; console tail:\n${console.slice(-3000)}`));
      });
    });
    expect(line).toBe("flotilla-seed: hostname=seeded-vm ip=none user=docker");
  });
});
