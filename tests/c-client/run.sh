#!/usr/bin/env bash
# Compiles tests/c-client/zkc_compat.c with gcc against Debian's libzookeeper-mt (3.8) and runs
# it against HOST:PORT.
#   tests/c-client/run.sh HOST:PORT [check ...]
# Needs: gcc, libzookeeper-mt-dev.  Prints one PASS/FAIL line per check; exits 1 if any failed.
# The client library's own log (WARN and above; ZKC_LOG=info|debug for more) goes to
# $ZKC_LOGFILE (default: a temp file, printed on failure).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ -r /usr/include/zookeeper/zookeeper.h ] || { echo "error: /usr/include/zookeeper/zookeeper.h not found (apt-get install libzookeeper-mt-dev)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "error: gcc not found (apt-get install gcc)" >&2; exit 1; }
BUILD=$(mktemp -d /tmp/zkc-compat.XXXXXX)
LOG=${ZKC_LOGFILE:-$BUILD/client.log}
trap 'rm -rf "$BUILD"' EXIT
gcc -std=gnu11 -Wall -Wextra -O1 -o "$BUILD/zkc_compat" "$HERE/zkc_compat.c" -lzookeeper_mt -lpthread
set +e
"$BUILD/zkc_compat" "$@" 2>"$LOG"
rc=$?
set -e
if [ $rc -ne 0 ] && [ -z "${ZKC_LOGFILE:-}" ]; then
    echo "---- C client log (last 30 lines) ----"
    tail -n 30 "$LOG"
fi
exit $rc
