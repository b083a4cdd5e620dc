//! Watch registrations of this server's connections and the delivery of triggered events.
//!
//! Mirrors ZooKeeper's two watch tables: "data" watches (getData, and exists on any node) fire on
//! NodeCreated, NodeDeleted and NodeDataChanged; "child" watches fire on NodeChildrenChanged and
//! NodeDeleted. One-shot watches are removed when they fire. Persistent watches (addWatch mode 0)
//! sit in both tables and stay; persistent-recursive watches (mode 1) sit in the data table and
//! also match every descendant. A connection gets one copy of an event however many of its
//! watches match.

use crate::rng::{HashMap, HashSet};
use concord_jute::consts::{event, watcher_type, xid};
use concord_jute::{ErrorCode, ReplyHeader, WatcherEvent};

/// Id of a client connection on this server.
pub type ConnId = u64;

#[derive(Default)]
struct Table {
    by_path: HashMap<String, HashSet<ConnId>>,
    by_conn: HashMap<ConnId, HashSet<String>>,
}

impl Table {
    fn add(&mut self, path: &str, conn: ConnId) {
        self.by_path
            .entry(path.to_string())
            .or_default()
            .insert(conn);
        self.by_conn
            .entry(conn)
            .or_default()
            .insert(path.to_string());
    }

    fn contains(&self, path: &str, conn: ConnId) -> bool {
        self.by_path.get(path).is_some_and(|s| s.contains(&conn))
    }

    fn remove(&mut self, path: &str, conn: ConnId) -> bool {
        let Some(set) = self.by_path.get_mut(path) else {
            return false;
        };
        let had = set.remove(&conn);
        if set.is_empty() {
            self.by_path.remove(path);
        }
        if let Some(paths) = self.by_conn.get_mut(&conn) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
        had
    }

    /// Removes and returns every watcher on `path`.
    fn take(&mut self, path: &str) -> Vec<ConnId> {
        let Some(set) = self.by_path.remove(path) else {
            return Vec::new();
        };
        for c in &set {
            if let Some(paths) = self.by_conn.get_mut(c) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_conn.remove(c);
                }
            }
        }
        set.into_iter().collect()
    }

    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(paths) = self.by_conn.remove(&conn) {
            for p in paths {
                if let Some(set) = self.by_path.get_mut(&p) {
                    set.remove(&conn);
                    if set.is_empty() {
                        self.by_path.remove(&p);
                    }
                }
            }
        }
    }

    fn count(&self) -> usize {
        self.by_path.values().map(|s| s.len()).sum()
    }
}

/// The kinds of watch a connection can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// One-shot data/exist watch.
    Data,
    /// One-shot child watch.
    Child,
    /// Persistent watch on one node.
    Persistent,
    /// Persistent watch on a node and its descendants.
    PersistentRecursive,
}

/// All watches of this server's connections.
#[derive(Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
    persistent: Table,
    recursive: Table,
}

impl WatchManager {
    /// Registers a watch.
    pub fn add(&mut self, kind: WatchKind, path: &str, conn: ConnId) {
        self.table_mut(kind).add(path, conn);
    }

    fn table_mut(&mut self, kind: WatchKind) -> &mut Table {
        match kind {
            WatchKind::Data => &mut self.data,
            WatchKind::Child => &mut self.child,
            WatchKind::Persistent => &mut self.persistent,
            WatchKind::PersistentRecursive => &mut self.recursive,
        }
    }

    fn kinds_for(watcher_type: i32) -> Result<&'static [WatchKind], ErrorCode> {
        Ok(match watcher_type {
            watcher_type::CHILDREN => &[WatchKind::Child],
            watcher_type::DATA => &[WatchKind::Data],
            watcher_type::ANY => &[
                WatchKind::Data,
                WatchKind::Child,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
            watcher_type::PERSISTENT => &[WatchKind::Persistent],
            watcher_type::PERSISTENT_RECURSIVE => &[WatchKind::PersistentRecursive],
            _ => return Err(ErrorCode::BadArguments),
        })
    }

