//! The data tree: znodes, sessions and ACLs, changed only by [`DataTree::apply`].

use crate::acl;
use crate::blob::Blob;
use crate::path;
use crate::store::{Dir, Frozen, Node, Store, MAX_ZXID, NIL, ROOT};
use crate::txn::{Txn, TxnOp};
use concord_jute::{
    consts::{create_mode, event, op, perms, CONTAINER_EPHEMERAL_OWNER, MAX_TTL, TTL_MASK},
    Acl, CreateRequest, ErrorCode, Id, OpResult, Request, Response, Stat,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A watch trigger produced by apply: an event type and the path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event type (see `concord_jute::event`).
    pub event_type: i32,
    /// The node's path.
    pub path: String,
}

/// What applying one txn produced for the client that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success (or a multi, whose per-op errors are inside the reply).
    Reply(Response),
    /// The request failed with this code; nothing changed.
    Error(ErrorCode),
    /// A session was created with this id.
    SessionCreated(i64),
}

/// The zxid a txn was given and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The txn's zxid.
    pub zxid: i64,
    /// Its result.
    pub outcome: Outcome,
}

/// A live session as every replica knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Negotiated timeout in ms.
    pub timeout: i32,
    /// Password the client must present to resume it.
    pub passwd: Vec<u8>,
    /// Ids of the session's ephemeral nodes.
    pub(crate) ephemerals: BTreeSet<u32>,
    /// The server holding the session's connection, as last recorded in the log (0: any).
    pub owner: u64,
}

impl Session {
    /// Number of ephemeral nodes the session owns.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.len()
    }
}

/// Reference-counted, de-duplicated ACL lists (most nodes share a handful).
#[derive(Clone, Default)]
pub(crate) struct AclTable {
    pub(crate) lists: Vec<Option<(Vec<Acl>, u64)>>,
    by_value: HashMap<Vec<Acl>, u32>,
    free: Vec<u32>,
}

impl AclTable {
    pub(crate) fn intern(&mut self, acl: Vec<Acl>) -> u32 {
        if let Some(&i) = self.by_value.get(&acl) {
            if let Some((_, refs)) = self.lists[i as usize].as_mut() {
                *refs += 1;
            }
            return i;
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.lists.push(None);
                (self.lists.len() - 1) as u32
            }
        };
        self.by_value.insert(acl.clone(), i);
        self.lists[i as usize] = Some((acl, 1));
        i
    }

    pub(crate) fn release(&mut self, i: u32) {
        let slot = &mut self.lists[i as usize];
        if let Some((acl, refs)) = slot {
            *refs -= 1;
            if *refs == 0 {
                self.by_value.remove(acl);
                *slot = None;
                self.free.push(i);
            }
        }
    }

    pub(crate) fn get(&self, i: u32) -> &[Acl] {
        self.lists
            .get(i as usize)
            .and_then(|s| s.as_ref())
            .map(|(a, _)| a.as_slice())
            .unwrap_or(&[])
    }

    /// Rebuilds a table from the lists a snapshot holds; counts are recomputed from the nodes.
    pub(crate) fn from_lists(lists: Vec<Option<Vec<Acl>>>) -> AclTable {
        let mut t = AclTable::default();
        for (i, l) in lists.into_iter().enumerate() {
            match l {
                Some(acl) => {
                    t.by_value.insert(acl.clone(), i as u32);
                    t.lists.push(Some((acl, 0)));
                }
                None => {
                    t.lists.push(None);
                    t.free.push(i as u32);
                }
            }
        }
        t
    }
}

/// What kind of node an ephemeralOwner value denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A plain persistent node.
    Persistent,
    /// An ephemeral node owned by the session.
    Ephemeral(i64),
    /// A container node.
    Container,
    /// A persistent node with this TTL in ms.
    Ttl(i64),
}

impl NodeKind {
    /// Classifies an ephemeralOwner value.
    pub fn of(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_EPHEMERAL_OWNER {
            NodeKind::Container
        } else if owner & TTL_MASK == TTL_MASK {
            NodeKind::Ttl(owner & MAX_TTL)
        } else {
            NodeKind::Ephemeral(owner)
        }
    }
}

enum Undo {
    Created {
        id: u32,
        parent: u32,
        cversion: i32,
        pzxid: i64,
    },
    Deleted {
        parent: u32,
        node: Box<Node>,
        dir: Option<Dir>,
        acl: Vec<Acl>,
        pzxid: i64,
    },
    DataSet {
        id: u32,
        blob: Blob,
        mzxid: i64,
        mtime: i64,
        version: i32,
    },
    /// A quota stats node's data was rewritten (no Stat change).
    QuotaData { id: u32, blob: Blob },
    /// A path gained (true) or lost (false) its quota.
    QuotaPath { path: String, added: bool },
}

struct Ctx<'a> {
    zxid: i64,
    time: i64,
    session: i64,
    auth: &'a [Id],
}

#[derive(Default)]
struct TxnState {
    undo: Vec<Undo>,
    events: Vec<Event>,
    /// Paths of containers that lost a child in this txn.
    emptied: Vec<String>,
}

