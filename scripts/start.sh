#!/usr/bin/env bash
# The start command: builds ctnet, then starts both daemons on this host
# with the embedded state store under /var/lib/ctnet and the default
# network "bridge" (bridge ctnet0 on CTNET_SUBNET if set, else the first
# /16 of 172.17.0.0/12 the host leaves free). The API socket is
# /run/ctnet/ctnet.sock, group ctnet. CTNET_API_REMOTE adds the TLS
# listener, e.g. "--listen 0.0.0.0:7443 --tls-cert F --tls-key F --tls-client-ca F".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --workspace --quiet
bin=$PWD/target/release
run=/run/ctnet
logs=/var/log/ctnet
mkdir -p "$run" /var/lib/ctnet "$logs"
# The accounts of deploy/sysusers.d/ctnet.conf: user ctnet-api, group ctnet.
if command -v systemd-sysusers >/dev/null; then
  systemd-sysusers "$PWD/deploy/sysusers.d/ctnet.conf"
else
  getent group ctnet >/dev/null || groupadd --system ctnet
  getent passwd ctnet-api >/dev/null || useradd --system --user-group --home-dir /var/lib/ctnet --shell /usr/sbin/nologin ctnet-api
fi
api_uid=$(id -u ctnet-api)

stop() {
  local pidfile=$run/$1.pid
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
    while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pidfile"
}
stop api
stop netexec

# The launcher is the daemons themselves: netexec starts as root and drops
# to CAP_NET_ADMIN + CAP_SYS_ADMIN under its seccomp filter; ctnet-api
# binds its socket as root and becomes ctnet-api. Same rights as the units.
nohup "$bin/ctnet-netexec" --socket "$run/netexec.sock" --netns-dir "$run/netns" \
  --socket-group ctnet-api --allow-uid "$api_uid" \
  >>"$logs/netexec.log" 2>&1 </dev/null &
echo $! >"$run/netexec.pid"
nohup "$bin/ctnet-api" --user ctnet-api --socket "$run/ctnet.sock" --socket-group ctnet \
  --netexec-socket "$run/netexec.sock" --state-dir /var/lib/ctnet \
  ${CTNET_SUBNET:+--default-subnet "$CTNET_SUBNET"} \
  ${CTNET_API_REMOTE:-} \
  >>"$logs/api.log" 2>&1 </dev/null &
echo $! >"$run/api.pid"

for _ in $(seq 100); do
  if "$bin/ctnet" -H "$run/ctnet.sock" status >/dev/null 2>&1; then
    "$bin/ctnet" -H "$run/ctnet.sock" network ls
    echo "ctnet is serving on $run/ctnet.sock (logs in $logs); CLI: $bin/ctnet"
    exit 0
  fi
  if ! kill -0 "$(cat "$run/api.pid")" 2>/dev/null; then
    echo "ctnet-api stopped:" >&2
    tail -n 3 "$logs/api.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "ctnet did not become ready; see $logs" >&2
exit 1
