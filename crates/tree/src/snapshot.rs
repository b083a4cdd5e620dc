//! Snapshot encoding of the tree: a checksummed stream written from a [`FrozenTree`].
//!
//! Layout (integers big-endian, strings and buffers jute-style length-prefixed): magic
//! `"CNCDSNP3"`, last_zxid i64, next_session_id i64, ACL lists, sessions (id i64, timeout i32,
//! password, owner i64), then the nodes, then the CRC-32C of everything before it and
//! `"CNCDEND!"`. Formats 1 and 2 (sessions without an owner) are still read.
//!
//! Each node (format 2) is a 1 byte (end of list: 0), then LEB128 varints: id, parent + 1,
//! acl + 1, zigzag czxid, zigzag ctime, a flags byte, then only the fields the flags say differ
//! from their usual value (mzxid and pzxid as deltas from czxid, mtime from ctime, versions,
//! owner, child count, each zigzag), the name (length + bytes) and the data (0 for null, else
//! length + 1, then the bytes). A freshly created leaf therefore costs about 15 bytes plus its
//! name and data, instead of 77 in format 1 (fixed-width fields), which is still read.
//!
//! Derived state (child links, the name index, ephemeral sets, counts) is rebuilt on load and
//! cross-checked, so a damaged file is rejected rather than served.

use crate::blob::Blob;
use crate::store::{Dir, Node, StoreLoader, STAMP_RANGE};
use crate::tree::{AclTable, DataTree, FrozenTree, Session, ROOT_PARENT};
use concord_jute::codec::{write_buffer, write_i32, write_i64, Reader};
use concord_jute::records::{read_acl_vec, write_acl_vec};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

/// Format 1: fixed-width node fields (read only).
const MAGIC_V1: &[u8; 8] = b"CNCDSNP1";
/// Format 2: varint node fields with flags (read only).
const MAGIC_V2: &[u8; 8] = b"CNCDSNP2";
/// Format 3: format 2 with each session's owner (written).
const MAGIC: &[u8; 8] = b"CNCDSNP3";
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

/// Writes the frozen tree to `w` in pieces of about 64 KiB (`w` need not be buffered).
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
    for (id, timeout, passwd, owner) in &t.sessions {
        write_i64(b, *id);
        write_i32(b, *timeout);
        write_buffer(b, passwd);
        write_i64(b, *owner as i64);
    }
    cw.maybe_flush()?;
    for (id, n, d) in t.nodes.nodes() {
        encode_node(&mut cw.buf, id, n, &d);
        cw.maybe_flush()?;
    }
    cw.buf.push(0);
    cw.flush_buf()?;
    let mut tail = [0u8; 12];
    tail[..4].copy_from_slice(&cw.crc.to_be_bytes());
    tail[4..].copy_from_slice(END);
    cw.inner.write_all(&tail)?;
    cw.inner.flush()
}

fn err(msg: impl Into<String>) -> SnapshotError {
    SnapshotError(msg.into())
}

