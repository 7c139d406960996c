#!/usr/bin/env bash
# Builds the Flotilla guest image from Debian packages only (debootstrap of bookworm, minbase),
# once per version, into a cache outside the clone:
#
#   $FLOTILLA_GUEST_CACHE/guest-<version>/   (default /var/cache/flotilla)
#     disk.qcow2   ext4 root file system on the whole disk (no partition table), for qemu
#     vmlinuz, initrd.img   the guest's kernel and initramfs (qemu boots them with -kernel/-initrd)
#     vmlinux               the kernel uncompressed, when it has a PVH entry point (qemu boots it
#                           in preference: no decompression under TCG)
#     disk.vmdk, disk.vhdx  the same disk for VirtualBox and Hyper-V (qemu-img convert)
#     manifest.json         version, kernel release, sizes, minimum memory, build seconds, the
#                           Node runtime it carries
#
# The guest runs sysvinit (no systemd), with a short sysinit of its own (guest/flotilla-boot) in
# place of Debian's rcS: boot is short under TCG, and the agent's init-script path is the one
# used. Each boot, guest/flotilla-seed reads the machine's hostname, SSH key, SSH user and
# network from the kernel command line (flotilla.*) or from a NoCloud-style disk labelled
# "cidata" (meta-data, user-data, network-config), like cloud-init, and starts sshd at once.
#
# The image carries the agent's pinned Node runtime (scripts/node-runtime.mjs) in
# /usr/lib/flotilla/node-runtime/node-linux-x64-<version>/ (node, LICENSE, SHA256): provisioning
# uploads the agent bundle without it when the guest's matches (libs/provision/src/bundle.ts),
# ~40 MB less through the VM's sshd, which is slow under TCG.
#
#   scripts/build-guest-image.sh [--print-dir] [--force]
# Needs root, node (for the runtime fetch), debootstrap, qemu-utils and e2fsprogs
# (scripts/system-deps.sh test).
set -euo pipefail

# Bump when anything in this script or scripts/guest/ changes what the image holds; the qemu
# driver's GUEST_IMAGE_VERSION (libs/drivers/src/qemu-image.ts) must match (a unit test checks).
version=3
suite=bookworm
mirror=${FLOTILLA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${FLOTILLA_GUEST_CACHE:-/var/cache/flotilla}
out="$cache/guest-$version"
here=$(cd "$(dirname "$0")" && pwd)

force=0
for a in "$@"; do
  case $a in
    --print-dir) echo "$out"; exit 0 ;;
    --force) force=1 ;;
    *) echo "usage: $0 [--print-dir] [--force]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then echo "build-guest-image: needs root (debootstrap)" >&2; exit 1; fi
for tool in debootstrap qemu-img mkfs.ext4 node; do
  command -v "$tool" >/dev/null || { echo "build-guest-image: $tool is missing (bash scripts/system-deps.sh test)" >&2; exit 1; }
done

mkdir -p "$cache"
# One build at a time per cache; a second caller waits and then finds the image.
exec 9>"$cache/.guest-build.lock"
flock 9
if [ -f "$out/manifest.json" ] && [ $force = 0 ]; then echo "$out"; exit 0; fi

start=$(date +%s)
work=$(mktemp -d "$cache/.guest-build.XXXXXX")
root="$work/rootfs"
cleanup() {
  for m in proc sys dev/pts dev; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "build-guest-image: $(($(date +%s) - start))s $*" >&2; }

packages=linux-image-amd64,openssh-server,iproute2,iptables,ca-certificates,sysvinit-core,acpid,kmod,sudo,procps,e2fsprogs
log "debootstrap $suite ($packages)"
mkdir -p "$cache/debs"
# --cache-dir keeps the .debs: a rebuild (new version) downloads nothing it already has.
debootstrap --variant=minbase --include="$packages" --cache-dir="$cache/debs" \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 20 "$work/debootstrap.log" >&2
  exit 1
}

