#!/usr/bin/env bash
# Installs the Debian packages Flotilla needs, only those missing. Idempotent; needs root
# (or sudo) the first time. Groups: stack (control plane, plus what the first local netns machine
# of `./setup.sh start` needs), test (everything the tests drive, including qemu VMs and the
# tools that build the guest image: scripts/build-guest-image.sh).
set -euo pipefail

stack=(postgresql redis-server openssh-server iproute2 iptables)
test=(openssh-server docker-registry skopeo umoci busybox-static crun runc iproute2 iptables curl psmisc attr openssl zstd chromium clang-format zsh fish
  qemu-system-x86 qemu-utils debootstrap e2fsprogs docker-compose apache2-utils tmux procps sshfs)

want=()
case "${1:-all}" in
  stack) want=("${stack[@]}") ;;
  test | all) want=("${stack[@]}" "${test[@]}") ;;
  *) echo "usage: $0 [stack|test|all]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "flotilla: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "flotilla: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Debian starts services on install; the stack runs its own instances in its own data dir.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
