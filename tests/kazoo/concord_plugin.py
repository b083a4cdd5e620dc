"""pytest plugin: run kazoo's own test suite against a server that is already running.

kazoo's test harness (``kazoo.testing.harness``) normally builds a three-node Apache
ZooKeeper cluster out of a Java installation (``get_global_cluster()``), starts it, and
lets tests stop and restart its servers.  This plugin swaps that cluster for a stand-in
that describes the server(s) named by the environment variable ``KAZOO_TEST_HOSTS``
(``host:port[,host:port...]``, e.g. ``127.0.0.1:22181``) and never starts Java:

* ``harness.get_global_cluster`` returns the stand-in, so ``self.cluster``,
  ``self.servers`` and every client the harness makes point at ``KAZOO_TEST_HOSTS``;
* the stand-in servers always report ``running`` and their ``run()`` is a no-op, but
  ``stop()`` / ``reset()`` and the SSL accessors raise :class:`UnmanagedServerError`, so a
  test that needs to kill a server fails with a message saying so instead of passing
  against a server it did not manage;
* a test that asks the harness for a differently configured cluster (SASL/JAAS through
  ``ZOOKEEPER_JAAS_AUTH``, local read-only sessions through
  ``ZOOKEEPER_LOCAL_SESSION_RO=true``) fails the same way, and those variables are put
  back after every test so one such test cannot leak its setting into the next;
* ``--kazoo-excluded=FILE`` (repeatable) deselects the node ids listed in FILE (one per
  line, ``#`` comments), and stops the run if an entry no longer names any test of a collected file
  (a stale list would otherwise hide tests silently);
* before any test runs it checks that every host accepts TCP connections and ends the
  session at once (exit status 3) if one does not, instead of letting every test spend a
  minute in the harness's connection retries.

Load it with ``-p concord_plugin`` with this directory on ``PYTHONPATH``; see
``scripts/kazoo-tests.sh`` and ``tests/kazoo/README.md``.
"""

import importlib
import logging
import os
import socket
import sys
import types

import pytest

HOSTS_ENV = "KAZOO_TEST_HOSTS"
# Optional: a file holding the server's log; its tail is shown when a test fails (through
# kazoo's own conftest, which asks the cluster for its logs).
SERVER_LOG_ENV = "KAZOO_TEST_SERVER_LOG"

log = logging.getLogger("concord_plugin")


class UnmanagedServerError(RuntimeError):
    """A test asked the harness to control a server that this plugin does not manage."""


def _unmanaged(what):
    return UnmanagedServerError(
        "%s: the server under test (%s=%s) is already running and is not managed by "
        "this harness, so it cannot be stopped, restarted or reconfigured by a test. "
        "A test that needs this belongs in tests/kazoo/excluded.txt."
        % (what, HOSTS_ENV, os.environ.get(HOSTS_ENV, ""))
    )


# --------------------------------------------------------------------------- the servers


def parse_hosts(value):
    """``"h1:p1,h2:p2"`` -> ``[("h1:p1", "h1", p1), ...]``; raises ValueError."""
    hosts = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if "/" in part:
            raise ValueError(
                "%r: no chroot in %s (each test makes its own)" % (part, HOSTS_ENV)
            )
        if part.startswith("["):  # [v6addr]:port
            host, sep, port = part[1:].partition("]:")
        else:
            host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("%r is not host:port" % part)
        hosts.append((part, host, int(port)))
    if not hosts:
        raise ValueError("%s is empty" % HOSTS_ENV)
    return hosts


class RunningServer(object):
    """Stands in for kazoo.testing.common.ManagedZooKeeper."""

    def __init__(self, server_id, address, host, port):
        self.server_id = server_id
        self.address = address
        self.host = host
        self.client_port = port

    def __repr__(self):
        return "<RunningServer %s>" % self.address

    @property
    def running(self):
        # Always true: the harness then never tries to start it, and a run() after a
        # failed stop() (tests call it in `finally:`) is a no-op that hides nothing.
        return True

    def run(self):
        pass

    def stop(self):
        raise _unmanaged("stop server %s" % self.address)

    def reset(self):
        raise _unmanaged("reset server %s" % self.address)

    def destroy(self):
        # Called by kazoo's atexit hook of a real cluster; nothing to destroy here.
        pass

    @property
    def secure_address(self):
        raise _unmanaged("TLS address of server %s (no TLS port configured)" % self.address)

    @property
    def secure_client_port(self):
        raise _unmanaged("TLS port of server %s (no TLS port configured)" % self.address)

    def get_logs(self, num_lines=100):
        path = os.environ.get(SERVER_LOG_ENV)
        if not path or not os.path.exists(path):
            return []
        with open(path, "r", errors="replace") as fh:
            return fh.readlines()[-num_lines:]


