//! Request bodies, keyed by opcode: decode what clients send, encode what a client (or the log) sends.

use crate::codec::*;
use crate::consts::op;
use crate::records::*;
use crate::DecodeError;

/// create / create2 / createContainer / createTTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// Which of the four create opcodes carried it; decides the reply shape.
    pub op: i32,
    /// Path of the node to create (before any sequential suffix).
    pub path: String,
    /// Initial data; `None` is a null buffer, which ZooKeeper keeps apart from empty data.
    pub data: Option<Vec<u8>>,
    /// ACL of the new node.
    pub acl: Vec<Acl>,
    /// Create mode flags.
    pub flags: i32,
    /// TTL in milliseconds (createTTL only, else 0).
    pub ttl: i64,
}

/// removeWatches / checkWatches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchesRequest {
    /// The watched path.
    pub path: String,
    /// Watcher type (see [`crate::watcher_type`]).
    pub watcher_type: i32,
}

/// setWatches / setWatches2: watches a client re-registers after reconnecting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    /// The last zxid the client saw; events after it are replayed.
    pub relative_zxid: i64,
    /// Data watches.
    pub data: Vec<String>,
    /// Exist watches.
    pub exist: Vec<String>,
    /// Child watches.
    pub child: Vec<String>,
    /// Persistent watches (setWatches2 only).
    pub persistent: Vec<String>,
    /// Persistent recursive watches (setWatches2 only).
    pub persistent_recursive: Vec<String>,
}

/// reconfig.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconfigRequest {
    /// Servers to add, comma separated (`None` is null).
    pub joining: Option<String>,
    /// Server ids to remove, comma separated (`None` is null).
    pub leaving: Option<String>,
    /// A whole new member list (non-incremental); `None` (null) asks for an incremental change.
    pub new_members: Option<String>,
    /// Expected current config version, or -1.
    pub cur_config_id: i64,
}

