#!/usr/bin/env python3
"""Minimal wire-level reproductions of the differences the real-client suites found between
concord and Apache ZooKeeper 3.8 (the reference).  Plain sockets, no client library.

    python3 tests/real-clients/wire-repro.py HOST:PORT

Each case prints the request sequence, the bytes or fields the server answered and what
ZooKeeper 3.8.0 answers, then OK or DIFFERS.  Exits 1 if anything differs.  Needs the server's
nothing else from the server; paths are unique per run.
"""
import os
import socket
import struct
import sys


def frame(b):
    return struct.pack(">i", len(b)) + b


def ustr(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def recv_exact(s, n):
    d = b""
    while len(d) < n:
        c = s.recv(n - len(d))
        if not c:
            raise EOFError("server closed the connection")
        d += c
    return d


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=5)
        self.s.sendall(frame(struct.pack(">iqiq", 0, 0, 10000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"))
        self.recv()
        self.xid = 0

    def recv(self):
        n = struct.unpack(">i", recv_exact(self.s, 4))[0]
        return recv_exact(self.s, n)

    def call(self, op, body):
        """Sends one request; returns (err, body after the 16-byte reply header), skipping watch events."""
        self.xid += 1
        self.s.sendall(frame(struct.pack(">ii", self.xid, op) + body))
        while True:
            r = self.recv()
            xid, _zxid, err = struct.unpack(">iqi", r[:16])
            if xid == self.xid:
                return err, r[16:]


OPEN_ACL = struct.pack(">i", 1) + struct.pack(">i", 31) + ustr("world") + ustr("anyone")


def create(c, path, flags=0, ttl=None):
    body = ustr(path) + struct.pack(">i", 0) + OPEN_ACL + struct.pack(">i", flags)
    if ttl is None:
        return c.call(1, body)
    return c.call(21, body + struct.pack(">q", ttl))  # createTTL


def stat_of(c, path):
    err, body = c.call(3, ustr(path) + b"\0")  # exists
    assert err == 0, err
    czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, dlen, nchildren, pzxid = struct.unpack(">qqqqiiiqiiq", body[:68])
    return {"cversion": cversion, "ephemeralOwner": owner, "numChildren": nchildren}


differs = 0


def report(name, sequence, got, want, note=""):
    global differs
    ok = got == want
    if not ok:
        differs += 1
    print(f"{'OK     ' if ok else 'DIFFERS'} {name}")
    print(f"        sequence: {sequence}")
    print(f"        got:      {got}")
    print(f"        ZK 3.8:   {want}{'  (' + note + ')' if note else ''}")


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    port = int(port)
    base = "/wire-repro-%d" % int.from_bytes(os.urandom(3), "big")
    c = Conn(host, port)
    assert create(c, base)[0] == 0

    # 1. addWatch (opcode 106) reply body.
    err, body = c.call(106, ustr(base) + struct.pack(">i", 1))
    report("addWatch reply carries an ErrorResponse body",
           f"addWatch(path={base}, mode=1 PERSISTENT_RECURSIVE)",
           f"err={err} body={body.hex() or '(empty)'}",
           "err=0 body=00000000")

    # 2. whoAmI (opcode 107) for a digest identity.
    err, _ = c.call(100, struct.pack(">i", 0) + ustr("digest") + struct.pack(">i", 9) + b"alice:pw1")  # setAuth
    err, body = c.call(107, b"")
    n = struct.unpack(">i", body[:4])[0]
    off, ids = 4, []
    for _ in range(n):
        ln = struct.unpack(">i", body[off:off + 4])[0]; scheme = body[off + 4:off + 4 + ln].decode(); off += 4 + ln
        ln = struct.unpack(">i", body[off:off + 4])[0]; user = body[off + 4:off + 4 + ln].decode(); off += 4 + ln
        ids.append((scheme, user))
    report("whoAmI names a digest identity by its user",
           "auth(digest, 'alice:pw1'); whoAmI()",
           f"digest user={dict(ids).get('digest')!r}",
           "digest user='alice'")

    # 3. cversion counts deletes.
    p = base + "/cv"
    create(c, p)
    create(c, p + "/a")
    create(c, p + "/b")
    c.call(2, ustr(p + "/a") + struct.pack(">i", -1))  # delete
    report("Stat.cversion after 2 child creates and 1 child delete",
           f"create {p}; create {p}/a; create {p}/b; delete {p}/a; exists {p}",
           f"cversion={stat_of(c, p)['cversion']}",
           "cversion=3", "ZooKeeper reports 2 * creates - numChildren")

    # 4. ephemeralOwner of a container and of a TTL node.
    create(c, base + "/cont", flags=4)  # CONTAINER
    create(c, base + "/ttl", flags=5, ttl=60000)  # PERSISTENT_WITH_TTL
    report("Stat.ephemeralOwner of a container",
           f"create {base}/cont flags=4 (container); exists",
           f"ephemeralOwner=0x{stat_of(c, base + '/cont')['ephemeralOwner'] & (2**64 - 1):016x}",
           "ephemeralOwner=0x0000000000000000")
    report("Stat.ephemeralOwner of a TTL node",
           f"createTTL {base}/ttl flags=5 ttl=60000; exists",
           f"ephemeralOwner=0x{stat_of(c, base + '/ttl')['ephemeralOwner'] & (2**64 - 1):016x}",
           "ephemeralOwner=0x0000000000000000")

    # 5. Quota statistics: the server fills .../zookeeper_stats once a limits node exists.
    q = base + "/q"
    create(c, q)
    c.call(1, ustr(q + "/a") + struct.pack(">i", 5) + b"12345" + OPEN_ACL + struct.pack(">i", 0))
    qbase = "/zookeeper/quota" + base
    for part in [qbase, qbase + "/q"]:
        create(c, part)
    # What zkCli's setquota -n 10 writes: limits first, then an initial stats node.
    for name, data in (("zookeeper_limits", b"count=10,bytes=-1"), ("zookeeper_stats", b"count=0,bytes=0")):
        c.call(1, ustr(qbase + "/q/" + name) + struct.pack(">i", len(data)) + data + OPEN_ACL + struct.pack(">i", 0))
    c.call(1, ustr(q + "/b") + struct.pack(">i", 1) + b"x" + OPEN_ACL + struct.pack(">i", 0))
    err, body = c.call(4, ustr(qbase + "/q/zookeeper_stats") + b"\0")  # getData
    ln = struct.unpack(">i", body[:4])[0]
    report("quota statistics are maintained by the server",
           f"create {q}; create {q}/a '12345'; create {qbase}/q/zookeeper_limits 'count=10,bytes=-1'; "
           f"create .../zookeeper_stats 'count=0,bytes=0'; create {q}/b 'x'; getData .../zookeeper_stats",
           f"stats={body[4:4 + ln].decode()!r}",
           "stats='count=3,bytes=6'", "node count and data bytes of the subtree")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
