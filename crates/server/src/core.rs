//! State shared by every part of a running server: the applied tree, watches, connections,
//! session liveness, pending proposals and counters.
//!
//! Lock order (always taken in this order, never the reverse): `sm` → `watches` → `conns` →
//! `tracker`/`pending`. The state machine dispatches watch events while it still holds `sm`
//! for writing, and reads register watches while they hold `sm` for reading, so a client always
//! gets an event before the reply to any later read that reflects the change.

use crate::config::Config;
use crate::raft::queue::TxnQueue;
use crate::raft::types::{LogId, NodeId};
use crate::rng::HashMap;
use crate::watch::{event_frame, ConnId, WatchManager};
use bytes::Bytes;
use concord_jute::Request;
use concord_tree::{Applied, DataTree, Event, Outcome, Txn, TxnOp};
use openraft::{BasicNode, StoredMembership};
use parking_lot::{Mutex, RwLock};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;

/// The applied state: the tree plus the Raft bookkeeping that must be snapshotted with it.
pub struct SmState {
    /// The data tree.
    pub tree: DataTree,
    /// Last log id applied to the tree.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership<NodeId, BasicNode>,
    /// Txns applied since the last snapshot was started.
    pub txns_since_snapshot: u64,
}

impl SmState {
    /// The state of a server that has applied nothing: a fresh tree.
    pub fn empty(extended_types: bool) -> SmState {
        SmState {
            tree: DataTree::new(extended_types),
            last_applied: None,
            membership: StoredMembership::default(),
            txns_since_snapshot: 0,
        }
    }
}

/// Per-connection counters shown by `cons` and `stat`.
#[derive(Default)]
pub struct ConnInfo {
    /// Packets received.
    pub received: AtomicU64,
    /// Packets sent.
    pub sent: AtomicU64,
    /// Requests not yet answered.
    pub queued: AtomicI64,
    /// Session id (0 until the handshake completes).
    pub session: AtomicI64,
    /// Negotiated timeout.
    pub timeout: AtomicI64,
    /// Last cxid (client xid).
    pub last_xid: AtomicI64,
    /// Last zxid sent.
    pub last_zxid: AtomicI64,
}

/// How other parts of the server reach one connection.
#[derive(Clone)]
pub struct ConnHandle {
    /// The connection's id.
    pub id: ConnId,
    /// The peer address.
    pub peer: SocketAddr,
    /// Frames to write to the client.
    pub out: mpsc::Sender<Bytes>,
    /// Notified to make the connection close.
    pub kill: Arc<Notify>,
    /// Counters.
    pub info: Arc<ConnInfo>,
}