impl TxnState {
    /// Records a node event and the NodeChildrenChanged of its parent.
    fn node_changed(&mut self, event_type: i32, path: String, parent_path: &str) {
        self.events.push(Event { event_type, path });
        self.events.push(Event {
            event_type: event::NODE_CHILDREN_CHANGED,
            path: parent_path.to_string(),
        });
    }
}

/// Paths clients may not delete.
const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// The replicated state: nodes, ACLs, sessions and the zxid counter.
pub struct DataTree {
    pub(crate) store: Store,
    pub(crate) acls: AclTable,
    pub(crate) sessions: BTreeMap<i64, Session>,
    containers: BTreeSet<u32>,
    ttls: BTreeSet<u32>,
    pub(crate) last_zxid: i64,
    pub(crate) next_session_id: i64,
    data_bytes: u64,
    extended_types: bool,
    /// Paths with a quota (a `zookeeper_limits` node under `/zookeeper/quota<path>`); derived
    /// from the tree, rebuilt on load.
    quotas: BTreeSet<String>,
}

impl DataTree {
    /// A fresh tree holding `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`.
    pub fn new(extended_types: bool) -> DataTree {
        let mut acls = AclTable::default();
        let open = acls.intern(Acl::open_unsafe());
        let root = Node::new(Blob::new(b"", b""), open, 0, 0);
        let mut t = DataTree {
            store: Store::new(root),
            acls,
            sessions: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            last_zxid: 0,
            next_session_id: 0,
            data_bytes: 0,
            extended_types,
            quotas: BTreeSet::new(),
        };
        let zk = t.system_node(ROOT, "zookeeper", Acl::open_unsafe());
        t.system_node(zk, "quota", Acl::open_unsafe());
        t.system_node(zk, "config", Acl::read_unsafe());
        t
    }

    fn system_node(&mut self, parent: u32, name: &str, acl: Vec<Acl>) -> u32 {
        let a = self.acls.intern(acl);
        let id = self.add_node(
            parent,
            Node::new(Blob::new(name.as_bytes(), b""), a, 0, 0),
            None,
        );
        self.store.dir_mut(parent).num_children += 1;
        id
    }

    /// Rebuilds the derived indexes after a snapshot load.
    pub(crate) fn from_parts(
        store: Store,
        mut acls: AclTable,
        sessions: BTreeMap<i64, Session>,
        last_zxid: i64,
        next_session_id: i64,
        extended_types: bool,
    ) -> Result<DataTree, &'static str> {
        let mut t = DataTree {
            store,
            acls: AclTable::default(),
            sessions,
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            last_zxid,
            next_session_id,
            data_bytes: 0,
            extended_types,
            quotas: BTreeSet::new(),
        };
        // Child counts were checked against the links when the store was built.
        let frozen = t.store.freeze();
        for (id, n, _) in frozen.nodes() {
            match acls.lists.get_mut(n.acl as usize) {
                Some(Some((_, refs))) => *refs += 1,
                _ => return Err("node refers to a missing ACL"),
            }
            if id != ROOT {
                t.data_bytes += (n.blob.name().len() + n.blob.data().len()) as u64;
            }
            match NodeKind::of(n.ephemeral_owner()) {
                NodeKind::Persistent => {}
                NodeKind::Container => {
                    t.containers.insert(id);
                }
                NodeKind::Ttl(_) => {
                    t.ttls.insert(id);
                }
                NodeKind::Ephemeral(owner) => match t.sessions.get_mut(&owner) {
                    Some(s) => {
                        s.ephemerals.insert(id);
                    }
                    None => return Err("ephemeral node of an unknown session"),
                },
            }
        }
        drop(frozen);
        // Drop ACL lists nothing refers to.
        for i in 0..acls.lists.len() {
            if matches!(acls.lists[i], Some((_, 0))) {
                if let Some((acl, _)) = acls.lists[i].take() {
                    acls.by_value.remove(&acl);
                }
                acls.free.push(i as u32);
            }
        }
        t.acls = acls;
        t.quotas = t.find_quotas();
        Ok(t)
    }

    // ----- bookkeeping shared by every mutation -----

    fn add_node(&mut self, parent: u32, node: Node, dir: Option<Dir>) -> u32 {
        let owner = node.ephemeral_owner();
        self.data_bytes += (node.blob.name().len() + node.blob.data().len()) as u64;
        let id = self.store.insert(parent, node, dir);
        match NodeKind::of(owner) {
            NodeKind::Persistent => {}
            NodeKind::Container => {
                self.containers.insert(id);
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(id);
            }
            NodeKind::Ephemeral(s) => {
                if let Some(sess) = self.sessions.get_mut(&s) {
                    sess.ephemerals.insert(id);
                }
            }
        }
        id
    }

    fn drop_node(&mut self, id: u32) -> (Node, Option<Dir>) {
        let (node, dir) = self.store.remove(id);
        self.data_bytes -= (node.blob.name().len() + node.blob.data().len()) as u64;
        match NodeKind::of(node.ephemeral_owner()) {
            NodeKind::Persistent => {}
            NodeKind::Container => {
                self.containers.remove(&id);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(&id);
            }
            NodeKind::Ephemeral(s) => {
                if let Some(sess) = self.sessions.get_mut(&s) {
                    sess.ephemerals.remove(&id);
                }
            }
        }
        self.acls.release(node.acl);
        (node, dir)
    }

    /// Removes a childless node as part of a txn: parent bookkeeping, events, container tracking.
    fn delete_leaf(&mut self, id: u32, path: &str, ctx: &Ctx<'_>, st: &mut TxnState, undo: bool) {
        let parent = self.store.get(id).parent;
        let old_pzxid = self.store.dir(parent).pzxid;
        let acl = if undo {
            self.acls.get(self.store.get(id).acl).to_vec()
        } else {
            Vec::new()
        };
        let (node, dir) = self.drop_node(id);
        self.quota_on_delete(path, node.blob.data().len() as i64, st, undo);
        let p = self.store.dir_mut(parent);
        p.num_children -= 1;
        p.pzxid = ctx.zxid;
        let parent_is_container =
            self.store.get(parent).ephemeral_owner() == CONTAINER_EPHEMERAL_OWNER;
        let parent_path = path::split_parent(path).map(|(pp, _)| pp).unwrap_or("/");
        if undo {
            st.undo.push(Undo::Deleted {
                parent,
                node: Box::new(node),
                dir,
                acl,
                pzxid: old_pzxid,
            });
        }
        st.node_changed(event::NODE_DELETED, path.to_string(), parent_path);
        if parent_is_container {
            st.emptied.push(parent_path.to_string());
        }
    }

    /// Puts a node's earlier name+data back (rollback), keeping the data size count right.
    fn restore_blob(&mut self, id: u32, blob: Blob) -> &mut Node {
        let old_len = blob.data().len() as u64;
        let n = self.store.get_mut(id);
        let new_len = n.blob.data().len() as u64;
        n.blob = blob;
        self.data_bytes = self.data_bytes - new_len + old_len;
        self.store.get_mut(id)
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Created {
                    id,
                    parent,
                    cversion,
                    pzxid,
                } => {
                    self.drop_node(id);
                    let p = self.store.dir_mut(parent);
                    p.num_children -= 1;
                    p.cversion = cversion;
                    p.pzxid = pzxid;
                }
                Undo::Deleted {
                    parent,
                    mut node,
                    dir,
                    acl,
                    pzxid,
                } => {
                    node.acl = self.acls.intern(acl);
                    self.add_node(parent, *node, dir);
                    let p = self.store.dir_mut(parent);
                    p.num_children += 1;
                    p.pzxid = pzxid;
                }
                Undo::DataSet {
                    id,
                    blob,
                    mzxid,
                    mtime,
                    version,
                } => {
                    let n = self.restore_blob(id, blob);
                    n.set_modified(mzxid, mtime);
                    n.version = version;
                }
                Undo::QuotaData { id, blob } => {
                    self.restore_blob(id, blob);
                }
                Undo::QuotaPath { path, added } => {
                    if added {
                        self.quotas.remove(&path);
                    } else {
                        self.quotas.insert(path);
                    }
                }
            }
        }
    }
}

