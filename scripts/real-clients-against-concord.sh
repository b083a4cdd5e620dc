#!/usr/bin/env bash
# Runs three ZooKeeper clients nobody here wrote against a fresh concord server and checks what
# they do:
#   - Apache Curator 5.4 (Debian's libcurator-*-java) recipes: tests/curator/
#   - the ZooKeeper C client 3.8 (Debian's libzookeeper-mt): tests/c-client/
#   - zkCli.sh 3.8 (Debian's zookeeper): tests/zkcli/
#
# Usage:
#   scripts/real-clients-against-concord.sh [CONCORD_BINARY]          # default target/ci/concord
#   scripts/real-clients-against-concord.sh --against-zookeeper       # same suites, Apache ZooKeeper 3.8
#
# The server under test runs on a free loopback port with a fresh temporary data directory and
# the settings scripts/kazoo-against-concord.sh uses (4lw whitelist *, TTL nodes, no connection
# limit, super digest for "super:test").  With --against-zookeeper the reference server is
# Debian's ZooKeeper started by tests/kazoo/zookeeper-standalone.sh, with the container/TTL
# sweep every second instead of every minute so that the same waits apply.
#
# Missing Debian packages are installed with apt-get when running as root; otherwise the script
# stops and names them.  SUITES="curator c-client zkcli" picks suites; KEEP=1 keeps the work
# directory (server log, client logs, transcripts).  Exits non-zero if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

TARGET=concord
BIN=""
for arg in "$@"; do
    case $arg in
        --against-zookeeper) TARGET=zookeeper ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $arg" >&2; exit 2 ;;
        *) BIN=$arg ;;
    esac
done
BIN=${BIN:-$ROOT/target/ci/concord}
SUITES=${SUITES:-curator c-client zkcli}
T0=$(date +%s)

# ---------------------------------------------------------------- packages

# file that must exist -> Debian package that provides it
REQUIRED=(
    /usr/share/java/curator-framework.jar:libcurator-framework-java
    /usr/share/java/curator-recipes.jar:libcurator-recipes-java
    /usr/share/java/curator-client.jar:libcurator-client-java
    /usr/share/java/curator-x-discovery.jar:libcurator-discovery-java
    /usr/share/java/zookeeper.jar:libzookeeper-java
    /usr/share/java/slf4j-simple.jar:libslf4j-java
    /usr/share/zookeeper/bin/zkCli.sh:zookeeper
    /usr/include/zookeeper/zookeeper.h:libzookeeper-mt-dev
)
missing=()
for entry in "${REQUIRED[@]}"; do
    [ -e "${entry%%:*}" ] || missing+=("${entry##*:}")
done
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v gcc >/dev/null || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing missing Debian packages: ${missing[*]}" >&2
        apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "error: missing Debian packages: ${missing[*]}" >&2
        echo "       install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

# ---------------------------------------------------------------- server

WORK=$(mktemp -d /tmp/real-clients.XXXXXX)
PID=""
ZKDIR=""
status=1
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ -n "$ZKDIR" ]; then
        bash "$ROOT/tests/kazoo/zookeeper-standalone.sh" stop "$ZKDIR" 2>/dev/null || true
    fi
    if [ "$status" = 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$WORK"
    else
        echo "work directory (server log, client logs, transcripts): $WORK" >&2
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ "$TARGET" = concord ]; then
    [ -x "$BIN" ] || { echo "error: concord binary not found at $BIN (build it first)" >&2; exit 1; }
    SERVER_LOG="$WORK/server.log"
    # --port 0: concord picks a free port and names it in its "serving" log line.
    CONCORD_LOG=${CONCORD_LOG:-info} "$BIN" server --port 0 --data-dir "$WORK/data" --4lw-whitelist "*" \
        --extended-types --max-client-cnxns 0 --super-digest 'super:D/InIHSb7yEEbrWz8b9l71RjZJU=' \
        >"$SERVER_LOG" 2>&1 &
    PID=$!
    PORT=""
    for _ in $(seq 1 200); do
        PORT=$(sed 's/\x1b\[[0-9;]*m//g' "$SERVER_LOG" | sed -n 's/.*serving ZooKeeper clients on 127\.0\.0\.1:\([0-9]*\).*/\1/p' | head -n 1)
        [ -n "$PORT" ] && break
        if ! kill -0 "$PID" 2>/dev/null; then echo "error: concord exited:" >&2; cat "$SERVER_LOG" >&2; exit 1; fi
        sleep 0.05
    done
    [ -n "$PORT" ] || { echo "error: concord did not report its port within 10 s" >&2; cat "$SERVER_LOG" >&2; exit 1; }
    SERVER_NAME="concord ($("$BIN" --version 2>/dev/null || echo "$BIN"))"
else
    PORT=$(free_port)
    ZKDIR="$WORK/zookeeper"
    SERVER_JVMFLAGS="-Dznode.container.checkIntervalMs=1000" \
        bash "$ROOT/tests/kazoo/zookeeper-standalone.sh" start "$PORT" "$ZKDIR" >/dev/null
    SERVER_LOG="$ZKDIR/server.log"
    SERVER_NAME="Apache ZooKeeper $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo '(Debian)')"
fi
HOSTPORT="127.0.0.1:$PORT"
echo "server under test: $SERVER_NAME on $HOSTPORT"

# ---------------------------------------------------------------- suites

declare -A suite_rc suite_line
for suite in $SUITES; do
    echo
    echo "==== $suite against $HOSTPORT"
    t=$(date +%s)
    set +e
    case $suite in
        curator) CURATOR_LOG="$WORK/curator-client.log" bash "$ROOT/tests/curator/run.sh" "$HOSTPORT" ;;
        c-client) ZKC_LOGFILE="$WORK/c-client.log" bash "$ROOT/tests/c-client/run.sh" "$HOSTPORT" ;;
        zkcli) bash "$ROOT/tests/zkcli/zkcli-compat.sh" "$HOSTPORT" ;;
        *) echo "error: unknown suite $suite" >&2; false ;;
    esac 2>&1 | tee "$WORK/$suite.out"
    rc=${PIPESTATUS[0]}
    set -e
    suite_rc[$suite]=$rc
    suite_line[$suite]="$(grep -E '^(curator|c-client|zkcli): ' "$WORK/$suite.out" | tail -n 1 || true) [$(($(date +%s) - t)) s]"
done

# ---------------------------------------------------------------- summary

overall=0
echo
echo "==== summary: $SERVER_NAME"
for suite in $SUITES; do
    [ "${suite_rc[$suite]}" = 0 ] || overall=1
    echo "  ${suite_line[$suite]:-$suite: no result} (exit ${suite_rc[$suite]})"
done
fails=$(grep -h '^FAIL ' "$WORK"/*.out 2>/dev/null || true)
if [ -n "$fails" ]; then
    echo "  failed checks:"
    for suite in $SUITES; do
        grep '^FAIL ' "$WORK/$suite.out" 2>/dev/null | sed "s/^FAIL \([^:]*\):.*/    $suite: \1/" || true
    done
    if [ -n "$PID" ]; then
        echo "---- server log (last 20 lines) ----"
        sed 's/\x1b\[[0-9;]*m//g' "$SERVER_LOG" | tail -n 20
    fi
fi
echo "wall time: $(($(date +%s) - T0)) s"
status=$overall
exit $overall
