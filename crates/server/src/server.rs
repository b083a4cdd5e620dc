//! Starting a server: load state, start Raft, the proposer, the session ticker and the listener.

use crate::cluster;
use crate::config::Config;
use crate::config::{ServerRole, ServerSpec};
use crate::conn::{self, now_ms};
use crate::core::{Core, SmState};
use crate::net::{Listener, Net, TcpNet};
use crate::raft::early_ack::EarlyAck;
use crate::raft::log_store::{LogOptions, LogStore};
use crate::raft::network::NoPeersFactory;
use crate::raft::peer::{self, PeerFactory, Peers};
use crate::raft::proposer;
use crate::raft::queue::TxnQueue;
use crate::raft::state_machine::{list_snapshots, load_snapshot, remove_leftovers, StateMachine};
use crate::raft::types::{Raft, TypeConfig};
use anyhow::{bail, Context};
use concord_tree::{Txn, TxnOp};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, SnapshotPolicy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running server.
pub struct ServerHandle {
    /// The address the client port is bound to.
    pub addr: SocketAddr,
    /// The address the admin HTTP server is bound to, when it is enabled.
    pub admin_addr: Option<SocketAddr>,
    /// Shared state (for tests and status).
    pub core: Arc<Core>,
    raft: Raft,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// Stops accepting, closes connections and shuts Raft down.
    pub async fn shutdown(self) {
        self.core.begin_stopping();
        for t in &self.tasks {
            t.abort();
        }
        for h in self.core.conns.lock().by_id.values() {
            h.kill.notify_one();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }

    /// The Raft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }
}

/// The durable Raft log a server writes: [`LogStore`] on disk, or a simulated disk.
pub trait ServerLog: RaftLogStorage<TypeConfig> {
    /// Fills open entries from `queue` as they are appended (see [`crate::raft::queue`]).
    fn fill_from(&mut self, queue: Arc<TxnQueue>);
    /// Lets `gate` acknowledge appends before they are durable (see [`crate::raft::early_ack`]).
    fn ack_early(&mut self, gate: Arc<EarlyAck>);
}

impl ServerLog for LogStore {
    fn fill_from(&mut self, queue: Arc<TxnQueue>) {
        LogStore::fill_from(self, queue)
    }