/// Session ids start from the proposer's clock (like ZooKeeper) and only ever grow.
fn session_id_base(time_ms: i64) -> i64 {
    (((time_ms as u64) << 24) >> 8) as i64
}

fn to_op_result(op_code: i32, r: Response) -> OpResult {
    match r {
        Response::Create(p) => OpResult::Create(p),
        Response::Create2(p, s) => OpResult::Create2(p, s),
        Response::Stat(s) => OpResult::SetData(s),
        _ if op_code == op::CHECK => OpResult::Check,
        _ => OpResult::Delete,
    }
}

impl DataTree {
    // ----- apply -----

    /// Applies one committed txn: gives it the next zxid, changes the tree (or not, on error),
    /// appends the watch triggers to `events` and returns the client's outcome.
    pub fn apply(&mut self, txn: &Txn, events: &mut Vec<Event>) -> Applied {
        self.apply_from(txn, 0, events)
    }

    /// Whether `txn`, a client's request that came through server `origin`, names a session
    /// that has since moved to another server (ZooKeeper's SESSIONMOVED). Expiry is the
    /// leader's, not a client's, and is never refused.
    fn moved(&self, txn: &Txn, origin: u64) -> bool {
        let client = matches!(
            txn.op,
            TxnOp::Write(_) | TxnOp::CloseSession { expired: false }
        );
        client
            && origin != 0
            && self
                .sessions
                .get(&txn.session)
                .is_some_and(|s| s.owner != 0 && s.owner != origin)
    }

