//! One client connection: the handshake, then requests answered strictly in order.
//!
//! Writes are proposed as soon as they arrive (so a client's pipelined writes share batches and
//! fsyncs); reads, pings, auth and watch requests wait in the same queue behind earlier writes and
//! run when they reach its head, so every reply reflects everything the session sent before it
//! (per-session FIFO). Watch events are pushed into the outbound queue by the state machine while
//! it holds the tree lock, so they always precede replies that reflect the change.

use crate::core::{ConnHandle, ConnInfo, Core};
use crate::fourlw;
use crate::net::{BoxRead, BoxWrite};
use crate::watch::{ConnId, WatchKind};
use bytes::{Buf, Bytes, BytesMut};
use concord_jute::codec::{begin_frame, finish_frame, write_opt_buffer};
use concord_jute::consts::{add_watch_mode, event, op};
use concord_jute::frame::{
    check_frame, decode_connect, decode_request, is_four_letter_word, FrameStatus,
};
use concord_jute::{
    ClientInfo, ConnectResponse, DecodeError, ErrorCode, Id, OpResult, ReplyHeader, Request,
    Response,
};
use concord_tree::{acl, Applied, Outcome, Txn, TxnOp};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};

/// How long the server that took a `reconfig` waits to apply the committed change.
const RECONFIG_APPLY: std::time::Duration = std::time::Duration::from_secs(30);
/// Most requests a connection may have in flight before the server stops reading from it.
pub const MAX_OUTSTANDING: usize = 1000;
/// Frames queued for a client before it counts as too slow and is disconnected.
pub const OUTBOUND_QUEUE: usize = 4096;

/// Milliseconds since the epoch, as carried in txns.
pub fn now_ms() -> i64 {
    crate::rng::now_ms()
}

enum FrameError {
    Io(std::io::Error),
    TooLarge(i64),
}

