# Shared by bench/compare.sh and bench/million.sh (sourced, not run). Both need PORT set.

# Writes the zoo.cfg both servers run with into DIR (fsync on, every 4lw, no admin server) and
# creates DIR/data.
zoo_cfg() { # dir
    cat >"$1/zoo.cfg" <<CFG
tickTime=2000
dataDir=$1/data
clientPort=$PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=yes
4lw.commands.whitelist=*
admin.enableServer=false
CFG
    mkdir -p "$1/data"
}

# Prints a four-letter word's answer from the server on PORT (nothing if it does not answer).
fourlw() { # word
    # A subshell: an `exec` redirection here would change the caller's own streams.
    ( exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf '%s' "$1" >&3 && timeout 5 cat <&3 ) 2>/dev/null || true
}

# Waits up to 2 minutes until the server on PORT serves sessions.
wait_ready() {
    for _ in $(seq 1 600); do
        # ZooKeeper answers ruok before it serves sessions; srvr shows "Mode:" once it does.
        if [ "$(fourlw srvr | grep -c '^Mode:')" = 1 ]; then return 0; fi
        sleep 0.2
    done
    echo "error: server on $PORT is not serving (srvr shows no Mode)" >&2
    return 1
}

# Prints the classpath that runs Debian's Apache ZooKeeper server: its jar plus the libraries it
# needs that the package installs separately.
zk_classpath() {
    local cp=/usr/share/java/zookeeper.jar jar
    for jar in netty-codec netty-resolver netty-transport-native-unix-common slf4j-simple; do
        if [ -r "/usr/share/java/$jar.jar" ]; then cp="$cp:/usr/share/java/$jar.jar"; fi
    done
    echo "$cp"
}