impl ConnHandle {
    /// Queues a watch event; a client too slow to take it is disconnected (its queue is full).
    pub fn send_event(&self, frame: Bytes) {
        if self.out.try_send(frame).is_err() {
            tracing::warn!(peer = %self.peer, "closing a connection whose outbound queue is full");
            self.kill.notify_one();
        } else {
            self.info.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Live connections, by id, by session and by client IP.
#[derive(Default)]
pub struct Conns {
    /// Connections by id.
    pub by_id: HashMap<ConnId, ConnHandle>,
    /// The connection currently attached to each session.
    pub by_session: HashMap<i64, ConnId>,
    /// Number of connections per client IP (maxClientCnxns).
    pub per_ip: HashMap<IpAddr, u32>,
}

/// Session liveness as this server sees it (the leader proposes expiry).
#[derive(Default)]
pub struct SessionTracker {
    live: HashMap<i64, Tracked>,
    /// Sessions touched since [`SessionTracker::take_touched`] last ran (a follower sends them
    /// to the leader); kept only in a cluster (see [`SessionTracker::record_touches`]).
    touched: crate::rng::HashSet<i64>,
    recording: bool,
}

struct Tracked {
    timeout: Duration,
    deadline: Instant,
    expiring: bool,
}

impl SessionTracker {
    /// Starts tracking a session with a fresh deadline.
    pub fn add(&mut self, id: i64, timeout_ms: i32) {
        let timeout = Duration::from_millis(timeout_ms.max(1) as u64);
        self.live.insert(
            id,
            Tracked {
                timeout,
                deadline: Instant::now() + timeout,
                expiring: false,
            },
        );
    }

    /// Pushes a session's deadline out by its timeout (any packet from its client does this).
    pub fn touch(&mut self, id: i64) {
        if let Some(t) = self.live.get_mut(&id) {
            t.deadline = Instant::now() + t.timeout;
            t.expiring = false;
            if self.recording {
                self.touched.insert(id);
            }
        }
    }

    /// Starts keeping the set of touched sessions (a cluster server sends it to its leader; a
    /// single server has nobody to send it to and skips the work on every packet).
    pub fn record_touches(&mut self) {
        self.recording = true;
    }

    /// The sessions touched since the last call.
    pub fn take_touched(&mut self) -> Vec<i64> {
        self.touched.drain().collect()
    }

    /// Gives every session a fresh timeout (a new leader does this before expiring any).
    pub fn refresh_all(&mut self) {
        let now = Instant::now();
        for t in self.live.values_mut() {
            t.deadline = now + t.timeout;
            t.expiring = false;
        }
    }

    /// Stops tracking a session.
    pub fn remove(&mut self, id: i64) {
        self.live.remove(&id);
        self.touched.remove(&id);
    }

    /// Sessions past their deadline not yet proposed for expiry; marks them as being expired.
    pub fn take_expired(&mut self, now: Instant) -> Vec<i64> {
        let mut out = Vec::new();
        for (id, t) in self.live.iter_mut() {
            if !t.expiring && t.deadline <= now {
                t.expiring = true;
                out.push(*id);
            }
        }
        out.sort();
        out
    }

    /// Number of tracked sessions.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// Server-wide counters for srvr/stat/mntr.
#[derive(Default)]
pub struct Stats {
    /// Packets received from clients.
    pub received: AtomicU64,
    /// Packets sent to clients.
    pub sent: AtomicU64,
    /// Requests in progress.
    pub outstanding: AtomicI64,
    /// Request latency: count, total, min and max in microseconds.
    pub lat_count: AtomicU64,
    /// Sum of latencies (µs).
    pub lat_total: AtomicU64,
    /// Smallest latency (µs).
    pub lat_min: AtomicU64,
    /// Largest latency (µs).
    pub lat_max: AtomicU64,
    /// Raft entries applied.
    pub entries_applied: AtomicU64,
    /// Txns applied.
    pub txns_applied: AtomicU64,
    /// Snapshots this server wrote of its own tree.
    pub snapshots_written: AtomicU64,
    /// Snapshots this server installed from its leader.
    pub snapshots_installed: AtomicU64,
}

impl Stats {
    /// Records one request's latency.
    pub fn record_latency(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.lat_count.fetch_add(1, Ordering::Relaxed);
        self.lat_total.fetch_add(us, Ordering::Relaxed);
        self.lat_max.fetch_max(us, Ordering::Relaxed);
        let min = self.lat_min.load(Ordering::Relaxed);
        if min == 0 || us < min {
            self.lat_min.store(us.max(1), Ordering::Relaxed);
        }
    }

    /// Resets the counters (`srst`).
    pub fn reset(&self) {
        for c in [
            &self.received,
            &self.sent,
            &self.lat_count,
            &self.lat_total,
            &self.lat_min,
            &self.lat_max,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Everything a running server shares between its tasks.
pub struct Core {
    /// The effective configuration.
    pub config: Config,
    /// This server's id.
    pub my_id: NodeId,
    /// The applied state.
    pub sm: RwLock<SmState>,
    /// Watches of this server's connections.
    pub watches: Mutex<WatchManager>,
    /// Live connections.
    pub conns: Mutex<Conns>,
    /// Session liveness.
    pub tracker: Mutex<SessionTracker>,
    /// Counters.
    pub stats: Stats,
    /// Notified when enough txns have been applied to take a snapshot.
    pub snapshot_wanted: Notify,
    /// When the server started.
    pub started: Instant,
    /// The address the client port is bound to, once it is (the configured port may be 0).
    pub bound_addr: std::sync::OnceLock<SocketAddr>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Applied>>>,
    next_req: AtomicU64,
    next_conn: AtomicU64,
    /// Txns waiting for a Raft entry.
    pub queue: Arc<TxnQueue>,
    /// Which of this server's log appends are acknowledged before they are durable, and what
    /// waits for them (see [`crate::raft::early_ack`]); on in a cluster only.
    pub early: Arc<crate::raft::early_ack::EarlyAck>,
    snapshot_threshold: AtomicU64,
    /// Why the write path stopped, once it has (see [`Core::fail_all`]).
    failed: std::sync::OnceLock<String>,
    failed_notify: Notify,
    /// The leader as this server last saw it (kept by the role watcher).
    leader: watch::Sender<Option<NodeId>>,
    /// Index of the last Raft entry applied.
    applied: watch::Sender<u64>,
    /// Raft's view of this server.
    pub status: Mutex<RaftStatus>,
    /// Set when the server is shutting down: failures from then on are not failures.
    stopping: std::sync::atomic::AtomicBool,
    /// Where `sync` asks for a read index, in a cluster (see `crate::cluster`).
    pub read_index: std::sync::OnceLock<mpsc::UnboundedSender<ReadIndexWaiter>>,
    /// Where `reconfig` requests go, in a cluster (see `crate::cluster::serve_reconfig`).
    pub reconfig: std::sync::OnceLock<mpsc::UnboundedSender<crate::reconfig::ReconfigJob>>,
    /// When the leader's appends were last accepted here (see [`Core::heard_from_leader`]).
    leader_heard: Mutex<tokio::time::Instant>,
}

/// Raft's view of this server, refreshed from openraft's metrics (for srvr, stat, mntr and the
/// admin endpoint).
#[derive(Debug, Clone, Default)]
pub struct RaftStatus {
    /// ZooKeeper's name for the role: standalone, leader, follower, observer or looking.
    pub mode: &'static str,
    /// Current Raft term.
    pub term: u64,
    /// The leader, when known.
    pub leader: Option<NodeId>,
    /// Index of the last entry in the local log.
    pub last_log_index: u64,
    /// Index of the last entry applied here.
    pub applied_index: u64,
    /// On the leader, the largest number of entries a member is behind; elsewhere, entries in
    /// the local log not yet applied.
    pub lag: u64,
    /// Members: id, role (participant/observer), their `server.N` spec, and on the leader the
    /// index each has acknowledged.
    pub peers: Vec<PeerStatus>,
}

/// One member of the group as [`RaftStatus`] shows it.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    /// Server id.
    pub id: NodeId,
    /// participant or observer.
    pub role: &'static str,
    /// The member's `server.N` value.
    pub spec: String,
    /// Last log index the member acknowledged (leader only).
    pub matched: Option<u64>,
}

/// Receives the log index a `sync` must wait for, or why there is none.
pub type ReadIndexWaiter = oneshot::Sender<Result<u64, String>>;

/// Request ids carry the id of the server that proposed them in their top bits, so whichever
/// server applies an entry knows which txns it must answer.
pub const ORIGIN_SHIFT: u32 = 48;

/// The server that proposed request `id`.
pub fn origin_of(id: u64) -> NodeId {
    id >> ORIGIN_SHIFT
}

impl Core {
    /// Builds the core around a loaded state.
    pub fn new(config: Config, my_id: NodeId, sm: SmState) -> Arc<Core> {
        let threshold = snapshot_threshold(config.snap_count);
        let early =
            crate::raft::early_ack::EarlyAck::new(my_id, crate::server::is_cluster(&config));
        Arc::new(Core {
            config,
            my_id,
            sm: RwLock::new(sm),
            watches: Mutex::new(WatchManager::default()),
            conns: Mutex::new(Conns::default()),
            tracker: Mutex::new(SessionTracker::default()),
            stats: Stats::default(),
            snapshot_wanted: Notify::new(),
            started: Instant::now(),
            bound_addr: std::sync::OnceLock::new(),
            pending: Mutex::new(HashMap::default()),
            // Ids start from the boot time, so a restarted server does not reuse the ids of
            // txns it proposed before, which may still be committed and applied after the
            // restart: applying one must not answer a new request that took the same id.
            next_req: AtomicU64::new(((crate::rng::now_ms() as u64) & 0xFFFF_FFFF) << 16),
            next_conn: AtomicU64::new(1),
            queue: Arc::default(),
            early,
            snapshot_threshold: AtomicU64::new(threshold),
            failed: std::sync::OnceLock::new(),
            failed_notify: Notify::new(),
            leader: watch::Sender::new(None),
            applied: watch::Sender::new(0),
            read_index: std::sync::OnceLock::new(),
            reconfig: std::sync::OnceLock::new(),
            leader_heard: Mutex::new(tokio::time::Instant::now()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            status: Mutex::new(RaftStatus {
                mode: "standalone",
                ..RaftStatus::default()
            }),
        })
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a txn for the write path; the receiver yields its outcome once it is applied,
    /// or fails if the write path dropped it (then the caller closes the client connection).
    pub async fn propose(&self, txn: Txn) -> oneshot::Receiver<Applied> {
        let seq = self.next_req.fetch_add(1, Ordering::Relaxed) & ((1 << ORIGIN_SHIFT) - 1);
        let id = (self.my_id << ORIGIN_SHIFT) | seq;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        if !self.queue.push(id, txn).await {
            self.pending.lock().remove(&id);
        }
        rx
    }

    /// Stops the write path for good (openraft failed or refused an entry): later proposals
    /// are refused, and every waiting one is dropped, so its client's connection closes with
    /// the outcome unknown (a txn already in an appended entry may still be applied, here after
    /// a restart). [`Core::write_path_failed`] then returns `reason`, and the server stops.
    pub fn fail_all(&self, reason: String) {
        if self.stopping() {
            // Raft is being shut down: its entries' outcomes end without being failures.
            self.queue.close();
            self.pending.lock().clear();
            return;
        }
        self.failed.get_or_init(|| {
            tracing::error!("the write path failed: {reason}");
            reason
        });
        self.queue.close();
        self.pending.lock().clear();
        self.failed_notify.notify_waiters();
    }

    /// Drops the waiters of txns that will not be applied through this server's hands (a
    /// forward to the leader failed): their connections close with the outcome unknown.
    pub fn abandon(&self, ids: impl IntoIterator<Item = u64>) {
        let mut p = self.pending.lock();
        for id in ids {
            p.remove(&id);
        }
    }

    /// The leader changed: txns still queued are dropped and every waiting write is abandoned,
    /// as ZooKeeper closes its clients' connections when it loses its leader. (A txn already in
    /// the log may still be applied; its client, like ZooKeeper's, saw the connection drop.)
    pub fn reset_writes(&self) {
        self.queue.clear();
        self.pending.lock().clear();
    }

    /// The leader as last seen.
    pub fn leader(&self) -> Option<NodeId> {
        *self.leader.borrow()
    }

    /// Records the leader; true when it changed.
    pub fn set_leader(&self, leader: Option<NodeId>) -> bool {
        self.leader.send_if_modified(|l| {
            let changed = *l != leader;
            *l = leader;
            changed
        })
    }

    /// Records that the leader's appends (or heartbeats) were just accepted here.
    pub fn heard_from_leader(&self) {
        *self.leader_heard.lock() = tokio::time::Instant::now();
    }

    /// How long ago the leader's appends were last accepted here.
    pub fn since_leader_heard(&self) -> Duration {
        self.leader_heard.lock().elapsed()
    }

    /// Follows the leader as seen by this server.
    pub fn leader_watch(&self) -> watch::Receiver<Option<NodeId>> {
        self.leader.subscribe()
    }

    /// Records that entries up to `index` are applied.
    pub fn set_applied(&self, index: u64) {
        self.applied.send_if_modified(|a| {
            let moved = index > *a;
            if moved {
                *a = index;
            }
            moved
        });
    }

    /// Waits until entries up to `index` are applied.
    pub async fn wait_applied(&self, index: u64) {
        let mut rx = self.applied.subscribe();
        let _ = rx.wait_for(|&a| a >= index).await;
    }

    /// In a cluster, waits until this server has applied every write the leader had
    /// committed when it was asked (Raft read index); at once on a single server. Fails when
    /// there is no leader to ask.
    pub async fn catch_up(&self) -> Result<(), String> {
        let Some(ri) = self.read_index.get() else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        ri.send(tx)
            .map_err(|_| "the server is stopping".to_string())?;
        let index = rx
            .await
            .map_err(|_| "the server is stopping".to_string())??;
        self.wait_applied(index).await;
        Ok(())
    }

    /// Marks the server as shutting down.
    pub fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether the server is shutting down.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Waits until the write path has failed; returns why.
    pub async fn write_path_failed(&self) -> String {
        loop {
            let n = self.failed_notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if let Some(r) = self.failed.get() {
                return r.clone();
            }
            n.await;
        }
    }

    /// Hands applied outcomes to the connections waiting for them.
    pub fn complete(&self, done: Vec<(u64, Applied)>) {
        let mut p = self.pending.lock();
        for (id, applied) in done {
            if let Some(tx) = p.remove(&id) {
                let _ = tx.send(applied);
            }
        }
    }

    /// Sends the watch notifications `events` (drained) of the txn applied as `zxid`.
    pub fn deliver(&self, events: &mut Vec<Event>, zxid: i64) {
        if events.is_empty() {
            return;
        }
        let mut watches = self.watches.lock();
        let conns = self.conns.lock();
        for e in events.drain(..) {
            let targets = watches.trigger(e.event_type, &e.path);
            if targets.is_empty() {
                continue;
            }
            let frame = Bytes::from(event_frame(e.event_type, &e.path, zxid));
            for c in targets {
                if let Some(h) = conns.by_id.get(&c) {
                    h.send_event(frame.clone());
                }
            }
        }
    }

    /// Closes this server's connection of `session`, which another server has taken over.
    pub fn session_moved_away(&self, session: i64) {
        let conns = self.conns.lock();
        if let Some(h) = conns
            .by_session
            .get(&session)
            .and_then(|c| conns.by_id.get(c))
        {
            tracing::info!(
                session = format!("{session:#x}"),
                "session moved to another server; closing its connection here"
            );
            h.kill.notify_one();
        }
    }

    /// Called by the state machine, with `sm` held for writing, after each txn is applied:
    /// delivers watch events and keeps session liveness in step with the replicated sessions.
    pub fn after_apply(&self, txn: &Txn, applied: &Applied, events: &mut Vec<Event>) {
        // A close refused (SESSIONMOVED) leaves the session as it was.
        let closing = matches!(
            txn.op,
            TxnOp::CloseSession { .. } | TxnOp::Write(Request::CloseSession)
        ) && matches!(applied.outcome, Outcome::Reply(_));
        if events.is_empty() && !closing {
            if let Outcome::SessionCreated(id) = applied.outcome {
                if let TxnOp::CreateSession { timeout, .. } = txn.op {
                    self.tracker.lock().add(id, timeout);
                }
            }
            return;
        }
        self.deliver(events, applied.zxid);
        if closing {
            let conns = self.conns.lock();
            self.tracker.lock().remove(txn.session);
            if matches!(txn.op, TxnOp::CloseSession { expired: true }) {
                if let Some(h) = conns
                    .by_session
                    .get(&txn.session)
                    .and_then(|c| conns.by_id.get(c))
                {
                    h.kill.notify_one();
                }
            }
        }
    }

    /// The tree was replaced by a snapshot from the leader: session liveness follows the new
    /// tree, and every client connection closes (as a ZooKeeper follower's do when it resyncs);
    /// clients reconnect and re-register their watches with the zxid they last saw, so they
    /// get the events they missed.
    pub fn tree_replaced(&self) {
        let sessions: Vec<(i64, i32)> = {
            let sm = self.sm.read();
            sm.tree.sessions().map(|(id, s)| (id, s.timeout)).collect()
        };
        {
            let mut t = self.tracker.lock();
            *t = SessionTracker::default();
            for (id, timeout) in sessions {
                t.add(id, timeout);
            }
        }
        self.close_clients();
    }

    /// Closes every client connection of this server.
    pub fn close_clients(&self) {
        for h in self.conns.lock().by_id.values() {
            h.kill.notify_one();
        }
    }

    /// Counts applied txns and signals when a snapshot is due.
    pub fn note_applied(&self, sm: &mut SmState, txns: u64) {
        sm.txns_since_snapshot += txns;
        if self.due(sm) {
            self.snapshot_wanted.notify_one();
        }
    }

    /// Whether enough txns have been applied since the last snapshot to take another.
    pub fn snapshot_due(&self) -> bool {
        self.due(&self.sm.read())
    }

    /// Due after the (randomised) snapCount threshold of txns, and, for big trees, not before
    /// a quarter of the znode count: rewriting the whole tree after every 50-100k small writes
    /// costs a large tree far more than replaying those writes at start-up.
    fn due(&self, sm: &SmState) -> bool {
        let threshold = self.snapshot_threshold.load(Ordering::Relaxed);
        sm.txns_since_snapshot >= threshold.max(sm.tree.node_count() as u64 / 4)
    }

    /// Resets the snapshot counter when a snapshot starts (and re-randomises the threshold, as
    /// ZooKeeper does, so servers of a cluster do not all snapshot at once).
    pub fn snapshot_started(&self, sm: &mut SmState) {
        sm.txns_since_snapshot = 0;
        self.snapshot_threshold.store(
            snapshot_threshold(self.config.snap_count),
            Ordering::Relaxed,
        );
    }
}

fn snapshot_threshold(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + crate::rng::random_u64() % half
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_tree::TxnOp;

    fn delete(path: &str) -> Txn {
        Txn {
            session: 1,
            time: 0,
            auth: vec![],
            op: TxnOp::Write(Request::Delete {
                path: path.into(),
                version: -1,
            }),
        }
    }

    #[tokio::test]
    async fn a_failed_write_path_drops_waiters_refuses_proposals_and_says_why() {
        let core = Core::new(Config::default(), 1, SmState::empty(false));
        let queued = core.propose(delete("/a")).await;
        let c2 = core.clone();
        let watcher = tokio::spawn(async move { c2.write_path_failed().await });
        core.fail_all("disk gone".into());
        assert!(
            queued.await.is_err(),
            "a queued proposal's waiter is dropped"
        );
        assert!(
            core.propose(delete("/b")).await.await.is_err(),
            "a later proposal is refused"
        );
        assert!(
            !core.queue.wait_arrived().await,
            "the proposer sees the queue closed"
        );
        assert_eq!(watcher.await.unwrap(), "disk gone");
        // The first reason is kept.
        core.fail_all("later".into());
        assert_eq!(core.write_path_failed().await, "disk gone");
    }
}
