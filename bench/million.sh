#!/usr/bin/env bash
# The 1,000,000-znode goals: loads N znodes (default 1,000,000) of 100-byte values into a fresh
# server with fsync on, checks that exactly N exist, waits until the server has settled (a
# snapshot taken, the data directory no longer changing), then measures
#   - peak (VmHWM) and settled (VmRSS) resident memory,
#   - the size of the data directory, split into snapshots and log,
#   - kill -9, then the time from restarting the same command until a real client read
#     (a session plus getData of the last node created) succeeds, and the memory after restart.
# It does this for concord and, for comparison, for Apache ZooKeeper 3.8 (Debian's `zookeeper`
# package) from the same zoo.cfg with forceSync=yes, and prints a markdown table. It never
# touches docs/.
#
#   bench/million.sh [--count N] [--value-size BYTES] [--sessions N] [--outstanding N]
#                    [--only concord|zookeeper] [--bin PATH] [--out DIR] [--keep]
#
#   --only       measure one server (default: both, concord first)
#   --bin        the concord binary to use (default: cargo build --release, target/release/concord)
#   --out        keep results (server logs, smaps_rollup, file lists, JSON) here
#                (default: a fresh /tmp/concord-million.XXXXXX, printed at the end)
#   --keep       keep the data directories too (they are deleted by default)
#
# Goals (docs/benchmarks.md): RSS <= 216 MB, data directory <= 535 MB, restart to reads <= 2 s.
# Timings on a shared 2-core machine are noisy; run it more than once before drawing conclusions.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
COUNT=1000000 VALUE=100 SESSIONS=16 OUTSTANDING=8 ONLY="" BIN="" OUTDIR="" KEEP=0
ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --count) COUNT=$2; shift 2 ;;
        --value-size) VALUE=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --outstanding) OUTSTANDING=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --out) OUTDIR=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
CMD="bench/million.sh${ARGS[*]:+ ${ARGS[*]}}"
case "$ONLY" in ""|concord|zookeeper) ;; *) echo "--only takes concord or zookeeper" >&2; exit 2 ;; esac
if [ $((COUNT % SESSIONS)) -ne 0 ]; then
    # `concord bench --count` gives every session ceil(count / sessions) creates.
    echo "error: --count ($COUNT) must be a multiple of --sessions ($SESSIONS)" >&2; exit 2
fi
PORT=${BENCH_PORT:-23181}
. "$ROOT/bench/lib.sh"
ZK_JAR=/usr/share/java/zookeeper.jar
if [ "$ONLY" != concord ] && [ ! -r "$ZK_JAR" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq zookeeper >/dev/null
    else
        echo "error: Apache ZooKeeper is missing: apt-get install zookeeper" >&2; exit 1
    fi
fi
if [ -z "$BIN" ]; then
    cargo build --release --bin concord
    BIN=$ROOT/target/release/concord
fi
BIN=$(realpath "$BIN")
[ -x "$BIN" ] || { echo "error: $BIN is not executable" >&2; exit 1; }
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "error: something already listens on 127.0.0.1:$PORT (set BENCH_PORT)" >&2; exit 1
fi
WORK=$(mktemp -d /tmp/concord-million.XXXXXX)
OUT=${OUTDIR:-$WORK/results}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
LAST_NODE=$(printf '/concord-bench/s%03d-%010d' $((SESSIONS - 1)) $((COUNT / SESSIONS - 1)))
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    if [ "$KEEP" = 0 ]; then rm -rf "$WORK/concord" "$WORK/zookeeper"; fi
}
trap cleanup EXIT

# Counts nodes, reads a node, and restarts a server while timing how long until a read succeeds,
# with bench/zkwire.py (a ZooKeeper-protocol client in the standard library only), copied next to it.
cp "$ROOT/bench/zkwire.py" "$WORK/zkwire.py"
cat >"$WORK/zkprobe.py" <<'PY'
import socket, struct, subprocess, sys, time
from zkwire import all_children_number, close, connect, get_data

cmd, port = sys.argv[1], int(sys.argv[2])
if cmd == "count":
    s = connect("127.0.0.1", port, 60)
    print(all_children_number(s, sys.argv[3]))
    close(s)
