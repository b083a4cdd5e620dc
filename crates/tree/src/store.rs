//! Node storage: a slab of nodes in copy-on-write chunks, a hash index from (parent, name) to
//! node id, intrusive sibling lists for children, and a table of [`Dir`] records for the nodes
//! that have (or had) children.
//!
//! A node slot is 64 bytes. What only a parent needs (its first child, child count, cversion
//! and pzxid) is in the `Dir` table, keyed by node id: most znodes are leaves and never get a
//! record. The ephemeralOwner is in the node's blob (it never changes after create).
//!
//! Cloning the chunk list ([`Store::freeze`]) is how a snapshot gets a consistent view in
//! microseconds: later writes copy a chunk (and bump its blobs' counts) the first time they touch
//! it, so the snapshot keeps the old version and writes never wait for the snapshot.

use crate::blob::Blob;
use hashbrown::{HashMap, HashTable};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// "No node" in links.
pub const NIL: u32 = u32::MAX;
/// Id of the root node.
pub const ROOT: u32 = 0;
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

/// The largest zxid a node can hold: a slot keeps its zxids and times in 48 bits (2^47 - 1
/// txns is over 40 years at 100,000 writes a second). The tree refuses writes past it.
pub const MAX_ZXID: i64 = (1 << 47) - 1;

/// The values a node's zxids and times can hold (signed 48 bits).
pub const STAMP_RANGE: std::ops::RangeInclusive<i64> = -MAX_ZXID - 1..=MAX_ZXID;

/// A zxid or a time in ms, in 6 bytes: the signed 48-bit range, clamped at its ends (a zxid
/// never gets there, see [`MAX_ZXID`]; a clock would have to be wrong by 4,000 years).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp([u16; 3]);

impl Stamp {
    fn new(v: i64) -> Stamp {
        let v = v.clamp(*STAMP_RANGE.start(), *STAMP_RANGE.end()) as u64;
        Stamp([v as u16, (v >> 16) as u16, (v >> 32) as u16])
    }

    fn get(self) -> i64 {
        let [a, b, c] = self.0.map(u64::from);
        (((a | b << 16 | c << 32) << 16) as i64) >> 16
    }
}

/// One znode: its blob (name, data, owner), sibling links, ACL reference and the Stat fields
/// every node has.
#[derive(Clone, Debug)]
pub struct Node {
    /// Name, data and ephemeralOwner.
    pub blob: Blob,
    /// Parent id (NIL for the root).
    pub parent: u32,
    next: u32,
    prev: u32,
    /// Index into the ACL table.
    pub acl: u32,
    /// Data version.
    pub version: i32,
    /// ACL version.
    pub aversion: i32,
    czxid: Stamp,
    mzxid: Stamp,
    ctime: Stamp,
    mtime: Stamp,
}

// A million znodes cost 56 MB of slots: keep it that way.
const _: () = assert!(std::mem::size_of::<Option<Node>>() == 56);

impl Node {
    /// A node with the given blob (whose owner is the ephemeralOwner) and Stat fields, not yet
    /// linked.
    pub fn new(blob: Blob, acl: u32, zxid: i64, time: i64) -> Node {
        Node {
            blob,
            parent: NIL,
            next: NIL,
            prev: NIL,
            acl,
            version: 0,
            aversion: 0,
            czxid: Stamp::new(zxid),
            mzxid: Stamp::new(zxid),
            ctime: Stamp::new(time),
            mtime: Stamp::new(time),
        }
    }

    /// Create zxid.
    pub fn czxid(&self) -> i64 {
        self.czxid.get()
    }

    /// Last modification zxid.
    pub fn mzxid(&self) -> i64 {
        self.mzxid.get()
    }

    /// Create time (ms).
    pub fn ctime(&self) -> i64 {
        self.ctime.get()
    }

    /// Last modification time (ms).
    pub fn mtime(&self) -> i64 {
        self.mtime.get()
    }

    /// Records a modification: the last modification zxid and time.
    pub fn set_modified(&mut self, mzxid: i64, mtime: i64) {
        self.mzxid = Stamp::new(mzxid);
        self.mtime = Stamp::new(mtime);
    }

    /// Ephemeral owner session, or the container / TTL marker, or 0.
    pub fn ephemeral_owner(&self) -> i64 {
        self.blob.owner()
    }