class RunningCluster(object):
    """Stands in for kazoo.testing.common.ZookeeperCluster."""

    def __init__(self, hosts_value):
        self._servers = [
            RunningServer(i + 1, address, host, port)
            for i, (address, host, port) in enumerate(parse_hosts(hosts_value))
        ]

    def __getitem__(self, k):
        return self._servers[k]

    def __iter__(self):
        return iter(self._servers)

    def __len__(self):
        return len(self._servers)

    def start(self):
        # setup_zookeeper() calls this only when the servers cannot be reached (it then
        # "nukes" the cluster and starts a new one); there is nothing to start here, and
        # the harness's own retries report the connection error.
        log.warning("harness asked to (re)start %s; it is not managed here", self)

    def terminate(self):
        # KazooTestCase.tearDownClass() calls this after every test class.
        pass

    def stop(self):
        raise _unmanaged("stop the cluster")

    def reset(self):
        raise _unmanaged("reset the cluster")

    def get_logs(self):
        return self._servers[0].get_logs() if self._servers else []

    def get_ssl_client_configuration(self):
        raise _unmanaged("SSL client configuration (the server under test has no TLS port)")

    def __repr__(self):
        return "<RunningCluster %s>" % ",".join(s.address for s in self._servers)


_CLUSTER = None


def get_running_cluster():
    """Replacement for kazoo.testing.harness.get_global_cluster."""
    global _CLUSTER
    if _CLUSTER is None:
        _CLUSTER = RunningCluster(os.environ[HOSTS_ENV])
    return _CLUSTER


# Environment variables through which kazoo's tests ask the harness for a cluster
# configured differently from the default one, with the reason such a test cannot run here.
_CLUSTER_CONFIG_REQUESTS = {
    "ZOOKEEPER_JAAS_AUTH": lambda v: bool(v)
    and "a managed cluster with SASL (JAAS %s) authentication" % v,
    "ZOOKEEPER_LOCAL_SESSION_RO": lambda v: v == "true"
    and "a managed cluster restarted with local sessions for read-only mode",
}


def _check_cluster_config_requests():
    for name, reason in _CLUSTER_CONFIG_REQUESTS.items():
        why = reason(os.environ.get(name))
        if why:
            raise _unmanaged("test set %s=%s and needs %s" % (name, os.environ[name], why))


# ------------------------------------------------------------- importing kazoo.testing


class MissingOptionalModule(AttributeError):
    """Raised on any use of a placeholder for an optional module that is not installed."""


