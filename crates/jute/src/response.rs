//! Reply bodies: encode what the server sends, decode it again (for clients and tests).

use crate::codec::*;
use crate::consts::op;
use crate::records::*;
use crate::DecodeError;

/// One result inside a multi or multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// create: the created path.
    Create(String),
    /// create2 / createContainer / createTTL: path and Stat.
    Create2(String, Stat),
    /// delete.
    Delete,
    /// setData: the new Stat.
    SetData(Stat),
    /// check.
    Check,
    /// getChildren (multiRead).
    GetChildren(Vec<String>),
    /// getData (multiRead); `None` is null data.
    GetData(Option<Vec<u8>>, Stat),
    /// A failed (or rolled back, code 0) op.
    Error(i32),
}

impl OpResult {
    /// The op type written in the result's MultiHeader.
    pub fn op_code(&self) -> i32 {
        match self {
            OpResult::Create(_) => op::CREATE,
            OpResult::Create2(..) => op::CREATE2,
            OpResult::Delete => op::DELETE,
            OpResult::SetData(_) => op::SET_DATA,
            OpResult::Check => op::CHECK,
            OpResult::GetChildren(_) => op::GET_CHILDREN,
            OpResult::GetData(..) => op::GET_DATA,
            OpResult::Error(_) => op::ERROR,
        }
    }
}

/// A client info entry in a whoAmI reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Auth scheme.
    pub auth_scheme: String,
    /// The user within it.
    pub user: String,
}

/// A reply body (what follows a ReplyHeader with err 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, ping, auth, setWatches, check, closeSession, add/remove/checkWatches.
    Empty,
    /// create: the created path.
    Create(String),
    /// create2 / createContainer / createTTL: path and Stat.
    Create2(String, Stat),
    /// exists, setData, setACL: a Stat.
    Stat(Stat),
    /// getData and reconfig: data (`None` is null) and Stat.
    GetData(Option<Vec<u8>>, Stat),
    /// getACL: ACL and Stat.
    GetAcl(Vec<Acl>, Stat),
    /// getChildren: names.
    GetChildren(Vec<String>),
    /// getChildren2: names and the parent's Stat.
    GetChildren2(Vec<String>, Stat),
    /// sync: the path.
    Sync(String),
    /// multi / multiRead: per-op results.
    Multi(Vec<OpResult>),
    /// getEphemerals: paths.
    GetEphemerals(Vec<String>),
    /// getAllChildrenNumber: the count.
    AllChildrenNumber(i32),
    /// whoAmI: the connection's identities.
    WhoAmI(Vec<ClientInfo>),
    /// sasl: a token.
    Sasl(Vec<u8>),
    /// addWatch: an `ErrorResponse` body, the error code (0); Java clients read it.
    ErrorBody(i32),
}

impl Response {
    /// Appends the body.
    pub fn encode(&self, w: &mut Vec<u8>) {
        match self {
            Response::Empty => {}
            Response::ErrorBody(code) => write_i32(w, *code),
            Response::Create(p) | Response::Sync(p) => write_string(w, p),
            Response::Create2(p, s) => {
                write_string(w, p);
                s.encode(w);
            }
            Response::Stat(s) => s.encode(w),
            Response::GetData(d, s) => {
                write_opt_buffer(w, d.as_deref());
                s.encode(w);
            }
            Response::GetAcl(a, s) => {
                write_acl_vec(w, a);
                s.encode(w);
            }
            Response::GetChildren(c) | Response::GetEphemerals(c) => write_string_vec(w, c),
            Response::GetChildren2(c, s) => {
                write_string_vec(w, c);
                s.encode(w);
            }
            Response::Multi(results) => {
                for r in results {
                    let err = match r {
                        OpResult::Error(e) => *e,
                        _ => 0,
                    };
                    MultiHeader {
                        op: r.op_code(),
                        done: false,
                        err,
                    }
                    .encode(w);
                    encode_op_result(r, w);
                }
                MultiHeader {
                    op: -1,
                    done: true,
                    err: -1,
                }
                .encode(w);
            }
            Response::AllChildrenNumber(n) => write_i32(w, *n),
            Response::WhoAmI(infos) => {
                write_i32(w, infos.len() as i32);
                for i in infos {
                    write_string(w, &i.auth_scheme);
                    write_string(w, &i.user);
                }
            }
            Response::Sasl(t) => write_buffer(w, t),
        }
    }

    /// Decodes the body of a successful reply to a request with opcode `op_code`.
    pub fn decode(op_code: i32, r: &mut Reader<'_>) -> Result<Response, DecodeError> {
        Ok(match op_code {
            op::CREATE => Response::Create(r.read_string()?),
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Response::Create2(r.read_string()?, Stat::decode(r)?)
            }
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(Stat::decode(r)?),
            op::GET_DATA | op::RECONFIG => {
                Response::GetData(r.read_opt_buffer()?, Stat::decode(r)?)
            }
            op::GET_ACL => Response::GetAcl(read_acl_vec(r)?, Stat::decode(r)?),
            op::GET_CHILDREN => Response::GetChildren(r.read_string_vec()?),
            op::GET_CHILDREN2 => Response::GetChildren2(r.read_string_vec()?, Stat::decode(r)?),
            op::SYNC => Response::Sync(r.read_string()?),
            op::MULTI | op::MULTI_READ => {
                let mut results = Vec::new();
                loop {
                    let h = MultiHeader::decode(r)?;
                    if h.done {
                        break;
                    }
                    results.push(match h.op {
                        op::CREATE => OpResult::Create(r.read_string()?),
                        op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                            OpResult::Create2(r.read_string()?, Stat::decode(r)?)
                        }
                        op::DELETE => OpResult::Delete,
                        op::SET_DATA => OpResult::SetData(Stat::decode(r)?),
                        op::CHECK => OpResult::Check,
                        op::GET_CHILDREN => OpResult::GetChildren(r.read_string_vec()?),
                        op::GET_DATA => OpResult::GetData(r.read_opt_buffer()?, Stat::decode(r)?),
                        op::ERROR => OpResult::Error(r.read_i32()?),
                        _ => return Err(DecodeError::BadValue("multi result type")),
                    });
                }
                Response::Multi(results)
            }
            op::GET_EPHEMERALS => Response::GetEphemerals(r.read_string_vec()?),
            op::GET_ALL_CHILDREN_NUMBER => Response::AllChildrenNumber(r.read_i32()?),
            op::WHO_AM_I => {
                // A ClientInfo is at least two string lengths.
                let n = r.read_vec_len(8)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(ClientInfo {
                        auth_scheme: r.read_string()?,
                        user: r.read_string()?,
                    });
                }
                Response::WhoAmI(v)
            }
            op::SASL => Response::Sasl(r.read_buffer_vec()?),
            op::ADD_WATCH if r.remaining() >= 4 => Response::ErrorBody(r.read_i32()?),
            _ => Response::Empty,
        })
    }
}

fn encode_op_result(r: &OpResult, w: &mut Vec<u8>) {
    match r {
        OpResult::Create(p) => write_string(w, p),
        OpResult::Create2(p, s) => {
            write_string(w, p);
            s.encode(w);
        }
        OpResult::Delete | OpResult::Check => {}
        OpResult::SetData(s) => s.encode(w),
        OpResult::GetChildren(c) => write_string_vec(w, c),
        OpResult::GetData(d, s) => {
            write_opt_buffer(w, d.as_deref());
            s.encode(w);
        }
        OpResult::Error(e) => write_i32(w, *e),
    }
}
