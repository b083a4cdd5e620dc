//! The peer network: every message between the servers of a cluster, on the quorum port.
//!
//! Each server keeps one outbound TCP connection to every peer it talks to (a [`Link`]) and
//! carries all of its own requests to that peer on it: Raft's append, vote and snapshot RPCs,
//! and concord's own calls — writes forwarded to the leader, session touches, read-index
//! requests for `sync`. Requests carry an id and may overlap; replies name the id they answer.
//!
//! Wire format: frames of `[length u32 BE][postcard body]`, at most [`MAX_FRAME`] bytes. The
//! side that connects first sends [`ToPeer::Hello`] (protocol version and its server id), then
//! [`ToPeer::Call`]s; the other side sends [`Reply`]s. Forwarded writes and touches are handled
//! in the order they arrive on a connection (so one server's writes keep their order); the other
//! calls run concurrently.

use super::early_ack::EarlyAck;
use super::types::{Batch, NodeId, Raft, TypeConfig};
use crate::conn::now_ms;
use crate::core::Core;
use crate::net::{BoxRead, BoxWrite, Dial, Listener};
use crate::rng::HashMap;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Version of the peer protocol; a peer speaking another one is refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest peer frame (a snapshot chunk is 3 MiB, an append of many entries can be larger).
pub const MAX_FRAME: usize = 256 << 20;
/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames queued for a peer connection's writer.
const OUTBOUND: usize = 1024;
/// A call that times out on a connection that has carried nothing back for this long gives
/// the connection up: the next call dials again. (A connection whose packets a middlebox
/// dropped, or whose peer vanished without a reset, would otherwise hold every call.)
const SILENCE: Duration = Duration::from_secs(5);
/// Dials to one peer start at most this often. openraft gives up on a heartbeat after 50 ms
/// and calls again: without a pause, a peer that does not answer would get a new connection
/// attempt with every heartbeat.
pub const REDIAL: Duration = Duration::from_millis(250);
/// How long the leader waits before trying again to reach a peer it found unreachable
/// (openraft's backoff). A server that starts up hears from the leader within about this long,
/// which is why it listens for longer before it campaigns (see `cluster::listen_first`).
pub const UNREACHABLE_RETRY: Duration = Duration::from_millis(500);

/// What the connecting side sends.
#[derive(Serialize, Deserialize)]
pub enum ToPeer {
    /// First frame on a connection: who is calling.
    Hello {
        /// [`PROTOCOL_VERSION`] of the caller.
        version: u32,
        /// The caller's server id.
        from: NodeId,
    },
    /// A request; the reply carries the same id.
    Call {
        /// Request id, unique on the connection.
        id: u64,
        /// The request.
        call: Call,
    },
}

/// A request from one server to another.
#[derive(Serialize, Deserialize)]
pub enum Call {
    /// Raft: append entries (and heartbeat).
    Append(AppendEntriesRequest<TypeConfig>),
    /// Raft: request a vote.
    Vote(VoteRequest<NodeId>),
    /// Raft: one chunk of a snapshot.
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// Txns proposed on the caller, for the leader to put in its log (the request ids name the
    /// caller, which answers its clients when it applies them).
    Forward(Batch),
    /// Sessions whose clients the caller heard from (the leader extends their deadlines).
    Touch(Vec<i64>),
    /// The leader's read index: the caller waits until it has applied this far (`sync`).
    ReadIndex,
    /// A client's `reconfig`, for the leader to run.
    Reconfig(crate::reconfig::ReconfigArgs),
    /// Whether the callee already belongs to a Raft group (asked by a server with an empty
    /// log before it forms one: see `cluster::listen_first`).
    Formed,
}

/// A reply to a [`Call`].
#[derive(Serialize, Deserialize)]
pub struct Reply {
    /// The id of the call it answers.
    pub id: u64,
    /// The answer.
    pub body: ReplyBody,
}

