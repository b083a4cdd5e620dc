//! Cluster duties that run beside Raft: following leader changes, sending session touches to
//! the leader, read indexes for `sync`, and adding configured observers as learners.

use crate::core::{Core, PeerStatus, RaftStatus, ReadIndexWaiter};
use crate::raft::peer::{Call, Peers, ReplyBody};
use crate::raft::types::{NodeId, Raft};
use crate::reconfig::{self, ReconfigJob};
use concord_jute::ErrorCode;
use openraft::{BasicNode, ChangeMembers};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a read-index request to the leader may take.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(10);

/// Follows Raft's view of the leader: records it in the core, drops the writes in flight when it
/// changes, closes client connections while there is none (clients move to a server that has
/// one), and gives every session a fresh timeout when this server becomes leader.
///
/// A leader that has not heard from a quorum for longer than `lease` counts as no leader: it
/// has most likely been cut off from the others, and openraft 0.9 leaves it leading until it
/// hears of a newer term. Until then it refuses sessions and writes, as a ZooKeeper leader that
/// lost its quorum does. Likewise a follower or observer whose leader has sent nothing for
/// syncLimit ticks (at least twice `lease`), as a ZooKeeper follower gives up on its leader. Woken by role changes, and every `tick` to look at the quorum's acks.
pub async fn watch_role(
    core: Arc<Core>,
    raft: Raft,
    clustered: bool,
    lease: Duration,
    tick: Duration,
) {
    // ZooKeeper's followers give up on a silent leader after syncLimit ticks; so does concord's
    // (never sooner than two leases, so a busy leader's late heartbeat is not mistaken for one).
    let sync_limit =
        Duration::from_millis(core.config.sync_limit as u64 * core.config.tick_time_ms as u64);
    let follower_lease = sync_limit.max(lease * 2);
    let mut server = raft.server_metrics();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(u64, Option<NodeId>)> = None;
    loop {
        let (term, leader) = {
            let m = raft.metrics().borrow().clone();
            let cut_off = match m.current_leader {
                Some(l) if l == core.my_id => m
                    .millis_since_quorum_ack
                    .is_some_and(|ms| ms > lease.as_millis() as u64),
                // A follower or observer the leader has stopped sending to (cut off, or no
                // longer a member) would otherwise serve ever older reads: an observer never
                // calls an election to notice.
                Some(_) => clustered && core.since_leader_heard() > follower_lease,
                None => false,
            };
            let leader = if cut_off { None } else { m.current_leader };
            let mut st = status_of(&m, clustered);
            if cut_off {
                st.mode = "looking";
                st.leader = None;
            }
            *core.status.lock() = st;
            (m.current_term, leader)
        };
        if last != Some((term, leader)) {
            let first = last.is_none();
            let was_leader = last.is_some_and(|(_, l)| l == Some(core.my_id));
            last = Some((term, leader));
            core.set_leader(leader);
            if !first {
                tracing::info!(term, leader = ?leader, "leader changed");
                core.reset_writes();
            }
            if leader.is_none() {
                core.close_clients();
            }
            if leader == Some(core.my_id) && !was_leader {
                core.tracker.lock().refresh_all();
            }
        }
        tokio::select! {
            r = server.changed() => if r.is_err() { return },
            _ = ticker.tick() => {}
        }
    }
}

fn status_of(m: &openraft::RaftMetrics<NodeId, BasicNode>, clustered: bool) -> RaftStatus {
    use openraft::ServerState;
    let last_log_index = m.last_log_index.unwrap_or(0);
    let applied_index = m.last_applied.map_or(0, |l| l.index);
    let mode = match m.state {
        _ if !clustered => "standalone",
        ServerState::Leader => "leader",
        ServerState::Learner => "observer",
        _ if m.current_leader.is_none() => "looking",
        _ => "follower",
    };
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
    let peers = membership
        .nodes()
        .map(|(id, node)| PeerStatus {
            id: *id,
            role: if voters.contains(id) {
                "participant"
            } else {
                "observer"
            },
            spec: node.addr.clone(),
            matched: m
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index),
        })
        .collect::<Vec<_>>();
    let lag = match &m.replication {
        Some(r) => r
            .values()
            .map(|l| last_log_index.saturating_sub(l.map_or(0, |l| l.index)))
            .max()
            .unwrap_or(0),
        None => last_log_index.saturating_sub(applied_index),
    };
    RaftStatus {
        mode,
        term: m.current_term,
        leader: m.current_leader,
        last_log_index,
        applied_index,
        lag,
        peers,
    }
}

