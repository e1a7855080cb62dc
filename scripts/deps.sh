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
# radvd advertises a default route to a fake host (dual-stack forwarding test).
command -v radvd >/dev/null || need+=(radvd)
# The benchmark's peers: netavark 1.4 on both iptables backends (the CNI
# plugins are above).
[ -x /usr/lib/podman/netavark ] || need+=(netavark)
[ -x /usr/sbin/iptables-legacy ] && [ -x /usr/sbin/iptables-nft ] || need+=(iptables)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
fi

if [ "${1:-}" = "--venv" ]; then
  if [ ! -x target/venv/bin/python ]; then
    python3 -m venv target/venv
  fi
  target/venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
fi
