#!/usr/bin/env bash
# The whole concord test suite, as CI runs it (.ci/run calls this).
#
#   1. builds the workspace and its tests once, with the optimised `ci` profile;
#   2. runs every Rust test: unit, property, integration (zookeeper-client crate against a real
#      server), crash (kill -9 under load), hostile-input, and cluster tests (3 processes on
#      loopback: leader kill -9, rolling restart; a partition made with network namespaces,
#      which needs root and iproute2's `ip`);
#   3. starts a concord server and runs kazoo's own test suite against it (the kazoo harness
#      sets up its Python venv itself), then the same suite against a 3-server cluster with
#      the connect string listing all three;
#   4. starts a fresh concord server and runs three more clients nobody here wrote against it:
#      Apache Curator's recipes, the ZooKeeper C client and zkCli (tests/real-clients);
#   5. zkCli's `reconfig` and `config` against a 3-server cluster that a fourth server joins
#      and leaves (tests/zkcli/reconfig-cluster.sh).
#
# Needs only the Rust toolchain and python3; the Debian packages the clients need (python3-venv,
# Curator, the C client, zkCli, a JDK) are installed with apt-get when run as root, and named
# in the error otherwise. Stops at the first failing Rust test run; the two client stages both
# run even if the first fails. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is required but not installed: $2" >&2; exit 1; }
}
need cargo "install the Rust toolchain (https://rustup.rs)"
need python3 "install Debian's python3 package (apt-get install python3)"

# The partition test builds network namespaces with iproute2's `ip`.
if ! command -v ip >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "== installing iproute2 (for the partition test's network namespaces)"
        apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
    else
        echo "error: the partition test needs iproute2's 'ip' and root: run as root (it installs iproute2 with apt-get), or set CONCORD_SKIP_NETNS=1 to skip that one test" >&2
        [ -n "${CONCORD_SKIP_NETNS:-}" ] || exit 1
    fi
fi

echo "== building (cargo, profile ci)"
cargo build --profile ci --workspace --all-targets

echo "== Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --cargo-profile ci --workspace --no-fail-fast
else
    cargo test --profile ci --workspace --no-fail-fast
fi

status=0
echo "== kazoo's test suite against a concord server"
bash "$ROOT/scripts/kazoo-against-concord.sh" "$ROOT/target/ci/concord" || status=1

echo "== kazoo's test suite against a 3-server concord cluster"
bash "$ROOT/scripts/kazoo-against-concord.sh" --cluster 3 "$ROOT/target/ci/concord" || status=1

echo "== Curator, the C client and zkCli against a concord server"
bash "$ROOT/scripts/real-clients-against-concord.sh" "$ROOT/target/ci/concord" || status=1

echo "== zkCli's reconfig against a 3-server concord cluster"
bash "$ROOT/tests/zkcli/reconfig-cluster.sh" "$ROOT/target/ci/concord" || status=1

exit $status