/// Reads one length-prefixed frame; `Ok(None)` on a clean end of stream.
async fn read_frame(
    rd: &mut BoxRead,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<BytesMut>, FrameError> {
    loop {
        match check_frame(buf, max) {
            FrameStatus::Ready(len) => {
                buf.advance(4);
                return Ok(Some(buf.split_to(len)));
            }
            FrameStatus::TooLarge(len) => return Err(FrameError::TooLarge(len)),
            FrameStatus::Incomplete(n) => {
                buf.reserve(n.saturating_sub(buf.len()).max(4096));
                match rd.read_buf(buf).await {
                    Ok(0) => return Ok(None),
                    Ok(_) => {}
                    Err(e) => return Err(FrameError::Io(e)),
                }
            }
        }
    }
}

/// Encodes a reply frame: header, then the body when err is 0.
pub fn reply_frame(xid: i32, zxid: i64, err: i32, body: Option<&Response>) -> Bytes {
    let mut w = Vec::with_capacity(64);
    let at = begin_frame(&mut w);
    ReplyHeader { xid, zxid, err }.encode(&mut w);
    if err == 0 {
        if let Some(b) = body {
            b.encode(&mut w);
        }
    }
    finish_frame(&mut w, at);
    Bytes::from(w)
}

/// Ends a connection during its handshake: the writer sends what was queued (a refusal, if
/// any) and closes the socket.
async fn hang_up(tx: mpsc::Sender<Bytes>, writer_task: tokio::task::JoinHandle<()>) {
    drop(tx);
    let _ = writer_task.await;
}

async fn writer(mut wr: BoxWrite, mut rx: mpsc::Receiver<Bytes>, kill: Arc<Notify>) {
    let mut buf = Vec::with_capacity(1 << 16);
    while let Some(f) = rx.recv().await {
        buf.extend_from_slice(&f);
        while buf.len() < (1 << 16) {
            match rx.try_recv() {
                Ok(f) => buf.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            kill.notify_one();
            return;
        }
        buf.clear();
    }
    let _ = wr.shutdown().await;
}

enum Job {
    Write {
        xid: i32,
        op: i32,
        started: Instant,
        rx: oneshot::Receiver<Applied>,
    },
    Local {
        xid: i32,
        req: Request,
        started: Instant,
    },
    Fail {
        xid: i32,
        err: ErrorCode,
    },
}

/// What a processed request asks of the connection.
#[derive(PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

struct Conn {
    core: Arc<Core>,
    id: ConnId,
    peer: SocketAddr,
    session: i64,
    auth: Vec<Id>,
    out: mpsc::Sender<Bytes>,
    info: Arc<ConnInfo>,
    /// Closes this connection (a client too slow to take its events is disconnected).
    kill: Arc<Notify>,
}

/// Serves one accepted client connection until it closes.
pub async fn serve(core: Arc<Core>, mut rd: BoxRead, wr: BoxWrite, peer: SocketAddr) {
    let mut buf = BytesMut::with_capacity(4096);
    while buf.len() < 4 {
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    if is_four_letter_word(&buf[..4]) {
        let cmd = String::from_utf8_lossy(&buf[..4]).to_string();
        fourlw::serve(&core, &cmd, wr).await;
        return;
    }
    let max = core.config.jute_max_buffer;
    let body = match read_frame(&mut rd, &mut buf, max).await {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(FrameError::TooLarge(len)) => {
            tracing::warn!(%peer, "closing connection: connect packet len {len} is out of range");
            return;
        }
        Err(FrameError::Io(_)) => return,
    };
    let req = match decode_connect(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, "closing connection: malformed connect request: {e}");
            return;
        }
    };
    let id = core.next_conn_id();
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let kill = Arc::new(Notify::new());
    let info = Arc::new(ConnInfo::default());
    let writer_task = tokio::spawn(writer(wr, rx, kill.clone()));

    // Handshake. A cluster server without a leader takes no sessions (clients move on to
    // another server), as a ZooKeeper server that is not part of a quorum does.
    if crate::server::is_cluster(&core.config) && core.leader().is_none() {
        tracing::info!(%peer, "refusing a session: this server has no leader");
        hang_up(tx, writer_task).await;
        return;
    }
    let last_zxid = core.sm.read().tree.last_zxid();
    if req.last_zxid_seen > last_zxid {
        tracing::warn!(
            %peer,
            "refusing session: client has seen zxid {:#x}, this server's last zxid is {:#x}",
            req.last_zxid_seen,
            last_zxid
        );
        hang_up(tx, writer_task).await;
        return;
    }
    let mut timeout = core.config.negotiate_timeout(req.timeout);
    let read_only = req.read_only.map(|_| false);
    let (session, passwd) = if req.session_id == 0 {
        let passwd: Vec<u8> = (0..16).map(|_| crate::rng::random_u64() as u8).collect();
        let rx = core
            .propose(Txn {
                session: 0,
                time: now_ms(),
                auth: Vec::new(),
                op: TxnOp::CreateSession {
                    timeout,
                    passwd: passwd.clone(),
                },
            })
            .await;
        match rx.await {
            Ok(Applied {
                outcome: Outcome::SessionCreated(sid),
                ..
            }) => (sid, passwd),
            _ => {
                tracing::info!(%peer, "closing connection: session could not be created");
                return;
            }
        }
    } else {
        let lookup = || {
            let sm = core.sm.read();
            let s = sm.tree.session(req.session_id);
            (s.map(|s| s.passwd == req.passwd), s.map_or(0, |s| s.owner))
        };
        let (mut known, mut owner) = lookup();
        if known.is_none() && crate::server::is_cluster(&core.config) {
            // A session created moments ago through another server may not be applied here
            // yet: catch up with the leader before calling it unknown (ZooKeeper's followers
            // ask the leader to revalidate it).
            if let Err(e) = core.catch_up().await {
                tracing::info!(%peer, "closing connection: cannot check the session with the leader: {e}");
                hang_up(tx, writer_task).await;
                return;
            }
            (known, owner) = lookup();
        }
        if known == Some(true) && crate::server::is_cluster(&core.config) && owner != core.my_id {
            // The session comes from another server: this one takes it over, through the log,
            // before answering. The old server then closes its connection, and a request of
            // the old connection ordered after this gets SESSIONMOVED, as in ZooKeeper.
            let rx = core
                .propose(Txn {
                    session: req.session_id,
                    time: now_ms(),
                    auth: Vec::new(),
                    op: TxnOp::MoveSession,
                })
                .await;
            match rx.await {
                Ok(Applied {
                    outcome: Outcome::Reply(_),
                    ..
                }) => {}
                Ok(_) => known = None,
                Err(_) => {
                    tracing::info!(%peer, "closing connection: the session could not be moved here");
                    hang_up(tx, writer_task).await;
                    return;
                }
            }
        }
        if known != Some(true) {
            // ZooKeeper answers an expired or unknown session (or a wrong password) with a zero
            // timeout, which clients report as SESSIONEXPIRED, then closes the connection.
            tracing::info!(%peer, session = format!("{:#x}", req.session_id), "session expired or invalid password");
            let mut w = Vec::new();
            let at = begin_frame(&mut w);
            ConnectResponse {
                protocol_version: 0,
                timeout: 0,
                session_id: 0,
                passwd: vec![0; 16],
                read_only,
            }
            .encode(&mut w);
            finish_frame(&mut w, at);
            let _ = tx.send(Bytes::from(w)).await;
            hang_up(tx, writer_task).await;
            return;
        }
        core.tracker.lock().add(req.session_id, timeout);
        (req.session_id, req.passwd.clone())
    };
    if timeout <= 0 {
        timeout = core.config.min_session_timeout_ms as i32;
    }
    info.session.store(session, Ordering::Relaxed);
    info.timeout.store(timeout as i64, Ordering::Relaxed);
    {
        let mut conns = core.conns.lock();
        let handle = ConnHandle {
            id,
            peer,
            out: tx.clone(),
            kill: kill.clone(),
            info: info.clone(),
        };
        conns.by_id.insert(id, handle);
        if let Some(old) = conns.by_session.insert(session, id) {
            if let Some(h) = conns.by_id.get(&old) {
                tracing::info!(
                    session = format!("{session:#x}"),
                    "session moved to a new connection"
                );
                h.kill.notify_one();
            }
        }
    }
    let mut w = Vec::new();
    let at = begin_frame(&mut w);
    ConnectResponse {
        protocol_version: 0,
        timeout,
        session_id: session,
        passwd,
        read_only,
    }
    .encode(&mut w);
    finish_frame(&mut w, at);
    let _ = tx.send(Bytes::from(w)).await;
    tracing::debug!(%peer, session = format!("{session:#x}"), timeout, "session established");

    let mut ip = peer.ip();
    if let std::net::IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            ip = v4.into();
        }
    }
    let mut conn = Conn {
        core: core.clone(),
        id,
        peer,
        session,
        auth: vec![Id::new("ip", ip.to_string())],
        out: tx,
        kill: kill.clone(),
        info,
    };
    conn.run(&mut rd, &mut buf, &kill).await;
    tracing::debug!(%peer, session = format!("{session:#x}"), "connection closed");

    // Cleanup: forget the connection and its watches; the session lives on until it expires.
    core.watches.lock().drop_conn(id);
    {
        let mut conns = core.conns.lock();
        conns.by_id.remove(&id);
        if conns.by_session.get(&session) == Some(&id) {
            conns.by_session.remove(&session);
        }
    }
    drop(conn);
    let _ = writer_task.await;
}