    fn ack_early(&mut self, gate: Arc<EarlyAck>) {
        LogStore::ack_early(self, gate)
    }
}

/// Starts a server with `config` on TCP and its log on disk, and returns once it serves
/// clients.
pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
    check(&config)?;
    let log_dir = config.data_log_dir.join("log");
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    // The log first: opening it takes the data directory's lock, so a second server started on
    // the same directories stops here, before it touches the snapshots.
    let log = LogStore::open(
        &log_dir,
        LogOptions {
            fsync: config.force_sync,
            ..LogOptions::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("cannot open the Raft log: {e}"))?;
    start_on(config, Arc::new(TcpNet), log).await
}

/// Starts a server with `config` on network `net` with Raft log `log`, and returns once it
/// serves clients. [`start`] uses TCP and [`LogStore`]; a simulation supplies its own.
pub async fn start_on<L: ServerLog>(
    config: Config,
    net: Arc<dyn Net>,
    mut log: L,
) -> anyhow::Result<ServerHandle> {
    check(&config)?;
    let my_id = config.my_id.unwrap_or(1);
    let snap_dir = config.data_dir.join("snapshots");
    std::fs::create_dir_all(&snap_dir)
        .with_context(|| format!("cannot create {}", snap_dir.display()))?;
    let started = std::time::Instant::now();
    remove_leftovers(&snap_dir)
        .with_context(|| format!("cannot clean up {}", snap_dir.display()))?;
    // The newest snapshot, if any. A damaged one stops the server: serving a tree that is
    // silently missing history would be worse than not serving.
    let sm_state = match list_snapshots(&snap_dir)?.first() {
        Some(f) => {
            let (state, _) = load_snapshot(&f.path, config.extended_types_enabled)
                .map_err(|e| anyhow::anyhow!("cannot load snapshot: {e}"))?;
            tracing::info!(file = %f.path.display(), zxid = format!("{:#x}", state.tree.last_zxid()), "loaded snapshot");
            state
        }
        None => SmState::empty(config.extended_types_enabled),
    };
    let core = Core::new(config.clone(), my_id, sm_state);
    log.fill_from(core.queue.clone());
    log.ack_early(core.early.clone());
    {
        // A restarted server gives every session a fresh timeout before expiring any.
        let sm = core.sm.read();
        let mut tracker = core.tracker.lock();
        for (id, s) in sm.tree.sessions() {
            tracker.add(id, s.timeout);
        }
    }
    let sm = StateMachine::new(
        core.clone(),
        snap_dir,
        config.autopurge_snap_retain_count.max(3) as usize,
    );
    let raft_config = openraft::Config {
        cluster_name: "concord".into(),
        election_timeout_min: config.raft.election_timeout_min_ms,
        election_timeout_max: config.raft.election_timeout_max_ms,
        heartbeat_interval: config.raft.heartbeat_interval_ms,
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: log_kept_after_snapshot(config.snap_count),
        // A snapshot's last chunk is installed before it is answered: a big tree takes seconds.
        install_snapshot_timeout: 60_000,
        // A cluster server listens for a leader before it campaigns (`cluster::listen_first`).
        enable_elect: !is_cluster(&config),
        ..Default::default()
    }
    .validate()
    .context("invalid Raft settings")?;
    let client_addr = config.client_addr();
    let clustered = is_cluster(&config);
    let mut tasks = Vec::new();
    let peers = if clustered {
        let peers = Peers::new(my_id, net.clone(), core.early.clone());
        let me = config
            .servers
            .iter()
            .find(|s| s.id == my_id)
            .context("this server's id has no server.N line")?;
        let at = format!("{}:{}", bracket(&me.host), me.quorum_port);
        let listener = net.bind(at.clone()).await.with_context(|| {
            format!("cannot listen on {at} for peers (server.{my_id}'s quorum port)")
        })?;
        Some((peers, listener))
    } else {
        None
    };
    let raft = match &peers {
        Some((p, _)) => {
            Raft::new(
                my_id,
                Arc::new(raft_config),
                PeerFactory(p.clone()),
                log,
                sm,
            )
            .await
        }
        None => Raft::new(my_id, Arc::new(raft_config), NoPeersFactory, log, sm).await,
    }
    .context("cannot start Raft")?;
    let peers = match peers {
        Some((p, listener)) => {
            tasks.push(tokio::spawn(peer::accept_loop(
                core.clone(),
                raft.clone(),
                listener,
            )));
            Some(p)
        }
        None => None,
    };
    if let Some(p) = &peers {
        let (voters, observers): (Vec<&ServerSpec>, Vec<&ServerSpec>) = config
            .servers
            .iter()
            .partition(|s| s.role == ServerRole::Participant);
        let nodes = |specs: Vec<&ServerSpec>| -> BTreeMap<_, _> {
            specs
                .into_iter()
                .map(|s| (s.id, BasicNode::new(s.to_string())))
                .collect()
        };
        let (voters, observers) = (nodes(voters), nodes(observers));
        core.tracker.lock().record_touches();
        // Every voter initialises a new group with the same members (openraft allows that),
        // once it has listened for a leader in vain; observers wait for the leader to add them.
        let initial = voters.contains_key(&my_id).then_some(voters);
        tasks.push(tokio::spawn(cluster::listen_first(
            core.clone(),
            raft.clone(),
            p.clone(),
            initial,
            2 * peer::UNREACHABLE_RETRY,
            Duration::from_millis(config.raft.election_timeout_max_ms),
        )));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = core.read_index.set(tx);
        let (rtx, rrx) = tokio::sync::mpsc::unbounded_channel();
        let _ = core.reconfig.set(rtx);
        tasks.push(tokio::spawn(cluster::serve_reconfig(
            core.clone(),
            raft.clone(),
            p.clone(),
            rrx,
        )));
        let touch_every = Duration::from_millis((config.tick_time_ms as u64 / 2).clamp(20, 1000));
        tasks.push(tokio::spawn(cluster::serve_read_index(
            raft.clone(),
            p.clone(),
            rx,
            my_id,
        )));
        tasks.push(tokio::spawn(cluster::send_touches(
            core.clone(),
            raft.clone(),
            p.clone(),
            touch_every,
        )));
        tasks.push(tokio::spawn(
            core.early.clone().resend_commits(raft.clone()),
        ));
        tasks.push(tokio::spawn(cluster::add_observers(
            core.clone(),
            raft.clone(),
            observers,
        )));
    } else {
        if !raft.is_initialized().await? {
            let members = BTreeMap::from([(my_id, BasicNode::new(client_addr.to_string()))]);
            raft.initialize(members)
                .await
                .context("cannot initialise the Raft group")?;
        } else {
            // A group of one elects itself at once instead of waiting out an election timeout.
            let _ = raft.trigger().elect().await;
        }
        raft.wait(Some(Duration::from_secs(60)))
            .metrics(
                |m| {
                    m.current_leader == Some(my_id)
                        && m.last_applied.map(|l| l.index) >= m.last_log_index
                },
                "become leader and apply the log",
            )
            .await
            .context("the server did not become ready")?;
    }

    let listener = net
        .bind(client_addr.to_string())
        .await
        .with_context(|| format!("cannot listen on {client_addr}"))?;
    let addr = listener.local_addr()?;
    let _ = core.bound_addr.set(addr);
    let admin = if config.admin_enable_server {
        let at = SocketAddr::new(config.admin_server_address, config.admin_server_port);
        let l = TcpListener::bind(at).await.with_context(|| {
            format!("cannot listen on {at} for the admin server (admin.serverPort; set admin.enableServer=false to turn it off)")
        })?;
        Some(l)
    } else {
        None
    };
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    tasks.extend([
        tokio::spawn(cluster::watch_role(
            core.clone(),
            raft.clone(),
            clustered,
            Duration::from_millis(config.raft.election_timeout_max_ms),
            Duration::from_millis(config.raft.heartbeat_interval_ms),
        )),
        tokio::spawn(proposer::run(core.clone(), raft.clone(), peers.clone())),
        tokio::spawn(session_ticker(core.clone())),
        tokio::spawn(snapshot_trigger(core.clone(), raft.clone())),
        tokio::spawn(accept_loop(core.clone(), listener)),
    ]);
    if let Some(l) = admin {
        tasks.push(tokio::spawn(crate::admin::serve(core.clone(), l)));
    }
    {
        let sm = core.sm.read();
        tracing::info!(
            "concord {} serving ZooKeeper clients on {addr}; data in {}, log in {}; zxid {:#x}, {} znodes, {} sessions; ready in {} ms",
            env!("CARGO_PKG_VERSION"),
            config.data_dir.display(),
            config.data_log_dir.display(),
            sm.tree.last_zxid(),
            sm.tree.node_count(),
            sm.tree.sessions().count(),
            started.elapsed().as_millis()
        );
        if let Some(a) = admin_addr {
            tracing::info!("admin server on http://{a}/commands");
        }
    }
    Ok(ServerHandle {
        addr,
        admin_addr,
        core,
        raft,
        tasks,
    })
}

/// Runs a server until Ctrl-C or SIGTERM, or until its write path fails (then with an error).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let handle = start(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let failed = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
        reason = handle.core.write_path_failed() => Some(reason),
    };
    tracing::info!("shutting down");
    handle.shutdown().await;
    match failed {
        // A server that cannot write must not go on answering as if it could: stop, so a
        // supervisor restarts it (and a restart replays what reached the log).
        Some(reason) => anyhow::bail!("stopped: the write path failed: {reason}"),
        None => Ok(()),
    }
}

