#!/usr/bin/env bash
# Runs kazoo's own test suite (kazoo 2.11.0, kazoo/tests) against an ALREADY RUNNING
# ZooKeeper-protocol server; it never starts a server itself.
#
#   KAZOO_TEST_HOSTS=127.0.0.1:22181 scripts/kazoo-tests.sh [extra pytest args...]
#
# Environment:
#   KAZOO_TEST_HOSTS   host:port[,host:port...] of the server(s) under test (required).
#                      Not 127.0.0.1:2181: test_utils.py::test_slow_connect needs that free.
#   VENV               virtualenv to create or reuse (default .venv, relative to the repo root)
#   KAZOO_TEST_TIMEOUT per-test timeout in seconds (default 120)
#   ZOOKEEPER_VERSION  optional x.y.z: the tests take the server version from here instead
#                      of asking the server (`envi`), and test_build checks the two agree
#   KAZOO_TEST_SERVER_LOG optional server log file whose tail is shown when a test fails
#   KAZOO_STANDALONE   set when the server is a single server: the tests that need a
#                      cluster (tests/kazoo/excluded-standalone.txt) are deselected too
#
# Runs the suite with CI=true (kazoo then also runs its build-environment test), deselects
# the tests listed in tests/kazoo/excluded.txt, and exits with pytest's status; "no tests
# collected" (5) is turned into 1.  See tests/kazoo/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$ROOT/tests/kazoo"
VENV=${VENV:-.venv}
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PYTHON=${PYTHON:-python3}

if [ -z "${KAZOO_TEST_HOSTS:-}" ]; then
    echo "error: set KAZOO_TEST_HOSTS to the running server, e.g. KAZOO_TEST_HOSTS=127.0.0.1:22181" >&2
    exit 2
fi

have_venv_module() {
    "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1
}

# --- the virtualenv ----------------------------------------------------------------------
if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; }; then
    if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
        echo "error: VENV=$VENV exists and is not a virtualenv; not touching it" >&2
        exit 1
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || {
        echo "error: $PYTHON not found; install Debian's python3 package (apt-get install -y python3)" >&2
        exit 1
    }
    if ! have_venv_module; then
        echo "error: $PYTHON has no working 'venv'/'ensurepip' module: Debian package python3-venv is missing" >&2
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "== installing python3-venv (apt-get install -y python3-venv)" >&2
            export DEBIAN_FRONTEND=noninteractive
            apt-get install -y python3-venv >&2 ||
                { apt-get update >&2 && apt-get install -y python3-venv >&2; } || true
        fi
        have_venv_module || {
            echo "error: still no venv module; run: apt-get update && apt-get install -y python3-venv" >&2
            exit 1
        }
    fi
    echo "== creating virtualenv $VENV"
    "$PYTHON" -m venv --clear "$VENV"
    rm -f "$VENV/.kazoo-tests-requirements"
fi

REQS="$HERE/requirements.txt"
STAMP="$VENV/.kazoo-tests-requirements"
if ! cmp -s "$REQS" "$STAMP"; then
    echo "== installing $(grep -c '==' "$REQS") pinned packages into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQS"
    cp "$REQS" "$STAMP"
fi

# --- where pip put kazoo's tests ------------------------------------------------------------
SITE=$("$VENV/bin/python" - <<'PY'
import os, kazoo, kazoo.version
assert kazoo.version.__version__ == "2.11.0", kazoo.version.__version__
print(os.path.dirname(os.path.dirname(os.path.abspath(kazoo.__file__))))
PY
)
[ -f "$SITE/kazoo/tests/test_client.py" ] || {
    echo "error: kazoo's test suite not found under $SITE/kazoo/tests" >&2
    exit 1
}

# --- the run --------------------------------------------------------------------------------
export CI=true
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
echo "== kazoo's test suite against $KAZOO_TEST_HOSTS"
cd "$SITE"
set +e
"$VENV/bin/python" -m pytest \
    -c "$HERE/pytest.ini" --rootdir "$SITE" \
    -p no:cacheprovider -p concord_plugin \
    --kazoo-excluded "$HERE/excluded.txt" \
    ${KAZOO_STANDALONE:+--kazoo-excluded "$HERE/excluded-standalone.txt"} \
    --timeout "${KAZOO_TEST_TIMEOUT:-120}" \
    --durations 10 -v "$@" kazoo/tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    rc=1
fi
exit "$rc"
