#!/usr/bin/env bash
# Installs what ctnet's daemons and tests use on Debian 12, idempotently:
# apt packages (only when a tool is missing) and, with --venv, the Python
# test client's packages in target/venv (never the system Python).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nft >/dev/null || need+=(nftables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v ping >/dev/null || need+=(iputils-ping)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v systemd-analyze >/dev/null || need+=(systemd)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
# CNI: the reference plugins (bandwidth chains after ctnet), Go and libcni
# for the libcni driver, podman 4.3 with its CNI backend and what it runs.
[ -x /usr/lib/cni/bandwidth ] || need+=(containernetworking-plugins)
[ -x /usr/lib/go-1.19/bin/go ] || need+=(golang-1.19-go)
[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ] || need+=(golang-github-appc-cni-dev)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
# The generated clients: protoc with Debian's Go plugins and the Go gRPC
# packages (protobuf 1.5, whose runtime takes the generated messages; 1.3
# panics on them); npm for buf.
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v protoc-gen-go >/dev/null || need+=(protoc-gen-go)
command -v protoc-gen-go-grpc >/dev/null || need+=(protoc-gen-go-grpc)
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || need+=(golang-google-grpc-dev)
[ -d /usr/share/gocode/src/google.golang.org/protobuf ] || need+=(golang-google-protobuf-dev)
dpkg -s golang-github-golang-protobuf-1-5-dev >/dev/null 2>&1 || need+=(golang-github-golang-protobuf-1-5-dev)
command -v npm >/dev/null || need+=(npm)
# A real Prometheus scrapes the metrics endpoint in a test.
[ -x /usr/bin/prometheus ] || need+=(prometheus)
# radvd advertises a default route to a fake host (dual-stack forwarding test).
command -v radvd >/dev/null || need+=(radvd)
# The benchmark's peers: netavark 1.4 on both iptables backends (the CNI
# plugins are above).
[ -x /usr/lib/podman/netavark ] || need+=(netavark)
[ -x /usr/sbin/iptables-legacy ] && [ -x /usr/sbin/iptables-nft ] || need+=(iptables)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No package may start its daemon on this host (prometheus would listen
  # on :9090): invoke-rc.d asks policy-rc.d, which says no.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
fi

# buf (lint and breaking checks of proto/), from the npm registry.
buf_version=1.75.0
if [ "$(target/tools/node_modules/.bin/buf --version 2>/dev/null)" != "$buf_version" ]; then
  npm install --silent --no-audit --no-fund --prefix target/tools "@bufbuild/buf@$buf_version"
fi

if [ "${1:-}" = "--venv" ]; then
  if [ ! -x target/venv/bin/python ]; then
    python3 -m venv target/venv
  fi
  target/venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
  # The Python client package, as a user installs it.
  target/venv/bin/pip install -q --disable-pip-version-check ./clients/python
fi