async fn accept_loop(core: Arc<Core>, mut listener: Box<dyn Listener>) {
    let limit = core.config.max_client_cnxns;
    loop {
        let (rd, wr, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Running out of descriptors must not end the server; back off and retry.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = peer.ip();
        {
            let mut conns = core.conns.lock();
            let n = conns.per_ip.entry(ip).or_default();
            if limit > 0 && *n >= limit {
                tracing::warn!(%peer, "too many connections from {ip} (maxClientCnxns={limit}); closing");
                continue;
            }
            *n += 1;
        }
        let core = core.clone();
        tokio::spawn(async move {
            conn::serve(core.clone(), rd, wr, peer).await;
            let mut conns = core.conns.lock();
            if let Some(n) = conns.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    conns.per_ip.remove(&ip);
                }
            }
        });
    }
}

fn is_leader(core: &Core) -> bool {
    core.leader() == Some(core.my_id)
}

/// Proposes expiry of sessions whose clients went silent, and the purge of expired TTL nodes
/// and empty containers.
async fn session_ticker(core: Arc<Core>) {
    let tick = Duration::from_millis((core.config.tick_time_ms as u64 / 2).clamp(20, 1000));
    let purging = Arc::new(AtomicBool::new(false));
    loop {
        tokio::time::sleep(tick).await;
        if !is_leader(&core) {
            continue;
        }
        let expired = core
            .tracker
            .lock()
            .take_expired(tokio::time::Instant::now());
        for id in expired {
            tracing::info!(session = format!("{id:#x}"), "expiring session");
            // Not waited for: the expiry is applied like any other txn.
            drop(
                core.propose(Txn {
                    session: id,
                    time: now_ms(),
                    auth: Vec::new(),
                    op: TxnOp::CloseSession { expired: true },
                })
                .await,
            );
        }
        let now = now_ms();
        if !purging.load(Ordering::Relaxed) && core.sm.read().tree.has_stale(now) {
            purging.store(true, Ordering::Relaxed);
            let rx = core
                .propose(Txn {
                    session: 0,
                    time: now,
                    auth: Vec::new(),
                    op: TxnOp::PurgeStale,
                })
                .await;
            let flag = purging.clone();
            tokio::spawn(async move {
                let _ = rx.await;
                flag.store(false, Ordering::Relaxed);
            });
        }
    }
}