    /// Applies `txn`, proposed through server `origin` (the server holding its client's
    /// connection; 0 when not known): a session is owned by the server that created it or
    /// last took it over (`MoveSession`), and a client request through another server is
    /// refused with SESSIONMOVED.
    pub fn apply_from(&mut self, txn: &Txn, origin: u64, events: &mut Vec<Event>) -> Applied {
        if self.last_zxid >= MAX_ZXID {
            // Nodes hold zxids in 48 bits: at the end of that range every txn is refused
            // (the same on every replica), as ZooKeeper stops at the end of its counter.
            return Applied {
                zxid: self.last_zxid,
                outcome: Outcome::Error(ErrorCode::SystemError),
            };
        }
        self.last_zxid += 1;
        let zxid = self.last_zxid;
        let ctx = Ctx {
            zxid,
            time: txn.time,
            session: txn.session,
            auth: &txn.auth,
        };
        let outcome = match &txn.op {
            TxnOp::CreateSession { timeout, passwd } => {
                let id = self.next_session_id.max(session_id_base(txn.time));
                self.next_session_id = id + 1;
                self.sessions.insert(
                    id,
                    Session {
                        timeout: *timeout,
                        passwd: passwd.clone(),
                        ephemerals: BTreeSet::new(),
                        // Owned by no server until it first resumes somewhere: a log written
                        // before owners existed replays to the same state.
                        owner: 0,
                    },
                );
                Outcome::SessionCreated(id)
            }
            TxnOp::MoveSession => match self.sessions.get_mut(&txn.session) {
                Some(s) => {
                    s.owner = origin;
                    Outcome::Reply(Response::Empty)
                }
                None => Outcome::Error(ErrorCode::SessionExpired),
            },
            _ if self.moved(txn, origin) => Outcome::Error(ErrorCode::SessionMoved),
            TxnOp::CloseSession { .. } | TxnOp::Write(Request::CloseSession) => {
                self.close_session(&ctx, events);
                Outcome::Reply(Response::Empty)
            }
            TxnOp::Write(req) => {
                if !self.sessions.contains_key(&txn.session) {
                    Outcome::Error(ErrorCode::SessionExpired)
                } else if let Request::Multi(ops) = req {
                    self.apply_multi(ops, &ctx, events)
                } else {
                    let mut st = TxnState::default();
                    match self.apply_op(req, &ctx, &mut st, false) {
                        Ok(r) => {
                            self.finish(st, &ctx, events);
                            Outcome::Reply(r)
                        }
                        Err(e) => Outcome::Error(e),
                    }
                }
            }
            TxnOp::PurgeStale => {
                self.purge_stale(&ctx, events);
                Outcome::Reply(Response::Empty)
            }
        };
        Applied { zxid, outcome }
    }

    /// Publishes a successful txn's events and removes containers it left empty.
    fn finish(&mut self, mut st: TxnState, ctx: &Ctx<'_>, events: &mut Vec<Event>) {
        while let Some(p) = st.emptied.pop() {
            let Some(id) = self.store.lookup(&p) else {
                continue;
            };
            if self.store.get(id).ephemeral_owner() == CONTAINER_EPHEMERAL_OWNER
                && self.store.dir(id).num_children == 0
            {
                self.delete_leaf(id, &p, ctx, &mut st, false);
            }
        }
        events.append(&mut st.events);
    }

    fn apply_multi(&mut self, ops: &[Request], ctx: &Ctx<'_>, events: &mut Vec<Event>) -> Outcome {
        let mut st = TxnState::default();
        let mut results = Vec::with_capacity(ops.len());
        for (i, req) in ops.iter().enumerate() {
            match self.apply_op(req, ctx, &mut st, true) {
                Ok(r) => results.push(to_op_result(req.op_code(), r)),
                Err(e) => {
                    self.rollback(std::mem::take(&mut st.undo));
                    let results = (0..ops.len())
                        .map(|j| {
                            OpResult::Error(match j.cmp(&i) {
                                std::cmp::Ordering::Less => 0,
                                std::cmp::Ordering::Equal => e.code(),
                                std::cmp::Ordering::Greater => {
                                    ErrorCode::RuntimeInconsistency.code()
                                }
                            })
                        })
                        .collect();
                    return Outcome::Reply(Response::Multi(results));
                }
            }
        }
        self.finish(st, ctx, events);
        Outcome::Reply(Response::Multi(results))
    }

