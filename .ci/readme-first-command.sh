#!/usr/bin/env bash
# Runs the README's first command exactly as printed (read from README.md by readme_commands.py)
# on this clone, as a new user would: waits for /readyz, logs in with the administrator password
# the first start prints, lists the demo fleet's plans, then sends SIGTERM and requires a clean
# exit. Usage: .ci/readme-first-command.sh [seconds to wait for readiness, default 1500]
set -euo pipefail
cd "$(dirname "$0")/.."
command=$(python3 .ci/readme_commands.py first)
ready_within=${1:-1500}
base=http://127.0.0.1:1280
if [ -e standby-data ]; then
    echo "./standby-data exists: the first command must meet a clean clone" >&2
    exit 1
fi
if curl -s -o /dev/null --max-time 2 "$base/readyz"; then
    echo "something already answers on $base: stop it first" >&2
    exit 1
fi
log=$(mktemp)
pid=
# Whatever happens, no server is left holding the port and no demo data behind.
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    rm -rf standby-data "$log"
}
trap cleanup EXIT
started=$(date +%s)
echo "running: $command"
# As a new user: none of Standby's settings from this environment (no preset admin password).
# `cargo run` replaces itself with the binary (exec), so this PID ends up being the server's.
env $(env | sed -n 's/^\(STANDBY_[A-Z0-9_]*\)=.*/-u \1/p') bash -c "exec $command" >"$log" 2>&1 &
pid=$!
fail() {
    echo "FAILED: $*" >&2
    echo "--- output of: $command" >&2
    tail -n 60 "$log" >&2
    exit 1
}
until curl -sf -o /dev/null --max-time 5 "$base/readyz"; do
    kill -0 "$pid" 2>/dev/null || fail "the command exited before it served"
    [ $(( $(date +%s) - started )) -lt "$ready_within" ] || fail "not ready within $ready_within s"
    sleep 1
done
echo "ready after $(( $(date +%s) - started )) s (build included)"
password=$(sed -n "s/^standby: created portal administrator 'admin' with password \([^ ]*\) (shown once.*/\1/p" "$log")
[ -n "$password" ] || fail "no generated administrator password in the output"
token=$(curl -sf --max-time 30 -X POST "$base/api/v3/token" --data-urlencode grant_type=password \
        --data-urlencode username=admin --data-urlencode "password=$password" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') ||
    fail "could not log in as admin"
plans=$(curl -sf --max-time 30 "$base/api/v3/infrastructure/backupServers/failoverplans?limit=5" \
        -H "Authorization: Bearer $token" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["meta"]["pagingInfo"]["total"])') ||
    fail "could not list plans"
[ "$plans" = 40 ] || fail "the demo fleet has $plans plans, expected 40"
echo "logged in as admin and listed the demo fleet: $plans plans"
kill -TERM "$pid" || fail "the server was gone before SIGTERM"
for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
kill -0 "$pid" 2>/dev/null && fail "still running 30 s after SIGTERM"
status=0
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || fail "exit status $status after SIGTERM"
echo "clean exit after SIGTERM"
