#!/usr/bin/env bash
# Every test: lint, formatting and types, the shim's C tests (with AddressSanitizer), then vitest's unit and
# integration projects (which start their own Postgres, Redis, registry and sshd as needed).
set -euo pipefail
cd "$(dirname "$0")/.."

npm run -s build
npx eslint .
# Formatting is checked once the tree has been formatted (scripts/format-tree.sh makes the marker).
if [ -f .format-enforced ]; then
  bash scripts/format.sh check
fi
if [ -f agent/shim/Makefile ]; then
  make -C agent/shim -s test
  make -C agent/shim -s asan
fi
# The JSON report stays in test-results/ (ignored by git): the slowest files are printed below, to keep the
# whole run inside CI's time budget.
mkdir -p test-results
report=test-results/vitest-report.json
# Test durations recorded by earlier runs on this machine, outside the clone (see vitest.config.mts).
if [ -z "${FLOTILLA_VITEST_CACHE_DIR:-}" ] && mkdir -p /var/cache/flotilla/vitest 2>/dev/null && [ -w /var/cache/flotilla/vitest ]; then
  export FLOTILLA_VITEST_CACHE_DIR=/var/cache/flotilla/vitest
fi
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One closing line in the plain form CI reads: 'N passed, N failed, N skipped'.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const files = r.testResults.map((f) => ({ s: (f.endTime - f.startTime) / 1000, name: f.name.replace(process.cwd() + "/", "") }));
  console.log("slowest test files (s):");
  for (const f of files.sort((a, b) => b.s - a.s).slice(0, 15)) console.log(`  ${f.s.toFixed(1).padStart(7)}  ${f.name}`);
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
exit $status
