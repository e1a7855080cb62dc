#!/usr/bin/env bash
# The full benchmark: release build, 1000 sandboxes, 10,000 ports, 1-64
# clients. Runs in throwaway namespaces like the tests (root needed; the
# host's network is never touched). Results: target/bench/results.{md,json}
# and target/bench/create-latency.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --workspace --quiet
cargo build --release -p ctnet-tests --bin ctnet-bench --quiet
target/release/ctnet-bench --out target/bench "$@"
