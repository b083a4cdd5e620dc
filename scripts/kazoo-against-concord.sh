#!/usr/bin/env bash
# Starts a concord server on a scratch data directory and runs kazoo's test suite against it.
# Usage: scripts/kazoo-against-concord.sh [path/to/concord]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${1:-$ROOT/target/ci/concord}
PORT=${KAZOO_PORT:-22181}
[ -x "$BIN" ] || { echo "error: concord binary not found at $BIN (build it first)" >&2; exit 1; }
DATA=$(mktemp -d)
LOG="$DATA/server.log"
# kazoo opens many connections from 127.0.0.1 (maxClientCnxns=0) and reads the server version
# with envi; its own managed cluster also enables TTL nodes and a super
# digest "super:test" enabled; the server under test gets the same settings.
"$BIN" server --port "$PORT" --data-dir "$DATA/data" --4lw-whitelist "*" --extended-types --max-client-cnxns 0 \
    --super-digest 'super:D/InIHSb7yEEbrWz8b9l71RjZJU=' >"$LOG" 2>&1 &
PID=$!
cleanup() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then break; fi
    if ! kill -0 "$PID" 2>/dev/null; then echo "error: concord exited:" >&2; cat "$LOG" >&2; exit 1; fi
    sleep 0.1
done
set +e
KAZOO_TEST_HOSTS="127.0.0.1:$PORT" bash "$ROOT/scripts/kazoo-tests.sh"
rc=$?
set -e
if [ $rc -ne 0 ]; then
    echo "---- concord server log (last 50 lines) ----"
    tail -n 50 "$LOG"
fi
exit $rc