elif cmd == "get":
    s = connect("127.0.0.1", port, 60)
    print(len(get_data(s, sys.argv[3])))
    close(s)
elif cmd == "restart":
    # restart PORT PATH EXPECTED_LEN LOGFILE -- server command...: starts the server and polls
    # until a session is set up and getData(PATH) returns EXPECTED_LEN bytes.
    path, want, log = sys.argv[3], int(sys.argv[4]), sys.argv[5]
    argv = sys.argv[sys.argv.index("--") + 1:]
    logf = open(log, "ab")
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    first_accept = None
    attempts = 0
    while True:
        attempts += 1
        if p.poll() is not None:
            print(f"error: the server exited with {p.returncode} during restart", file=sys.stderr)
            sys.exit(1)
        if time.monotonic() - t0 > 300:
            print("error: no successful read within 300 s of the restart", file=sys.stderr)
            sys.exit(1)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.close()
            if first_accept is None:
                first_accept = time.monotonic() - t0
            s = connect("127.0.0.1", port, 5)
            data = get_data(s, path)
            close(s)
            if len(data) == want:
                break
        except (OSError, ConnectionError, RuntimeError, struct.error):
            time.sleep(0.01)
    t = time.monotonic() - t0
    print(f"{p.pid} {t * 1000:.0f} {first_accept * 1000:.0f} {attempts}")
PY
PROBE=(python3 "$WORK/zkprobe.py")




kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$2/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }

snapshots_of() { # name dir: lists snapshot files
    if [ "$1" = concord ]; then find "$2/snapshots" -name 'snapshot-*.snap' 2>/dev/null
    else find "$2/version-2" -name 'snapshot.*' 2>/dev/null; fi
}

dir_state() { # dir: a fingerprint of the file names and sizes
    find "$1" -type f -printf '%p %s\n' 2>/dev/null | sort | md5sum | cut -c1-32
}

# Waits until a snapshot exists, no temporary file is left and the data directory has not
# changed for 10 s in a row (at most 600 s). Below snapCount (100000) creates concord may not
# have taken any snapshot, so then only the quiet directory is waited for.
settle() { # name datadir
    local last="" same=0 t=0 snaps tmp need=1
    if [ "$COUNT" -lt 100000 ]; then need=0; fi
    while [ $t -lt 600 ]; do
        snaps=$(snapshots_of "$1" "$2" | wc -l)
        tmp=$(find "$2" -name '*.tmp' | wc -l)
        local now; now=$(dir_state "$2")
        if [ "$snaps" -ge "$need" ] && [ "$tmp" = 0 ] && [ "$now" = "$last" ]; then
            same=$((same + 1))
            if [ $same -ge 10 ]; then echo "$t"; return 0; fi
        else
            same=0
        fi
        last=$now
        sleep 1; t=$((t + 1))
    done
    echo "error: $2 did not settle within 600 s" >&2
    return 1
}

sizes() { # name datadir json-file: du (allocated) and apparent bytes, by kind
    local name=$1 d=$2 snap_glob log_dir log_glob
    if [ "$name" = concord ]; then
        snap_glob="$d/snapshots/snapshot-*.snap"; log_dir="$d/log"; log_glob="$d/log/*"
    else
        snap_glob="$d/version-2/snapshot.*"; log_dir="$d/version-2"; log_glob="$d/version-2/log.*"
    fi
    python3 - "$d" "$3" "$snap_glob" "$log_glob" <<'PYS'
import glob, json, os, sys
d, out, snap_glob, log_glob = sys.argv[1:]
def usage(paths):
    st = [os.stat(p) for p in paths]
    return {"files": len(paths), "du": sum(s.st_blocks * 512 for s in st),
            "bytes": sum(s.st_size for s in st),
            "each": sorted((os.path.basename(p), s.st_size) for p, s in zip(paths, st))}
every = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
snaps = sorted(glob.glob(snap_glob)); logs = sorted(glob.glob(log_glob))
other = [p for p in every if p not in set(snaps) | set(logs)]
res = {"total": usage(every), "snapshots": usage(snaps), "log": usage(logs), "other": usage(other)}
json.dump(res, open(out, "w"), indent=1)
PYS
}

