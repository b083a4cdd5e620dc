//! Fixed records shared by requests and replies: Stat, ACL, headers, connect packets, events.

use crate::codec::*;
use crate::DecodeError;

/// A znode's metadata, 68 bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Stat {
    /// zxid of the create.
    pub czxid: i64,
    /// zxid of the last data change.
    pub mzxid: i64,
    /// Creation time, milliseconds since the epoch.
    pub ctime: i64,
    /// Last data change time, milliseconds since the epoch.
    pub mtime: i64,
    /// Number of data changes.
    pub version: i32,
    /// Number of child changes.
    pub cversion: i32,
    /// Number of ACL changes.
    pub aversion: i32,
    /// Owning session of an ephemeral, or the container/TTL marker, else 0.
    pub ephemeral_owner: i64,
    /// Length of the data.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// zxid of the last child change.
    pub pzxid: i64,
}

impl Stat {
    /// Size of an encoded Stat.
    pub const WIRE_LEN: usize = 68;

    /// Appends the wire form.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i64(w, self.czxid);
        write_i64(w, self.mzxid);
        write_i64(w, self.ctime);
        write_i64(w, self.mtime);
        write_i32(w, self.version);
        write_i32(w, self.cversion);
        write_i32(w, self.aversion);
        write_i64(w, self.ephemeral_owner);
        write_i32(w, self.data_length);
        write_i32(w, self.num_children);
        write_i64(w, self.pzxid);
    }

    /// Reads the wire form.
    pub fn decode(r: &mut Reader<'_>) -> Result<Stat, DecodeError> {
        Ok(Stat {
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            cversion: r.read_i32()?,
            aversion: r.read_i32()?,
            ephemeral_owner: r.read_i64()?,
            data_length: r.read_i32()?,
            num_children: r.read_i32()?,
            pzxid: r.read_i64()?,
        })
    }
}

/// An identity: an auth scheme and the id within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    /// The scheme: world, auth, digest, ip, super.
    pub scheme: String,
    /// The id within the scheme.
    pub id: String,
}

impl Id {
    /// Builds an id from its two parts.
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    /// Appends the wire form.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_string(w, &self.scheme);
        write_string(w, &self.id);
    }

    /// Reads the wire form.
    pub fn decode(r: &mut Reader<'_>) -> Result<Id, DecodeError> {
        Ok(Id {
            scheme: r.read_string()?,
            id: r.read_string()?,
        })
    }
}

/// One ACL entry: permission bits granted to an id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    /// Permission bits (see [`crate::perms`]).
    pub perms: i32,
    /// Who is granted them.
    pub id: Id,
}

impl Acl {
    /// `world:anyone` with every permission (ZooDefs.Ids.OPEN_ACL_UNSAFE).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: crate::perms::ALL,
            id: Id::new("world", "anyone"),
        }]
    }

    /// `world:anyone` read-only (ZooDefs.Ids.READ_ACL_UNSAFE).
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: crate::perms::READ,
            id: Id::new("world", "anyone"),
        }]
    }

    /// Appends the wire form.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i32(w, self.perms);
        self.id.encode(w);
    }

    /// Reads the wire form.
    pub fn decode(r: &mut Reader<'_>) -> Result<Acl, DecodeError> {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id::decode(r)?,
        })
    }
}

/// Appends a `vector<ACL>`.
pub fn write_acl_vec(w: &mut Vec<u8>, acl: &[Acl]) {
    write_i32(w, acl.len() as i32);
    for a in acl {
        a.encode(w);
    }
}

/// Reads a `vector<ACL>`.
pub fn read_acl_vec(r: &mut Reader<'_>) -> Result<Vec<Acl>, DecodeError> {
    // An ACL is at least its perms int and two string lengths.
    let n = r.read_vec_len(12)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Acl::decode(r)?);
    }
    Ok(v)
}

/// The first packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    /// Protocol version (0).
    pub protocol_version: i32,
    /// The last zxid the client has seen.
    pub last_zxid_seen: i64,
    /// Requested session timeout in milliseconds.
    pub timeout: i32,
    /// Session to resume, or 0 for a new one.
    pub session_id: i64,
    /// Password of the session to resume.
    pub passwd: Vec<u8>,
    /// Whether the client accepts a read-only server; `None` when the client did not send the byte.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    /// Appends the wire form (with the readOnly byte when set).
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i32(w, self.protocol_version);
        write_i64(w, self.last_zxid_seen);
        write_i32(w, self.timeout);
        write_i64(w, self.session_id);
        write_buffer(w, &self.passwd);
        if let Some(ro) = self.read_only {
            write_bool(w, ro);
        }
    }

    /// Reads the wire form; the trailing readOnly byte is optional.
    pub fn decode(r: &mut Reader<'_>) -> Result<ConnectRequest, DecodeError> {
        let protocol_version = r.read_i32()?;
        let last_zxid_seen = r.read_i64()?;
        let timeout = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer_vec()?;
        let read_only = if r.remaining() >= 1 {
            Some(r.read_bool()?)
        } else {
            None
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout,
            session_id,
            passwd,
            read_only,
        })
    }
}

