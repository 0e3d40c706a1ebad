#!/usr/bin/env bash
# Starts Standby on the demo fleet (fresh data directory, random port) and drives it with the
# veeam-spc generated client. Usage: tests/compat/run.sh [path/to/standby]
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=${1:-target/debug/standby}
[ -x "$binary" ] || cargo build --locked -p standby
venv=target/compat-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/compat/requirements.txt

work=$(mktemp -d)
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

STANDBY_ADMIN_USER=compat STANDBY_ADMIN_PASSWORD=compat-password-1 RUST_LOG=warn \
  "$binary" serve --demo --data-dir "$work/data" --listen 127.0.0.1:0 --sim-boot-ms 100-300 --undo-batch-interval-seconds 1 \
    >"$work/stdout" 2>"$work/stderr" &
server=$!
for _ in $(seq 1 100); do
  url=$(sed -n 's/^standby: listening on //p' "$work/stdout")
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/stderr"; echo "standby exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "standby did not start listening" >&2; exit 1; }

"$venv/bin/python" tests/compat/veeam_spc_client.py "$url" compat compat-password-1