    fn apply_op(
        &mut self,
        req: &Request,
        ctx: &Ctx<'_>,
        st: &mut TxnState,
        undo: bool,
    ) -> Result<Response, ErrorCode> {
        match req {
            Request::Create(c) => self.create(c, ctx, st, undo),
            Request::Delete { path, version } => {
                path::check(path)?;
                if SPECIAL_PATHS.contains(&path.as_str()) {
                    return Err(ErrorCode::BadArguments);
                }
                let (pp, _) = path::split_parent(path).ok_or(ErrorCode::BadArguments)?;
                let parent = self.store.lookup(pp).ok_or(ErrorCode::NoNode)?;
                acl::check(self.acl_of(parent), perms::DELETE, ctx.auth)?;
                let id = self.store.lookup(path).ok_or(ErrorCode::NoNode)?;
                let n = self.store.get(id);
                if *version != -1 && *version != n.version {
                    return Err(ErrorCode::BadVersion);
                }
                if self.store.dir(id).num_children > 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                self.delete_leaf(id, path, ctx, st, undo);
                Ok(Response::Empty)
            }
            Request::DeleteContainer { path } => {
                path::check(path)?;
                let id = self.store.lookup(path).ok_or(ErrorCode::NoNode)?;
                let n = self.store.get(id);
                if !matches!(
                    NodeKind::of(n.ephemeral_owner()),
                    NodeKind::Container | NodeKind::Ttl(_)
                ) {
                    return Err(ErrorCode::BadArguments);
                }
                if self.store.dir(id).num_children > 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                self.delete_leaf(id, path, ctx, st, undo);
                Ok(Response::Empty)
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                path::check(path)?;
                let id = self.store.lookup(path).ok_or(ErrorCode::NoNode)?;
                acl::check(self.acl_of(id), perms::WRITE, ctx.auth)?;
                let n = self.store.get(id);
                if *version != -1 && *version != n.version {
                    return Err(ErrorCode::BadVersion);
                }
                let old_len = n.blob.data().len() as u64;
                let new_blob = n.blob.with_data(data.as_deref());
                let n = self.store.get_mut(id);
                let old_blob = std::mem::replace(&mut n.blob, new_blob);
                if undo {
                    st.undo.push(Undo::DataSet {
                        id,
                        blob: old_blob,
                        mzxid: n.mzxid(),
                        mtime: n.mtime(),
                        version: n.version,
                    });
                }
                n.set_modified(ctx.zxid, ctx.time);
                n.version = n.version.wrapping_add(1);
                let stat = self.store.stat(id);
                let new_len = data.as_ref().map_or(0, |d| d.len()) as u64;
                self.data_bytes = self.data_bytes - old_len + new_len;
                if let Some(q) = self.quota_prefix(path) {
                    self.add_to_quota(&q, 0, new_len as i64 - old_len as i64, st, undo);
                }
                st.events.push(Event {
                    event_type: event::NODE_DATA_CHANGED,
                    path: path.clone(),
                });
                Ok(Response::Stat(stat))
            }
            Request::SetAcl { path, acl, version } => {
                path::check(path)?;
                let fixed = acl::fixup(acl, ctx.auth)?;
                let id = self.store.lookup(path).ok_or(ErrorCode::NoNode)?;
                acl::check(self.acl_of(id), perms::ADMIN, ctx.auth)?;
                let n = self.store.get(id);
                if *version != -1 && *version != n.aversion {
                    return Err(ErrorCode::BadVersion);
                }
                let old = n.acl;
                let new = self.acls.intern(fixed);
                self.acls.release(old);
                let n = self.store.get_mut(id);
                n.acl = new;
                n.aversion = n.aversion.wrapping_add(1);
                Ok(Response::Stat(self.store.stat(id)))
            }
            Request::Check { path, version } => {
                path::check(path)?;
                let id = self.store.lookup(path).ok_or(ErrorCode::NoNode)?;
                acl::check(self.acl_of(id), perms::READ, ctx.auth)?;
                if *version != -1 && *version != self.store.get(id).version {
                    return Err(ErrorCode::BadVersion);
                }
                Ok(Response::Empty)
            }
            Request::Reconfig(_) => Err(ErrorCode::ReconfigDisabled),
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    fn create(
        &mut self,
        c: &CreateRequest,
        ctx: &Ctx<'_>,
        st: &mut TxnState,
        undo: bool,
    ) -> Result<Response, ErrorCode> {
        use create_mode::*;
        if !(PERSISTENT..=PERSISTENT_SEQUENTIAL_WITH_TTL).contains(&c.flags) {
            return Err(ErrorCode::BadArguments);
        }
        let sequential = matches!(
            c.flags,
            PERSISTENT_SEQUENTIAL | EPHEMERAL_SEQUENTIAL | PERSISTENT_SEQUENTIAL_WITH_TTL
        );
        let ttl_mode = matches!(
            c.flags,
            PERSISTENT_WITH_TTL | PERSISTENT_SEQUENTIAL_WITH_TTL
        );
        if ttl_mode && !self.extended_types {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl = if c.op == op::CREATE_TTL { c.ttl } else { -1 };
        if ttl_mode {
            if ttl <= 0 || ttl > MAX_TTL {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        path::validate(&c.path, sequential).map_err(|_| ErrorCode::BadArguments)?;
        if c.path == "/" && !sequential {
            return Err(ErrorCode::NodeExists);
        }
        let slash = c.path.rfind('/').ok_or(ErrorCode::BadArguments)?;
        let parent_path = if slash == 0 { "/" } else { &c.path[..slash] };
        let prefix = &c.path[slash + 1..];
        let acl = acl::fixup(&c.acl, ctx.auth)?;
        let parent = self.store.lookup(parent_path).ok_or(ErrorCode::NoNode)?;
        acl::check(self.acl_of(parent), perms::CREATE, ctx.auth)?;
        let name = if sequential {
            format!("{prefix}{:010}", self.store.dir(parent).cversion)
        } else {
            prefix.to_string()
        };
        if self.store.child(parent, &name).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(
            NodeKind::of(self.store.get(parent).ephemeral_owner()),
            NodeKind::Ephemeral(_)
        ) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let owner = match c.flags {
            EPHEMERAL | EPHEMERAL_SEQUENTIAL => ctx.session,
            CONTAINER => CONTAINER_EPHEMERAL_OWNER,
            PERSISTENT_WITH_TTL | PERSISTENT_SEQUENTIAL_WITH_TTL => TTL_MASK | ttl,
            _ => 0,
        };
        let full = path::join(parent_path, &name);
        let acl_idx = self.acls.intern(acl);
        let node = Node::new(
            Blob::with_owner(name.as_bytes(), c.data.as_deref(), owner),
            acl_idx,
            ctx.zxid,
            ctx.time,
        );
        let id = self.add_node(parent, node, None);
        let p = self.store.dir_mut(parent);
        if undo {
            st.undo.push(Undo::Created {
                id,
                parent,
                cversion: p.cversion,
                pzxid: p.pzxid,
            });
        }
        p.cversion = p.cversion.wrapping_add(1);
        p.pzxid = ctx.zxid;
        p.num_children += 1;
        let data_len = c.data.as_ref().map_or(0, |d| d.len()) as i64;
        self.quota_on_create(parent_path, &name, &full, data_len, st, undo);
        st.node_changed(event::NODE_CREATED, full.clone(), parent_path);
        Ok(if c.op == op::CREATE {
            Response::Create(full)
        } else {
            Response::Create2(full, self.store.stat(id))
        })
    }

    // ----- quotas, as ZooKeeper keeps them -----
    //
    // `/zookeeper/quota<path>/zookeeper_limits` gives `<path>` a quota; creating
    // `/zookeeper/quota<path>/zookeeper_stats` fills it with the subtree's node count and data
    // bytes (`count=N,bytes=M`), and every create, delete and setData below `<path>` keeps it up
    // to date. As in ZooKeeper, the stats node's data changes without a new version or a watch
    // event, and limits are not enforced.

    /// Handles a node just created at `full` (`name` under `parent_path`) for quotas.
    fn quota_on_create(
        &mut self,
        parent_path: &str,
        name: &str,
        full: &str,
        data_len: i64,
        st: &mut TxnState,
        undo: bool,
    ) {
        if let Some(target) = quota_target(parent_path) {
            if name == QUOTA_LIMITS && self.quotas.insert(target.to_string()) && undo {
                st.undo.push(Undo::QuotaPath {
                    path: target.to_string(),
                    added: true,
                });
            }
            if name == QUOTA_STATS {
                let (count, bytes) = self.subtree_usage(target);
                if let Some(id) = self.store.lookup(full) {
                    let text = format!("count={count},bytes={bytes}");
                    self.set_quota_data(id, text.as_bytes(), st, undo);
                }
            }
        }
        if let Some(q) = self.quota_prefix(full) {
            self.add_to_quota(&q, 1, data_len, st, undo);
        }
    }

    /// Handles a node just deleted at `path` (which held `data_len` bytes) for quotas.
    fn quota_on_delete(&mut self, path: &str, data_len: i64, st: &mut TxnState, undo: bool) {
        if let Some((parent_path, name)) = path::split_parent(path) {
            if name == QUOTA_LIMITS {
                if let Some(target) = quota_target(parent_path) {
                    if self.quotas.remove(target) && undo {
                        st.undo.push(Undo::QuotaPath {
                            path: target.to_string(),
                            added: false,
                        });
                    }
                }
            }
        }
        if let Some(q) = self.quota_prefix(path) {
            self.add_to_quota(&q, -1, -data_len, st, undo);
        }
    }

    /// The longest path with a quota that is `path` or an ancestor of it (never the root).
    fn quota_prefix(&self, path: &str) -> Option<String> {
        if self.quotas.is_empty() {
            return None;
        }
        self.quotas
            .iter()
            .filter(|q| {
                q.as_str() != "/"
                    && path.starts_with(q.as_str())
                    && matches!(path.as_bytes().get(q.len()), None | Some(b'/'))
            })
            .max_by_key(|q| q.len())
            .cloned()
    }

    /// Adds to the count and bytes in the stats node of the quota at `prefix`.
    fn add_to_quota(
        &mut self,
        prefix: &str,
        count: i64,
        bytes: i64,
        st: &mut TxnState,
        undo: bool,
    ) {
        let Some(id) = self
            .store
            .lookup(&format!("{QUOTA_ROOT}{prefix}/{QUOTA_STATS}"))
        else {
            return;
        };
        let text = update_stats_track(self.store.get(id).blob.data(), count, bytes);
        self.set_quota_data(id, text.as_bytes(), st, undo);
    }

    /// Rewrites a stats node's data, leaving its Stat alone.
    fn set_quota_data(&mut self, id: u32, data: &[u8], st: &mut TxnState, undo: bool) {
        let n = self.store.get(id);
        let old_len = n.blob.data().len() as u64;
        let new_blob = n.blob.with_data(Some(data));
        let old = std::mem::replace(&mut self.store.get_mut(id).blob, new_blob);
        self.data_bytes = self.data_bytes - old_len + data.len() as u64;
        if undo {
            st.undo.push(Undo::QuotaData { id, blob: old });
        }
    }

    /// Node count and data bytes of the subtree at `path`, itself included (0, 0 if missing).
    fn subtree_usage(&self, path: &str) -> (i64, i64) {
        let Some(id) = self.store.lookup(path) else {
            return (0, 0);
        };
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            count += 1;
            bytes += self.store.get(n).blob.data().len() as i64;
            stack.extend(self.store.children(n));
        }
        (count, bytes)
    }

    /// Every path with a quota, found from the `zookeeper_limits` nodes.
    fn find_quotas(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Some(root) = self.store.lookup(QUOTA_ROOT) else {
            return out;
        };
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            for c in self.store.children(n) {
                if self.store.get(c).blob.name() == QUOTA_LIMITS {
                    let parent_path = self.store.path_of(n);
                    if let Some(target) = quota_target(&parent_path) {
                        out.insert(target.to_string());
                    }
                }
                stack.push(c);
            }
        }
        out
    }

    /// The paths that have a quota.
    pub fn quota_paths(&self) -> impl Iterator<Item = &str> {
        self.quotas.iter().map(String::as_str)
    }

    fn close_session(&mut self, ctx: &Ctx<'_>, events: &mut Vec<Event>) {
        let Some(s) = self.sessions.get(&ctx.session) else {
            return;
        };
        let mut doomed: Vec<(String, u32)> = s
            .ephemerals
            .iter()
            .map(|&id| (self.store.path_of(id), id))
            .collect();
        doomed.sort();
        let mut st = TxnState::default();
        for (path, id) in doomed {
            self.delete_leaf(id, &path, ctx, &mut st, false);
        }
        self.sessions.remove(&ctx.session);
        self.finish(st, ctx, events);
    }

    /// Ids of TTL nodes past their TTL and of empty containers that once had children.
    fn stale_nodes(&self, now: i64) -> Vec<u32> {
        let mut out = Vec::new();
        for &id in &self.ttls {
            let n = self.store.get(id);
            if let NodeKind::Ttl(ttl) = NodeKind::of(n.ephemeral_owner()) {
                if self.store.dir(id).num_children == 0 && now - n.mtime() > ttl {
                    out.push(id);
                }
            }
        }
        for &id in &self.containers {
            let d = self.store.dir(id);
            if d.num_children == 0 && d.cversion > 0 {
                out.push(id);
            }
        }
        out
    }

    /// Whether a PurgeStale txn at time `now` would delete anything.
    pub fn has_stale(&self, now: i64) -> bool {
        !self.stale_nodes(now).is_empty()
    }

    fn purge_stale(&mut self, ctx: &Ctx<'_>, events: &mut Vec<Event>) {
        let mut doomed: Vec<(String, u32)> = self
            .stale_nodes(ctx.time)
            .into_iter()
            .map(|id| (self.store.path_of(id), id))
            .collect();
        doomed.sort();
        let mut st = TxnState::default();
        for (path, id) in doomed {
            self.delete_leaf(id, &path, ctx, &mut st, false);
        }
        self.finish(st, ctx, events);
    }

    // ----- reads -----

    fn acl_of(&self, id: u32) -> &[Acl] {
        self.acls.get(self.store.get(id).acl)
    }

    fn node_at(&self, path: &str) -> Result<u32, ErrorCode> {
        path::check(path)?;
        self.store.lookup(path).ok_or(ErrorCode::NoNode)
    }

    /// getData: the data (`None` when null) and Stat, if `auth` may READ.
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Option<&[u8]>, Stat), ErrorCode> {
        let id = self.node_at(path)?;
        acl::check(self.acl_of(id), perms::READ, auth)?;
        let n = self.store.get(id);
        Ok((n.blob.data_opt(), self.store.stat(id)))
    }

    /// exists: the Stat, or None when the node is absent (no ACL check, as in ZooKeeper).
    pub fn exists(&self, path: &str) -> Result<Option<Stat>, ErrorCode> {
        path::check(path)?;
        Ok(self.store.lookup(path).map(|id| self.store.stat(id)))
    }

    /// getChildren: the children's names and the node's Stat, if `auth` may READ.
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<&str>, Stat), ErrorCode> {
        let id = self.node_at(path)?;
        acl::check(self.acl_of(id), perms::READ, auth)?;
        let names = self
            .store
            .children(id)
            .map(|c| self.store.get(c).blob.name())
            .collect();
        Ok((names, self.store.stat(id)))
    }

    /// getACL: needs READ or ADMIN; without ADMIN, digest hashes are redacted.
    /// Checks that `auth` grants `perm` on the node at `path`.
    pub fn check_perm(&self, path: &str, perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
        acl::check(self.acl_of(self.node_at(path)?), perm, auth)
    }

    /// getACL: the node's ACL (digest hashes hidden from a reader without ADMIN) and Stat.
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let id = self.node_at(path)?;
        let acl = self.acl_of(id);
        acl::check(acl, perms::READ | perms::ADMIN, auth)?;
        let shown = if acl::check(acl, perms::ADMIN, auth).is_ok() {
            acl.to_vec()
        } else {
            acl::redact(acl)
        };
        Ok((shown, self.store.stat(id)))
    }

