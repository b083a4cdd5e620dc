#!/usr/bin/env bash
# Cluster mode: a 3-server concord cluster and a 3-server Apache ZooKeeper 3.8 ensemble (Debian's
# `zookeeper` package), one after the other, each on loopback from the same zoo.cfg (fsync on;
# only dataDir differs between the servers). For each it
#   - runs `concord bench` --load-rounds times with every session on the leader, then as often
#     with every session on a follower (which forwards the writes to the leader), and reports
#     the median ops/s of those runs per phase (single runs on this machine vary by up to 40%
#     with the disk's fsync times),
#   - measures leader failover --rounds times: a client writes continuously (one setData at a
#     time, starting on a follower), the leader is killed with kill -9, and the time from the
#     kill until the first write sent after it succeeds through a surviving server is taken;
#     the killed server is restarted and the script waits until the cluster is whole again,
# and prints a markdown table: ops/s and p50/p99 per phase with the ratio, the failover times and
# their median, the machine and this exact command.
#
#   bench/cluster.sh [--rounds N] [--load-rounds N] [--duration SECS] [--sessions N]
#                    [--outstanding N] [--value-size BYTES] [--bin PATH] [--keep] [--write-docs]
#
#   --rounds      leader failovers per cluster (default 3)
#   --load-rounds runs of the load per cluster and target (default 3)
#   --bin         the concord binary to use (default: cargo build --release, target/release/concord)
#   --keep        keep the work directory (configs, data, server logs, results) and print its path
#   --write-docs  also rewrite the section between <!-- cluster.sh:begin --> and
#                 <!-- cluster.sh:end --> in docs/benchmarks.md (appended at the end when absent)
#
# Ports are picked free on 127.0.0.1 below the kernel's ephemeral range (never 2181). Configs,
# data and server logs go to a fresh /tmp/concord-cluster.XXXXXX, deleted at the end unless the
# script fails or --keep is given (then its path is printed). Needs: the Rust toolchain, python3,
# java and Debian's zookeeper package (installed with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=3 LOAD_ROUNDS=3 DURATION=10 SESSIONS=16 OUTSTANDING=8 VALUE=100 BIN="" KEEP=0 WRITE_DOCS=0
ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --load-rounds) LOAD_ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --outstanding) OUTSTANDING=$2; shift 2 ;;
        --value-size) VALUE=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --write-docs) WRITE_DOCS=1; shift ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
CMD="bench/cluster.sh${ARGS[*]:+ ${ARGS[*]}}"
. "$ROOT/bench/lib.sh"
ZK_JAR=/usr/share/java/zookeeper.jar
if [ ! -r "$ZK_JAR" ]; then
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
ZK_CP=$(zk_classpath)
WORK=$(mktemp -d /tmp/concord-cluster.XXXXXX)
OUT=$WORK/results
mkdir -p "$OUT"
START=$(date +%s)

declare -A PID=()   # "concord-2" -> the pid of concord's server 2, while it runs
CPORT=()            # client port of server 1..3 of the cluster being measured
SERVERS=""          # its server.N lines
cleanup() {
    local rc=$? p
    for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$rc" = 0 ] && [ "$KEEP" = 0 ]; then
        rm -rf "$WORK"
    else
        echo "configs, data, server logs (*/s*/server.log) and results are kept in $WORK" >&2
    fi
}
trap cleanup EXIT

# Prints COUNT ports that nothing on 127.0.0.1 holds, from 24000 up to the ephemeral range (so
# no outgoing connection takes one while a killed server is down).
free_ports() { # count
    python3 - "$1" <<'PY'
import socket, sys
want = int(sys.argv[1])
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
for port in range(24000, low):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        ports.append(port)
    except OSError:
        pass
    finally:
        s.close()
    if len(ports) == want:
        break
print(" ".join(map(str, ports)))
PY
}

# The writer that times a failover, with bench/zkwire.py (a ZooKeeper-protocol client in the
# standard library only), copied next to it.
cp "$ROOT/bench/zkwire.py" "$WORK/zkwire.py"
cat >"$WORK/failover.py" <<'PY'
import json, os, signal, struct, sys, threading, time
import zkwire

PATH = "/cluster-failover"

def connect(addr):
    host, port = addr.rsplit(":", 1)
    return zkwire.connect(host, int(port), timeout=2)

