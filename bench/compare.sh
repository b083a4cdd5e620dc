#!/usr/bin/env bash
# Runs the same load against concord and against Apache ZooKeeper 3.8 (Debian's `zookeeper`
# package), one after the other on this machine, both from the same zoo.cfg with fsync on, and
# writes the table (with ratios, the machine and this exact command) into docs/benchmarks.md.
#
#   bench/compare.sh [--rounds N] [--duration SECS] [--sessions N] [--outstanding N] [--value-size BYTES]
#   bench/compare.sh --cluster [bench/cluster.sh's options]
#
# --cluster compares a 3-server concord cluster with a 3-server ZooKeeper ensemble instead: it
# runs bench/cluster.sh with the options that follow it (see `bench/cluster.sh --help`).
#
# It runs N rounds (default 3), each concord then ZooKeeper on fresh data directories, and reports
# each server's median per phase and the spread of the per-round ratios: on a small shared
# machine one round's figures can move by 20% or more from one minute to the next, for both.
#
# Needs: the Rust toolchain, java and Debian's zookeeper package (installed with apt-get when
# missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=3 DURATION=10 SESSIONS=16 OUTSTANDING=8 VALUE=100
if [ "${1:-}" = --cluster ]; then
    shift
    exec "$ROOT/bench/cluster.sh" "$@"
fi
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --outstanding) OUTSTANDING=$2; shift 2 ;;
        --value-size) VALUE=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
CMD="bench/compare.sh --rounds $ROUNDS --duration $DURATION --sessions $SESSIONS --outstanding $OUTSTANDING --value-size $VALUE"
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

run_bench() { # name-round
    "$BIN" bench --server "127.0.0.1:$PORT" --sessions "$SESSIONS" --outstanding "$OUTSTANDING" \
        --value-size "$VALUE" --duration "$DURATION" --json | tee "$OUT/$1.json"
}

ZK_CP=$(zk_classpath)
RSS_C=0 RSS_Z=0
peak_rss() { # pid current-max
    local r; r=$(awk '/VmHWM/{print $2}' /proc/"$1"/status); echo $(( r > $2 ? r : $2 ))
}

for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round of $ROUNDS: concord"
    rm -rf "$WORK/concord"; mkdir -p "$WORK/concord"; zoo_cfg "$WORK/concord"
    "$BIN" server --config "$WORK/concord/zoo.cfg" --log-level warn >"$WORK/concord/server.log" 2>&1 &
    PIDS+=($!); wait_ready
    run_bench "concord-$round"
    RSS_C=$(peak_rss "${PIDS[-1]}" "$RSS_C")
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

    echo "== round $round of $ROUNDS: Apache ZooKeeper"
    rm -rf "$WORK/zk"; mkdir -p "$WORK/zk"; zoo_cfg "$WORK/zk"; echo 1 >"$WORK/zk/data/myid"
    java -cp "$ZK_CP" -Xmx2g org.apache.zookeeper.server.quorum.QuorumPeerMain "$WORK/zk/zoo.cfg" \
        >"$WORK/zk/server.log" 2>&1 &
    PIDS+=($!); wait_ready
    run_bench "zookeeper-$round"
    RSS_Z=$(peak_rss "${PIDS[-1]}" "$RSS_Z")
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
done
ZK_VERSION=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)

CPU=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)
python3 - "$OUT" "$ROOT/docs/benchmarks.md" "$CMD" "$(nproc)" "$CPU" "$MEM" "$ZK_VERSION" "$RSS_C" "$RSS_Z" "$ROUNDS" <<'PY'
import json, sys, datetime, re, statistics
out, doc, cmd, cores, cpu, mem, zkv, rss_c, rss_z, rounds = sys.argv[1:]
rounds = int(rounds)
load = lambda n: {r["phase"]: r for r in map(json.loads, open(f"{out}/{n}.json"))}
c = [load(f"concord-{i}") for i in range(1, rounds + 1)]
z = [load(f"zookeeper-{i}") for i in range(1, rounds + 1)]
med = lambda runs, p, k: statistics.median(r[p][k] for r in runs)
lat = lambda runs, p: " / ".join(f"{med(runs, p, k):.2f}" for k in ("p50_ms", "p99_ms", "p999_ms"))
rows = ["| phase | concord ops/s | ZooKeeper ops/s | ratio | ratio per round | concord p50 / p99 / p999 ms | ZooKeeper p50 / p99 / p999 ms |",
        "|---|---|---|---|---|---|---|"]
for p in c[0]:
    if not all(p in r for r in z): continue
    a, b = med(c, p, "ops_per_sec"), med(z, p, "ops_per_sec")
    ratio = a / b if b else float("nan")
    per = ", ".join(f"{x[p]['ops_per_sec'] / y[p]['ops_per_sec']:.2f}" if y[p]["ops_per_sec"] else "nan"
                    for x, y in zip(c, z))
    rows.append(f"| {p} | {a:.0f} | {b:.0f} | {ratio:.2f}x | {per} | {lat(c, p)} | {lat(z, p)} |")
section = "\n".join([
    "<!-- compare.sh:begin -->",
    f"### Single node, {datetime.date.today()}",
    "",
    f"Command: `{cmd}`  ",
    f"Machine: {cores} cores ({cpu}), {mem}; Apache ZooKeeper {zkv} (Debian package), same zoo.cfg, forceSync=yes.  ",
    f"{rounds} rounds, each concord then ZooKeeper on fresh data directories; ops/s and latencies are the medians over the rounds, \"ratio\" is the ratio of the medians.  ",
    f"Peak RSS during the runs: concord {int(rss_c)//1024} MiB, ZooKeeper {int(rss_z)//1024} MiB.",
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
