//! Transactions: what the write path proposes and every replica applies, and their log encoding.

use concord_jute::codec::{write_buffer, write_i32, write_i64, Reader};
use concord_jute::{DecodeError, Id, Request};

/// One replicated change. Everything apply needs to be deterministic travels in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The session the change is made for (0 for server-internal txns).
    pub session: i64,
    /// Wall-clock time in ms decided by the proposer (used for ctime/mtime and TTL expiry).
    pub time: i64,
    /// The session's authenticated ids at proposal time, for ACL checks inside apply.
    pub auth: Vec<Id>,
    /// What to do.
    pub op: TxnOp,
}

/// The kinds of replicated change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Create a session; its id is decided by apply.
    CreateSession {
        /// Negotiated timeout in ms.
        timeout: i32,
        /// The 16-byte password handed to the client.
        passwd: Vec<u8>,
    },
    /// Close `Txn::session` (client closeSession or expiry), deleting its ephemerals.
    CloseSession {
        /// True when the server expired the session rather than the client closing it.
        expired: bool,
    },
    /// A client write request.
    Write(Request),
    /// Delete expired TTL nodes and empty containers (proposed periodically by the leader).
    PurgeStale,
    /// `Txn::session` resumed on the server proposing this: it owns the session from now on.
    MoveSession,
}

const TAG_CREATE_SESSION: u8 = 1;
const TAG_CLOSE_SESSION: u8 = 2;
const TAG_WRITE: u8 = 3;
const TAG_PURGE: u8 = 4;
const TAG_MOVE_SESSION: u8 = 5;

impl Txn {
    /// Appends the log encoding.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_i64(w, self.session);
        write_i64(w, self.time);
        write_i32(w, self.auth.len() as i32);
        for id in &self.auth {
            id.encode(w);
        }
        match &self.op {
            TxnOp::CreateSession { timeout, passwd } => {
                w.push(TAG_CREATE_SESSION);
                write_i32(w, *timeout);
                write_buffer(w, passwd);
            }
            TxnOp::CloseSession { expired } => {
                w.push(TAG_CLOSE_SESSION);
                w.push(*expired as u8);
            }
            TxnOp::Write(req) => {
                w.push(TAG_WRITE);
                write_i32(w, req.op_code());
                req.encode(w);
            }
            TxnOp::PurgeStale => w.push(TAG_PURGE),
            TxnOp::MoveSession => w.push(TAG_MOVE_SESSION),
        }
    }

    /// Reads the log encoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Txn, DecodeError> {
        let session = r.read_i64()?;
        let time = r.read_i64()?;
        let n = r.read_vec_len(8)?; // an Id is two strings
        let mut auth = Vec::with_capacity(n);
        for _ in 0..n {
            auth.push(Id::decode(r)?);
        }
        let tag = r.rest().first().copied().ok_or(DecodeError::Truncated)?;
        let _ = r.read_bool()?;
        let op = match tag {
            TAG_CREATE_SESSION => TxnOp::CreateSession {
                timeout: r.read_i32()?,
                passwd: r.read_buffer_vec()?,
            },
            TAG_CLOSE_SESSION => TxnOp::CloseSession {
                expired: r.read_bool()?,
            },
            TAG_WRITE => {
                let code = r.read_i32()?;
                let req = Request::decode(code, r)?;
                if !req.is_write() {
                    return Err(DecodeError::BadValue("txn request is not a write"));
                }
                TxnOp::Write(req)
            }
            TAG_PURGE => TxnOp::PurgeStale,
            TAG_MOVE_SESSION => TxnOp::MoveSession,
            _ => return Err(DecodeError::BadValue("txn tag")),
        };
        Ok(Txn {
            session,
            time,
            auth,
            op,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txns_round_trip() {
        let auth = vec![Id::new("ip", "127.0.0.1")];
        for op in [
            TxnOp::CreateSession {
                timeout: 4000,
                passwd: vec![7; 16],
            },
            TxnOp::CloseSession { expired: true },
            TxnOp::Write(Request::SetData {
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                version: -1,
            }),
            TxnOp::PurgeStale,
            TxnOp::MoveSession,
        ] {
            let t = Txn {
                session: 5,
                time: 6,
                auth: auth.clone(),
                op,
            };
            let mut w = Vec::new();
            t.encode(&mut w);
            let mut r = Reader::new(&w);
            assert_eq!(Txn::decode(&mut r).unwrap(), t);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn read_requests_are_not_txns() {
        let t = Txn {
            session: 1,
            time: 1,
            auth: vec![],
            op: TxnOp::Write(Request::GetData {
                path: "/".into(),
                watch: false,
            }),
        };
        let mut w = Vec::new();
        t.encode(&mut w);
        assert!(Txn::decode(&mut Reader::new(&w)).is_err());
    }
}
