#!/usr/bin/env bash
# Runs the same load against concord and against Apache ZooKeeper 3.8 (Debian's `zookeeper`
# package), one after the other on this machine, both from the same zoo.cfg with fsync on, and
# writes the table (with ratios, the machine and this exact command) into docs/benchmarks.md.
#
#   bench/compare.sh [--duration SECS] [--sessions N] [--outstanding N] [--value-size BYTES]
#
# Needs: the Rust toolchain, java and Debian's zookeeper package (installed with apt-get when
# missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=10 SESSIONS=16 OUTSTANDING=8 VALUE=100
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --outstanding) OUTSTANDING=$2; shift 2 ;;
        --value-size) VALUE=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
CMD="bench/compare.sh --duration $DURATION --sessions $SESSIONS --outstanding $OUTSTANDING --value-size $VALUE"
PORT=${BENCH_PORT:-23181}
. "$ROOT/bench/lib.sh"
ZK_JAR=/usr/share/java/zookeeper.jar
if [ ! -r "$ZK_JAR" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq zookeeper >/dev/null
    else
        echo "error: Apache ZooKeeper is missing: apt-get install zookeeper" >&2; exit 1
    fi
fi
cargo build --release --bin concord
BIN=$ROOT/target/release/concord
WORK=$(mktemp -d /tmp/concord-bench.XXXXXX)
OUT=$WORK/results
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT



run_bench() { # name
    "$BIN" bench --server "127.0.0.1:$PORT" --sessions "$SESSIONS" --outstanding "$OUTSTANDING" \
        --value-size "$VALUE" --duration "$DURATION" --json | tee "$OUT/$1.json"
}

echo "== concord"
mkdir -p "$WORK/concord"; zoo_cfg "$WORK/concord"
"$BIN" server --config "$WORK/concord/zoo.cfg" --log-level warn >"$WORK/concord/server.log" 2>&1 &
PIDS+=($!); wait_ready
run_bench concord
RSS_C=$(awk '/VmHWM/{print $2}' /proc/"${PIDS[-1]}"/status)
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

echo "== Apache ZooKeeper"
mkdir -p "$WORK/zk"; zoo_cfg "$WORK/zk"; echo 1 >"$WORK/zk/data/myid"
CP=$ZK_JAR
for jar in netty-codec netty-resolver netty-transport-native-unix-common slf4j-simple; do
    if [ -r "/usr/share/java/$jar.jar" ]; then CP="$CP:/usr/share/java/$jar.jar"; fi
done
java -cp "$CP" -Xmx2g org.apache.zookeeper.server.quorum.QuorumPeerMain "$WORK/zk/zoo.cfg" \
    >"$WORK/zk/server.log" 2>&1 &
PIDS+=($!); wait_ready
run_bench zookeeper
RSS_Z=$(awk '/VmHWM/{print $2}' /proc/"${PIDS[-1]}"/status)
ZK_VERSION=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

CPU=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)
python3 - "$OUT" "$ROOT/docs/benchmarks.md" "$CMD" "$(nproc)" "$CPU" "$MEM" "$ZK_VERSION" "$RSS_C" "$RSS_Z" <<'PY'
import json, sys, datetime, re
out, doc, cmd, cores, cpu, mem, zkv, rss_c, rss_z = sys.argv[1:]
load = lambda n: {r["phase"]: r for r in map(json.loads, open(f"{out}/{n}.json"))}
c, z = load("concord"), load("zookeeper")
rows = ["| phase | concord ops/s | ZooKeeper ops/s | ratio | concord p50 / p99 / p999 ms | ZooKeeper p50 / p99 / p999 ms |",
        "|---|---|---|---|---|---|"]
for p in c:
    a, b = c[p], z.get(p)
    if not b: continue
    ratio = a["ops_per_sec"] / b["ops_per_sec"] if b["ops_per_sec"] else float("nan")
    rows.append(f"| {p} | {a['ops_per_sec']:.0f} | {b['ops_per_sec']:.0f} | {ratio:.2f}x | "
                f"{a['p50_ms']:.2f} / {a['p99_ms']:.2f} / {a['p999_ms']:.2f} | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} / {b['p999_ms']:.2f} |")
section = "\n".join([
    "<!-- compare.sh:begin -->",
    f"### Single node, {datetime.date.today()}",
    "",
    f"Command: `{cmd}`  ",
    f"Machine: {cores} cores ({cpu}), {mem}; Apache ZooKeeper {zkv} (Debian package), same zoo.cfg, forceSync=yes.  ",
    f"Peak RSS during the run: concord {int(rss_c)//1024} MiB, ZooKeeper {int(rss_z)//1024} MiB.",
    "",
    *rows,
    "<!-- compare.sh:end -->",
])
text = open(doc).read()
text = re.sub(r"<!-- compare.sh:begin -->.*<!-- compare.sh:end -->", lambda m: section, text, flags=re.S) \
    if "<!-- compare.sh:begin -->" in text else text.rstrip() + "\n\n" + section + "\n"
open(doc, "w").write(text)
print(section)
PY