def create(s):
    err = zkwire.create(s, PATH, b"x", xid=1)
    if err not in (0, zkwire.NODE_EXISTS):
        raise RuntimeError(f"create {PATH}: error {err}")

def set_data(s, xid):
    return zkwire.set_data(s, PATH, b"x" * 100, xid=xid)

class Writer(threading.Thread):
    """Sets PATH's data over and over through the servers in turn: after any failure (refused
    connection or session, closed connection, no reply within 2 s, an error reply) it drops the
    connection and opens a new session on the next server, 10 ms later."""

    def __init__(self, servers):
        super().__init__(daemon=True)
        self.servers, self.at, self.sock = servers, 0, None
        self.ok_since = None      # when the current run of successes began
        self.kill_time = None     # set by the main thread when it kills the leader
        self.failures = {}        # what went wrong after the kill, and how often
        self.done = threading.Event()
        self.result = None

    def fail(self, reason):
        if self.kill_time is not None:
            self.failures[reason] = self.failures.get(reason, 0) + 1
        if self.sock:
            self.sock.close()
        self.sock, self.ok_since = None, None
        self.at = (self.at + 1) % len(self.servers)
        time.sleep(0.01)

    def run(self):
        xid = 1
        while True:
            server = self.servers[self.at]
            sent = time.monotonic()
            try:
                if self.sock is None:
                    self.sock = connect(server)
                    create(self.sock)
                xid += 1
                err = set_data(self.sock, xid)
            except (OSError, ConnectionError, RuntimeError, struct.error) as e:
                self.fail(f"{server}: {type(e).__name__}: {e}")
                continue
            if err != 0:
                self.fail(f"{server}: setData error {err}")
                continue
            now = time.monotonic()
            if self.ok_since is None:
                self.ok_since = now
            if self.kill_time is not None and sent >= self.kill_time and self.result is None:
                self.result = {"failover_s": round(now - self.kill_time, 3), "server": server}
                self.done.set()

# failover.py LEADER_PID HOST:PORT,...: prints one JSON line.
leader_pid, servers = int(sys.argv[1]), sys.argv[2].split(",")
w = Writer(servers)
w.start()
deadline = time.monotonic() + 60
while w.ok_since is None or time.monotonic() - w.ok_since < 2:
    if time.monotonic() > deadline:
        sys.exit("error: the writer did not get 2 s of successful writes within 60 s")
    time.sleep(0.05)