def _placeholder_module(name, purpose):
    """A module whose every attribute access fails, saying why."""

    mod = types.ModuleType(name)

    def __getattr__(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise MissingOptionalModule(
            "%s.%s: %s is not installed; kazoo uses it only for %s, which the server "
            "under test (%s) does not have" % (name, attr, name, purpose, HOSTS_ENV)
        )

    mod.__getattr__ = __getattr__
    return mod


def _import_kazoo_testing():
    """Imports kazoo.testing.common and .harness, even without pyOpenSSL and pyjks.

    kazoo.testing.common imports pyOpenSSL and pyjks at module level, only to make the TLS
    certificates and Java keystores of its managed cluster.  Neither is needed to talk to a
    running server (the TLS tests are excluded), and pyjks needs a C build.  Placeholders
    stand in for them while kazoo.testing.common is imported, and are removed again so
    that no other library (eventlet probes for OpenSSL, for one) ever sees them.
    """
    placed = []
    for name in ("OpenSSL", "jks"):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _placeholder_module(
                name, "the TLS material of its managed Java cluster"
            )
            placed.append(name)
    try:
        from kazoo.testing import common, harness
    finally:
        for name in placed:
            sys.modules.pop(name, None)
    return common, harness


# ------------------------------------------------------------------------- pytest hooks


def pytest_addoption(parser):
    group = parser.getgroup("concord", "kazoo suite against a running server")
    group.addoption(
        "--kazoo-excluded",
        metavar="FILE",
        action="append",
        default=[],
        help="deselect the test node ids listed in FILE (one per line, # comments); "
        "may be given more than once",
    )


def pytest_configure(config):
    value = os.environ.get(HOSTS_ENV, "")
    try:
        parse_hosts(value)
    except ValueError as exc:
        raise pytest.UsageError(
            "%s must name the running server(s) as host:port[,host:port...]: %s"
            % (HOSTS_ENV, exc)
        )
    common, harness = _import_kazoo_testing()

    harness.get_global_cluster = get_running_cluster

    def no_java(*args, **kwargs):
        raise _unmanaged("start a managed Java ZooKeeper")

    # Belt and braces: nothing may build or run a Java cluster.
    harness.ZookeeperCluster = no_java
    common.ZookeeperCluster = no_java
    common.ManagedZooKeeper.run = no_java

    original_setup = harness.KazooTestHarness.setup_zookeeper

    def setup_zookeeper(self, **client_options):
        _check_cluster_config_requests()
        return original_setup(self, **client_options)

    setup_zookeeper.__doc__ = original_setup.__doc__
    harness.KazooTestHarness.setup_zookeeper = setup_zookeeper

    config._concord_excluded = [
        nodeid
        for path in config.getoption("kazoo_excluded")
        for nodeid in _read_excluded(path)
    ]


def _read_excluded(path):
    if not path:
        return []
    entries = []
    with open(path) as fh:
        for line in fh:
            nodeid = line.split("#", 1)[0].strip()
            if nodeid:
                entries.append(nodeid)
    return entries


def pytest_report_header(config):
    import kazoo.version

    lines = [
        "kazoo %s against running server(s) %s=%s (no managed Java cluster)"
        % (kazoo.version.__version__, HOSTS_ENV, os.environ.get(HOSTS_ENV)),
        "CI=%s ZOOKEEPER_VERSION=%s (unset: tests ask the server with `envi`)"
        % (os.environ.get("CI", ""), os.environ.get("ZOOKEEPER_VERSION", "")),
    ]
    try:
        socket.create_connection(("127.0.0.1", 2181), timeout=1).close()
    except OSError:
        pass
    else:
        lines.append(
            "WARNING: something accepts connections on 127.0.0.1:2181, so "
            "test_utils.py::TestCreateTCPConnection::test_slow_connect will fail; "
            "run the server under test on another port"
        )
    if config.getoption("kazoo_excluded"):
        lines.append(
            "excluded: %d node ids from %s"
            % (
                len(config._concord_excluded),
                ", ".join(config.getoption("kazoo_excluded")),
            )
        )
    return lines


def _matches(nodeid, entry):
    return nodeid == entry or nodeid.startswith((entry + "::", entry + "["))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    entries = config._concord_excluded
    if not entries:
        return
    keep, dropped, used = [], [], set()
    for item in items:
        hit = [e for e in entries if _matches(item.nodeid, e)]
        if hit:
            dropped.append(item)
            used.update(hit)
        else:
            keep.append(item)
    # An entry is stale when its file was collected but it matched no test in it.
    collected_files = {item.nodeid.split("::", 1)[0] for item in items}
    stale = [
        e for e in entries if e not in used and e.split("::", 1)[0] in collected_files
    ]
    if stale:
        raise pytest.UsageError(
            "excluded-tests file names tests that do not exist (update it): %s"
            % ", ".join(stale)
        )
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_sessionstart(session):
    if session.config.option.collectonly:
        return
    unreachable = []
    for address, host, port in parse_hosts(os.environ[HOSTS_ENV]):
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            unreachable.append("%s (%s)" % (address, exc))
    if unreachable:
        pytest.exit(
            "server under test not reachable: %s; start it first" % ", ".join(unreachable),
            returncode=pytest.ExitCode.INTERNAL_ERROR,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    saved = {name: os.environ.get(name) for name in _CLUSTER_CONFIG_REQUESTS}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    # A test that failed half-way can leave a client behind whose connection thread keeps
    # reconnecting and logging warnings through logging's last-resort handler, i.e. onto
    # stderr after pytest's summary line.  Nothing kazoo logs from here on is of use.
    logging.getLogger("kazoo").setLevel(logging.CRITICAL + 1)