run_one() { # name
    local name=$1 dir=$WORK/$1 pid
    mkdir -p "$dir"; zoo_cfg "$dir"
    local datadir=$dir/data
    local -a server
    if [ "$name" = concord ]; then
        server=("$BIN" server --config "$dir/zoo.cfg" --log-level info)
    else
        echo 1 >"$datadir/myid"
        server=(java -cp "$(zk_classpath)" -Xmx2g org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg")
    fi
    echo "== $name: starting ${server[*]}" >&2
    "${server[@]}" >"$OUT/$name-server.log" 2>&1 &
    pid=$!; SERVER_PID=$pid
    wait_ready
    echo "== $name: creating $COUNT znodes of $VALUE bytes ($SESSIONS sessions x $OUTSTANDING outstanding)" >&2
    "$BIN" bench --server "127.0.0.1:$PORT" --sessions "$SESSIONS" --outstanding "$OUTSTANDING" \
        --value-size "$VALUE" --phases create --count "$COUNT" --json | tee "$OUT/$name-create.json" >&2
    local errors; errors=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"])' "$OUT/$name-create.json")
    local n; n=$("${PROBE[@]}" count "$PORT" /concord-bench)
    local znodes; znodes=$(fourlw mntr | awk '$1 == "zk_znode_count" {print $2}')
    echo "== $name: /concord-bench has $n descendants (mntr zk_znode_count $znodes), $errors create errors" >&2
    if [ "$n" != "$COUNT" ] || [ "$errors" != 0 ]; then
        echo "error: expected exactly $COUNT znodes under /concord-bench and no errors" >&2; exit 1
    fi
    local hwm_load; hwm_load=$(kb VmHWM "$pid")
    echo "== $name: waiting for the data directory to settle" >&2
    local settle_s; settle_s=$(settle "$name" "$datadir")
    local hwm rss; hwm=$(kb VmHWM "$pid"); rss=$(kb VmRSS "$pid")
    cp "/proc/$pid/smaps_rollup" "$OUT/$name-smaps_rollup-settled.txt"
    cat "/proc/$pid/status" >"$OUT/$name-status-settled.txt"
    fourlw mntr >"$OUT/$name-mntr.txt"
    sizes "$name" "$datadir" "$OUT/$name-disk.json"
    find "$datadir" -type f -printf '%s\t%b\t%p\n' | sort -k3 >"$OUT/$name-files.txt"

    echo "== $name: kill -9 and restart" >&2
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true; SERVER_PID=""
    local want; want=$VALUE
    local res; res=$("${PROBE[@]}" restart "$PORT" "$LAST_NODE" "$want" "$OUT/$name-server-restart.log" -- "${server[@]}")
    read -r pid restart_ms accept_ms attempts <<<"$res"
    SERVER_PID=$pid
    local hwm_restart rss_restart; hwm_restart=$(kb VmHWM "$pid"); rss_restart=$(kb VmRSS "$pid")
    local n2; n2=$("${PROBE[@]}" count "$PORT" /concord-bench)
    [ "$n2" = "$COUNT" ] || { echo "error: $n2 znodes after the restart, expected $COUNT" >&2; exit 1; }
    sleep 10
    local rss_restart_settled hwm_restart_settled
    rss_restart_settled=$(kb VmRSS "$pid"); hwm_restart_settled=$(kb VmHWM "$pid")
    cp "/proc/$pid/smaps_rollup" "$OUT/$name-smaps_rollup-restarted.txt"
    kill "$pid"; wait "$pid" 2>/dev/null || while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    SERVER_PID=""
    echo "== $name: restart to first read ${restart_ms} ms (port open after ${accept_ms} ms, $attempts attempts)" >&2
    python3 - "$OUT/$name.json" <<PYJ
import json, sys
json.dump({"name": "$name", "create": json.load(open("$OUT/$name-create.json")),
           "znodes_under_root": $n, "mntr_znode_count": "$znodes", "settle_s": $settle_s,
           "hwm_load_kb": $hwm_load, "hwm_settled_kb": $hwm, "rss_settled_kb": $rss,
           "restart_ms": $restart_ms, "restart_accept_ms": $accept_ms,
           "hwm_restart_kb": $hwm_restart, "rss_restart_kb": $rss_restart,
           "hwm_restart_settled_kb": $hwm_restart_settled,
           "rss_restart_settled_kb": $rss_restart_settled,
           "disk": json.load(open("$OUT/$name-disk.json"))}, open(sys.argv[1], "w"), indent=1)
PYJ
    if [ "$KEEP" = 0 ]; then rm -rf "$datadir"; fi
}

NAMES=()
if [ "$ONLY" != zookeeper ]; then NAMES+=(concord); fi
if [ "$ONLY" != concord ]; then NAMES+=(zookeeper); fi
for name in "${NAMES[@]}"; do run_one "$name"; done

CPU=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)
ZK_VERSION=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)
python3 - "$OUT" "$CMD" "$(nproc)" "$CPU" "$MEM" "$ZK_VERSION" "$COUNT" "$VALUE" "${BIN#"$ROOT"/}" "${NAMES[@]}" <<'PY' | tee "$OUT/table.md"
import json, sys, datetime
out, cmd, cores, cpu, mem, zkv, count, value, binpath, *names = sys.argv[1:]
r = {n: json.load(open(f"{out}/{n}.json")) for n in names}
MB = 1e6
def mb(kb): return f"{kb * 1024 / MB:.0f} MB"
def dmb(b): return f"{b / MB:.0f} MB"
rows = [
    ("create throughput", lambda x: f"{x['create']['ops_per_sec']:.0f}/s ({x['create']['secs']:.0f} s)", ""),
    ("znodes under /concord-bench (mntr zk_znode_count)", lambda x: f"{x['znodes_under_root']} ({x['mntr_znode_count']})", ""),
    ("peak RSS during load (VmHWM)", lambda x: mb(x["hwm_load_kb"]), "<= 216 MB"),
    ("settled RSS (VmRSS)", lambda x: mb(x["rss_settled_kb"]), "<= 216 MB"),
    ("data directory (du)", lambda x: dmb(x["disk"]["total"]["du"]), "<= 535 MB"),
    ("  snapshots (files, du)", lambda x: f"{x['disk']['snapshots']['files']}, {dmb(x['disk']['snapshots']['du'])}", ""),
    ("  log (files, du / apparent)", lambda x: f"{x['disk']['log']['files']}, {dmb(x['disk']['log']['du'])} / {dmb(x['disk']['log']['bytes'])}", ""),
    ("kill -9, restart to first read", lambda x: f"{x['restart_ms'] / 1000:.2f} s", "<= 2 s"),
    ("RSS right after restart (VmRSS / VmHWM)", lambda x: f"{mb(x['rss_restart_kb'])} / {mb(x['hwm_restart_kb'])}", ""),
    ("RSS 10 s after restart (VmRSS / VmHWM)", lambda x: f"{mb(x['rss_restart_settled_kb'])} / {mb(x['hwm_restart_settled_kb'])}", ""),
]
label = {"concord": "concord", "zookeeper": "ZooKeeper"}
print(f"### {int(count):,} znodes of {value} bytes, single node, {datetime.date.today()}")
print()
print(f"Command: `{cmd}` (concord binary: `{binpath}`)  ")
print(f"Machine: {cores} cores ({cpu}), {mem}; Apache ZooKeeper {zkv} (Debian package, -Xmx2g), same zoo.cfg, forceSync=yes.  ")
print("MB = 10^6 bytes. Restart time: from starting the same command after kill -9 until a new session's getData of the last node created returns its data (page cache warm).")
print()
print("| | " + " | ".join(label[n] for n in names) + " | goal |")
print("|---|" + "---|" * len(names) + "---|")
for title, f, goal in rows:
    print(f"| {title} | " + " | ".join(f(r[n]) for n in names) + f" | {goal} |")
PY
echo "results in $OUT" >&2