wall = time.time()  # to find the kill in concord's logs (UTC; ZooKeeper's have no times)
w.kill_time = time.monotonic()
os.kill(leader_pid, signal.SIGKILL)
found = w.done.wait(60)
result = w.result if found else {"failover_s": None, "server": None}
result["killed_at"] = time.strftime("%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"
result["failed_attempts"] = dict(w.failures)
print(json.dumps(result), flush=True)
PY

# Writes DIR/zoo.cfg (the same for every server of a cluster but for dataDir) and DIR/data/myid.
cluster_cfg() { # dir id
    mkdir -p "$1/data"
    echo "$2" >"$1/data/myid"
    cat >"$1/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$1/data
maxClientCnxns=0
forceSync=yes
4lw.commands.whitelist=*
admin.enableServer=false
$SERVERS
CFG
}

start_server() { # name id
    local dir=$WORK/$1/s$2
    if [ "$1" = concord ]; then
        "$BIN" server --config "$dir/zoo.cfg" --log-level warn >>"$dir/server.log" 2>&1 &
    else
        java -cp "$ZK_CP" -Xmx2g org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
            >>"$dir/server.log" 2>&1 &
    fi
    PID[$1-$2]=$!
}

stop_server() { # name id
    kill "${PID[$1-$2]}" 2>/dev/null || true
    wait "${PID[$1-$2]}" 2>/dev/null || true
    unset "PID[$1-$2]"
}

# Prints server ID's mode from its srvr answer (leader, follower, ...; nothing when it does not
# serve).
mode_of() { # id
    PORT=${CPORT[$1]} fourlw srvr | sed -n 's/^Mode: //p'
}

# Prints the id of the server whose srvr shows Mode: leader (nothing when none does).
leader() {
    local i
    for i in 1 2 3; do
        if [ "$(mode_of "$i")" = leader ]; then echo "$i"; return; fi
    done
}

# Waits up to 2 minutes until one server shows Mode: leader and the other two Mode: follower.
wait_whole() { # name
    local i modes=""
    for _ in $(seq 1 600); do
        modes=$(for i in 1 2 3; do echo "$(mode_of "$i")"; done | sort | tr '\n' ' ')
        if [ "$modes" = "follower follower leader " ]; then return 0; fi
        sleep 0.2
    done
    echo "error: the $1 cluster is not whole after 2 minutes (modes: $modes)" >&2
    return 1
}

start_cluster() { # name
    local ports i q e c
    read -r -a ports <<<"$(free_ports 9)"
    [ "${#ports[@]}" = 9 ] || { echo "error: cannot find 9 free ports" >&2; return 1; }
    SERVERS="" CPORT=()
    for i in 1 2 3; do
        q=${ports[$((3 * i - 3))]} e=${ports[$((3 * i - 2))]} c=${ports[$((3 * i - 1))]}
        SERVERS+="server.$i=127.0.0.1:$q:$e;127.0.0.1:$c"$'\n'
        CPORT[$i]=$c
    done
    for i in 1 2 3; do cluster_cfg "$WORK/$1/s$i" "$i"; done
    echo "== $1: starting 3 servers (client ports ${CPORT[*]})" >&2
    for i in 1 2 3; do start_server "$1" "$i"; done
    wait_whole "$1"
}

run_bench() { # name target id round
    echo "== $1: load on the $2 (server $3, 127.0.0.1:${CPORT[$3]}), run $4 of $LOAD_ROUNDS" >&2
    "$BIN" bench --server "127.0.0.1:${CPORT[$3]}" --sessions "$SESSIONS" --outstanding "$OUTSTANDING" \
        --value-size "$VALUE" --phases create,set,get,mixed,delete --duration "$DURATION" --json \
        | tee "$OUT/$1-$2-$4.json" >&2
}

# Kills the leader under a continuous writer, times the failover, restarts the killed server
# and waits until the cluster is whole again.
failover_round() { # name round
    local l i addrs=""
    l=$(leader)
    [ -n "$l" ] || { echo "error: $1 has no leader" >&2; return 1; }
    for i in 1 2 3; do   # the followers first, so the writer starts on a follower
        if [ "$i" != "$l" ]; then addrs+="127.0.0.1:${CPORT[$i]},"; fi
    done
    addrs+="127.0.0.1:${CPORT[$l]}"
    echo "== $1: failover round $2 of $ROUNDS: kill -9 of the leader, server $l (pid ${PID[$1-$l]})" >&2
    python3 "$WORK/failover.py" "${PID[$1-$l]}" "$addrs" | tee "$OUT/$1-failover-$2.json" >&2
    wait "${PID[$1-$l]}" 2>/dev/null || true
    unset "PID[$1-$l]"
    echo "== $1: new leader: server $(leader); restarting server $l" >&2
    start_server "$1" "$l"
    wait_whole "$1"
}

for name in concord zookeeper; do
    start_cluster "$name"
    l=$(leader)
    f=$(( l % 3 + 1 ))   # another server: a follower
    for round in $(seq 1 "$LOAD_ROUNDS"); do
        run_bench "$name" leader "$l" "$round"
        run_bench "$name" follower "$f" "$round"
    done
    for round in $(seq 1 "$ROUNDS"); do failover_round "$name" "$round"; done
    for i in 1 2 3; do stop_server "$name" "$i"; done
done

ELAPSED=$(( $(date +%s) - START ))
CPU=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)
ZK_VERSION=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DOC=""
if [ "$WRITE_DOCS" = 1 ]; then DOC=$ROOT/docs/benchmarks.md; fi
python3 - "$OUT" "$DOC" "$CMD" "$(nproc)" "$CPU" "$MEM" "$ZK_VERSION" "$COMMIT" "$ROUNDS" \
    "$SESSIONS" "$OUTSTANDING" "$VALUE" "$DURATION" "$ELAPSED" "$LOAD_ROUNDS" <<'PY'
import datetime, json, re, statistics, sys
(out, doc, cmd, cores, cpu, mem, zkv, commit, rounds, sessions, outstanding, value, duration,
 elapsed, load_rounds) = sys.argv[1:]
rounds, load_rounds = int(rounds), int(load_rounds)
def load(n):
    """Per phase, the runs of cluster-target n: a list of bench results, one per load round."""
    runs = {}
    for k in range(1, load_rounds + 1):
        for r in map(json.loads, open(f"{out}/{n}-{k}.json")):
            runs.setdefault(r["phase"], []).append(r)
    return runs