    /// The wire Stat of this node with its child fields, as ZooKeeper reports it: `cversion`
    /// is kept as the number of child creates (sequential names come from it) and reported as
    /// creates + deletes (`2 × creates − children`); container and TTL markers read as
    /// ephemeralOwner 0.
    pub fn stat(&self, d: &Dir) -> concord_jute::Stat {
        let owner = self.ephemeral_owner();
        let marker = owner == concord_jute::consts::CONTAINER_EPHEMERAL_OWNER
            || (owner as u64) & TTL_MARKER == TTL_MARKER;
        concord_jute::Stat {
            czxid: self.czxid(),
            mzxid: self.mzxid(),
            ctime: self.ctime(),
            mtime: self.mtime(),
            version: self.version,
            cversion: d.cversion.wrapping_mul(2).wrapping_sub(d.num_children),
            aversion: self.aversion,
            ephemeral_owner: if marker { 0 } else { owner },
            data_length: self.blob.data().len() as i32,
            num_children: d.num_children,
            pzxid: d.pzxid,
        }
    }
}

/// The child fields of a node: kept in the store's table only for nodes that have or had
/// children; a node without a record has no children, cversion 0 and pzxid = czxid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dir {
    first_child: u32,
    /// Number of children.
    pub num_children: i32,
    /// Number of child creates (see [`Node::stat`]).
    pub cversion: i32,
    /// Last child change zxid.
    pub pzxid: i64,
}

impl Dir {
    /// The record of a node that never had a child.
    pub fn leaf(czxid: i64) -> Dir {
        Dir::new(0, 0, czxid)
    }

    /// Child fields with these values (not yet linked to any child).
    pub fn new(num_children: i32, cversion: i32, pzxid: i64) -> Dir {
        Dir {
            first_child: NIL,
            num_children,
            cversion,
            pzxid,
        }
    }
}

type Dirs = HashMap<u32, Dir, foldhash::fast::FixedState>;

/// The high byte ZooKeeper sets in the ephemeralOwner of a TTL node.
const TTL_MARKER: u64 = 0xff00_0000_0000_0000;

type Chunk = Vec<Option<Node>>;

/// A frozen, consistent view of every node, for writing a snapshot.
#[derive(Clone)]
pub struct Frozen {
    chunks: Vec<Arc<Chunk>>,
    dirs: Arc<Dirs>,
}

impl Frozen {
    /// Every live node with its id and child fields, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = (u32, &Node, Dir)> {
        self.chunks.iter().enumerate().flat_map(move |(c, chunk)| {
            chunk.iter().enumerate().filter_map(move |(i, n)| {
                let n = n.as_ref()?;
                let id = ((c << CHUNK_BITS) + i) as u32;
                let d = self.dirs.get(&id).copied().unwrap_or(Dir::leaf(n.czxid()));
                Some((id, n, d))
            })
        })
    }
}

/// The node slab and its indexes.
pub struct Store {
    chunks: Vec<Arc<Chunk>>,
    free: Vec<u32>,
    live: usize,
    index: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    /// Shared with a snapshot's [`Frozen`] view until the next change copies it.
    dirs: Arc<Dirs>,
}

fn seed() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(0x636f_6e63_6f72_6421)
}

impl Store {
    /// A store holding only a root node.
    pub fn new(root: Node) -> Store {
        let mut s = Store {
            chunks: Vec::new(),
            free: Vec::new(),
            live: 0,
            index: HashTable::new(),
            hasher: seed(),
            dirs: Arc::new(Dirs::with_hasher(seed())),
        };
        let id = s.alloc(root);
        debug_assert_eq!(id, ROOT);
        s
    }

    fn hash(&self, parent: u32, name: &str) -> u64 {
        hash_key(&self.hasher, parent, name)
    }

    fn slot(&self, id: u32) -> Option<&Node> {
        self.chunks
            .get((id >> CHUNK_BITS) as usize)?
            .get(id as usize & (CHUNK - 1))?
            .as_ref()
    }

    /// The node with this id. Panics on a dead id: callers only hold ids from lookups.
    pub fn get(&self, id: u32) -> &Node {
        self.slot(id).expect("live node id")
    }