/// The server's answer to a ConnectRequest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    /// Protocol version (0).
    pub protocol_version: i32,
    /// Negotiated timeout in milliseconds; 0 means the session is expired.
    pub timeout: i32,
    /// The session id.
    pub session_id: i64,
    /// The session password.
    pub passwd: Vec<u8>,
    /// Whether the server is read-only; `None` omits the byte (for clients that did not send it).
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// Appends the wire form.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i32(w, self.protocol_version);
        write_i32(w, self.timeout);
        write_i64(w, self.session_id);
        write_buffer(w, &self.passwd);
        if let Some(ro) = self.read_only {
            write_bool(w, ro);
        }
    }

    /// Reads the wire form; the trailing readOnly byte is optional.
    pub fn decode(r: &mut Reader<'_>) -> Result<ConnectResponse, DecodeError> {
        let protocol_version = r.read_i32()?;
        let timeout = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer_vec()?;
        let read_only = if r.remaining() >= 1 {
            Some(r.read_bool()?)
        } else {
            None
        };
        Ok(ConnectResponse {
            protocol_version,
            timeout,
            session_id,
            passwd,
            read_only,
        })
    }
}

/// Header of every request after the connect packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// Client-chosen id echoed in the reply.
    pub xid: i32,
    /// The opcode.
    pub op: i32,
}

impl RequestHeader {
    /// Appends the wire form.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i32(w, self.xid);
        write_i32(w, self.op);
    }

    /// Reads the wire form.
    pub fn decode(r: &mut Reader<'_>) -> Result<RequestHeader, DecodeError> {
        Ok(RequestHeader {
            xid: r.read_i32()?,
            op: r.read_i32()?,
        })
    }
}

/// Header of every reply after the connect response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// The request's xid (or a reserved xid).
    pub xid: i32,
    /// The zxid the server had reached when it replied.
    pub zxid: i64,
    /// Error code, 0 for success.
    pub err: i32,
}

impl ReplyHeader {
    /// Size of an encoded header.
    pub const WIRE_LEN: usize = 16;

    /// Appends the wire form.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i32(w, self.xid);
        write_i64(w, self.zxid);
        write_i32(w, self.err);
    }

    /// Reads the wire form.
    pub fn decode(r: &mut Reader<'_>) -> Result<ReplyHeader, DecodeError> {
        Ok(ReplyHeader {
            xid: r.read_i32()?,
            zxid: r.read_i64()?,
            err: r.read_i32()?,
        })
    }
}

/// A watch notification body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    /// Event type (see [`crate::event`]).
    pub event_type: i32,
    /// Session state (see [`crate::state`]).
    pub state: i32,
    /// The path the event is about.
    pub path: String,
}

impl WatcherEvent {
    /// Appends the wire form.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i32(w, self.event_type);
        write_i32(w, self.state);
        write_string(w, &self.path);
    }

    /// Reads the wire form.
    pub fn decode(r: &mut Reader<'_>) -> Result<WatcherEvent, DecodeError> {
        Ok(WatcherEvent {
            event_type: r.read_i32()?,
            state: r.read_i32()?,
            path: r.read_string()?,
        })
    }
}

/// The header before each op of a multi request or result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiHeader {
    /// The op's type, or -1.
    pub op: i32,
    /// True on the terminator.
    pub done: bool,
    /// Error code (-1 in requests).
    pub err: i32,
}

impl MultiHeader {
    /// Appends the wire form.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i32(w, self.op);
        write_bool(w, self.done);
        write_i32(w, self.err);
    }

    /// Reads the wire form.
    pub fn decode(r: &mut Reader<'_>) -> Result<MultiHeader, DecodeError> {
        Ok(MultiHeader {
            op: r.read_i32()?,
            done: r.read_bool()?,
            err: r.read_i32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_68_bytes_and_round_trips() {
        let s = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut w = Vec::new();
        s.encode(&mut w);
        assert_eq!(w.len(), Stat::WIRE_LEN);
        assert_eq!(Stat::decode(&mut Reader::new(&w)).unwrap(), s);
    }

    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 7,
            timeout: 30000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: None,
        };
        let mut w = Vec::new();
        req.encode(&mut w);
        assert_eq!(w.len(), 44);
        assert_eq!(ConnectRequest::decode(&mut Reader::new(&w)).unwrap(), req);
        req.read_only = Some(true);
        let mut w = Vec::new();
        req.encode(&mut w);
        assert_eq!(w.len(), 45);
        assert_eq!(ConnectRequest::decode(&mut Reader::new(&w)).unwrap(), req);
    }
}