def mid(runs):
    """The run with the median ops/s (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["ops_per_sec"])[(len(runs) - 1) // 2]
rows = ["| sessions on | phase | concord ops/s | ZooKeeper ops/s | ratio | ratio per run | concord p50 / p99 ms | ZooKeeper p50 / p99 ms | error replies (concord / ZooKeeper) |",
        "|---|---|---|---|---|---|---|---|---|"]
for target in ("leader", "follower"):
    c, z = load(f"concord-{target}"), load(f"zookeeper-{target}")
    for p in c:
        cm, zm = mid(c[p]), mid(z[p])
        a, b = cm["ops_per_sec"], zm["ops_per_sec"]
        ratio = f"{a / b:.2f}x" if b else "n/a"
        per_run = " ".join(f"{x['ops_per_sec'] / y['ops_per_sec']:.2f}" if y["ops_per_sec"] else "n/a"
                           for x, y in zip(c[p], z[p]))
        errors = (sum(r["errors"] for r in c[p]), sum(r["errors"] for r in z[p]))
        rows.append(f"| {target} | {p} | {a:.0f} | {b:.0f} | {ratio} | {per_run} "
                    f"| {cm['p50_ms']:.2f} / {cm['p99_ms']:.2f} | {zm['p50_ms']:.2f} / {zm['p99_ms']:.2f} "
                    f"| {errors[0]} / {errors[1]} |")
fail = {n: [json.load(open(f"{out}/{n}-failover-{i}.json")) for i in range(1, rounds + 1)]
        for n in ("concord", "zookeeper")}
secs = lambda r: "none within 60 s" if r["failover_s"] is None else f"{r['failover_s']:.2f}"
def median(n):
    t = [r["failover_s"] for r in fail[n]]
    return "n/a" if None in t else f"{statistics.median(t):.2f}"
frows = ["| round | concord s | ZooKeeper s |", "|---|---|---|"]
for i in range(rounds):
    frows.append(f"| {i + 1} | {secs(fail['concord'][i])} | {secs(fail['zookeeper'][i])} |")
frows.append(f"| median | {median('concord')} | {median('zookeeper')} |")
section = "\n".join([
    "<!-- cluster.sh:begin -->",
    f"### 3-server cluster on loopback, {datetime.date.today()}",
    "",
    f"Command: `{cmd}` (concord at commit {commit}; {elapsed} s in all)  ",
    f"Machine: {cores} cores ({cpu}), {mem}; all six servers, the load generator and the writer on it. "
    f"Apache ZooKeeper {zkv} (Debian package, -Xmx2g per server); both clusters from the same zoo.cfg "
    "(tickTime=2000, forceSync=yes, `server.N=127.0.0.1:quorumPort:electionPort;127.0.0.1:clientPort`).  ",
    f"Load: `concord bench`, {sessions} sessions x {outstanding} outstanding, {value}-byte values, "
    f"{duration} s per timed phase (delete runs until the nodes created are gone), every session on "
    "one server: the leader, then a follower (writes forwarded to the leader); "
    f"{load_rounds} runs per cluster and target, alternating leader and follower. ops/s, latencies "
    "and the ratio are those of the median run of each; `ratio per run` pairs the k-th runs; "
    "error replies are summed over the runs.",
    "",
    *rows,
    "",
    "Leader failover: a client writes continuously (one 100-byte setData at a time, starting on a "
    "follower; after any failure it opens a new session on the next server), the leader is killed "
    "with kill -9, and the time is taken from the kill until the first write sent after it succeeds. "
    "The killed server is restarted and rejoins before the next round.",
    "",
    *frows,
    "<!-- cluster.sh:end -->",
])
print(section)
details = [f"{n} round {i + 1}: killed at {r['killed_at']}, first write through {r['server']}; "
           f"failed attempts: {r['failed_attempts']}"
           for n in fail for i, r in enumerate(fail[n])]
print("\n".join(details), file=sys.stderr)
if doc:
    text = open(doc).read()
    text = re.sub(r"<!-- cluster.sh:begin -->.*<!-- cluster.sh:end -->", lambda m: section, text, flags=re.S) \
        if "<!-- cluster.sh:begin -->" in text else text.rstrip() + "\n\n" + section + "\n"
    open(doc, "w").write(text)
PY
