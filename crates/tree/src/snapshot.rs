//! Snapshot encoding of the tree: a checksummed stream written from a [`FrozenTree`].
//!
//! Layout (all integers big-endian, strings and buffers jute-style length-prefixed):
//! `magic "CNCDSNP1"`, last_zxid i64, next_session_id i64, ACL lists, sessions, nodes
//! (id, parent, acl, Stat fields, name, data), then the CRC-32C of everything before it and
//! `"CNCDEND!"`. Derived state (child links, the name index, ephemeral sets, counts) is rebuilt
//! on load and cross-checked, so a damaged file is rejected rather than served.

use crate::blob::Blob;
use crate::store::{Node, Store};
use crate::tree::{AclTable, DataTree, FrozenTree, Session, ROOT_PARENT};
use concord_jute::codec::{write_buffer, write_i32, write_i64, Reader};
use concord_jute::records::{read_acl_vec, write_acl_vec};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

const MAGIC: &[u8; 8] = b"CNCDSNP1";
const END: &[u8; 8] = b"CNCDEND!";

/// Why a snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotError(pub String);

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid snapshot: {}", self.0)
    }
}

impl std::error::Error for SnapshotError {}

struct CrcWriter<W: Write> {
    inner: W,
    crc: u32,
    buf: Vec<u8>,
}

impl<W: Write> CrcWriter<W> {
    fn flush_buf(&mut self) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.flush_buf()?;
        }
        Ok(())
    }
}

/// Writes the frozen tree to `w`.
pub fn write_snapshot<W: Write>(t: &FrozenTree, w: W) -> io::Result<()> {
    let mut cw = CrcWriter {
        inner: w,
        crc: 0,
        buf: Vec::with_capacity(1 << 17),
    };
    let b = &mut cw.buf;
    b.extend_from_slice(MAGIC);
    write_i64(b, t.last_zxid);
    write_i64(b, t.next_session_id);
    write_i32(b, t.acls.len() as i32);
    for a in &t.acls {
        match a {
            Some(list) => {
                b.push(1);
                write_acl_vec(b, list);
            }
            None => b.push(0),
        }
    }
    write_i32(b, t.sessions.len() as i32);
    for (id, timeout, passwd) in &t.sessions {
        write_i64(b, *id);
        write_i32(b, *timeout);
        write_buffer(b, passwd);
    }
    cw.maybe_flush()?;
    for (id, n) in t.nodes.nodes() {
        let b = &mut cw.buf;
        b.push(1);
        write_i32(b, id as i32);
        write_i32(b, n.parent as i32);
        write_i32(b, n.acl as i32);
        write_i64(b, n.czxid);
        write_i64(b, n.mzxid);
        write_i64(b, n.pzxid);
        write_i64(b, n.ctime);
        write_i64(b, n.mtime);
        write_i32(b, n.version);
        write_i32(b, n.cversion);
        write_i32(b, n.aversion);
        write_i64(b, n.ephemeral_owner);
        write_i32(b, n.num_children);
        write_buffer(b, n.blob.name().as_bytes());
        concord_jute::codec::write_opt_buffer(b, n.blob.data_opt());
        cw.maybe_flush()?;
    }
    cw.buf.push(0);
    cw.flush_buf()?;
    let crc = cw.crc;
    cw.inner.write_all(&crc.to_be_bytes())?;
    cw.inner.write_all(END)?;
    cw.inner.flush()
}

fn err(msg: impl Into<String>) -> SnapshotError {
    SnapshotError(msg.into())
}

/// Loads a tree from a whole snapshot file's bytes, verifying the checksum and structure.
pub fn read_snapshot(bytes: &[u8], extended_types: bool) -> Result<DataTree, SnapshotError> {
    if bytes.len() < MAGIC.len() + 12 || &bytes[..8] != MAGIC {
        return Err(err("not a concord snapshot (bad magic)"));
    }
    if &bytes[bytes.len() - 8..] != END {
        return Err(err("truncated (no end marker)"));
    }
    let body = &bytes[..bytes.len() - 12];
    let want = u32::from_be_bytes(bytes[bytes.len() - 12..bytes.len() - 8].try_into().unwrap());
    if crc32c::crc32c(body) != want {
        return Err(err("checksum mismatch"));
    }
    let mut r = Reader::new(&body[8..]);
    let d = |e: concord_jute::DecodeError| err(format!("malformed: {e}"));
    let last_zxid = r.read_i64().map_err(d)?;
    let next_session_id = r.read_i64().map_err(d)?;
    let n_acls = r.read_vec_len(1).map_err(d)?;
    let mut acls = Vec::with_capacity(n_acls);
    for _ in 0..n_acls {
        acls.push(if r.read_bool().map_err(d)? {
            Some(read_acl_vec(&mut r).map_err(d)?)
        } else {
            None
        });
    }
    let n_sessions = r.read_vec_len(16).map_err(d)?;
    let mut sessions = BTreeMap::new();
    for _ in 0..n_sessions {
        let id = r.read_i64().map_err(d)?;
        let timeout = r.read_i32().map_err(d)?;
        let passwd = r.read_buffer_vec().map_err(d)?;
        sessions.insert(
            id,
            Session {
                timeout,
                passwd,
                ephemerals: BTreeSet::new(),
            },
        );
    }
    let mut nodes = Vec::new();
    while r.read_bool().map_err(d)? {
        let id = r.read_i32().map_err(d)? as u32;
        let parent = r.read_i32().map_err(d)? as u32;
        let acl = r.read_i32().map_err(d)? as u32;
        let czxid = r.read_i64().map_err(d)?;
        let mzxid = r.read_i64().map_err(d)?;
        let pzxid = r.read_i64().map_err(d)?;
        let ctime = r.read_i64().map_err(d)?;
        let mtime = r.read_i64().map_err(d)?;
        let version = r.read_i32().map_err(d)?;
        let cversion = r.read_i32().map_err(d)?;
        let aversion = r.read_i32().map_err(d)?;
        let owner = r.read_i64().map_err(d)?;
        let num_children = r.read_i32().map_err(d)?;
        let name = r.read_buffer().map_err(d)?;
        let data = r.read_opt_buffer().map_err(d)?;
        if std::str::from_utf8(name).is_err() {
            return Err(err("node name is not UTF-8"));
        }
        if (id == 0) != (parent == ROOT_PARENT) {
            return Err(err("root/parent mismatch"));
        }
        let mut n = Node::new(
            Blob::new_opt(name, data.as_deref()),
            acl,
            czxid,
            ctime,
            owner,
        );
        n.parent = parent;
        n.mzxid = mzxid;
        n.pzxid = pzxid;
        n.mtime = mtime;
        n.version = version;
        n.cversion = cversion;
        n.aversion = aversion;
        n.num_children = num_children;
        nodes.push((id, n));
    }
    if r.remaining() != 0 {
        return Err(err("trailing bytes after the node list"));
    }
    let store = Store::from_nodes(nodes).map_err(err)?;
    DataTree::from_parts(
        store,
        AclTable::from_lists(acls),
        sessions,
        last_zxid,
        next_session_id,
        extended_types,
    )
    .map_err(err)
}
