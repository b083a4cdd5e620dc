#!/usr/bin/env bash
# Runs Apache ZooKeeper's own command-line client (Debian's `zookeeper` package, zkCli.sh 3.8)
# against HOST:PORT and checks what it prints.  One PASS/FAIL line per check; exits 1 if any
# check failed.
#
#   tests/zkcli/zkcli-compat.sh HOST:PORT [check ...]
#
# Each check feeds a few commands to one zkCli session on stdin (so that session state such as
# ephemerals, auth and watches carries from one command to the next) or passes one command on
# the command line, then looks for the lines zkCli prints.  zkCli prints watch events from
# another thread, so checks look for event lines, never at their position relative to replies.
# Assumes a super digest for "super:test" (used only to clean up) and TTL nodes enabled.
# ZKCLI overrides the zkCli.sh path; ZKCLI_KEEP=1 keeps the transcripts.
set -uo pipefail

[ $# -ge 1 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
SERVER=$1
shift
ONLY=" $* "
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
[ -x "$ZKCLI" ] || { echo "error: $ZKCLI not found (apt-get install zookeeper)" >&2; exit 1; }
R=/zkcli-compat
OUT=$(mktemp -d /tmp/zkcli-compat.XXXXXX)
[ -n "${ZKCLI_KEEP:-}" ] || trap 'rm -rf "$OUT"' EXIT
export CLIENT_JVMFLAGS="${CLIENT_JVMFLAGS:-} -Dzookeeper.sasl.client=false"

passed=0
failed=0
failed_names=()
T0=$(date +%s)

# zk NAME: runs the commands on stdin in one zkCli session; the transcript, without zkCli's
# banner and logging noise, goes to $OUT/NAME.
zk() {
    local name=$1
    "$ZKCLI" -server "$SERVER" >"$OUT/$name.raw" 2>&1
    grep -v -E '^\s*$|^SLF4J|^Connecting to|^Welcome to ZooKeeper|^JLine support|^WATCHER::$|type:None path:null' \
        "$OUT/$name.raw" >"$OUT/$name"
}

# zkcmd NAME ARGS...: one command on zkCli's command line; its exit status goes to $OUT/NAME.rc.
zkcmd() {
    local name=$1
    shift
    "$ZKCLI" -server "$SERVER" "$@" >"$OUT/$name.raw" 2>&1
    echo $? >"$OUT/$name.rc"
    grep -v -E '^\s*$|^SLF4J|^Connecting to|^Welcome to ZooKeeper|^JLine support|^WATCHER::$|type:None path:null' \
        "$OUT/$name.raw" >"$OUT/$name"
}

problems=()
# has NAME LINE: the transcript contains exactly this line.  hasre NAME REGEX: a line matches.
has() { grep -q -x -F -- "$2" "$OUT/$1" || problems+=("missing line '$2' in $1"); }
hasre() { grep -q -E -- "$2" "$OUT/$1" || problems+=("no line matching /$2/ in $1"); }
hasnt() { ! grep -q -E -- "$2" "$OUT/$1" || problems+=("unexpected line matching /$2/ in $1: $(grep -m1 -E -- "$2" "$OUT/$1")"); }
# stat_field NAME FIELD: the value of the last "FIELD = value" line.
stat_field() { grep -E "^$2 = " "$OUT/$1" | tail -n 1 | sed 's/^[^=]*= //'; }
field_is() {
    local got
    got=$(stat_field "$1" "$2")
    [ "$got" = "$3" ] || problems+=("$2 in $1: expected '$3' but got '$got'")
}

check() {
    local name=$1 fn=$2 t0 ms
    if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]]; then return; fi
    problems=()
    t0=$(date +%s%N)
    "$fn"
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ ${#problems[@]} -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $name ($ms ms)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        local IFS='; '
        echo "FAIL $name: ${problems[*]} ($ms ms)"
    fi
}

# ---------------------------------------------------------------- checks

