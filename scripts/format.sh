#!/usr/bin/env bash
# One formatter per language: Prettier for TypeScript, JavaScript, JSON and CSS (.prettierrc.json,
# .prettierignore), clang-format for the shim's C (agent/shim/.clang-format).
#   scripts/format.sh check   exit non-zero, naming the files, when anything is not formatted
#   scripts/format.sh write   format in place
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-check}
case "$mode" in
  check | write) ;;
  *) echo "usage: $0 check|write" >&2; exit 2 ;;
esac

if ! command -v clang-format >/dev/null; then
  echo "format: clang-format is missing; scripts/system-deps.sh test installs it" >&2
  exit 1
fi
mapfile -t c_files < <(git ls-files 'agent/shim/*.c' 'agent/shim/*.h')

status=0
if [ "$mode" = check ]; then
  npx prettier --check --log-level warn . || status=$?
  clang-format --dry-run -Werror "${c_files[@]}" || status=$?
else
  npx prettier --write --log-level warn .
  clang-format -i "${c_files[@]}"
fi
exit $status