/// Asks Raft for a snapshot whenever enough txns have been applied since the last one.
async fn snapshot_trigger(core: Arc<Core>, raft: Raft) {
    loop {
        core.snapshot_wanted.notified().await;
        // The permit may be left over from before the last snapshot started.
        if !core.snapshot_due() {
            continue;
        }
        if let Err(e) = raft.trigger().snapshot().await {
            tracing::warn!("cannot trigger snapshot: {e}");
        }
        // Raft builds it in the background; do not ask again until it has started.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Log entries kept behind a snapshot, so a follower that is only a little behind catches up
/// from the log rather than from a whole snapshot: 1000, but never more than half of
/// `snap_count` (the txns between snapshots; an entry holds one or more), so a small snapCount
/// also keeps the log small.
pub fn log_kept_after_snapshot(snap_count: u64) -> u64 {
    (snap_count / 2).clamp(1, 1000)
}

/// Whether `config` describes a group of more than one server.
pub fn is_cluster(config: &Config) -> bool {
    config.servers.len() > 1
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Fails with a clear message when two configuration values cannot work together.
pub fn check(config: &Config) -> anyhow::Result<()> {
    if !is_cluster(config) {
        return Ok(());
    }
    let Some(my_id) = config.my_id else {
        bail!(
            "{} server.N lines make this a cluster, but this server's id is not known: write it to {} (as ZooKeeper's myid file) or pass --myid",
            config.servers.len(),
            config.data_dir.join("myid").display()
        );
    };
    if !config.servers.iter().any(|s| s.id == my_id) {
        bail!("this server's id {my_id} (myid) has no server.{my_id} line");
    }
    if let Some(s) = config.servers.iter().find(|s| s.id == 0 || s.id >= 1 << 16) {
        bail!("server.{}: server ids must be between 1 and 65535", s.id);
    }
    if !config
        .servers
        .iter()
        .any(|s| s.role == ServerRole::Participant)
    {
        bail!("no server.N line is a participant: a cluster needs at least one voter");
    }
    Ok(())
}