c_crud() {
    zk crud <<EOF
create $R/a hello
get $R/a
set $R/a world
get -s $R/a
set -v 0 $R/a stale
set -s $R/a again
delete -v 7 $R/a
create $R/a x
create $R/nope/child x
delete $R/a
get $R/a
set $R/a x
stat $R/a
delete $R/a
create $R/empty
get $R/empty
EOF
    has crud "Created $R/a"
    has crud "hello"
    has crud "world"
    has crud "version No is not valid : $R/a"
    has crud "Node already exists: $R/a"
    has crud "Node does not exist: $R/nope/child"
    has crud "Node does not exist: $R/a"
    hasnt crud "stale"
    # get -s after one set: dataVersion 1, 5 bytes; the next stat (set -s) is dataVersion 2.
    sed -n '/^world$/,/^numChildren/p' "$OUT/crud" >"$OUT/crud.stat1"
    field_is crud.stat1 dataVersion 1
    field_is crud.stat1 dataLength 5
    field_is crud.stat1 ephemeralOwner 0x0
    hasre crud.stat1 '^cZxid = 0x[0-9a-f]+$'
    hasre crud.stat1 '^ctime = [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} [A-Z]+ 20[0-9]{2}$'
    sed -n '/^version No is not valid/,/^numChildren/p' "$OUT/crud" >"$OUT/crud.stat2"
    field_is crud.stat2 dataVersion 2
    # A node created with no data argument holds null data: zkCli prints "null".
    has crud "null"
}

c_cmdline() {
    zkcmd cmd-create create $R/cmd "from the command line"
    zkcmd cmd-get get $R/cmd
    zkcmd cmd-missing get $R/cmd-missing
    zkcmd cmd-exists create $R/cmd again
    has cmd-create "Created $R/cmd"
    has cmd-get "from the command line"
    has cmd-missing "Node does not exist: $R/cmd-missing"
    has cmd-exists "Node already exists: $R/cmd"
    [ "$(cat "$OUT/cmd-get.rc")" = 0 ] || problems+=("get exit status $(cat "$OUT/cmd-get.rc"), expected 0")
    [ "$(cat "$OUT/cmd-missing.rc")" = 1 ] || problems+=("get of a missing node: exit status $(cat "$OUT/cmd-missing.rc"), expected 1")
    [ "$(cat "$OUT/cmd-exists.rc")" = 1 ] || problems+=("create of an existing node: exit status $(cat "$OUT/cmd-exists.rc"), expected 1")
}

c_node_kinds() {
    zk kinds <<EOF
create $R/k
create -e $R/k/eph e
create -s $R/k/seq- s
create -s $R/k/seq- s
create -e -s $R/k/es- s
create -c $R/k/cont
create -t 60000 $R/k/ttl t
create -s -t 60000 $R/k/ttls- t
create $R/k/eph/kid x
create -t 0 $R/k/ttl0 t
ls $R/k
EOF
    has kinds "Created $R/k/eph"
    has kinds "Created $R/k/seq-0000000001"
    has kinds "Created $R/k/seq-0000000002"
    has kinds "Created $R/k/es-0000000003"
    has kinds "Created $R/k/cont"
    has kinds "Created $R/k/ttl"
    has kinds "Created $R/k/ttls-0000000006"
    has kinds "Ephemerals cannot have children: $R/k/eph/kid"
    hasnt kinds "Created $R/k/ttl0"
    has kinds "[cont, eph, es-0000000003, seq-0000000001, seq-0000000002, ttl, ttls-0000000006]"
}

c_stat_owner() {
    zk owner <<EOF
create $R/o
create -e $R/o/eph e
create -c $R/o/cont
create -t 60000 $R/o/ttl t
stat $R/o/eph
stat $R/o/cont
stat $R/o/ttl
EOF
    # ephemeralOwner: the session for an ephemeral; 0x0 for containers and TTL nodes (ZooKeeper
    # keeps their markers to itself).
    local owners
    owners=$(grep '^ephemeralOwner = ' "$OUT/owner" | sed 's/.*= //' | tr '\n' ' ')
    [[ "$owners" =~ ^0x[0-9a-f]+\ 0x0\ 0x0\ $ ]] && [ "${owners%% *}" != 0x0 ] ||
        problems+=("ephemeralOwner of ephemeral, container, TTL: expected '0x<session> 0x0 0x0' but got '$owners'")
}

c_stat_cversion() {
    zk cversion <<EOF
create $R/cv
create $R/cv/a
create $R/cv/b
delete $R/cv/a
stat $R/cv
create -s $R/cv/s-
delete $R/cv/b
ls -s $R/cv
EOF
    # ZooKeeper shows cversion = child creates + child deletes; the sequence counter counts creates.
    sed -n '1,/^numChildren/p' "$OUT/cversion" >"$OUT/cversion.1"
    field_is cversion.1 cversion 3
    has cversion "Created $R/cv/s-0000000002"
    field_is cversion cversion 5
    field_is cversion numChildren 1
}

c_ls_and_stat() {
    zk ls <<EOF
create $R/l
create $R/l/c x
create $R/l/a xx
create $R/l/b xxx
create $R/l/a/deep 1
delete $R/l/c
ls $R/l
ls -s $R/l
ls -R $R/l
stat $R/l
ls $R/l-missing
EOF
    has ls "[a, b]"
    has ls "$R/l"
    has ls "$R/l/a"
    has ls "$R/l/b"
    has ls "$R/l/a/deep"
    has ls "Node does not exist: $R/l-missing"
    field_is ls numChildren 2
    field_is ls dataVersion 0
}

