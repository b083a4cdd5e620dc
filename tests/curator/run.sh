#!/usr/bin/env bash
# Compiles tests/curator/CuratorCompat.java with plain javac against Debian's Curator 5.4.0 and
# ZooKeeper 3.8 client jars (/usr/share/java) and runs it against HOST:PORT.
#   tests/curator/run.sh HOST:PORT [check ...]
# Needs: libcurator-framework-java libcurator-recipes-java libcurator-client-java
#        libcurator-discovery-java (they pull in libzookeeper-java), libslf4j-java, a JDK (javac).
# Prints one PASS/FAIL line per check; exits 1 if any failed.  The client libraries' own log
# (slf4j-simple, WARN and above) goes to $CURATOR_LOG (default: a temp file, printed on failure).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
J=/usr/share/java
CP=""
for jar in curator-recipes curator-framework curator-client curator-x-discovery zookeeper zookeeper-jute \
           guava failureaccess jackson-databind jackson-core jackson-annotations slf4j-api slf4j-simple \
           netty-handler netty-transport netty-common netty-buffer netty-codec netty-resolver \
           netty-transport-native-epoll netty-transport-native-unix-common commons-lang3 commons-io; do
    if [ -r "$J/$jar.jar" ]; then CP="$CP${CP:+:}$J/$jar.jar"
    else case $jar in curator-*|zookeeper|zookeeper-jute|guava|slf4j-api|jackson-databind)
        echo "error: $J/$jar.jar is missing (install Debian's libcurator-*-java packages)" >&2; exit 1;; esac
    fi
done
command -v javac >/dev/null || { echo "error: javac not found (install a JDK, e.g. openjdk-17-jdk-headless)" >&2; exit 1; }
BUILD=$(mktemp -d /tmp/curator-compat.XXXXXX)
LOG=${CURATOR_LOG:-$BUILD/client.log}
trap 'rm -rf "$BUILD"' EXIT
javac -nowarn -encoding UTF-8 -d "$BUILD" -cp "$CP" "$HERE/CuratorCompat.java" 2>&1 | grep -v '^Note:' >&2 || true
[ -f "$BUILD/CuratorCompat.class" ] || { echo "error: CuratorCompat.java did not compile" >&2; exit 1; }
set +e
java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.showDateTime=true \
     -Dzookeeper.sasl.client=false -cp "$BUILD:$CP" CuratorCompat "$@" 2>"$LOG"
rc=$?
set -e
if [ $rc -ne 0 ] && [ -z "${CURATOR_LOG:-}" ]; then
    echo "---- Curator/ZooKeeper client log (last 60 lines) ----"
    tail -n 60 "$LOG"
fi
exit $rc
