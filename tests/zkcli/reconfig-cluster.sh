#!/usr/bin/env bash
# zkCli.sh's `reconfig` and `config` (Debian's `zookeeper` package, zkCli 3.8) against a
# 3-server concord cluster started from zoo.cfg files, with a fourth server that joins and
# leaves by reconfig. One PASS/FAIL line per check; exits 1 if any check failed.
#
#   tests/zkcli/reconfig-cluster.sh path/to/concord
#
# What it checks, each through zkCli's own output:
#   - `config` lists the three participants and a version;
#   - `reconfig` without the super user's auth is refused (NoAuth), with a stale -v it is
#     refused (BadVersion), and neither changes the config;
#   - as the super user, `reconfig -add server.4=...:observer;...` prints the committed config
#     with server 4; server 4 then starts, catches up, serves as an observer, and a zkCli
#     connected to it reads the same config;
#   - `reconfig -remove 4` prints a config without server 4, and server 4 stops serving;
#   - `reconfig -add` of server 4 as a participant makes a four-voter config, which server 4
#     serves as a follower;
#   - `reconfig -remove 4` sent through a session on server 4 itself is answered there with the
#     committed config (server 4 never applies it: the leader sends a removed server nothing
#     more), and server 4 then stops serving.
# ZKCLI overrides the zkCli.sh path; KEEP=1 keeps the work directory (configs, server logs,
# transcripts).
set -uo pipefail

[ $# -eq 1 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BIN=$(realpath "$1")
[ -x "$BIN" ] || { echo "error: concord binary not found at $1" >&2; exit 1; }
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
[ -x "$ZKCLI" ] || { echo "error: $ZKCLI not found (apt-get install zookeeper)" >&2; exit 1; }
export CLIENT_JVMFLAGS="${CLIENT_JVMFLAGS:-} -Dzookeeper.sasl.client=false"
WORK=$(mktemp -d /tmp/zkcli-reconfig.XXXXXX)
declare -A PID=()
status=1
cleanup() {
    local p
    for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$status" = 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$WORK"
    else
        echo "work directory (configs, server logs, transcripts): $WORK" >&2
    fi
}
trap cleanup EXIT

# Twelve free ports on 127.0.0.1 (quorum, election and client port of servers 1-4).
read -r -a P <<<"$(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(12)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)"
spec() { # id role
    local i=$1
    echo "server.$i=127.0.0.1:${P[$((3 * i - 3))]}:${P[$((3 * i - 2))]}:$2;127.0.0.1:${P[$((3 * i - 1))]}"
}
client() { echo "127.0.0.1:${P[$((3 * $1 - 1))]}"; }

# Servers 1-3 form the group; server 4's zoo.cfg names all four (it joins by reconfig).
for i in 1 2 3 4; do
    mkdir -p "$WORK/s$i"
    echo "$i" >"$WORK/s$i/myid"
    {
        printf 'tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir=%s\n' "$WORK/s$i"
        printf '4lw.commands.whitelist=*\nadmin.enableServer=false\nreconfigEnabled=true\n'
        # The digest of super:test, as kazoo's and Curator's test harnesses use.
        printf 'superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n'
        spec 1 participant
        spec 2 participant
        spec 3 participant
        if [ "$i" = 4 ]; then spec 4 observer; fi
    } >"$WORK/s$i/zoo.cfg"
done
start() { # id
    "$BIN" server --config "$WORK/s$1/zoo.cfg" --log-level info >>"$WORK/s$1/server.log" 2>&1 &
    PID[$1]=$!
}
mode() { # id: the Mode: line of its srvr answer, empty when it does not answer
    python3 - "$(client "$1")" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
try:
    s = socket.create_connection((host, int(port)), timeout=2)
    s.sendall(b"srvr")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    for line in data.decode().splitlines():
        if line.startswith("Mode: "):
            print(line[6:])
except OSError:
    pass
PY
}
wait_mode() { # id mode...: waits up to 60 s for one of the modes
    local i
    for i in $(seq 1 300); do
        case " ${*:2} " in *" $(mode "$1") "*) return 0 ;; esac
        sleep 0.2
    done
    return 1
}