c_ephemerals_and_counts() {
    zk eph <<EOF
create $R/e
create $R/e/x
create $R/e/x/y
create -e $R/e/x/y/one 1
create -e $R/e/two 2
getEphemerals $R/e
getAllChildrenNumber $R/e
getAllChildrenNumber $R/e/x
getAllChildrenNumber $R/e-missing
whoami
EOF
    hasre eph "^\[($R/e/x/y/one, $R/e/two|$R/e/two, $R/e/x/y/one)\]$"
    has eph "4"
    has eph "2"
    has eph "Node does not exist: $R/e-missing"
    has eph "Auth scheme: User"
    has eph "ip: 127.0.0.1"
}

c_acl_and_auth() {
    zk acl <<EOF
addauth digest alice:secret
create $R/s s digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa
getAcl $R/s
create $R/byauth x auth::cdrwa
getAcl $R/byauth
create $R/ro r world:anyone:r
set $R/ro x
setAcl -v 5 $R/s world:anyone:r
setAcl $R/s world:anyone:cdrwa
getAcl -s $R/s
create $R/ip i ip:127.0.0.1:cdrwa
get $R/ip
create $R/other o ip:10.9.8.7:cdrwa
get $R/other
EOF
    zk acl-anon <<EOF
create $R/s2 s2 digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa
get $R/s2
getAcl $R/s2
set $R/s2 x
create $R/noauth x auth::cdrwa
addauth digest super:test
get $R/s2
EOF
    has acl "'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
    has acl ": cdrwa"
    has acl "'world,'anyone"
    has acl "Insufficient permission : $R/ro"
    has acl "version No is not valid : $R/s"
    field_is acl aclVersion 1
    has acl "i"
    has acl "Insufficient permission : $R/other"
    has acl-anon "Insufficient permission : $R/s2"
    hasnt acl-anon "Created $R/noauth"
    has acl-anon "s2"
}

c_whoami() {
    zk whoami <<EOF
whoami
addauth digest alice:secret
whoami
EOF
    has whoami "Auth scheme: User"
    has whoami "ip: 127.0.0.1"
    # ZooKeeper shows a digest identity by its user name only.
    has whoami "digest: alice"
    [ "$(grep -c '^ip: ' "$OUT/whoami")" = 2 ] || problems+=("expected the ip identity in both answers")
}

c_sync_and_config() {
    zk sync <<EOF
sync $R
sync /
config
get /zookeeper/config
delete /zookeeper
delete /zookeeper/quota
create /zookeeper x
set /zookeeper/config x
EOF
    has sync "Sync is OK"
    [ "$(grep -c -x 'Sync is OK' "$OUT/sync")" = 2 ] || problems+=("expected 2 'Sync is OK' lines")
    has sync "Arguments are not valid : /zookeeper"
    has sync "Arguments are not valid : /zookeeper/quota"
    has sync "Node already exists: /zookeeper"
    has sync "Insufficient permission : /zookeeper/config"
    hasnt sync "Exception|ConnectionLoss"
}

c_one_shot_watches() {
    zk watch <<EOF
create $R/w x
get -w $R/w
set $R/w y
set $R/w z
ls -w $R/w
create $R/w/k 1
create $R/w/k2 1
stat -w $R/w/k
delete $R/w/k
stat -w $R/w/later
create $R/w/later x
ls $R/w
EOF
    has watch "WatchedEvent state:SyncConnected type:NodeDataChanged path:$R/w"
    has watch "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:$R/w"
    has watch "WatchedEvent state:SyncConnected type:NodeDeleted path:$R/w/k"
    has watch "WatchedEvent state:SyncConnected type:NodeCreated path:$R/w/later"
    [ "$(grep -c "type:NodeDataChanged path:$R/w\$" "$OUT/watch")" = 1 ] || problems+=("a one-shot data watch fired more than once")
    [ "$(grep -c "type:NodeChildrenChanged path:$R/w\$" "$OUT/watch")" = 1 ] || problems+=("a one-shot child watch fired more than once")
    has watch "[k2, later]"
}