log "configuring"
# Only the modules a virtual machine boots from go into the initramfs (virtio, SATA/IDE for
# VirtualBox, storvsc for Hyper-V): a small initrd decompresses quickly under TCG.
cat >"$root/etc/initramfs-tools/conf.d/flotilla" <<'EOF'
MODULES=list
COMPRESS=gzip
EOF
cat >"$root/etc/initramfs-tools/modules" <<'EOF'
virtio_pci
virtio_blk
virtio_scsi
virtio_net
e1000
hv_netvsc
ahci
ata_piix
sd_mod
hv_vmbus
hv_storvsc
ext4
EOF
# What the agent uses at run time: overlay for image layers, bridges and netfilter for networks.
# The seed CD's sr_mod and isofs are loaded by flotilla-seed only when it looks for one, and the
# agent's iptables (nf_tables) modules by flotilla-boot in the background (see there).
printf "%s\n" overlay br_netfilter veth button evdev >"$root/etc/modules"

# Drop what a container host never loads; keeps the image small (depmod below).
kver=$(basename "$(ls -d "$root"/lib/modules/*)")
kdir="$root/lib/modules/$kver/kernel"
rm -rf "$kdir/drivers/gpu" "$kdir/drivers/media" "$kdir/drivers/net/wireless" "$kdir/drivers/infiniband" \
  "$kdir/sound" "$kdir/drivers/staging" "$kdir/drivers/bluetooth" "$kdir/net/bluetooth" "$kdir/drivers/isdn" \
  "$kdir/drivers/iio" "$kdir/drivers/usb" "$kdir/drivers/mtd" "$kdir/drivers/net/can" "$kdir/net/mac80211" \
  "$kdir/net/wireless" "$kdir/drivers/thunderbolt" "$kdir/drivers/firewire" "$kdir/fs/ocfs2" "$kdir/fs/btrfs" \
  "$kdir/fs/xfs" "$kdir/fs/nfs" "$kdir/fs/nfsd" "$kdir/fs/smb" "$kdir/fs/ceph" "$kdir/fs/gfs2"
mount -t proc proc "$root/proc"
chroot "$root" depmod -a "$kver"
chroot "$root" update-initramfs -u -k "$kver" >/dev/null 2>&1
umount "$root/proc"

# The agent's Node runtime (see the top); fetched from the npm registry once, checked against its pin.
runtime=$(node "$here/node-runtime.mjs" --print-dir)
rt_dir="$root/usr/lib/flotilla/node-runtime/$(basename "$runtime")"
mkdir -p "$rt_dir"
install -m 0755 "$runtime/node" "$rt_dir/node"
install -m 0644 "$runtime/LICENSE" "$rt_dir/LICENSE"
# Checked here, not trusted from the cache: provisioning relies on this file naming the binary.
echo "$(sha256sum "$rt_dir/node" | cut -d' ' -f1)" >"$rt_dir/SHA256"
cmp -s "$rt_dir/SHA256" "$runtime/SHA256" || { echo "build-guest-image: $runtime/node does not match its SHA256" >&2; exit 1; }

# Our sysinit (which applies the seed and starts sshd) replaces rcS; runlevels 2-5 and 0/6 stay Debian's.
install -m 0755 "$here/guest/flotilla-boot" "$root/usr/local/sbin/flotilla-boot"
install -m 0755 "$here/guest/flotilla-seed" "$root/usr/local/sbin/flotilla-seed"
sed -i 's|^si::sysinit:.*|si::sysinit:/usr/local/sbin/flotilla-boot|' "$root/etc/inittab"
grep -q '^si::sysinit:/usr/local/sbin/flotilla-boot' "$root/etc/inittab"
# flotilla-boot starts sshd (the first thing provisioning needs) before the runlevel's scripts;
# Debian's ssh script stays for restart/stop. sudo, bootlogs and rmnologin do nothing useful
# here (sudo's timestamps and /etc/nologin live in /run or are never made) and each costs
# seconds of CPU under TCG while provisioning runs.
chroot "$root" update-rc.d ssh disable >/dev/null 2>&1
for s in sudo bootlogs rmnologin; do chroot "$root" update-rc.d "$s" remove >/dev/null 2>&1 || true; done
! ls "$root"/etc/rc2.d/S*ssh >/dev/null 2>&1

# ACPI power button (qemu's system_powerdown, VirtualBox acpipowerbutton): halt cleanly.
mkdir -p "$root/etc/acpi/events"
printf 'event=button[ /]power\naction=/sbin/shutdown -h -P now\n' >"$root/etc/acpi/events/flotilla-powerbtn"