    /// getAllChildrenNumber: the number of descendants of `path`.
    pub fn all_children_number(&self, path: &str, auth: &[Id]) -> Result<i32, ErrorCode> {
        let id = self.node_at(path)?;
        acl::check(self.acl_of(id), perms::READ, auth)?;
        let mut count = 0i64;
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            for c in self.store.children(n) {
                count += 1;
                stack.push(c);
            }
        }
        Ok(count.min(i32::MAX as i64) as i32)
    }

    /// getEphemerals: the session's ephemeral paths that start with `prefix`.
    pub fn ephemerals(&self, session: i64, prefix: &str) -> Vec<String> {
        let Some(s) = self.sessions.get(&session) else {
            return Vec::new();
        };
        let all = prefix.trim().is_empty() || prefix.trim() == "/";
        let mut v: Vec<String> = s
            .ephemerals
            .iter()
            .map(|&id| self.store.path_of(id))
            .filter(|p| all || p.starts_with(prefix))
            .collect();
        v.sort();
        v
    }

    /// The session with this id, if it is live.
    pub fn session(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// Every live session.
    pub fn sessions(&self) -> impl Iterator<Item = (i64, &Session)> {
        self.sessions.iter().map(|(k, v)| (*k, v))
    }

    /// Ephemeral paths of every session (for the `dump` four-letter word).
    pub fn all_ephemerals(&self) -> Vec<(i64, Vec<String>)> {
        self.sessions
            .keys()
            .map(|&s| (s, self.ephemerals(s, "/")))
            .collect()
    }

    /// Records a new cluster membership in `/zookeeper/config`: writes `members` followed by
    /// `version=<version in hex>`, sets the data version to -1 (as ZooKeeper's reconfig txn
    /// does) and mzxid to the last zxid, and reports a data change. Takes no zxid of its own,
    /// so a server replaying membership entries its peers got from a snapshot still agrees
    /// with them on every zxid.
    pub fn set_config(&mut self, members: &str, version: u64, events: &mut Vec<Event>) {
        let zxid = self.last_zxid;
        let text = if members.is_empty() {
            format!("version={version:x}")
        } else {
            format!("{members}\nversion={version:x}")
        };
        let id = self
            .store
            .lookup(CONFIG_PATH)
            .expect("/zookeeper/config is created with the tree and cannot be deleted");
        let n = self.store.get(id);
        let old_len = n.blob.data().len() as u64;
        let blob = n.blob.with_data(Some(text.as_bytes()));
        let n = self.store.get_mut(id);
        n.blob = blob;
        let mtime = n.mtime();
        n.set_modified(zxid, mtime);
        n.version = -1;
        self.data_bytes = self.data_bytes - old_len + text.len() as u64;
        events.push(Event {
            event_type: event::NODE_DATA_CHANGED,
            path: CONFIG_PATH.to_string(),
        });
    }

    /// The zxid of the last applied txn.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Number of znodes, including the root and /zookeeper nodes.
    pub fn node_count(&self) -> usize {
        self.store.len()
    }

    /// Bytes of names and data held (ZooKeeper's approximate data size).
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Number of ephemeral nodes.
    pub fn ephemeral_count(&self) -> usize {
        self.sessions.values().map(|s| s.ephemerals.len()).sum()
    }

    /// Whether TTL nodes may be created.
    pub fn extended_types(&self) -> bool {
        self.extended_types
    }

    /// A consistent view for a snapshot, made in time proportional to the number of chunks,
    /// sessions and ACL lists, not nodes.
    pub fn freeze(&self) -> FrozenTree {
        FrozenTree {
            nodes: self.store.freeze(),
            acls: self
                .acls
                .lists
                .iter()
                .map(|s| s.as_ref().map(|(a, _)| a.clone()))
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(&id, s)| (id, s.timeout, s.passwd.clone(), s.owner))
                .collect(),
            last_zxid: self.last_zxid,
            next_session_id: self.next_session_id,
        }
    }
}

