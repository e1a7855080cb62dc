#!/usr/bin/env bash
# The test command: installs what the tests need, builds, and runs every
# test (unit tests and the end-to-end suite in throwaway namespaces).
# Never touches the host's own network; needs root for namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --venv
cargo build --workspace --quiet
cargo test --workspace --quiet -- --test-threads="${CTNET_TEST_THREADS:-4}"