/// A decoded client request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create, create2, createContainer, createTTL.
    Create(CreateRequest),
    /// delete.
    Delete {
        /// Path to delete.
        path: String,
        /// Expected version, or -1.
        version: i32,
    },
    /// deleteContainer (internal in ZooKeeper; accepted).
    DeleteContainer {
        /// Path of the container.
        path: String,
    },
    /// exists.
    Exists {
        /// Path to look at.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// getData.
    GetData {
        /// Path to read.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// setData.
    SetData {
        /// Path to write.
        path: String,
        /// New data (`None` is null).
        data: Option<Vec<u8>>,
        /// Expected version, or -1.
        version: i32,
    },
    /// getACL.
    GetAcl {
        /// Path to read.
        path: String,
    },
    /// setACL.
    SetAcl {
        /// Path to change.
        path: String,
        /// New ACL.
        acl: Vec<Acl>,
        /// Expected ACL version, or -1.
        version: i32,
    },
    /// getChildren (op 8) or getChildren2 (op 12, `with_stat`).
    GetChildren {
        /// Path to list.
        path: String,
        /// Leave a watch.
        watch: bool,
        /// Reply with the parent's Stat too (getChildren2).
        with_stat: bool,
    },
    /// sync.
    Sync {
        /// Path (informational).
        path: String,
    },
    /// ping.
    Ping,
    /// check (version check).
    Check {
        /// Path to check.
        path: String,
        /// Expected version, or -1.
        version: i32,
    },
    /// multi: all-or-nothing list of writes.
    Multi(Vec<Request>),
    /// multiRead: independent list of reads.
    MultiRead(Vec<Request>),
    /// reconfig.
    Reconfig(ReconfigRequest),
    /// checkWatches.
    CheckWatches(WatchesRequest),
    /// removeWatches.
    RemoveWatches(WatchesRequest),
    /// auth.
    Auth {
        /// Auth type (0).
        auth_type: i32,
        /// Scheme, e.g. "digest".
        scheme: String,
        /// Credentials.
        auth: Vec<u8>,
    },
    /// setWatches (op 101) or setWatches2 (op 105, `v2`).
    SetWatches {
        /// The watches.
        watches: SetWatches,
        /// Sent as setWatches2.
        v2: bool,
    },
    /// sasl.
    Sasl {
        /// SASL token.
        token: Vec<u8>,
    },
    /// getEphemerals.
    GetEphemerals {
        /// Path prefix.
        prefix: String,
    },
    /// getAllChildrenNumber.
    GetAllChildrenNumber {
        /// Path to count under.
        path: String,
    },
    /// addWatch.
    AddWatch {
        /// Path to watch.
        path: String,
        /// Mode (see [`crate::add_watch_mode`]).
        mode: i32,
    },
    /// whoAmI.
    WhoAmI,
    /// closeSession.
    CloseSession,
}

impl Request {
    /// The opcode this request is sent with.
    pub fn op_code(&self) -> i32 {
        match self {
            Request::Create(c) => c.op,
            Request::Delete { .. } => op::DELETE,
            Request::DeleteContainer { .. } => op::DELETE_CONTAINER,
            Request::Exists { .. } => op::EXISTS,
            Request::GetData { .. } => op::GET_DATA,
            Request::SetData { .. } => op::SET_DATA,
            Request::GetAcl { .. } => op::GET_ACL,
            Request::SetAcl { .. } => op::SET_ACL,
            Request::GetChildren {
                with_stat: false, ..
            } => op::GET_CHILDREN,
            Request::GetChildren {
                with_stat: true, ..
            } => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Ping => op::PING,
            Request::Check { .. } => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig(_) => op::RECONFIG,
            Request::CheckWatches(_) => op::CHECK_WATCHES,
            Request::RemoveWatches(_) => op::REMOVE_WATCHES,
            Request::Auth { .. } => op::AUTH,
            Request::SetWatches { v2: false, .. } => op::SET_WATCHES,
            Request::SetWatches { v2: true, .. } => op::SET_WATCHES2,
            Request::Sasl { .. } => op::SASL,
            Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Request::AddWatch { .. } => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// Whether this request changes the tree (and so goes through the replicated log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Delete { .. }
                | Request::DeleteContainer { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::Reconfig(_)
                | Request::CloseSession
        )
    }

    /// The main path the request names, if any.
    pub fn path(&self) -> Option<&str> {
        Some(match self {
            Request::Create(c) => &c.path,
            Request::Delete { path, .. }
            | Request::DeleteContainer { path }
            | Request::Exists { path, .. }
            | Request::GetData { path, .. }
            | Request::SetData { path, .. }
            | Request::GetAcl { path }
            | Request::SetAcl { path, .. }
            | Request::GetChildren { path, .. }
            | Request::Sync { path }
            | Request::Check { path, .. }
            | Request::GetAllChildrenNumber { path }
            | Request::AddWatch { path, .. } => path,
            Request::GetEphemerals { prefix } => prefix,
            Request::CheckWatches(w) | Request::RemoveWatches(w) => &w.path,
            _ => return None,
        })
    }

    /// Decodes the body of a request with opcode `op_code`.
    pub fn decode(op_code: i32, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
        Ok(match op_code {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let path = r.read_string()?;
                let data = r.read_opt_buffer()?;
                let acl = read_acl_vec(r)?;
                let flags = r.read_i32()?;
                let ttl = if op_code == op::CREATE_TTL {
                    r.read_i64()?
                } else {
                    0
                };
                Request::Create(CreateRequest {
                    op: op_code,
                    path,
                    data,
                    acl,
                    flags,
                    ttl,
                })
            }
            op::DELETE => Request::Delete {
                path: r.read_string()?,
                version: r.read_i32()?,
            },
            op::DELETE_CONTAINER => Request::DeleteContainer {
                path: r.read_string()?,
            },
            op::EXISTS => Request::Exists {
                path: r.read_string()?,
                watch: r.read_bool()?,
            },
            op::GET_DATA => Request::GetData {
                path: r.read_string()?,
                watch: r.read_bool()?,
            },
            op::SET_DATA => Request::SetData {
                path: r.read_string()?,
                data: r.read_opt_buffer()?,
                version: r.read_i32()?,
            },
            op::GET_ACL => Request::GetAcl {
                path: r.read_string()?,
            },
            op::SET_ACL => Request::SetAcl {
                path: r.read_string()?,
                acl: read_acl_vec(r)?,
                version: r.read_i32()?,
            },
            op::GET_CHILDREN | op::GET_CHILDREN2 => Request::GetChildren {
                path: r.read_string()?,
                watch: r.read_bool()?,
                with_stat: op_code == op::GET_CHILDREN2,
            },
            op::SYNC => Request::Sync {
                path: r.read_string()?,
            },
            op::PING => Request::Ping,
            op::CHECK => Request::Check {
                path: r.read_string()?,
                version: r.read_i32()?,
            },
            op::MULTI | op::MULTI_READ => {
                let read = op_code == op::MULTI_READ;
                let mut ops = Vec::new();
                loop {
                    let h = MultiHeader::decode(r)?;
                    if h.done {
                        break;
                    }
                    let allowed = if read {
                        matches!(h.op, op::GET_CHILDREN | op::GET_DATA)
                    } else {
                        matches!(
                            h.op,
                            op::CREATE
                                | op::CREATE2
                                | op::CREATE_TTL
                                | op::CREATE_CONTAINER
                                | op::DELETE
                                | op::SET_DATA
                                | op::CHECK
                        )
                    };
                    if !allowed {
                        return Err(DecodeError::BadValue("multi op type"));
                    }
                    ops.push(Request::decode(h.op, r)?);
                }
                if read {
                    Request::MultiRead(ops)
                } else {
                    Request::Multi(ops)
                }
            }
            op::RECONFIG => Request::Reconfig(ReconfigRequest {
                joining: r.read_opt_string()?,
                leaving: r.read_opt_string()?,
                new_members: r.read_opt_string()?,
                cur_config_id: r.read_i64()?,
            }),
            op::CHECK_WATCHES | op::REMOVE_WATCHES => {
                let w = WatchesRequest {
                    path: r.read_string()?,
                    watcher_type: r.read_i32()?,
                };
                if op_code == op::CHECK_WATCHES {
                    Request::CheckWatches(w)
                } else {
                    Request::RemoveWatches(w)
                }
            }
            op::AUTH => Request::Auth {
                auth_type: r.read_i32()?,
                scheme: r.read_string()?,
                auth: r.read_buffer_vec()?,
            },
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let v2 = op_code == op::SET_WATCHES2;
                let mut w = SetWatches {
                    relative_zxid: r.read_i64()?,
                    data: r.read_string_vec()?,
                    exist: r.read_string_vec()?,
                    child: r.read_string_vec()?,
                    ..Default::default()
                };
                if v2 {
                    w.persistent = r.read_string_vec()?;
                    w.persistent_recursive = r.read_string_vec()?;
                }
                Request::SetWatches { watches: w, v2 }
            }
            op::SASL => Request::Sasl {
                token: r.read_buffer_vec()?,
            },
            op::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: r.read_string()?,
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
                path: r.read_string()?,
            },
            op::ADD_WATCH => Request::AddWatch {
                path: r.read_string()?,
                mode: r.read_i32()?,
            },
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            other => return Err(DecodeError::UnknownOpCode(other)),
        })
    }

    /// Appends the body (without RequestHeader).
    pub fn encode(&self, w: &mut Vec<u8>) {
        match self {
            Request::Create(c) => {
                write_string(w, &c.path);
                write_opt_buffer(w, c.data.as_deref());
                write_acl_vec(w, &c.acl);
                write_i32(w, c.flags);
                if c.op == op::CREATE_TTL {
                    write_i64(w, c.ttl);
                }
            }
            Request::Delete { path, version } | Request::Check { path, version } => {
                write_string(w, path);
                write_i32(w, *version);
            }
            Request::DeleteContainer { path }
            | Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path } => write_string(w, path),
            Request::GetEphemerals { prefix } => write_string(w, prefix),
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch, .. } => {
                write_string(w, path);
                write_bool(w, *watch);
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                write_string(w, path);
                write_opt_buffer(w, data.as_deref());
                write_i32(w, *version);
            }
            Request::SetAcl { path, acl, version } => {
                write_string(w, path);
                write_acl_vec(w, acl);
                write_i32(w, *version);
            }
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Multi(ops) | Request::MultiRead(ops) => {
                for o in ops {
                    MultiHeader {
                        op: o.op_code(),
                        done: false,
                        err: -1,
                    }
                    .encode(w);
                    o.encode(w);
                }
                MultiHeader {
                    op: -1,
                    done: true,
                    err: -1,
                }
                .encode(w);
            }
            Request::Reconfig(r) => {
                for s in [&r.joining, &r.leaving, &r.new_members] {
                    write_opt_buffer(w, s.as_deref().map(str::as_bytes));
                }
                write_i64(w, r.cur_config_id);
            }
            Request::CheckWatches(x) | Request::RemoveWatches(x) => {
                write_string(w, &x.path);
                write_i32(w, x.watcher_type);
            }
            Request::Auth {
                auth_type,
                scheme,
                auth,
            } => {
                write_i32(w, *auth_type);
                write_string(w, scheme);
                write_buffer(w, auth);
            }
            Request::SetWatches { watches, v2 } => {
                write_i64(w, watches.relative_zxid);
                write_string_vec(w, &watches.data);
                write_string_vec(w, &watches.exist);
                write_string_vec(w, &watches.child);
                if *v2 {
                    write_string_vec(w, &watches.persistent);
                    write_string_vec(w, &watches.persistent_recursive);
                }
            }
            Request::Sasl { token } => write_buffer(w, token),
            Request::AddWatch { path, mode } => {
                write_string(w, path);
                write_i32(w, *mode);
            }
        }
    }
}