/// Loads a tree from a whole snapshot file's bytes, verifying the checksum and structure.
pub fn read_snapshot(bytes: &[u8], extended_types: bool) -> Result<DataTree, SnapshotError> {
    let format = match &bytes[..bytes.len().min(8)] {
        m if m == MAGIC_V1 => 1,
        m if m == MAGIC_V2 => 2,
        m if m == MAGIC => 3,
        _ => 0,
    };
    if bytes.len() < MAGIC.len() + 12 || format == 0 {
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
        let owner = if format >= 3 {
            r.read_i64().map_err(d)? as u64
        } else {
            0
        };
        sessions.insert(
            id,
            Session {
                timeout,
                passwd,
                ephemerals: BTreeSet::new(),
                owner,
            },
        );
    }
    let v2 = format >= 2;
    // Nodes go straight into their chunks as they are decoded: no second copy of the tree.
    let mut nodes = StoreLoader::default();
    if v2 {
        let mut c = Cursor(r.rest());
        while c.byte()? != 0 {
            let (id, n, d) = decode_node(&mut c)?;
            nodes.push(id, n, d).map_err(err)?;
        }
        if !c.0.is_empty() {
            return Err(err("trailing bytes after the node list"));
        }
    } else {
        while r.read_bool().map_err(d)? {
            let (id, n, d) = decode_node_v1(&mut r)?;
            nodes.push(id, n, d).map_err(err)?;
        }
        if r.remaining() != 0 {
            return Err(err("trailing bytes after the node list"));
        }
    }
    let store = nodes.finish().map_err(err)?;
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

const F_MZXID: u8 = 1;
const F_PZXID: u8 = 2;
const F_MTIME: u8 = 4;
const F_VERSION: u8 = 8;
const F_CVERSION: u8 = 16;
const F_AVERSION: u8 = 32;
const F_OWNER: u8 = 64;
const F_CHILDREN: u8 = 128;

fn put_var(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn zig(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzig(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends one node in format 2 (see the module comment).
fn encode_node(b: &mut Vec<u8>, id: u32, n: &Node, d: &Dir) {
    let owner = n.ephemeral_owner();
    let mut flags = 0;
    for (bit, differs) in [
        (F_MZXID, n.mzxid() != n.czxid()),
        (F_PZXID, d.pzxid != n.czxid()),
        (F_MTIME, n.mtime() != n.ctime()),
        (F_VERSION, n.version != 0),
        (F_CVERSION, d.cversion != 0),
        (F_AVERSION, n.aversion != 0),
        (F_OWNER, owner != 0),
        (F_CHILDREN, d.num_children != 0),
    ] {
        if differs {
            flags |= bit;
        }
    }
    b.push(1);
    put_var(b, id as u64);
    put_var(b, n.parent.wrapping_add(1) as u64);
    put_var(b, n.acl.wrapping_add(1) as u64);
    put_var(b, zig(n.czxid()));
    put_var(b, zig(n.ctime()));
    b.push(flags);
    let opt = [
        (F_MZXID, n.mzxid().wrapping_sub(n.czxid())),
        (F_PZXID, d.pzxid.wrapping_sub(n.czxid())),
        (F_MTIME, n.mtime().wrapping_sub(n.ctime())),
        (F_VERSION, n.version as i64),
        (F_CVERSION, d.cversion as i64),
        (F_AVERSION, n.aversion as i64),
        (F_OWNER, owner),
        (F_CHILDREN, d.num_children as i64),
    ];
    for (bit, v) in opt {
        if flags & bit != 0 {
            put_var(b, zig(v));
        }
    }
    let name = n.blob.name().as_bytes();
    put_var(b, name.len() as u64);
    b.extend_from_slice(name);
    match n.blob.data_opt() {
        None => put_var(b, 0),
        Some(d) => {
            put_var(b, d.len() as u64 + 1);
            b.extend_from_slice(d);
        }
    }
}

/// A cursor over the node list of a format-2 snapshot.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, SnapshotError> {
        let (&x, rest) = self.0.split_first().ok_or_else(|| err("truncated node"))?;
        self.0 = rest;
        Ok(x)
    }

    fn var(&mut self) -> Result<u64, SnapshotError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = self.byte()?;
            v |= ((x & 0x7f) as u64) << shift;
            if x & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("varint too long"))
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        u32::try_from(self.var()?).map_err(|_| err("node field out of range"))
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], SnapshotError> {
        let n = usize::try_from(n).map_err(|_| err("length out of range"))?;
        if n > self.0.len() {
            return Err(err("truncated node"));
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(a)
    }
}

/// Reads one node in format 2 (after its leading 1 byte).
fn decode_node(c: &mut Cursor<'_>) -> Result<(u32, Node, Dir), SnapshotError> {
    let id = c.u32()?;
    let parent = c.u32()?.wrapping_sub(1);
    let acl = c.u32()?.wrapping_sub(1);
    let czxid = unzig(c.var()?);
    let ctime = unzig(c.var()?);
    let flags = c.byte()?;
    let mut opt = |bit: u8| -> Result<i64, SnapshotError> {
        Ok(if flags & bit != 0 { unzig(c.var()?) } else { 0 })
    };
    let mzxid = czxid.wrapping_add(opt(F_MZXID)?);
    let pzxid = czxid.wrapping_add(opt(F_PZXID)?);
    let mtime = ctime.wrapping_add(opt(F_MTIME)?);
    let small = |v: i64| i32::try_from(v).map_err(|_| err("node field out of range"));
    let version = small(opt(F_VERSION)?)?;
    let cversion = small(opt(F_CVERSION)?)?;
    let aversion = small(opt(F_AVERSION)?)?;
    let owner = opt(F_OWNER)?;
    let num_children = small(opt(F_CHILDREN)?)?;
    let name_len = c.var()?;
    let name = c.bytes(name_len)?;
    let data = match c.var()? {
        0 => None,
        n => Some(c.bytes(n - 1)?),
    };
    build_node(
        id,
        parent,
        acl,
        name,
        data,
        [czxid, mzxid, pzxid, ctime, mtime, owner],
        [version, cversion, aversion, num_children],
    )
}

/// Reads one node in format 1 (after its leading 1 byte).
fn decode_node_v1(r: &mut Reader<'_>) -> Result<(u32, Node, Dir), SnapshotError> {
    let d = |e: concord_jute::DecodeError| err(format!("malformed: {e}"));
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
    build_node(
        id,
        parent,
        acl,
        name,
        data.as_deref(),
        [czxid, mzxid, pzxid, ctime, mtime, owner],
        [version, cversion, aversion, num_children],
    )
}

/// Checks and assembles a decoded node.
fn build_node(
    id: u32,
    parent: u32,
    acl: u32,
    name: &[u8],
    data: Option<&[u8]>,
    [czxid, mzxid, pzxid, ctime, mtime, owner]: [i64; 6],
    [version, cversion, aversion, num_children]: [i32; 4],
) -> Result<(u32, Node, Dir), SnapshotError> {
    if std::str::from_utf8(name).is_err() {
        return Err(err("node name is not UTF-8"));
    }
    if (id == 0) != (parent == ROOT_PARENT) {
        return Err(err("root/parent mismatch"));
    }
    if [czxid, mzxid, ctime, mtime]
        .iter()
        .any(|v| !STAMP_RANGE.contains(v))
    {
        return Err(err("a zxid or time does not fit in 48 bits"));
    }
    let mut n = Node::new(Blob::with_owner(name, data, owner), acl, czxid, ctime);
    n.parent = parent;
    n.set_modified(mzxid, mtime);
    n.version = version;
    n.aversion = aversion;
    Ok((id, n, Dir::new(num_children, cversion, pzxid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MAX_ZXID;
    use concord_jute::{Acl, Id};

    /// A format-1 file written field by field, as concord builds before format 2 wrote it.
    fn v1_file() -> Vec<u8> {
        v1_file_ctime(1000)
    }

    /// [`v1_file`] with the nodes' ctime given.
    fn v1_file_ctime(ctime: i64) -> Vec<u8> {
        let mut b = MAGIC_V1.to_vec();
        write_i64(&mut b, 7); // last zxid
        write_i64(&mut b, 1); // next session id
        write_i32(&mut b, 1);
        b.push(1);
        write_acl_vec(
            &mut b,
            &[Acl {
                perms: 31,
                id: Id::new("world", "anyone"),
            }],
        );
        write_i32(&mut b, 0); // sessions
        /// (id, parent, name, data, czxid, version, num_children)
        type V1Node<'a> = (i32, i32, &'a [u8], Option<&'a [u8]>, i64, i32, i32);
        let nodes: [V1Node; 2] = [
            (0, ROOT_PARENT as i32, b"", Some(b""), 0, 0, 1),
            (1, 0, b"x", Some(b"hello"), 5, 2, 0),
        ];
        for (id, parent, name, data, czxid, version, children) in nodes {
            b.push(1);
            write_i32(&mut b, id);
            write_i32(&mut b, parent);
            write_i32(&mut b, 0);
            write_i64(&mut b, czxid);
            write_i64(&mut b, czxid + version as i64); // mzxid
            write_i64(&mut b, czxid); // pzxid
            write_i64(&mut b, ctime);
            write_i64(&mut b, 2000);
            write_i32(&mut b, version);
            write_i32(&mut b, 0);
            write_i32(&mut b, 0);
            write_i64(&mut b, 0);
            write_i32(&mut b, children);
            write_buffer(&mut b, name);
            concord_jute::codec::write_opt_buffer(&mut b, data);
        }
        b.push(0);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b.extend_from_slice(END);
        b
    }

    #[test]
    fn a_time_beyond_48_bits_is_refused() {
        assert!(read_snapshot(&v1_file_ctime(MAX_ZXID), false).is_ok());
        assert!(read_snapshot(&v1_file_ctime(-MAX_ZXID - 1), false).is_ok());
        for ctime in [MAX_ZXID + 1, -MAX_ZXID - 2, i64::MIN] {
            let Err(e) = read_snapshot(&v1_file_ctime(ctime), false) else {
                panic!("a ctime of {ctime} was loaded");
            };
            assert!(e.to_string().contains("48 bits"), "{e}");
        }
    }

    #[test]
    fn format_1_files_still_load() {
        let t = read_snapshot(&v1_file(), false).unwrap();
        assert_eq!(t.last_zxid(), 7);
        let mut again = Vec::new();
        write_snapshot(&t.freeze(), &mut again).unwrap();
        assert_eq!(&again[..8], MAGIC, "rewritten in format 2");
        let back = read_snapshot(&again, false).unwrap();
        for tree in [&t, &back] {
            let (data, stat) = tree.get_data("/x", &[]).unwrap();
            assert_eq!(data, Some(&b"hello"[..]));
            assert_eq!(
                (stat.czxid, stat.mzxid, stat.version, stat.ctime, stat.mtime),
                (5, 7, 2, 1000, 2000)
            );
        }
        assert!(again.len() < v1_file().len());
    }

    #[test]
    fn varints_round_trip_extremes() {
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MAX, i64::MIN] {
            let mut b = Vec::new();
            put_var(&mut b, zig(v));
            let mut c = Cursor(&b);
            assert_eq!(unzig(c.var().unwrap()), v);
            assert!(c.0.is_empty());
        }
        // An unterminated varint is an error, not a panic.
        assert!(Cursor(&[0xff; 11]).var().is_err());
        assert!(Cursor(&[0x80]).var().is_err());
    }
}