    /// Mutable access to a node (copies its chunk first if a snapshot shares it).
    pub fn get_mut(&mut self, id: u32) -> &mut Node {
        let chunk = Arc::make_mut(&mut self.chunks[(id >> CHUNK_BITS) as usize]);
        chunk[id as usize & (CHUNK - 1)]
            .as_mut()
            .expect("live node id")
    }

    /// The child fields of a node.
    pub fn dir(&self, id: u32) -> Dir {
        match self.dirs.get(&id) {
            Some(d) => *d,
            None => Dir::leaf(self.get(id).czxid()),
        }
    }

    /// Mutable child fields of a node (creating its record).
    pub fn dir_mut(&mut self, id: u32) -> &mut Dir {
        let leaf = Dir::leaf(self.get(id).czxid());
        Arc::make_mut(&mut self.dirs).entry(id).or_insert(leaf)
    }

    /// The wire Stat of a node.
    pub fn stat(&self, id: u32) -> concord_jute::Stat {
        self.get(id).stat(&self.dir(id))
    }

    fn alloc(&mut self, node: Node) -> u32 {
        self.live += 1;
        if let Some(id) = self.free.pop() {
            let chunk = Arc::make_mut(&mut self.chunks[(id >> CHUNK_BITS) as usize]);
            chunk[id as usize & (CHUNK - 1)] = Some(node);
            return id;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        let c = self.chunks.len() - 1;
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        chunk.push(Some(node));
        ((c << CHUNK_BITS) + chunk.len() - 1) as u32
    }

    /// Number of live nodes.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the store has no nodes (never true once built: the root always exists).
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The child of `parent` called `name`.
    pub fn child(&self, parent: u32, name: &str) -> Option<u32> {
        let h = self.hash(parent, name);
        self.index
            .find(h, |&id| {
                let n = self.get(id);
                n.parent == parent && n.blob.name() == name
            })
            .copied()
    }

    /// The node at a (valid) path.
    pub fn lookup(&self, path: &str) -> Option<u32> {
        let mut id = ROOT;
        for seg in crate::path::segments(path) {
            id = self.child(id, seg)?;
        }
        Some(id)
    }

    /// Links childless `node` under `parent` with its own child fields (`dir`, when it had a
    /// record) and returns its id. Does not touch the parent's Stat.
    pub fn insert(&mut self, parent: u32, mut node: Node, dir: Option<Dir>) -> u32 {
        node.parent = parent;
        node.prev = NIL;
        node.next = self.dir(parent).first_child;
        let h = self.hash(parent, node.blob.name());
        let next = node.next;
        let id = self.alloc(node);
        if next != NIL {
            self.get_mut(next).prev = id;
        }
        self.dir_mut(parent).first_child = id;
        if let Some(mut d) = dir {
            debug_assert_eq!(d.num_children, 0, "inserting a node with children");
            d.first_child = NIL;
            Arc::make_mut(&mut self.dirs).insert(id, d);
        }
        let Store {
            index,
            chunks,
            hasher,
            ..
        } = self;
        index.insert_unique(h, id, |&other| rehash(chunks, hasher, other));
        id
    }

    /// Unlinks and frees a childless node, returning it and its child fields (when it had a
    /// record). Does not touch the parent's Stat.
    pub fn remove(&mut self, id: u32) -> (Node, Option<Dir>) {
        let (parent, prev, next, h) = {
            let n = self.get(id);
            (n.parent, n.prev, n.next, self.hash(n.parent, n.blob.name()))
        };
        let dir = if self.dirs.contains_key(&id) {
            Arc::make_mut(&mut self.dirs).remove(&id)
        } else {
            None
        };
        debug_assert!(
            dir.is_none_or(|d| d.first_child == NIL),
            "removing a parent"
        );
        if prev != NIL {
            self.get_mut(prev).next = next;
        } else {
            self.dir_mut(parent).first_child = next;
        }
        if next != NIL {
            self.get_mut(next).prev = prev;
        }
        if let Ok(entry) = self.index.find_entry(h, |&x| x == id) {
            entry.remove();
        }
        let chunk = Arc::make_mut(&mut self.chunks[(id >> CHUNK_BITS) as usize]);
        let node = chunk[id as usize & (CHUNK - 1)]
            .take()
            .expect("live node id");
        self.free.push(id);
        self.live -= 1;
        (node, dir)
    }

    /// Ids of the children of `id`.
    pub fn children(&self, id: u32) -> Children<'_> {
        Children {
            store: self,
            next: self.dir(id).first_child,
        }
    }

