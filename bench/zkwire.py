"""A ZooKeeper wire-protocol client in the standard library only, shared by the bench scripts."""
# bench/million.sh and bench/cluster.sh copy this file next to the Python they write into their
# work directory, which then simply does `import zkwire`.
import socket
import struct

# Request opcodes and error codes of the protocol.
CREATE, GET_DATA, SET_DATA, GET_ALL_CHILDREN_NUMBER, CLOSE_SESSION = 1, 4, 5, 104, -11
NODE_EXISTS = -110
NOTIFICATION_XID = -1  # the xid of a watch notification


def frame(b):
    """Returns b prefixed with its length, as one message on the wire."""
    return struct.pack(">i", len(b)) + b


def zbuf(b):
    """Returns the bytes b encoded as a protocol buffer (a length, then the bytes)."""
    return struct.pack(">i", len(b)) + b


def zstr(s):
    """Returns the string s encoded as a protocol string (a length, then UTF-8)."""
    return zbuf(s.encode())


# A list of one ACL: every permission (31) for world:anyone.
OPEN_ACL = struct.pack(">ii", 1, 31) + zstr("world") + zstr("anyone")


def recv_exact(s, n):
    """Reads exactly n bytes from socket s; raises ConnectionError if it closes first."""
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed")
        out += chunk
    return bytes(out)


def recv_frame(s):
    """Reads one length-prefixed message from socket s and returns its body."""
    (n,) = struct.unpack(">i", recv_exact(s, 4))
    return recv_exact(s, n)


def connect(host, port, timeout=5.0):
    """Opens a TCP connection and a new session (10 s timeout requested); returns the socket."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly.
    s.sendall(frame(struct.pack(">iqiqi", 0, 0, 10000, 0, 16) + b"\0" * 16 + b"\0"))
    _, negotiated, _sid = struct.unpack(">iiq", recv_frame(s)[:16])
    if negotiated <= 0:
        s.close()
        raise ConnectionError("session refused")
    return s


def call(s, xid, op, body):
    """Sends one request and returns (error code, reply body), skipping watch notifications."""
    s.sendall(frame(struct.pack(">ii", xid, op) + body))
    while True:
        r = recv_frame(s)
        rxid, _zxid, err = struct.unpack(">iqi", r[:16])
        if rxid != NOTIFICATION_XID:
            return err, r[16:]


def create(s, path, data, flags=0, xid=1):
    """Creates path holding data with an open ACL; returns the error code (0 on success)."""
    body = zstr(path) + zbuf(data) + OPEN_ACL + struct.pack(">i", flags)
    return call(s, xid, CREATE, body)[0]


def set_data(s, path, data, version=-1, xid=1):
    """Sets path's data (any version by default); returns the error code (0 on success)."""
    return call(s, xid, SET_DATA, zstr(path) + zbuf(data) + struct.pack(">i", version))[0]


def get_data(s, path, xid=1):
    """Returns path's data, without a watch; raises RuntimeError on an error reply."""
    err, body = call(s, xid, GET_DATA, zstr(path) + b"\0")
    if err != 0:
        raise RuntimeError(f"getData {path}: error {err}")
    (n,) = struct.unpack(">i", body[:4])
    return body[4:4 + max(n, 0)]


def all_children_number(s, path, xid=2):
    """Returns the number of path's descendants; raises RuntimeError on an error reply."""
    err, body = call(s, xid, GET_ALL_CHILDREN_NUMBER, zstr(path))
    if err != 0:
        raise RuntimeError(f"getAllChildrenNumber {path}: error {err}")
    return struct.unpack(">i", body[:4])[0]


def close(s, xid=3):
    """Closes the session (ignoring any failure) and then the socket."""
    try:
        call(s, xid, CLOSE_SESSION, b"")
    except Exception:
        pass
    s.close()