# zk NAME SERVER: runs the commands on stdin in one zkCli session; the transcript without
# zkCli's banner and logging noise goes to $WORK/NAME.
zk() {
    "$ZKCLI" -server "$2" >"$WORK/$1.raw" 2>&1
    grep -v -E '^\s*$|^SLF4J|^Connecting to|^Welcome to ZooKeeper|^JLine support|^WATCHER::$|type:None path:null' \
        "$WORK/$1.raw" >"$WORK/$1"
}

passed=0 failed=0
problems=()
has() { grep -q -x -F -- "$2" "$WORK/$1" || problems+=("missing line '$2' in $1"); }
hasre() { grep -q -E -- "$2" "$WORK/$1" || problems+=("no line matching /$2/ in $1"); }
hasnt() { ! grep -q -E -- "$2" "$WORK/$1" || problems+=("unexpected line matching /$2/ in $1"); }
report() { # name
    if [ ${#problems[@]} -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $1"
    else
        failed=$((failed + 1))
        local IFS='; '
        echo "FAIL $1: ${problems[*]}"
    fi
    problems=()
}
# The version=... line of a transcript (the last one).
version_in() { grep -E '^version=' "$WORK/$1" | tail -n 1 | sed 's/^version=//'; }

T0=$(date +%s)
for i in 1 2 3; do start "$i"; done
for i in 1 2 3; do
    wait_mode "$i" leader follower || { echo "FAIL cluster: server $i did not join"; exit 1; }
done
ALL="$(client 1),$(client 2),$(client 3)"
echo "3-server concord cluster: $ALL"
# The sessions that change the membership use server 1, which stays a member throughout.
ONE=$(client 1)

# config: the three participants and a version.
zk config "$ALL" <<<"config"
for i in 1 2 3; do has config "$(spec "$i" participant)"; done
hasre config '^version=[0-9a-f]+$'
V0=$(version_in config)
report config

# Refusals: no auth (NoAuth), then a stale version (BadVersion); the config stays as it was.
zk refused "$ONE" <<EOF
reconfig -remove 3
addauth digest super:test
reconfig -v 999 -remove 3
config
EOF
hasre refused '^Insufficient permission'
hasre refused '^version No is not valid'
has refused "$(spec 3 participant)"
[ "$(version_in refused)" = "$V0" ] || problems+=("the version moved from $V0 to $(version_in refused)")
report refusals

# Add server 4 as an observer; start it; it catches up and serves the new config.
zk add-observer "$ONE" <<EOF
addauth digest super:test
reconfig -add $(spec 4 observer)
EOF
has add-observer "Committed new configuration:"
has add-observer "$(spec 4 observer)"
V1=$(version_in add-observer)
[ -n "$V1" ] && [ "$V1" != "$V0" ] || problems+=("no new version after the add (was $V0, now '$V1')")
start 4
wait_mode 4 observer || problems+=("server 4 did not come up as an observer: $(mode 4)")
zk on-observer "$(client 4)" <<<"get /zookeeper/config"
has on-observer "$(spec 4 observer)"
has on-observer "version=$V1"
report add-observer

# Remove it: the config loses it and server 4 stops serving.
zk remove "$ONE" <<EOF
addauth digest super:test
reconfig -remove 4
EOF
has remove "Committed new configuration:"
hasnt remove '^server\.4='
for i in 1 2 3; do has remove "$(spec "$i" participant)"; done
wait_mode 4 looking "" || problems+=("server 4 still serves after its removal: $(mode 4)")
report remove

# Add it back as a participant: four voters; it serves as a follower.
zk add-participant "$ONE" <<EOF
addauth digest super:test
reconfig -add $(spec 4 participant)
config
EOF
has add-participant "Committed new configuration:"
has add-participant "$(spec 4 participant)"
wait_mode 4 follower || problems+=("server 4 is not a follower: $(mode 4)")
report add-participant

# Remove server 4 through a session on server 4: the reply is the committed config.
zk remove-self "$(client 4)" <<EOF
addauth digest super:test
reconfig -remove 4
EOF
has remove-self "Committed new configuration:"
hasnt remove-self '^server\.4='
for i in 1 2 3; do has remove-self "$(spec "$i" participant)"; done
wait_mode 4 looking "" || problems+=("server 4 still serves after its removal: $(mode 4)")
report remove-self

echo "zkcli-reconfig: $passed passed, $failed failed against a concord cluster [$(($(date +%s) - T0)) s]"
[ "$failed" = 0 ] && status=0
exit $status
