#!/usr/bin/env bash
# Renders the systemd units with ExecStart pointing at BINDIR.
# Usage: deploy/render.sh BINDIR OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bindir=$1
out=$2
mkdir -p "$out"
for f in "$here"/systemd/*.in; do
  sed -e "s|@BINDIR@|$bindir|g" -e "s|@DOCDIR@|$(dirname "$here")|g" "$f" >"$out/$(basename "${f%.in}")"
done
