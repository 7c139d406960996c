#!/usr/bin/env bash
# Formats the whole tree once and switches the format check on: run it on main after every
# branch in flight has merged, and commit the result as one commit of its own (formatting only).
# Idempotent: a second run changes nothing. From then on scripts/test.sh runs
# `scripts/format.sh check`, because .format-enforced exists.
set -euo pipefail
cd "$(dirname "$0")/.."

# Prettier reaches a fixed point in two passes on a few member chains (a chain it breaks in the
# first pass fits on one line in the second), so write until the check passes, at most three times.
for pass in 1 2 3; do
  bash scripts/format.sh write
  if bash scripts/format.sh check >/dev/null 2>&1; then break; fi
  [ "$pass" = 3 ] && { bash scripts/format.sh check; exit 1; }
done
cat > .format-enforced <<'MARK'
scripts/test.sh checks formatting (scripts/format.sh check) while this file exists.
MARK
echo "format-tree: formatted; commit everything, .format-enforced included, as one commit" >&2