impl Conn {
    async fn run(&mut self, rd: &mut BoxRead, buf: &mut BytesMut, kill: &Notify) {
        let max = self.core.config.jute_max_buffer;
        let mut queue: VecDeque<Job> = VecDeque::new();
        loop {
            // Run everything at the head that does not wait for a write.
            while matches!(queue.front(), Some(Job::Local { .. } | Job::Fail { .. })) {
                let next = match queue.pop_front() {
                    Some(Job::Local { xid, req, started }) => self.local(xid, req, started).await,
                    Some(Job::Fail { xid, err }) => {
                        let zxid = self.core.sm.read().tree.last_zxid();
                        self.send(reply_frame(xid, zxid, err.code(), None)).await;
                        Next::Continue
                    }
                    _ => Next::Continue,
                };
                if next == Next::Close {
                    return;
                }
            }
            let head_write = matches!(queue.front(), Some(Job::Write { .. }));
            let can_read = queue.len() < MAX_OUTSTANDING;
            tokio::select! {
                biased;
                _ = kill.notified() => return,
                res = async {
                    match queue.front_mut() {
                        Some(Job::Write { rx, .. }) => rx.await,
                        _ => std::future::pending().await,
                    }
                }, if head_write => {
                    let Some(Job::Write { xid, op: code, started, .. }) = queue.pop_front() else {
                        return;
                    };
                    match res {
                        Ok(applied) => {
                            if self.write_done(xid, code, started, applied).await == Next::Close {
                                return;
                            }
                        }
                        // The write path dropped the request (e.g. leadership lost): close, as
                        // ZooKeeper does, and let the client retry elsewhere.
                        Err(_) => return,
                    }
                }
                frame = read_frame(rd, buf, max), if can_read => {
                    match frame {
                        Ok(Some(body)) => {
                            if self.packet(&body, &mut queue).await == Next::Close {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(FrameError::TooLarge(len)) => {
                            tracing::warn!(peer = %self.peer, "closing connection: packet len {len} is out of range");
                            return;
                        }
                        Err(FrameError::Io(e)) => {
                            tracing::debug!(peer = %self.peer, "connection read failed: {e}");
                            return;
                        }
                    }
                }
            }
        }
    }

    async fn send(&self, frame: Bytes) {
        self.info.sent.fetch_add(1, Ordering::Relaxed);
        self.core.stats.sent.fetch_add(1, Ordering::Relaxed);
        let _ = self.out.send(frame).await;
    }

    fn finish(&self, started: Instant) {
        self.info.queued.fetch_sub(1, Ordering::Relaxed);
        self.core.stats.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.core.stats.record_latency(started.elapsed());
    }

    /// Decodes one request and queues it.
    async fn packet(&mut self, body: &[u8], queue: &mut VecDeque<Job>) -> Next {
        self.info.received.fetch_add(1, Ordering::Relaxed);
        self.core.stats.received.fetch_add(1, Ordering::Relaxed);
        self.core.tracker.lock().touch(self.session);
        let (h, req) = match decode_request(body) {
            Ok(x) => x,
            Err((Some(h), DecodeError::UnknownOpCode(code))) => {
                tracing::warn!(peer = %self.peer, "unknown opcode {code}");
                queue.push_back(Job::Fail {
                    xid: h.xid,
                    err: ErrorCode::Unimplemented,
                });
                return Next::Continue;
            }
            Err((Some(h), e)) => {
                tracing::warn!(peer = %self.peer, op = h.op, "malformed request: {e}");
                queue.push_back(Job::Fail {
                    xid: h.xid,
                    err: ErrorCode::MarshallingError,
                });
                return Next::Continue;
            }
            Err((None, e)) => {
                tracing::warn!(peer = %self.peer, "closing connection: malformed request header: {e}");
                return Next::Close;
            }
        };
        tracing::trace!(peer = %self.peer, xid = h.xid, op = h.op, "request");
        self.info.last_xid.store(h.xid as i64, Ordering::Relaxed);
        self.info.queued.fetch_add(1, Ordering::Relaxed);
        self.core.stats.outstanding.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        if let (Request::Sync { path }, Some(_)) = (&req, self.core.read_index.get()) {
            // In a cluster `sync` waits for the leader's read index to be applied here, so the
            // reads after it see every write committed before it.
            let (atx, arx) = oneshot::channel();
            let core = self.core.clone();
            let path = path.clone();
            tokio::spawn(async move {
                match core.catch_up().await {
                    Ok(()) => {
                        let zxid = core.sm.read().tree.last_zxid();
                        let _ = atx.send(Applied {
                            zxid,
                            outcome: Outcome::Reply(Response::Sync(path)),
                        });
                    }
                    // No leader to ask: the connection closes and the client tries elsewhere.
                    Err(e) => tracing::info!("sync failed: {e}"),
                }
            });
            queue.push_back(Job::Write {
                xid: h.xid,
                op: h.op,
                started,
                rx: arx,
            });
            return Next::Continue;
        }
        if let Request::Reconfig(r) = req {
            let rx = self.reconfig(r);
            queue.push_back(Job::Write {
                xid: h.xid,
                op: h.op,
                started,
                rx,
            });
            return Next::Continue;
        }
        if req.is_write() {
            let op = if matches!(req, Request::CloseSession) {
                TxnOp::CloseSession { expired: false }
            } else {
                TxnOp::Write(req)
            };
            let rx = self
                .core
                .propose(Txn {
                    session: self.session,
                    time: now_ms(),
                    auth: self.auth.clone(),
                    op,
                })
                .await;
            queue.push_back(Job::Write {
                xid: h.xid,
                op: h.op,
                started,
                rx,
            });
        } else {
            queue.push_back(Job::Local {
                xid: h.xid,
                req,
                started,
            });
        }
        Next::Continue
    }

    async fn write_done(
        &mut self,
        xid: i32,
        code: i32,
        started: Instant,
        applied: Applied,
    ) -> Next {
        self.finish(started);
        self.info.last_zxid.store(applied.zxid, Ordering::Relaxed);
        let frame = match &applied.outcome {
            Outcome::Reply(r) => reply_frame(xid, applied.zxid, 0, Some(r)),
            Outcome::Error(e) => reply_frame(xid, applied.zxid, e.code(), None),
            Outcome::SessionCreated(_) => reply_frame(xid, applied.zxid, 0, None),
        };
        self.send(frame).await;
        if code == op::CLOSE_SESSION
            || matches!(applied.outcome, Outcome::Error(ErrorCode::SessionMoved))
        {
            // The session belongs to another server now: this connection is stale (ZooKeeper
            // closes it too).
            Next::Close
        } else {
            Next::Continue
        }
    }

    /// Runs a request that does not change the tree, in order.
    async fn local(&mut self, xid: i32, req: Request, started: Instant) -> Next {
        self.finish(started);
        let mut next = Next::Continue;
        let frame = match req {
            Request::GetData { path, watch } => {
                // The hot read path: encode straight from the tree, no copy of the data.
                let sm = self.core.sm.read();
                let zxid = sm.tree.last_zxid();
                match sm.tree.get_data(&path, &self.auth) {
                    Ok((data, stat)) => {
                        if watch {
                            self.core
                                .watches
                                .lock()
                                .add(WatchKind::Data, &path, self.id);
                        }
                        let mut w = Vec::with_capacity(96 + data.map_or(0, |d| d.len()));
                        let at = begin_frame(&mut w);
                        ReplyHeader { xid, zxid, err: 0 }.encode(&mut w);
                        write_opt_buffer(&mut w, data);
                        stat.encode(&mut w);
                        finish_frame(&mut w, at);
                        Bytes::from(w)
                    }
                    Err(e) => reply_frame(xid, zxid, e.code(), None),
                }
            }
            Request::Auth { scheme, auth, .. } => {
                let (err, close) = self.authenticate(&scheme, &auth);
                next = if close { Next::Close } else { Next::Continue };
                // ZooKeeper echoes the request's xid (the Java client uses -4, others do not).
                reply_frame(xid, 0, err, None)
            }
            Request::Ping => {
                let zxid = self.core.sm.read().tree.last_zxid();
                reply_frame(xid, zxid, 0, None)
            }
            other => {
                let sm = self.core.sm.read();
                let zxid = sm.tree.last_zxid();
                let result = self.read(other, &sm.tree);
                drop(sm);
                match result {
                    Ok(r) => reply_frame(xid, zxid, 0, Some(&r)),
                    Err(e) => reply_frame(xid, zxid, e.code(), None),
                }
            }
        };
        self.send(frame).await;
        next
    }

    /// Starts a `reconfig`; the receiver gets the reply: the new `/zookeeper/config` and its
    /// Stat, or the error (the checks ZooKeeper makes before any other are made here).
    fn reconfig(&self, r: concord_jute::ReconfigRequest) -> oneshot::Receiver<Applied> {
        let (atx, arx) = oneshot::channel();
        let core = self.core.clone();
        let fail = move |e: ErrorCode| Applied {
            zxid: core.sm.read().tree.last_zxid(),
            outcome: Outcome::Error(e),
        };
        if !self.core.config.reconfig_enabled {
            let _ = atx.send(fail(ErrorCode::ReconfigDisabled));
            return arx;
        }
        let Some(tx) = self.core.reconfig.get() else {
            // A single server has no membership to change (ZooKeeper standalone answers so).
            let _ = atx.send(fail(ErrorCode::Unimplemented));
            return arx;
        };
        let authorized = self
            .core
            .sm
            .read()
            .tree
            .check_perm(
                concord_tree::tree::CONFIG_PATH,
                concord_jute::consts::perms::WRITE,
                &self.auth,
            )
            .is_ok();
        let (reply, rrx) = oneshot::channel();
        let job = crate::reconfig::ReconfigJob {
            args: crate::reconfig::ReconfigArgs {
                joining: r.joining,
                leaving: r.leaving,
                new_members: r.new_members,
                from_version: r.cur_config_id,
                authorized,
            },
            forward: true,
            reply,
        };
        if tx.send(job).is_err() {
            let _ = atx.send(fail(ErrorCode::ConnectionLoss));
            return arx;
        }
        let core = self.core.clone();
        tokio::spawn(async move {
            let applied = match rrx.await {
                Ok(Ok(c)) if !c.lists(core.my_id) => {
                    // The change removed this server, which is sent nothing more and so never
                    // applies it: answer with the config as the leader applied it (ZooKeeper's
                    // removed follower, too, commits the change before it drops out).
                    let zxid = core.sm.read().tree.last_zxid();
                    match concord_jute::records::Stat::decode(
                        &mut concord_jute::codec::Reader::new(&c.stat),
                    ) {
                        Ok(stat) => Applied {
                            zxid,
                            outcome: Outcome::Reply(Response::GetData(Some(c.data), stat)),
                        },
                        Err(_) => fail(ErrorCode::SystemError),
                    }
                }
                Ok(Ok(c)) => {
                    // Answer with the config as this server applied it, so the reads after
                    // the reply see it too.
                    if tokio::time::timeout(RECONFIG_APPLY, core.wait_applied(c.index))
                        .await
                        .is_err()
                    {
                        let _ = atx.send(fail(ErrorCode::ConnectionLoss));
                        return;
                    }
                    let sm = core.sm.read();
                    match sm.tree.get_data(concord_tree::tree::CONFIG_PATH, &[]) {
                        Ok((data, stat)) => Applied {
                            zxid: sm.tree.last_zxid(),
                            outcome: Outcome::Reply(Response::GetData(
                                data.map(<[u8]>::to_vec),
                                stat,
                            )),
                        },
                        Err(e) => Applied {
                            zxid: sm.tree.last_zxid(),
                            outcome: Outcome::Error(e),
                        },
                    }
                }
                Ok(Err(e)) => fail(e),
                Err(_) => fail(ErrorCode::ConnectionLoss),
            };
            let _ = atx.send(applied);
        });
        arx
    }

    /// Handles an auth packet: returns (error code, close the connection).
    fn authenticate(&mut self, scheme: &str, auth: &[u8]) -> (i32, bool) {
        let cred = String::from_utf8_lossy(auth);
        if scheme != "digest" {
            tracing::warn!(peer = %self.peer, "auth with unsupported scheme {scheme:?}");
            return (ErrorCode::AuthFailed.code(), true);
        }
        let Some(id) = acl::digest_id(&cred) else {
            tracing::warn!(peer = %self.peer, "malformed digest credentials");
            return (ErrorCode::AuthFailed.code(), true);
        };
        if self.core.config.super_digest.as_deref() == Some(id.as_str()) {
            let sup = Id::new("super", "");
            if !self.auth.contains(&sup) {
                self.auth.push(sup);
            }
        }
        let id = Id::new("digest", id);
        if !self.auth.contains(&id) {
            self.auth.push(id);
        }
        (0, false)
    }

    /// Answers a read-type request from the tree (the caller holds the read lock).
    fn read(&self, req: Request, tree: &concord_tree::DataTree) -> Result<Response, ErrorCode> {
        let watches = || self.core.watches.lock();
        match req {
            Request::Exists { path, watch } => {
                let stat = tree.exists(&path)?;
                if watch {
                    watches().add(WatchKind::Data, &path, self.id);
                }
                stat.map(Response::Stat).ok_or(ErrorCode::NoNode)
            }
            Request::GetData { path, .. } => {
                let (d, s) = tree.get_data(&path, &self.auth)?;
                Ok(Response::GetData(d.map(<[u8]>::to_vec), s))
            }
            Request::GetChildren {
                path,
                watch,
                with_stat,
            } => {
                let (names, stat) = tree.get_children(&path, &self.auth)?;
                if watch {
                    watches().add(WatchKind::Child, &path, self.id);
                }
                let names = names.into_iter().map(str::to_string).collect();
                Ok(if with_stat {
                    Response::GetChildren2(names, stat)
                } else {
                    Response::GetChildren(names)
                })
            }
            Request::GetAcl { path } => {
                let (acl, stat) = tree.get_acl(&path, &self.auth)?;
                Ok(Response::GetAcl(acl, stat))
            }
            Request::Sync { path } => Ok(Response::Sync(path)),
            Request::MultiRead(ops) => {
                let results = ops
                    .into_iter()
                    .map(|o| match o {
                        Request::GetData { path, .. } => match tree.get_data(&path, &self.auth) {
                            Ok((d, s)) => OpResult::GetData(d.map(<[u8]>::to_vec), s),
                            Err(e) => OpResult::Error(e.code()),
                        },
                        Request::GetChildren { path, .. } => {
                            match tree.get_children(&path, &self.auth) {
                                Ok((n, _)) => OpResult::GetChildren(
                                    n.into_iter().map(str::to_string).collect(),
                                ),
                                Err(e) => OpResult::Error(e.code()),
                            }
                        }
                        _ => OpResult::Error(ErrorCode::Unimplemented.code()),
                    })
                    .collect();
                Ok(Response::Multi(results))
            }
            Request::SetWatches { watches: sw, .. } => {
                let rel = sw.relative_zxid;
                let mut w = watches();
                let fire = |t: i32, p: &str| {
                    let f = Bytes::from(crate::watch::event_frame(t, p, -1));
                    self.info.sent.fetch_add(1, Ordering::Relaxed);
                    if self.out.try_send(f).is_err() {
                        // As for any other event: a client that does not read is disconnected
                        // rather than silently missing an event.
                        tracing::warn!(peer = %self.peer, "closing a connection whose outbound queue is full (setWatches)");
                        self.kill.notify_one();
                    }
                };
                let stat_of = |p: &str| tree.exists(p).ok().flatten();
                for p in &sw.data {
                    match stat_of(p) {
                        None => fire(event::NODE_DELETED, p),
                        Some(s) if s.mzxid > rel => fire(event::NODE_DATA_CHANGED, p),
                        Some(_) => w.add(WatchKind::Data, p, self.id),
                    }
                }
                for p in &sw.exist {
                    match stat_of(p) {
                        Some(_) => fire(event::NODE_CREATED, p),
                        None => w.add(WatchKind::Data, p, self.id),
                    }
                }
                for p in &sw.child {
                    match stat_of(p) {
                        None => fire(event::NODE_DELETED, p),
                        Some(s) if s.pzxid > rel => fire(event::NODE_CHILDREN_CHANGED, p),
                        Some(_) => w.add(WatchKind::Child, p, self.id),
                    }
                }
                for p in &sw.persistent {
                    w.add(WatchKind::Persistent, p, self.id);
                }
                for p in &sw.persistent_recursive {
                    w.add(WatchKind::PersistentRecursive, p, self.id);
                }
                Ok(Response::Empty)
            }
            Request::AddWatch { path, mode } => {
                concord_tree::path::check(&path)?;
                let kind = match mode {
                    add_watch_mode::PERSISTENT => WatchKind::Persistent,
                    add_watch_mode::PERSISTENT_RECURSIVE => WatchKind::PersistentRecursive,
                    _ => return Err(ErrorCode::BadArguments),
                };
                watches().add(kind, &path, self.id);
                // ZooKeeper answers addWatch with an ErrorResponse body (code 0), and the Java
                // client reads it: without it the client drops the connection.
                Ok(Response::ErrorBody(0))
            }
            Request::CheckWatches(w) => {
                concord_tree::path::check(&w.path)?;
                watches().check(&w.path, w.watcher_type, self.id)?;
                Ok(Response::Empty)
            }
            Request::RemoveWatches(w) => {
                concord_tree::path::check(&w.path)?;
                watches().remove(&w.path, w.watcher_type, self.id)?;
                Ok(Response::Empty)
            }
            Request::GetEphemerals { prefix } => Ok(Response::GetEphemerals(
                tree.ephemerals(self.session, &prefix),
            )),
            Request::GetAllChildrenNumber { path } => Ok(Response::AllChildrenNumber(
                tree.all_children_number(&path, &self.auth)?,
            )),
            Request::WhoAmI => Ok(Response::WhoAmI(
                self.auth
                    .iter()
                    .map(|i| ClientInfo {
                        auth_scheme: i.scheme.clone(),
                        // ZooKeeper names a digest identity by its user name only, never
                        // with its password hash.
                        user: match i.scheme.as_str() {
                            "digest" => i.id.split(':').next().unwrap_or_default().to_string(),
                            _ => i.id.clone(),
                        },
                    })
                    .collect(),
            )),
            Request::Sasl { .. } => {
                tracing::warn!(peer = %self.peer, "SASL authentication is not supported");
                Err(ErrorCode::Unimplemented)
            }
            _ => Err(ErrorCode::Unimplemented),
        }
    }
}