    /// The full path of a node.
    pub fn path_of(&self, mut id: u32) -> String {
        if id == ROOT {
            return "/".to_string();
        }
        let mut parts = Vec::new();
        while id != ROOT && id != NIL {
            let n = self.get(id);
            parts.push(n.blob.name());
            id = n.parent;
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(p);
        }
        s
    }

    /// A consistent, cheaply made view of every node for a snapshot writer.
    pub fn freeze(&self) -> Frozen {
        Frozen {
            chunks: self.chunks.clone(),
            dirs: self.dirs.clone(),
        }
    }

    /// Rebuilds a store from nodes and their child fields (ids preserved, links rebuilt).
    pub fn from_nodes(nodes: Vec<(u32, Node, Dir)>) -> Result<Store, &'static str> {
        let mut l = StoreLoader::default();
        for (id, n, d) in nodes {
            l.push(id, n, d)?;
        }
        l.finish()
    }

    /// Links the nodes a [`StoreLoader`] placed, builds the name index, counts children and
    /// checks the shape.
    fn link(
        mut chunks: Vec<Chunk>,
        order: Vec<u32>,
        mut dirs: Dirs,
        claimed: HashMap<u32, i32, foldhash::fast::FixedState>,
    ) -> Result<Store, &'static str> {
        // The last chunk ends at the highest id, so new ids continue from there.
        if let Some(last) = chunks.last_mut() {
            while matches!(last.last(), Some(None)) {
                last.pop();
            }
        }
        let slots = chunks
            .last()
            .map_or(0, |last| (chunks.len() - 1) * CHUNK + last.len());
        let root = chunks
            .first()
            .and_then(|c| c.get(ROOT as usize))
            .and_then(Option::as_ref);
        if root.is_none_or(|r| r.parent != NIL) {
            return Err("missing root");
        }
        for d in dirs.values_mut() {
            d.first_child = NIL;
            d.num_children = 0;
        }
        let mut s = Store {
            chunks: chunks.into_iter().map(Arc::new).collect(),
            free: Vec::new(),
            live: order.len(),
            index: HashTable::with_capacity(order.len()),
            hasher: seed(),
            dirs: Arc::new(Dirs::with_hasher(seed())),
        };
        for id in (0..slots as u32).rev() {
            if s.slot(id).is_none() {
                s.free.push(id);
            }
        }
        for id in order {
            if id == ROOT {
                continue;
            }
            let parent = s.get(id).parent;
            let Some(pn) = s.slot(parent).filter(|_| parent != id) else {
                return Err("node with a missing parent");
            };
            let name = s.get(id).blob.name().to_string();
            if s.child(parent, &name).is_some() {
                return Err("duplicate child name");
            }
            let pd = dirs.entry(parent).or_insert(Dir::leaf(pn.czxid()));
            let first = pd.first_child;
            pd.first_child = id;
            pd.num_children += 1;
            s.get_mut(id).next = first;
            if first != NIL {
                s.get_mut(first).prev = id;
            }
            let h = s.hash(parent, &name);
            let Store {
                index,
                chunks,
                hasher,
                ..
            } = &mut s;
            index.insert_unique(h, id, |&other| rehash(chunks, hasher, other));
        }
        for (id, d) in &dirs {
            if s.slot(*id).is_none() {
                return Err("child fields of a missing node");
            }
            if claimed.get(id).copied().unwrap_or(0) != d.num_children {
                return Err("child count does not match the children");
            }
        }
        if claimed
            .iter()
            .any(|(id, &c)| c != 0 && !dirs.contains_key(id))
        {
            return Err("child count does not match the children");
        }
        s.dirs = Arc::new(dirs);
        // Reject cycles: every node must reach the root.
        let mut seen_ok = vec![false; slots];
        seen_ok[ROOT as usize] = true;
        for id in 0..slots as u32 {
            if s.slot(id).is_none() || seen_ok[id as usize] {
                continue;
            }
            let mut chain = Vec::new();
            let mut cur = id;
            while !seen_ok[cur as usize] {
                if chain.len() > slots {
                    return Err("cycle in parent links");
                }
                chain.push(cur);
                cur = s.get(cur).parent;
            }
            for c in chain {
                seen_ok[c as usize] = true;
            }
        }
        Ok(s)
    }
}

