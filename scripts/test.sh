#!/usr/bin/env bash
# The test command: installs what the tests need, builds, and runs every
# test (unit tests and the end-to-end suite in throwaway namespaces).
# Never touches the host's own network; needs root for namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --venv
cargo build --workspace --quiet
log=$(mktemp)
status=0
cargo test --workspace --quiet -- --test-threads="${CTNET_TEST_THREADS:-4}" 2>&1 | tee "$log" || status=$?
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit $status