    /// checkWatches: OK when `conn` holds a watch of `watcher_type` on `path`, else NOWATCHER.
    pub fn check(&self, path: &str, watcher_type: i32, conn: ConnId) -> Result<(), ErrorCode> {
        let kinds = Self::kinds_for(watcher_type)?;
        let found = kinds.iter().any(|k| match k {
            WatchKind::Data => self.data.contains(path, conn),
            WatchKind::Child => self.child.contains(path, conn),
            WatchKind::Persistent => self.persistent.contains(path, conn),
            WatchKind::PersistentRecursive => self.recursive.contains(path, conn),
        });
        if found {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// removeWatches: removes `conn`'s watches of `watcher_type` on `path`; NOWATCHER if none.
    pub fn remove(&mut self, path: &str, watcher_type: i32, conn: ConnId) -> Result<(), ErrorCode> {
        let kinds = Self::kinds_for(watcher_type)?;
        let mut any = false;
        for k in kinds {
            any |= self.table_mut(*k).remove(path, conn);
        }
        if any {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// Forgets every watch of a closed connection.
    pub fn drop_conn(&mut self, conn: ConnId) {
        self.data.drop_conn(conn);
        self.child.drop_conn(conn);
        self.persistent.drop_conn(conn);
        self.recursive.drop_conn(conn);
    }

    /// The connections an event goes to, removing the one-shot watches it fires.
    pub fn trigger(&mut self, event_type: i32, path: &str) -> HashSet<ConnId> {
        let mut out = HashSet::default();
        match event_type {
            event::NODE_CREATED | event::NODE_DATA_CHANGED => out.extend(self.data.take(path)),
            event::NODE_DELETED => {
                out.extend(self.data.take(path));
                out.extend(self.child.take(path));
            }
            event::NODE_CHILDREN_CHANGED => out.extend(self.child.take(path)),
            _ => {}
        }
        if let Some(s) = self.persistent.by_path.get(path) {
            out.extend(s.iter().copied());
        }
        if event_type != event::NODE_CHILDREN_CHANGED && !self.recursive.by_path.is_empty() {
            let mut p = path;
            loop {
                if let Some(s) = self.recursive.by_path.get(p) {
                    out.extend(s.iter().copied());
                }
                if p == "/" {
                    break;
                }
                p = match p.rfind('/') {
                    Some(0) => "/",
                    Some(i) => &p[..i],
                    None => break,
                };
            }
        }
        out
    }

    /// Total number of watch registrations.
    pub fn count(&self) -> usize {
        self.data.count() + self.child.count() + self.persistent.count() + self.recursive.count()
    }

    /// (connections with watches, distinct watched paths, total watches), for `wchs`.
    pub fn summary(&self) -> (usize, usize, usize) {
        let mut conns: HashSet<ConnId> = HashSet::default();
        let mut paths: HashSet<&str> = HashSet::default();
        for t in [&self.data, &self.child, &self.persistent, &self.recursive] {
            conns.extend(t.by_conn.keys().copied());
            paths.extend(t.by_path.keys().map(|s| s.as_str()));
        }
        (conns.len(), paths.len(), self.count())
    }

    /// Watched paths per connection, for `wchc`.
    pub fn by_conn(&self) -> HashMap<ConnId, Vec<String>> {
        let mut m: HashMap<ConnId, Vec<String>> = HashMap::default();
        for t in [&self.data, &self.child, &self.persistent, &self.recursive] {
            for (c, paths) in &t.by_conn {
                m.entry(*c).or_default().extend(paths.iter().cloned());
            }
        }
        for v in m.values_mut() {
            v.sort();
            v.dedup();
        }
        m
    }

    /// Watching connections per path, for `wchp`.
    pub fn by_path(&self) -> HashMap<String, Vec<ConnId>> {
        let mut m: HashMap<String, Vec<ConnId>> = HashMap::default();
        for t in [&self.data, &self.child, &self.persistent, &self.recursive] {
            for (p, conns) in &t.by_path {
                m.entry(p.clone())
                    .or_default()
                    .extend(conns.iter().copied());
            }
        }
        for v in m.values_mut() {
            v.sort();
            v.dedup();
        }
        m
    }
}

/// Encodes a watch notification frame (length prefix, reply header with xid -1, event).
pub fn event_frame(event_type: i32, path: &str, zxid: i64) -> Vec<u8> {
    let mut w = Vec::with_capacity(32 + path.len());
    let at = concord_jute::codec::begin_frame(&mut w);
    ReplyHeader {
        xid: xid::NOTIFICATION,
        zxid,
        err: 0,
    }
    .encode(&mut w);
    WatcherEvent {
        event_type,
        state: concord_jute::consts::state::SYNC_CONNECTED,
        path: path.to_string(),
    }
    .encode(&mut w);
    concord_jute::codec::finish_frame(&mut w, at);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(s: HashSet<ConnId>) -> Vec<ConnId> {
        let mut v: Vec<_> = s.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchManager::default();
        w.add(WatchKind::Data, "/a", 1);
        w.add(WatchKind::Child, "/a", 2);
        w.add(WatchKind::Child, "/a", 1);
        assert_eq!(sorted(w.trigger(event::NODE_DATA_CHANGED, "/a")), vec![1]);
        assert!(w.trigger(event::NODE_DATA_CHANGED, "/a").is_empty());
        // deletion fires child watches too, once per connection
        w.add(WatchKind::Data, "/a", 1);
        assert_eq!(sorted(w.trigger(event::NODE_DELETED, "/a")), vec![1, 2]);
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn persistent_and_recursive() {
        let mut w = WatchManager::default();
        w.add(WatchKind::Persistent, "/p", 1);
        w.add(WatchKind::PersistentRecursive, "/r", 2);
        w.add(WatchKind::PersistentRecursive, "/", 3);
        for _ in 0..2 {
            assert_eq!(
                sorted(w.trigger(event::NODE_CHILDREN_CHANGED, "/p")),
                vec![1]
            );
            assert_eq!(
                sorted(w.trigger(event::NODE_DATA_CHANGED, "/p")),
                vec![1, 3]
            );
        }
        assert_eq!(sorted(w.trigger(event::NODE_CREATED, "/r/x/y")), vec![2, 3]);
        assert_eq!(
            sorted(w.trigger(event::NODE_CHILDREN_CHANGED, "/r")),
            Vec::<u64>::new()
        );
        assert_eq!(sorted(w.trigger(event::NODE_DELETED, "/rx")), vec![3]);
        assert_eq!(w.count(), 3);
    }

    #[test]
    fn check_and_remove() {
        let mut w = WatchManager::default();
        w.add(WatchKind::Data, "/a", 1);
        w.add(WatchKind::Persistent, "/a", 1);
        assert_eq!(
            w.check("/a", watcher_type::CHILDREN, 1),
            Err(ErrorCode::NoWatcher)
        );
        assert_eq!(w.check("/a", watcher_type::DATA, 1), Ok(()));
        assert_eq!(
            w.check("/a", watcher_type::DATA, 2),
            Err(ErrorCode::NoWatcher)
        );
        assert_eq!(w.remove("/a", watcher_type::DATA, 1), Ok(()));
        assert_eq!(
            w.remove("/a", watcher_type::DATA, 1),
            Err(ErrorCode::NoWatcher)
        );
        assert_eq!(w.remove("/a", watcher_type::ANY, 1), Ok(()));
        assert_eq!(w.count(), 0);
        assert_eq!(w.check("/a", 99, 1), Err(ErrorCode::BadArguments));
        w.add(WatchKind::Child, "/b", 4);
        w.drop_conn(4);
        assert_eq!(w.count(), 0);
    }
}
