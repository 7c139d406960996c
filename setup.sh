#!/usr/bin/env bash
# The two set-up commands of the README, for a fresh machine and a clean clone:
#   ./setup.sh start   install everything, start the whole local stack, put `ctl` on the PATH,
#                      and create the first machine (`local`, netns) unless it exists
#   ./setup.sh test    install everything, run every test
# Also: ./setup.sh stop (stop the local stack; machines keep running, as with docker-machine),
# ./setup.sh install (install only).
set -euo pipefail
cd "$(dirname "$0")"

install() {
  bash scripts/system-deps.sh "$1"
  # npm ci is the reproducible install; skip it when node_modules already matches the lock.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  else
    node scripts/postinstall.mjs
  fi
  npm run -s build
}

link_ctl() {
  local bin
  if [ "$(id -u)" -eq 0 ]; then bin=/usr/local/bin; else bin=$HOME/.local/bin; mkdir -p "$bin"; fi
  ln -sf "$PWD/apps/ctl/bin/ctl.js" "$bin/ctl"
  case ":$PATH:" in *":$bin:"*) ;; *) echo "setup: add $bin to your PATH to use ctl" >&2 ;; esac
}

case "${1:-}" in
  start)
    install stack
    bash deploy/local/stack.sh up
    bash deploy/local/control-plane.sh up
    link_ctl
    ctl status
    bash deploy/local/control-plane.sh first-machine
    ;;
  stop)
    bash deploy/local/control-plane.sh down
    bash deploy/local/stack.sh down
    ;;
  test)
    install all
    bash scripts/test.sh
    ;;
  install) install all ;;
  *) echo "usage: ./setup.sh start|stop|test|install" >&2; exit 2 ;;
esac
