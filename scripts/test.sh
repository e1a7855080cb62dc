#!/usr/bin/env bash
# The test command: installs what the tests need, checks formatting and
# lints, runs api-server's unit suite as an unprivileged user (no daemon, no
# kernel: a fake executor), then every other test (unit tests and the
# end-to-end suite in throwaway namespaces). Never touches the host's own
# network; needs root for namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --venv
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --workspace --quiet
log=$(mktemp)
status=0

# api-server's library tests, as nobody: they need neither root nor daemons.
unit=$(cargo test -p ctnet-api --lib --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "lib" in m["target"]["kind"]:
        print(m["executable"])')
echo "api-server unit suite as uid 65534: $unit"
start=$(date +%s.%N)
(cd /tmp && setpriv --reuid=65534 --regid=65534 --clear-groups "$unit" --test-threads=2 2>&1) | tee -a "$log" || status=$?
echo "api-server unit suite wall time: $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"

cargo test --workspace --exclude ctnet-api --quiet --no-fail-fast -- --test-threads="${CTNET_TEST_THREADS:-4}" 2>&1 | tee -a "$log" || status=$?
cargo test -p ctnet-api --bins --quiet 2>&1 | tee -a "$log" || status=$?
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit $status