/// On a follower or observer, sends the sessions its clients were heard from to the leader
/// every `interval`, so the leader does not expire them.
pub async fn send_touches(core: Arc<Core>, raft: Raft, peers: Arc<Peers>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let touched = core.tracker.lock().take_touched();
        let leader = core.leader();
        let Some(leader) = leader.filter(|&l| l != core.my_id) else {
            continue;
        };
        if touched.is_empty() {
            continue;
        }
        let Some(link) = peers.link_via(&raft, leader) else {
            continue;
        };
        if let Err(e) = link.call(Call::Touch(touched), interval * 4).await {
            tracing::debug!(leader, "cannot send session touches: {e}");
        }
    }
}

/// Keeps a voter that has just started from campaigning until it has heard from a leader, or
/// until `quiet` (plus a random part of the election timeout, so servers started together do
/// not all campaign at once) has passed with no leader heard. A leader that last tried to
/// reach this server while it was down tries again within [`peer::UNREACHABLE_RETRY`]; a
/// restarted server that campaigned sooner would depose a working leader (openraft's vote
/// order puts a candidate's vote above the leader's of the same term), and every client would
/// lose its connection. A ZooKeeper server that starts likewise joins the leader it finds.
/// The server's Raft config starts with elections disabled; this turns them on. A voter of a
/// group not yet formed (`initial`: the voters from zoo.cfg) forms it then, which elects it
/// at once; openraft's `initialize` campaigns straight away, so a server that started late
/// must not call it before it has listened, and forms it only once a majority of the voters
/// say they belong to no group ([`group_exists`]).
pub async fn listen_first(
    core: Arc<Core>,
    raft: Raft,
    peers: Arc<Peers>,
    initial: Option<BTreeMap<NodeId, BasicNode>>,
    quiet: Duration,
    spread: Duration,
) {
    let started = tokio::time::Instant::now();
    let spread_ms = spread.as_millis() as u64;
    let jitter = Duration::from_millis(crate::rng::random_u64() % spread_ms.max(1));
    let until = started + quiet + jitter;
    // A group of one voter has no leader to wait for.
    let sole_voter = initial.as_ref().is_some_and(|v| v.len() == 1);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        // The first tick is at once.
        tick.tick().await;
        let now = tokio::time::Instant::now();
        let heard = core.since_leader_heard() < now.duration_since(started);
        let leads_or_alone = {
            let m = raft.metrics();
            let m = m.borrow();
            let mut voters = m.membership_config.membership().voter_ids();
            m.current_leader == Some(core.my_id)
                || (voters.next() == Some(core.my_id) && voters.next().is_none())
        };
        if sole_voter || heard || leads_or_alone || now >= until {
            break;
        }
    }
    raft.runtime_config().elect(true);
    let Some(voters) = initial else {
        return;
    };
    // Form the group once a majority of the voters (this one included) say they have none;
    // not if any has one; ask again while too few answer.
    while !raft.is_initialized().await.unwrap_or(true) {
        match group_exists(&peers, &voters, core.my_id).await {
            Some(true) => {
                tracing::info!(
                    "another server of zoo.cfg already belongs to a group: waiting to be added \
                     to it (reconfig) instead of forming one"
                );
                return;
            }
            Some(false) => {
                if let Err(e) = raft.initialize(voters).await {
                    tracing::debug!("initialise: {e}");
                }
                return;
            }
            None => tokio::time::sleep(FORMED_TIMEOUT).await,
        }
    }
}

/// How long a server that is about to form a group waits for each other voter to say whether
/// it already belongs to one.
const FORMED_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether any of `voters` (other than this server) that answers in time already belongs to
/// a Raft group: Some(true) if one does, Some(false) if a majority of `voters` (this server
/// included) answered that they do not, None if too few answered to tell.
///
/// A server added to a running ensemble starts with a zoo.cfg listing the members and itself; were it to form a group from that list, it would hold a first entry with the
/// same log id as the real group's but other members, and campaign in ever higher terms (the
/// members refuse it, its log being shorter) that depose the leader once it is added. Servers
/// of a new ensemble, started together, find none formed and each form the same group.
async fn group_exists(
    peers: &Peers,
    voters: &BTreeMap<NodeId, BasicNode>,
    my_id: NodeId,
) -> Option<bool> {
    let mut asks = tokio::task::JoinSet::new();
    for (id, node) in voters.iter().filter(|(id, _)| **id != my_id) {
        let link = peers.link_to(*id, node);
        asks.spawn(async move { link.call(Call::Formed, FORMED_TIMEOUT).await });
    }
    let mut without = usize::from(voters.contains_key(&my_id));
    while let Some(r) = asks.join_next().await {
        match r {
            Ok(Ok(ReplyBody::Formed(true))) => return Some(true),
            Ok(Ok(ReplyBody::Formed(false))) => without += 1,
            _ => {}
        }
    }
    (without > voters.len() / 2).then_some(false)
}