c_add_watch_recursive() {
    zk addwatch <<EOF
addWatch $R/rw
create $R/rw x
create $R/rw/a 1
create $R/rw/a/b 2
set $R/rw/a/b 3
delete $R/rw/a/b
removewatches $R/rw
create $R/rw/after 4
ls $R/rw
EOF
    has addwatch "Created $R/rw/a/b"
    has addwatch "WatchedEvent state:SyncConnected type:NodeCreated path:$R/rw"
    has addwatch "WatchedEvent state:SyncConnected type:NodeCreated path:$R/rw/a"
    has addwatch "WatchedEvent state:SyncConnected type:NodeCreated path:$R/rw/a/b"
    has addwatch "WatchedEvent state:SyncConnected type:NodeDataChanged path:$R/rw/a/b"
    has addwatch "WatchedEvent state:SyncConnected type:NodeDeleted path:$R/rw/a/b"
    has addwatch "WatchedEvent state:SyncConnected type:PersistentWatchRemoved path:$R/rw"
    hasnt addwatch "path:$R/rw/after"
    hasnt addwatch "ConnectionLoss|Disconnected"
    has addwatch "[a, after]"
}

c_add_watch_persistent() {
    zk addwatchp <<EOF
addWatch -m PERSISTENT $R/pw
create $R/pw x
create $R/pw/c 1
create $R/pw/c/g 1
set $R/pw 2
set $R/pw 3
delete $R/pw/c/g
ls $R/pw
EOF
    has addwatchp "WatchedEvent state:SyncConnected type:NodeCreated path:$R/pw"
    has addwatchp "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:$R/pw"
    [ "$(grep -c "type:NodeDataChanged path:$R/pw\$" "$OUT/addwatchp")" = 2 ] ||
        problems+=("a persistent watch should fire for both sets ($(grep -c "type:NodeDataChanged path:$R/pw\$" "$OUT/addwatchp") events)")
    hasnt addwatchp "path:$R/pw/c/g|path:$R/pw/c\$"
    hasnt addwatchp "ConnectionLoss|Disconnected"
    has addwatchp "[c]"
}

c_deleteall() {
    zk deleteall <<EOF
create $R/d
create $R/d/a
create $R/d/a/b
create $R/d/c
delete $R/d
deleteall $R/d
ls $R/d
deleteall $R/d-missing
EOF
    has deleteall "Node not empty: $R/d"
    has deleteall "Node does not exist: $R/d"
    has deleteall "Node does not exist: $R/d-missing"
    hasnt deleteall "Failed to delete"
}

c_quota() {
    zk quota <<EOF
create $R/q
create $R/q/a 12345
create $R/q/b x
setquota -n 10 $R/q
listquota $R/q
create $R/q/c yy
listquota $R/q
setquota -b 100 $R/q
listquota $R/q
delquota $R/q
listquota $R/q
EOF
    has quota "absolute path is /zookeeper/quota$R/q/zookeeper_limits"
    has quota "Output quota for $R/q count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
    # The server keeps the subtree's node count and data bytes in .../zookeeper_stats.
    has quota "Output stat for $R/q count=3,bytes=6"
    has quota "Output stat for $R/q count=4,bytes=8"
    has quota "Output quota for $R/q count=10,bytes=100=;byteHardLimit=-1;countHardLimit=-1"
    has quota "quota for $R/q does not exist."
}

# ---------------------------------------------------------------- run

zk setup <<EOF
addauth digest super:test
deleteall $R
create $R
EOF
if ! grep -q -x "Created $R" "$OUT/setup"; then
    echo "FAIL setup: could not create $R on $SERVER:"
    cat "$OUT/setup"
    exit 1
fi

check crud c_crud
check command_line_mode c_cmdline
check node_kinds c_node_kinds
check ls_and_stat c_ls_and_stat
check stat_cversion_counts_deletes c_stat_cversion
check stat_ephemeral_owner_container_ttl c_stat_owner
check ephemerals_and_counts c_ephemerals_and_counts
check acl_and_auth c_acl_and_auth
check whoami c_whoami
check sync_config_and_system_nodes c_sync_and_config
check one_shot_watches c_one_shot_watches
check add_watch_persistent_recursive c_add_watch_recursive
check add_watch_persistent c_add_watch_persistent
check deleteall c_deleteall
check quota c_quota

if [ ${#failed_names[@]} -gt 0 ]; then
    list=$(IFS=,; echo "${failed_names[*]}" | sed 's/,/, /g')
    echo "zkcli: $passed passed, $failed failed ($(($(date +%s) - T0)) s): $list"
else
    echo "zkcli: $passed passed, $failed failed ($(($(date +%s) - T0)) s)"
fi
[ -n "${ZKCLI_KEEP:-}" ] && echo "transcripts kept in $OUT" >&2
[ $failed -eq 0 ] && [ $passed -gt 0 ]
