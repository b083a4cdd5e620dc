#!/usr/bin/env bash
# Starts concord on scratch data directories and runs kazoo's test suite against it: one server,
# or with --cluster N a cluster of N servers from one zoo.cfg (server.N lines, myid files), with
# the connect string listing every server.
# Usage: scripts/kazoo-against-concord.sh [--cluster N] [path/to/concord]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=1
if [ "${1:-}" = "--cluster" ]; then
    N=$2
    shift 2
fi
BIN=${1:-$ROOT/target/ci/concord}
PORT=${KAZOO_PORT:-22181}
[ -x "$BIN" ] || { echo "error: concord binary not found at $BIN (build it first)" >&2; exit 1; }
DATA=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DATA"
}
trap cleanup EXIT

# kazoo opens many connections from 127.0.0.1 (maxClientCnxns=0) and reads the server version
# with envi; its own managed cluster enables TTL nodes, a super digest "super:test" and
# reconfig; the servers under test get the same settings.
HOSTS=""
if [ "$N" -eq 1 ]; then
    mkdir -p "$DATA/s1"
    "$BIN" server --port "$PORT" --data-dir "$DATA/s1/data" --4lw-whitelist "*" --extended-types \
        --max-client-cnxns 0 --super-digest 'super:D/InIHSb7yEEbrWz8b9l71RjZJU=' \
        >"$DATA/s1/server.log" 2>&1 &
    PIDS+=($!)
    HOSTS="127.0.0.1:$PORT"
else
    # Client ports PORT, PORT+1, ...; peer ports PORT+100+i, (unused) election ports PORT+200+i.
    LINES=""
    for i in $(seq 1 "$N"); do
        LINES+="server.$i=127.0.0.1:$((PORT + 100 + i)):$((PORT + 200 + i));127.0.0.1:$((PORT + i - 1))"$'\n'
        HOSTS+="${HOSTS:+,}127.0.0.1:$((PORT + i - 1))"
    done
    for i in $(seq 1 "$N"); do
        mkdir -p "$DATA/s$i"
        echo "$i" >"$DATA/s$i/myid"
        cat >"$DATA/s$i/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$DATA/s$i
maxClientCnxns=0
4lw.commands.whitelist=*
extendedTypesEnabled=true
superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
reconfigEnabled=true
admin.enableServer=false
$LINES
EOF
        "$BIN" server --config "$DATA/s$i/zoo.cfg" >"$DATA/s$i/server.log" 2>&1 &
        PIDS+=($!)
    done
fi

# Every server accepts connections, and (for a cluster) one of them leads.
for i in $(seq 1 "$N"); do
    p=$((PORT + i - 1))
    for _ in $(seq 1 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then break; fi
        if ! kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null; then
            echo "error: concord server $i exited:" >&2
            cat "$DATA/s$i/server.log" >&2
            exit 1
        fi
        sleep 0.1
    done
done
if [ "$N" -gt 1 ]; then
    leader=""
    for _ in $(seq 1 100); do
        for i in $(seq 1 "$N"); do
            p=$((PORT + i - 1))
            if exec 3<>/dev/tcp/127.0.0.1/"$p" 2>/dev/null; then
                printf srvr >&3
                if grep -q "Mode: leader" <&3; then leader=$i; fi
                exec 3<&- 3>&-
            fi
        done
        [ -n "$leader" ] && break
        sleep 0.1
    done
    [ -n "$leader" ] || { echo "error: the $N servers elected no leader" >&2; tail -n 20 "$DATA"/s*/server.log >&2; exit 1; }
    echo "== $N-server concord cluster: $HOSTS (leader: server $leader)"
fi

set +e
if [ "$N" -eq 1 ]; then export KAZOO_STANDALONE=1; fi
KAZOO_TEST_HOSTS="$HOSTS" bash "$ROOT/scripts/kazoo-tests.sh"
rc=$?
set -e
if [ $rc -ne 0 ]; then
    for i in $(seq 1 "$N"); do
        echo "---- concord server $i log (last 50 lines) ----"
        tail -n 50 "$DATA/s$i/server.log"
    done
fi
exit $rc