/// Answers `sync`'s read-index requests: on the leader from Raft, elsewhere from the leader.
pub async fn serve_read_index(
    raft: Raft,
    peers: Arc<Peers>,
    mut rx: mpsc::UnboundedReceiver<ReadIndexWaiter>,
    my_id: NodeId,
) {
    while let Some(w) = rx.recv().await {
        let raft = raft.clone();
        let peers = peers.clone();
        tokio::spawn(async move {
            let _ = w.send(read_index(&raft, &peers, my_id).await);
        });
    }
}

async fn read_index(raft: &Raft, peers: &Peers, my_id: NodeId) -> Result<u64, String> {
    let leader = raft.metrics().borrow().current_leader.ok_or("no leader")?;
    if leader == my_id {
        return raft
            .get_read_log_id()
            .await
            .map(|(read, _)| read.map_or(0, |l| l.index))
            .map_err(|e| e.to_string());
    }
    let link = peers
        .link_via(raft, leader)
        .ok_or("the leader is not in the membership")?;
    match link.call(Call::ReadIndex, READ_INDEX_TIMEOUT).await {
        Ok(ReplyBody::ReadIndex(r)) => r,
        Ok(_) => Err("the leader answered with the wrong kind of reply".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// How often the leader looks for a membership change a previous leader left half done.
const FINISH_JOINT_EVERY: Duration = Duration::from_millis(500);

/// How long a reconfig sent to the leader may take.
const RECONFIG_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `reconfig` requests: on the leader itself, elsewhere by sending them to the leader.
pub async fn serve_reconfig(
    core: Arc<Core>,
    raft: Raft,
    peers: Arc<Peers>,
    mut rx: mpsc::UnboundedReceiver<ReconfigJob>,
) {
    // One reconfig at a time: a second one meanwhile is "in progress" (ZooKeeper's answer).
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    let mut ticker = tokio::time::interval(FINISH_JOINT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => return,
            },
            _ = ticker.tick() => {
                if core.leader() == Some(core.my_id) {
                    if let Ok(guard) = lock.clone().try_lock_owned() {
                        let raft = raft.clone();
                        tokio::spawn(async move {
                            reconfig::finish_joint(&raft).await;
                            drop(guard);
                        });
                    }
                }
                continue;
            }
        };
        let (core, raft, peers, lock) = (core.clone(), raft.clone(), peers.clone(), lock.clone());
        tokio::spawn(async move {
            let r = match core.leader() {
                Some(l) if l == core.my_id => {
                    reconfig::run(&core, &raft, &peers, &lock, job.args).await
                }
                Some(l) if job.forward => match peers.link_via(&raft, l) {
                    Some(link) => match link.call(Call::Reconfig(job.args), RECONFIG_TIMEOUT).await
                    {
                        Ok(ReplyBody::Reconfig(r)) => {
                            r.map_err(|c| ErrorCode::from_code(c).unwrap_or(ErrorCode::SystemError))
                        }
                        Ok(_) => Err(ErrorCode::SystemError),
                        Err(e) => {
                            tracing::info!(leader = l, "cannot send a reconfig to the leader: {e}");
                            Err(ErrorCode::ConnectionLoss)
                        }
                    },
                    None => Err(ErrorCode::ConnectionLoss),
                },
                _ => Err(ErrorCode::ConnectionLoss),
            };
            let _ = job.reply.send(r);
        });
    }
}

/// Adds the observers of the `server.N` lines to a newly formed group: while this server
/// leads and the membership is still the one the voters formed the group with, all of them in
/// one membership change. Once the membership has changed, zoo.cfg no longer governs it: from
/// then on members come and go by `reconfig`.
pub async fn add_observers(core: Arc<Core>, raft: Raft, observers: BTreeMap<NodeId, BasicNode>) {
    if observers.is_empty() {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if core.leader() != Some(core.my_id) {
            continue;
        }
        let formed = raft.metrics().borrow().membership_config.clone();
        if formed.log_id().is_some_and(|l| l.index > 0) {
            return;
        }
        match raft
            .change_membership(ChangeMembers::AddNodes(observers.clone()), true)
            .await
        {
            Ok(_) => {
                tracing::info!(observers = ?observers.keys().collect::<Vec<_>>(), "added the observers");
                return;
            }
            Err(e) => tracing::warn!("cannot add the observers yet: {e}"),
        }
    }
}