# Serial console login is not needed; the kernel log on ttyS0 is (the driver's boot watchdog).
sed -i -E 's/^([1-6]):/#\1:/' "$root/etc/inittab"

# Host keys are per machine (made by flotilla-seed on first boot), never shared by every VM.
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/ssh/sshd_config.d/flotilla.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF
echo "root:*" | chroot "$root" chpasswd -e
echo flotilla >"$root/etc/hostname"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
printf 'LABEL=flotilla-root / ext4 defaults,errors=remount-ro 0 0\n' >"$root/etc/fstab"

# No docs, manuals, locales or package lists: nothing on a container host reads them.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/tmp/*

mkdir -p "$work/out"
cp "$root/boot/vmlinuz-$kver" "$work/out/vmlinuz"
# The same kernel uncompressed (vmlinux), which qemu boots through its PVH entry point: no
# decompression in the guest, which under TCG takes seconds (Debian's kernel is xz-compressed).
# Optional: without xz here, or without the PVH note, the qemu driver boots vmlinuz.
xz_at=$(node -e 'const b=require("fs").readFileSync(process.argv[1]); console.log(b.indexOf(Buffer.from([0xfd,0x37,0x7a,0x58,0x5a,0x00])))' "$work/out/vmlinuz")
if command -v xz >/dev/null && [ "$xz_at" -ge 0 ]; then
  # The payload is followed by the setup's trailer: xz ends at its stream's end and says so.
  tail -c +$((xz_at + 1)) "$work/out/vmlinuz" | xz -dc >"$work/out/vmlinux" 2>/dev/null || true
  # ELF, with Xen's PHYS32_ENTRY note (type 0x12): qemu's PVH boot needs it.
  if ! head -c 4 "$work/out/vmlinux" | grep -q ELF || ! node -e '
    const b = require("fs").readFileSync(process.argv[1]);
    const shoff = Number(b.readBigUInt64LE(0x28)), n = b.readUInt16LE(0x3c), sz = b.readUInt16LE(0x3a);
    for (let i = 0; i < n; i++) {
      const h = shoff + i * sz;
      if (b.readUInt32LE(h + 4) !== 7) continue; // SHT_NOTE
      let o = Number(b.readBigUInt64LE(h + 0x18)), end = o + Number(b.readBigUInt64LE(h + 0x20));
      while (o + 12 <= end) {
        const nl = b.readUInt32LE(o), dl = b.readUInt32LE(o + 4), t = b.readUInt32LE(o + 8);
        if (t === 0x12 && b.toString("latin1", o + 12, o + 12 + nl).startsWith("Xen")) process.exit(0);
        o += 12 + Math.ceil(nl / 4) * 4 + Math.ceil(dl / 4) * 4;
      }
    }
    process.exit(1);' "$work/out/vmlinux"; then
    log "the kernel has no PVH entry point: qemu boots vmlinuz"
    rm -f "$work/out/vmlinux"
  fi
fi
cp "$root/boot/initrd.img-$kver" "$work/out/initrd.img"
chmod 0644 "$work/out"/vmlinu* "$work/out/initrd.img"

log "making the disk"
used_mb=$(du -sm "$root" | cut -f1)
size_mb=$(((used_mb * 13 / 10 + 64 + 63) / 64 * 64))
mkfs.ext4 -q -L flotilla-root -d "$root" -E root_owner=0:0 "$work/disk.raw" "${size_mb}M"
qemu-img convert -O qcow2 "$work/disk.raw" "$work/out/disk.qcow2"
qemu-img convert -O vmdk -o subformat=streamOptimized "$work/disk.raw" "$work/out/disk.vmdk"
qemu-img convert -O vhdx -o subformat=dynamic "$work/disk.raw" "$work/out/disk.vhdx"

secs=$(($(date +%s) - start))
cat >"$work/out/manifest.json" <<EOF
{"version":"$version","suite":"$suite","kernel":"$kver","nodeRuntime":"$(basename "$runtime")","diskMb":$size_mb,"minMemoryMb":256,"buildSeconds":$secs,"cmdline":"root=LABEL=flotilla-root rw console=ttyS0 net.ifnames=0"}
EOF
rm -rf "$out"
mv "$work/out" "$out"
log "done: $out (disk ${size_mb} MB, $(du -sh "$out" | cut -f1) on disk)"
echo "$out"