/// The answer to each kind of [`Call`].
#[derive(Serialize, Deserialize)]
pub enum ReplyBody {
    /// Answer to [`Call::Append`].
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`Call::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`Call::Snapshot`].
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// Answer to [`Call::Forward`]: queued on the leader, or why not.
    Forwarded(Result<(), String>),
    /// Answer to [`Call::Touch`].
    Touched,
    /// Answer to [`Call::ReadIndex`]: the log index to have applied, or why there is none.
    ReadIndex(Result<u64, String>),
    /// Answer to [`Call::Reconfig`]: the committed change, or the ZooKeeper error code.
    Reconfig(Result<crate::reconfig::Committed, i32>),
    /// Answer to [`Call::Formed`].
    Formed(bool),
}

fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; 4];
    let body = postcard::to_extend(v, Vec::new()).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::other(format!(
            "peer message of {} bytes is over the {MAX_FRAME}-byte limit",
            body.len()
        )));
    }
    out.extend_from_slice(&body);
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin + ?Sized>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> io::Result<T> {
    postcard::from_bytes(b).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed peer message: {e}"),
        )
    })
}

/// Writes queued frames until the queue closes or the stream fails.
async fn write_frames(mut w: BoxWrite, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(f) = rx.recv().await {
        if w.write_all(&f).await.is_err() {
            return;
        }
        // Write what else is queued before flushing.
        while let Ok(f) = rx.try_recv() {
            if w.write_all(&f).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<ReplyBody>>>>;

/// One live outbound connection.
struct Conn {
    out: mpsc::Sender<Vec<u8>>,
    waiters: Waiters,
    /// Set when the connection's reader ended or went silent; the next call reconnects.
    dead: Arc<std::sync::atomic::AtomicBool>,
    /// When the connection last carried a reply.
    heard: Arc<Mutex<tokio::time::Instant>>,
}

/// What a call needs of a live connection.
struct Handles {
    out: mpsc::Sender<Vec<u8>>,
    waiters: Waiters,
    dead: Arc<std::sync::atomic::AtomicBool>,
    heard: Arc<Mutex<tokio::time::Instant>>,
}

impl Conn {
    fn handles(&self) -> Handles {
        Handles {
            out: self.out.clone(),
            waiters: self.waiters.clone(),
            dead: self.dead.clone(),
            heard: self.heard.clone(),
        }
    }
}

/// This server's connection to one peer, made on first use and again after it fails.
pub struct Link {
    my_id: NodeId,
    target: NodeId,
    addr: Mutex<String>,
    dial: Arc<dyn Dial>,
    conn: tokio::sync::Mutex<Option<Conn>>,
    next_id: AtomicU64,
    /// When the last dial started.
    dialed: Mutex<Option<tokio::time::Instant>>,
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No connection could be made.
    Unreachable(io::Error),
    /// The connection broke or the reply did not come in time.
    Network(io::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(e) => write!(f, "unreachable: {e}"),
            CallError::Network(e) => write!(f, "network: {e}"),
        }
    }
}

impl Link {
    fn new(my_id: NodeId, target: NodeId, addr: String, dial: Arc<dyn Dial>) -> Link {
        Link {
            my_id,
            target,
            addr: Mutex::new(addr),
            dial,
            conn: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            dialed: Mutex::new(None),
        }
    }

    /// The live connection's sender and waiters, connecting first if there is none.
    async fn connection(&self) -> Result<Handles, CallError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.dead.load(Ordering::Acquire) {
                return Ok(c.handles());
            }
        }
        *slot = None;
        let addr = self.addr.lock().clone();
        {
            let now = tokio::time::Instant::now();
            let mut dialed = self.dialed.lock();
            if dialed.is_some_and(|d| now.duration_since(d) < REDIAL) {
                return Err(CallError::Unreachable(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "server {} at {addr}: dialled less than {REDIAL:?} ago",
                        self.target
                    ),
                )));
            }
            *dialed = Some(now);
        }
        let (mut r, w) =
            match tokio::time::timeout(CONNECT_TIMEOUT, self.dial.dial(addr.clone())).await {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    return Err(CallError::Unreachable(io::Error::new(
                        e.kind(),
                        format!("server {} at {addr}: {e}", self.target),
                    )))
                }
                Err(_) => {
                    return Err(CallError::Unreachable(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("server {} at {addr}: connection timed out", self.target),
                    )))
                }
            };
        let (tx, rx) = mpsc::channel(OUTBOUND);
        let hello = encode(&ToPeer::Hello {
            version: PROTOCOL_VERSION,
            from: self.my_id,
        })
        .map_err(CallError::Network)?;
        let _ = tx.send(hello).await;
        tokio::spawn(write_frames(w, rx));
        let waiters: Waiters = Arc::default();
        let dead = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let heard = Arc::new(Mutex::new(tokio::time::Instant::now()));
        {
            let waiters = waiters.clone();
            let dead = dead.clone();
            let heard = heard.clone();
            let target = self.target;
            tokio::spawn(async move {
                loop {
                    let reply = match read_frame(&mut r).await {
                        Ok(Some(b)) => match decode::<Reply>(&b) {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::warn!(peer = target, "{e}; closing the connection");
                                break;
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(peer = target, "peer connection closed: {e}");
                            break;
                        }
                    };
                    *heard.lock() = tokio::time::Instant::now();
                    if let Some(w) = waiters.lock().remove(&reply.id) {
                        let _ = w.send(reply.body);
                    }
                }
                dead.store(true, Ordering::Release);
                // Dropping the senders fails every call still waiting on this connection.
                waiters.lock().clear();
            });
        }
        let conn = Conn {
            out: tx,
            waiters,
            dead,
            heard,
        };
        let handles = conn.handles();
        *slot = Some(conn);
        Ok(handles)
    }

    /// Sends `call` and waits up to `timeout` for its reply.
    pub async fn call(&self, call: Call, timeout: Duration) -> Result<ReplyBody, CallError> {
        self.start(call).await?.wait(timeout).await
    }

    /// Sends `call` and returns without waiting for the reply: calls started one after the
    /// other reach the peer in that order.
    pub async fn start(&self, call: Call) -> Result<Pending, CallError> {
        let Handles {
            out,
            waiters,
            dead,
            heard,
        } = self.connection().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode(&ToPeer::Call { id, call }).map_err(CallError::Network)?;
        let (tx, rx) = oneshot::channel();
        waiters.lock().insert(id, tx);
        if out.send(frame).await.is_err() {
            waiters.lock().remove(&id);
            return Err(lost(self.target));
        }
        Ok(Pending {
            id,
            target: self.target,
            rx,
            waiters,
            dead,
            heard,
        })
    }
}

fn lost(target: NodeId) -> CallError {
    CallError::Network(io::Error::new(
        io::ErrorKind::ConnectionReset,
        format!("connection to server {target} lost"),
    ))
}

/// A call sent and not yet answered.
pub struct Pending {
    id: u64,
    target: NodeId,
    rx: oneshot::Receiver<ReplyBody>,
    waiters: Waiters,
    dead: Arc<std::sync::atomic::AtomicBool>,
    heard: Arc<Mutex<tokio::time::Instant>>,
}

impl Pending {
    /// Waits up to `timeout` for the reply.
    pub async fn wait(self, timeout: Duration) -> Result<ReplyBody, CallError> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(lost(self.target)),
            Err(_) => {
                self.waiters.lock().remove(&self.id);
                if self.heard.lock().elapsed() > SILENCE {
                    tracing::info!(
                        peer = self.target,
                        "nothing heard on the connection for {SILENCE:?}; reconnecting"
                    );
                    self.dead.store(true, Ordering::Release);
                }
                Err(CallError::Network(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("server {} did not answer within {timeout:?}", self.target),
                )))
            }
        }
    }
}

/// The peer address in a membership node: the `host:quorumPort` of its `server.N` spec (a
/// node of a single-server group may hold a plain address, used as it is).
pub fn peer_addr(id: NodeId, node: &BasicNode) -> String {
    match crate::config::ServerSpec::parse(id, &node.addr) {
        Ok(s) if s.host.contains(':') => format!("[{}]:{}", s.host, s.quorum_port),
        Ok(s) => format!("{}:{}", s.host, s.quorum_port),
        Err(_) => node.addr.clone(),
    }
}

/// Every link of this server, by peer id; shared by Raft's network and concord's own calls.
pub struct Peers {
    my_id: NodeId,
    dial: Arc<dyn Dial>,
    links: Mutex<HashMap<NodeId, Arc<Link>>>,
    /// Holds back the commit index sent to followers until the leader's log is durable.
    early: Arc<EarlyAck>,
}

impl Peers {
    /// No links yet; connections are made with `dial`; `early` is this server's
    /// [`EarlyAck`] gate.
    pub fn new(my_id: NodeId, dial: Arc<dyn Dial>, early: Arc<EarlyAck>) -> Arc<Peers> {
        Arc::new(Peers {
            my_id,
            dial,
            links: Mutex::default(),
            early,
        })
    }

    /// The link to `target` at `addr` (an address change replaces the connection).
    pub fn link(&self, target: NodeId, addr: String) -> Arc<Link> {
        let mut links = self.links.lock();
        if let Some(l) = links.get(&target) {
            if *l.addr.lock() == addr {
                return l.clone();
            }
        }
        let l = Arc::new(Link::new(self.my_id, target, addr, self.dial.clone()));
        links.insert(target, l.clone());
        l
    }

    /// Whether `target` answered on its link within the last `within`.
    pub fn heard_within(&self, target: NodeId, within: Duration) -> bool {
        let Some(link) = self.links.lock().get(&target).cloned() else {
            return false;
        };
        let conn = link.conn.try_lock();
        match conn.as_deref() {
            Ok(Some(c)) => !c.dead.load(Ordering::Acquire) && c.heard.lock().elapsed() <= within,
            _ => false,
        }
    }

    /// The link to `target`, a membership node (or one about to be).
    pub fn link_to(&self, target: NodeId, node: &BasicNode) -> Arc<Link> {
        self.link(target, peer_addr(target, node))
    }

    /// The link to `target`, found through the membership `raft` last reported.
    pub fn link_via(&self, raft: &Raft, target: NodeId) -> Option<Arc<Link>> {
        let node = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&target)
            .cloned()?;
        Some(self.link_to(target, &node))
    }
}

/// Creates Raft's clients to its peers from the shared [`Peers`].
#[derive(Clone)]
pub struct PeerFactory(pub Arc<Peers>);

/// Raft's client to one peer.
pub struct PeerClient {
    target: NodeId,
    link: Arc<Link>,
    early: Arc<EarlyAck>,
}

impl RaftNetworkFactory<TypeConfig> for PeerFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            link: self.0.link_to(target, node),
            early: self.0.early.clone(),
        }
    }
}

fn rpc_err<E: std::error::Error>(e: CallError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
        CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
    }
}

fn wrong_reply<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&io::Error::other(
        "the peer answered with the wrong kind of reply",
    )))
}

impl PeerClient {
    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeId, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(UNREACHABLE_RETRY))
    }

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        // Followers learn of a commit only once the leader's own copy is durable.
        rpc.leader_commit = self.early.clamp_commit(rpc.leader_commit);
        match self
            .link
            .call(Call::Append(rpc), option.hard_ttl())
            .await
            .map_err(rpc_err)?
        {
            ReplyBody::Append(r) => r.map_err(|e| self.remote(e)),
            _ => Err(wrong_reply()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .link
            .call(Call::Snapshot(rpc), option.hard_ttl())
            .await
            .map_err(rpc_err)?
        {
            ReplyBody::Snapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(wrong_reply()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .link
            .call(Call::Vote(rpc), option.hard_ttl())
            .await
            .map_err(rpc_err)?
        {
            ReplyBody::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(wrong_reply()),
        }
    }
}

/// Serves one inbound peer connection until it closes or misbehaves.
pub async fn serve_conn(core: Arc<Core>, raft: Raft, mut r: BoxRead, w: BoxWrite, peer: String) {
    let from = match read_frame(&mut r).await {
        Ok(Some(b)) => match decode::<ToPeer>(&b) {
            Ok(ToPeer::Hello { version, from }) if version == PROTOCOL_VERSION => from,
            Ok(ToPeer::Hello { version, .. }) => {
                tracing::warn!(%peer, "closing a peer connection: protocol version {version}, this server speaks {PROTOCOL_VERSION}");
                return;
            }
            Ok(_) => {
                tracing::warn!(%peer, "closing a peer connection that did not start with a hello");
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, "closing a peer connection: {e}");
                return;
            }
        },
        _ => return,
    };
    tracing::debug!(%peer, from, "peer connected");
    let (tx, rx) = mpsc::channel(OUTBOUND);
    let writer = tokio::spawn(write_frames(w, rx));
    loop {
        let frame = match read_frame(&mut r).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                leader_gone(&core, &raft, from);
                break;
            }
            Err(e) => {
                tracing::debug!(%peer, from, "peer connection closed: {e}");
                leader_gone(&core, &raft, from);
                break;
            }
        };
        let (id, call) = match decode::<ToPeer>(&frame) {
            Ok(ToPeer::Call { id, call }) => (id, call),
            Ok(ToPeer::Hello { .. }) => {
                tracing::warn!(%peer, from, "closing a peer connection: a second hello");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, from, "closing a peer connection: {e}");
                break;
            }
        };
        match call {
            // In order: a server's forwarded writes must reach the queue as it sent them.
            Call::Forward(batch) => {
                let body = ReplyBody::Forwarded(forwarded(&core, batch).await);
                if !reply(&tx, id, body).await {
                    break;
                }
            }
            Call::Touch(sessions) => {
                {
                    let mut t = core.tracker.lock();
                    for s in sessions {
                        t.touch(s);
                    }
                }
                if !reply(&tx, id, ReplyBody::Touched).await {
                    break;
                }
            }
            call => {
                if matches!(call, Call::Append(_) | Call::Snapshot(_)) {
                    // Only a leader sends these; noted on arrival, so the time spent writing
                    // them does not count as silence.
                    core.heard_from_leader();
                }
                let raft = raft.clone();
                let core = core.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let body = match call {
                        Call::Append(rpc) => match append_durably(&core, &raft, rpc).await {
                            Some(r) => ReplyBody::Append(r),
                            None => return,
                        },
                        Call::Vote(rpc) => ReplyBody::Vote(raft.vote(rpc).await),
                        Call::Snapshot(rpc) => {
                            ReplyBody::Snapshot(raft.install_snapshot(rpc).await)
                        }
                        Call::ReadIndex => ReplyBody::ReadIndex(
                            raft.get_read_log_id()
                                .await
                                .map(|(read, _)| read.map_or(0, |l| l.index))
                                .map_err(|e| e.to_string()),
                        ),
                        Call::Reconfig(args) => ReplyBody::Reconfig(
                            reconfig_here(&core, args).await.map_err(|e| e.code()),
                        ),
                        // An error reading its own state: say yes, so nobody forms a second
                        // group on its account.
                        Call::Formed => {
                            ReplyBody::Formed(raft.is_initialized().await.unwrap_or(true))
                        }
                        Call::Forward(_) | Call::Touch(_) => unreachable!("handled in order"),
                    };
                    reply(&tx, id, body).await;
                });
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Hands `rpc` to openraft and returns its answer once the entries a success acknowledges are
/// durable here: the leader counts a success as the entries being on this server's disk, and
/// this server's own openraft may have been told earlier (see `early_ack`). None if they could
/// not be synced (nothing is answered then).
async fn append_durably(
    core: &Core,
    raft: &Raft,
    rpc: AppendEntriesRequest<TypeConfig>,
) -> Option<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> {
    let upto = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
    let r = raft.append_entries(rpc).await;
    let durable = match &r {
        Ok(AppendEntriesResponse::Success) => upto,
        Ok(AppendEntriesResponse::PartialSuccess(l)) => *l,
        _ => None,
    };
    if let Some(l) = durable {
        if let Err(e) = core.early.wait_durable(l.index).await {
            tracing::error!("not acknowledging an append: {e}");
            return None;
        }
    }
    Some(r)
}

/// The connection from `from` ended (closed or reset, not timed out). If `from` is this
/// server's leader, its process has most likely stopped: this voter calls an election at once
/// rather than waiting out the leader lease and its election timeout. (The other voters do the
/// same; openraft waives the lease for a voter that is itself a candidate, so the faster one's
/// next round wins, one election timeout after the leader went.)
fn leader_gone(core: &Arc<Core>, raft: &Raft, from: NodeId) {
    if core.leader() != Some(from) || core.stopping() {
        return;
    }
    let voter = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == core.my_id);
    if !voter {
        return;
    }
    tracing::info!(
        leader = from,
        "the leader's connection closed; calling an election"
    );
    let raft = raft.clone();
    tokio::spawn(async move {
        if let Err(e) = raft.trigger().elect().await {
            tracing::debug!("cannot call an election: {e}");
        }
    });
}

async fn reply(tx: &mpsc::Sender<Vec<u8>>, id: u64, body: ReplyBody) -> bool {
    match encode(&Reply { id, body }) {
        Ok(f) => tx.send(f).await.is_ok(),
        Err(e) => {
            tracing::error!("cannot encode a peer reply: {e}");
            false
        }
    }
}

/// Runs a reconfig another server sent, if this server leads.
async fn reconfig_here(
    core: &Core,
    args: crate::reconfig::ReconfigArgs,
) -> Result<crate::reconfig::Committed, concord_jute::ErrorCode> {
    let (reply, rx) = oneshot::channel();
    let job = crate::reconfig::ReconfigJob {
        args,
        forward: false,
        reply,
    };
    match core.reconfig.get().map(|tx| tx.send(job)) {
        Some(Ok(())) => rx
            .await
            .unwrap_or(Err(concord_jute::ErrorCode::ConnectionLoss)),
        _ => Err(concord_jute::ErrorCode::ConnectionLoss),
    }
}

/// Queues txns forwarded by a follower, if this server leads.
async fn forwarded(core: &Core, batch: Batch) -> Result<(), String> {
    if core.leader() != Some(core.my_id) {
        return Err(format!("server {} is not the leader", core.my_id));
    }
    // The leader's clock stamps every write, so times follow the log's order.
    let now = now_ms();
    let mut items = batch.items;
    // A batch just decoded is not shared: its txns are moved out rather than copied (into a
    // Vec: a borrowing iterator held across `push_all`'s await makes this future not Send).
    let items: Vec<(u64, concord_tree::Txn)> = match Arc::get_mut(&mut items) {
        Some(only) => only
            .iter_mut()
            .map(|(id, txn)| (*id, std::mem::replace(txn, placeholder())))
            .collect(),
        None => items.to_vec(),
    };
    let stamped = items.into_iter().map(|(id, mut txn)| {
        txn.time = now;
        (id, txn)
    });
    if !core.queue.push_all(stamped).await {
        return Err("the leader's write path has stopped".into());
    }
    Ok(())
}

/// A txn that allocates nothing, left behind where a forwarded one was moved out.
fn placeholder() -> concord_tree::Txn {
    concord_tree::Txn {
        session: 0,
        time: 0,
        auth: Vec::new(),
        op: concord_tree::TxnOp::PurgeStale,
    }
}

/// Accepts peer connections on `listener` until the task is stopped.
pub async fn accept_loop(core: Arc<Core>, raft: Raft, mut listener: Box<dyn Listener>) {
    loop {
        match listener.accept().await {
            Ok((r, w, addr)) => {
                tokio::spawn(serve_conn(
                    core.clone(),
                    raft.clone(),
                    r,
                    w,
                    addr.to_string(),
                ));
            }
            Err(e) => {
                tracing::warn!("peer accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
