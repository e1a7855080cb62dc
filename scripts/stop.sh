#!/usr/bin/env bash
# Stops the daemons started by scripts/start.sh. Networks, sandboxes and
# their kernel state stay; the next start picks them up.
set -euo pipefail
for d in api netexec; do
  pidfile=/run/ctnet/$d.pid
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
    while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$pidfile"
done