/// A frozen copy of the tree's state, written out as a snapshot while writes continue.
#[derive(Clone)]
pub struct FrozenTree {
    pub(crate) nodes: Frozen,
    pub(crate) acls: Vec<Option<Vec<Acl>>>,
    pub(crate) sessions: Vec<(i64, i32, Vec<u8>, u64)>,
    pub(crate) last_zxid: i64,
    pub(crate) next_session_id: i64,
}

impl FrozenTree {
    /// The zxid the snapshot reflects.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }
}

/// Used by snapshot loading: the root has no parent.
pub(crate) const ROOT_PARENT: u32 = NIL;

/// Where ZooKeeper keeps quotas.
const QUOTA_ROOT: &str = "/zookeeper/quota";
/// The node holding the cluster membership (ZooKeeper's dynamic config).
pub const CONFIG_PATH: &str = "/zookeeper/config";
/// The node that gives its parent's path a quota.
const QUOTA_LIMITS: &str = "zookeeper_limits";
/// The node holding a quota's usage.
const QUOTA_STATS: &str = "zookeeper_stats";

/// The path a quota node's parent stands for: `/zookeeper/quota/a/b` → `/a/b`.
fn quota_target(parent_path: &str) -> Option<&str> {
    parent_path
        .strip_prefix(QUOTA_ROOT)
        .filter(|rest| rest.starts_with('/'))
}

/// ZooKeeper's `StatsTrack` update: parses `key=value,...`, adds to `count` and `bytes` (a
/// missing one counts as -1, as in ZooKeeper) and writes `count=..,bytes=..` first, then the
/// other keys sorted.
fn update_stats_track(old: &[u8], count: i64, bytes: i64) -> String {
    let text = String::from_utf8_lossy(old);
    let mut fields: BTreeMap<String, i64> = BTreeMap::new();
    for pair in text.split(',') {
        if let Some((k, v)) = pair.split_once('=') {
            if let Ok(v) = v.trim().parse::<i64>() {
                fields.insert(k.trim().to_string(), v);
            }
        }
    }
    let c = fields.remove("count").unwrap_or(-1) + count;
    let b = fields.remove("bytes").unwrap_or(-1) + bytes;
    let mut out = format!("count={c},bytes={b}");
    for (k, v) in fields {
        out.push_str(&format!(",{k}={v}"));
    }
    out
}