/// Builds a [`Store`] from nodes given one at a time, as a snapshot is read: each node goes
/// straight into its chunk, so loading never holds a second copy of the tree.
#[derive(Default)]
pub struct StoreLoader {
    chunks: Vec<Chunk>,
    order: Vec<u32>,
    dirs: Dirs,
    /// Child counts as the snapshot states them, checked against the links.
    claimed: HashMap<u32, i32, foldhash::fast::FixedState>,
}

impl StoreLoader {
    /// Places node `id` with its child fields as stored (links and child counts are rebuilt
    /// by [`StoreLoader::finish`], which checks the stored count).
    pub fn push(&mut self, id: u32, mut n: Node, d: Dir) -> Result<(), &'static str> {
        let c = (id >> CHUNK_BITS) as usize;
        while self.chunks.len() <= c {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.resize_with(CHUNK, || None);
            self.chunks.push(chunk);
        }
        let slot = &mut self.chunks[c][id as usize & (CHUNK - 1)];
        if slot.is_some() {
            return Err("duplicate node id");
        }
        n.next = NIL;
        n.prev = NIL;
        if d.num_children != 0 {
            self.claimed.insert(id, d.num_children);
        }
        if d != Dir::leaf(n.czxid()) {
            self.dirs.insert(id, d);
        }
        *slot = Some(n);
        self.order.push(id);
        Ok(())
    }

    /// Links every node under its parent and checks the tree (one root, no missing parent,
    /// duplicate name, wrong child count or cycle).
    pub fn finish(self) -> Result<Store, &'static str> {
        if self.order.is_empty() {
            return Err("no root");
        }
        Store::link(self.chunks, self.order, self.dirs, self.claimed)
    }
}

fn hash_key(hasher: &foldhash::fast::FixedState, parent: u32, name: &str) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u32(parent);
    h.write(name.as_bytes());
    h.finish()
}

/// Recomputes an indexed node's hash while the index grows (the index cannot borrow the store).
fn rehash(chunks: &[Arc<Chunk>], hasher: &foldhash::fast::FixedState, id: u32) -> u64 {
    let n = chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
        .as_ref()
        .expect("indexed node is live");
    hash_key(hasher, n.parent, n.blob.name())
}

/// Iterator over a node's child ids.
pub struct Children<'a> {
    store: &'a Store,
    next: u32,
}

