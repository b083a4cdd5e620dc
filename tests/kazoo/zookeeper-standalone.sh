#!/usr/bin/env bash
# Starts or stops a standalone Apache ZooKeeper (Debian's `zookeeper` package) configured the way
# kazoo's own managed test cluster configures its servers, as a reference server for
# scripts/kazoo-tests.sh.  Not used by CI; see tests/kazoo/README.md.
#
#   tests/kazoo/zookeeper-standalone.sh start [PORT] [DIR]   # default 22181, a fresh temp dir
#   tests/kazoo/zookeeper-standalone.sh stop DIR
#
# `start` prints the working directory (data, zoo.cfg, server.log, zookeeper.pid) on its last
# line and returns once the server answers `ruok`.  Needs `apt-get install zookeeper`.
set -euo pipefail

ZK_JAR=${ZK_JAR:-/usr/share/java/zookeeper.jar}

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

ruok() {
    # Sends a four-letter word to 127.0.0.1:$1 and prints the answer.
    local port=$1 answer
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'ruok' >&3
    answer=$(timeout 2 cat <&3 || true)
    exec 3<&- 3>&-
    printf '%s' "$answer"
}

start() {
    local port=${1:-22181} dir=${2:-}
    [ -r "$ZK_JAR" ] || { echo "error: $ZK_JAR not found: apt-get install -y zookeeper" >&2; exit 1; }
    command -v java >/dev/null || { echo "error: java not found (comes with Debian's zookeeper package)" >&2; exit 1; }
    if [ -z "$dir" ]; then dir=$(mktemp -d /tmp/zk-kazoo.XXXXXX); fi
    mkdir -p "$dir/data"
    echo 1 >"$dir/data/myid"
    # The keys kazoo's managed cluster (kazoo/testing/common.py and harness.py) writes into
    # every server's zoo.cfg, minus the quorum, SSL and SASL/JAAS parts; the admin server
    # is disabled so that only the client port is opened (on loopback).
    cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
4lw.commands.whitelist=*
reconfigEnabled=true
localSessionsEnabled=false
localSessionsUpgradingEnabled=false
extendedTypesEnabled=true
CFG
    # The JVM properties kazoo's managed cluster passes: UTF-8 for digest credentials,
    # read-only mode allowed, and the superuser digest for "super:test".
    # Debian's zookeeper.jar manifest leaves out netty-codec (and friends), which the Netty
    # connection factory needs; slf4j-simple sends the server's log to server.log.
    local cp="$ZK_JAR" jar
    for jar in netty-codec netty-resolver netty-transport-native-unix-common slf4j-simple; do
        [ -r "/usr/share/java/$jar.jar" ] && cp="$cp:/usr/share/java/$jar.jar"
    done
    java -cp "$cp" \
        -Dfile.encoding=UTF-8 \
        -Dreadonlymode.enabled=true \
        -Djava.awt.headless=true \
        -Dzookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU= \
        ${SERVER_JVMFLAGS:-} \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
        >"$dir/server.log" 2>&1 &
    echo $! >"$dir/zookeeper.pid"
    for _ in $(seq 1 150); do
        if [ "$(ruok "$port" 2>/dev/null)" = imok ]; then
            echo "ZooKeeper (pid $(cat "$dir/zookeeper.pid")) is serving 127.0.0.1:$port" >&2
            echo "$dir"
            return 0
        fi
        if ! kill -0 "$(cat "$dir/zookeeper.pid")" 2>/dev/null; then
            echo "error: ZooKeeper exited; its log:" >&2
            cat "$dir/server.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "error: ZooKeeper did not answer ruok on 127.0.0.1:$port within 30 s" >&2
    exit 1
}

stop() {
    local dir=${1:-}
    [ -n "$dir" ] && [ -f "$dir/zookeeper.pid" ] || { echo "error: no zookeeper.pid in '$dir'" >&2; exit 1; }
    local pid
    pid=$(cat "$dir/zookeeper.pid")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$dir/zookeeper.pid"
    echo "ZooKeeper (pid $pid) stopped; its files are left in $dir" >&2
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) usage ;;
esac