impl Iterator for Children<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.next == NIL {
            return None;
        }
        let id = self.next;
        self.next = self.store.get(id).next;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        Node::new(Blob::new(name.as_bytes(), b""), 0, 1, 1)
    }

    /// Inserts a leaf and counts it in its parent, as the tree does.
    fn leaf(s: &mut Store, parent: u32, n: Node) -> u32 {
        let id = s.insert(parent, n, None);
        s.dir_mut(parent).num_children += 1;
        id
    }

    #[test]
    fn stamps_keep_48_bit_values_and_clamp_beyond() {
        for v in [
            0,
            1,
            -1,
            1_700_000_000_123,
            MAX_ZXID,
            -MAX_ZXID - 1,
            0x1234_5678_9abc,
        ] {
            assert_eq!(Stamp::new(v).get(), v);
        }
        assert_eq!(Stamp::new(i64::MAX).get(), MAX_ZXID);
        assert_eq!(Stamp::new(i64::MIN).get(), -MAX_ZXID - 1);
        let mut n = Node::new(Blob::new(b"n", b""), 0, 7, -5);
        n.set_modified(MAX_ZXID, 1 << 46);
        assert_eq!(
            (n.czxid(), n.ctime(), n.mzxid(), n.mtime()),
            (7, -5, MAX_ZXID, 1 << 46)
        );
    }

    #[test]
    fn insert_lookup_remove_and_reuse() {
        let mut s = Store::new(node(""));
        let a = leaf(&mut s, ROOT, node("a"));
        let b = leaf(&mut s, a, node("b"));
        let c = leaf(&mut s, a, node("c"));
        assert_eq!(s.lookup("/a/b"), Some(b));
        assert_eq!(s.lookup("/a/c"), Some(c));
        assert_eq!(s.lookup("/a/d"), None);
        assert_eq!(s.path_of(c), "/a/c");
        let mut kids: Vec<_> = s
            .children(a)
            .map(|i| s.get(i).blob.name().to_string())
            .collect();
        kids.sort();
        assert_eq!(kids, vec!["b", "c"]);
        s.remove(b);
        s.dir_mut(a).num_children -= 1;
        assert_eq!(s.lookup("/a/b"), None);
        assert_eq!(s.children(a).collect::<Vec<_>>(), vec![c]);
        let d = leaf(&mut s, ROOT, node("d"));
        assert_eq!(d, b, "freed slot is reused");
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn freeze_keeps_old_versions() {
        let mut s = Store::new(node(""));
        let mut ids = Vec::new();
        for i in 0..3000 {
            ids.push(leaf(&mut s, ROOT, node(&format!("n{i}"))));
        }
        let frozen = s.freeze();
        for &id in &ids[..1500] {
            s.remove(id);
            s.dir_mut(ROOT).num_children -= 1;
        }
        let x = s.lookup("/n2000").unwrap();
        s.get_mut(x).blob = Blob::new(b"n2000", b"new");
        assert_eq!(frozen.nodes().count(), 3001);
        let old = frozen.nodes().find(|(id, _, _)| *id == x).unwrap().1;
        assert_eq!(old.blob.data(), b"");
        assert_eq!(s.get(x).blob.data(), b"new");
        assert_eq!(s.len(), 1501);
    }

    #[test]
    fn rebuild_from_nodes() {
        let mut s = Store::new(node(""));
        let a = leaf(&mut s, ROOT, node("a"));
        leaf(&mut s, a, node("b"));
        let gone = leaf(&mut s, ROOT, node("x"));
        s.remove(gone);
        s.dir_mut(ROOT).num_children -= 1;
        let nodes: Vec<_> = s
            .freeze()
            .nodes()
            .map(|(i, n, d)| (i, n.clone(), d))
            .collect();
        let r = Store::from_nodes(nodes).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.lookup("/a/b").is_some());
        assert_eq!(r.children(ROOT).count(), 1);
        let mut bad: Vec<_> = s
            .freeze()
            .nodes()
            .map(|(i, n, d)| (i, n.clone(), d))
            .collect();
        bad[1].1.parent = 77;
        assert!(Store::from_nodes(bad).is_err());
        // A stored child count that does not match the children.
        for (who, delta) in [(ROOT, 1), (a, -1), (a, 1)] {
            let mut bad: Vec<_> = s
                .freeze()
                .nodes()
                .map(|(i, n, d)| (i, n.clone(), d))
                .collect();
            let d = &mut bad.iter_mut().find(|x| x.0 == who).unwrap().2;
            d.num_children += delta;
            assert_eq!(
                Store::from_nodes(bad).err(),
                Some("child count does not match the children")
            );
        }
    }

    #[test]
    fn child_fields_live_apart_and_a_snapshot_keeps_their_old_values() {
        let mut s = Store::new(node(""));
        let a = leaf(&mut s, ROOT, node("a"));
        assert_eq!(s.dir(a), Dir::leaf(1));
        assert_eq!(s.dirs.len(), 1, "only the root has a record");
        let b = leaf(&mut s, a, node("b"));
        {
            let d = s.dir_mut(a);
            d.cversion = 1;
            d.pzxid = 9;
        }
        let frozen = s.freeze();
        let (gone, gone_dir) = s.remove(b);
        s.dir_mut(a).num_children -= 1;
        s.dir_mut(a).pzxid = 10;
        assert_eq!(gone.blob.name(), "b");
        assert_eq!(gone_dir, None, "a leaf has no record");
        assert_eq!((s.dir(a).num_children, s.dir(a).pzxid), (0, 10));
        let old = frozen.nodes().find(|x| x.0 == a).unwrap().2;
        assert_eq!((old.num_children, old.cversion, old.pzxid), (1, 1, 9));
        assert_eq!(s.stat(a).cversion, 2, "one create and one delete");
        // A removed parent's record comes back with it.
        let (n, d) = s.remove(a);
        s.dir_mut(ROOT).num_children -= 1;
        assert_eq!(d.map(|d| (d.cversion, d.pzxid)), Some((1, 10)));
        let a2 = s.insert(ROOT, n, d);
        assert_eq!((s.dir(a2).cversion, s.dir(a2).pzxid), (1, 10));
        assert_eq!(s.children(a2).count(), 0);
    }
}
