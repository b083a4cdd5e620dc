//! Dynamic membership: ZooKeeper's `reconfig` request and `/zookeeper/config`.
//!
//! The Raft membership *is* the cluster configuration. Each member's node holds its `server.N`
//! spec; voters are participants and learners are observers. Whenever a uniform membership is
//! applied, the state machine writes it to `/zookeeper/config` in ZooKeeper's format with the
//! entry's Raft log index plus one as its version ([`render`], `DataTree::set_config`), so every server
//! shows the same text and watches on the node fire everywhere.
//!
//! A `reconfig` runs on the leader ([`run`]): the checks in ZooKeeper's order, then up to three
//! openraft membership changes (set the new or changed nodes, replace the voters by joint
//! consensus, remove the nodes that left). The server that took the request waits until it has
//! applied the last of them and answers with the new config and its Stat.

use crate::config::{ServerRole, ServerSpec};
use crate::core::Core;
use crate::raft::peer::{Call, Peers};
use crate::raft::types::{NodeId, Raft};
use concord_jute::ErrorCode;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Membership, RaftMetrics};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::oneshot;

/// A reconfig request as the leader runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconfigArgs {
    /// `server.N=spec` entries to add or replace, comma separated (incremental).
    pub joining: Option<String>,
    /// Ids to remove, comma separated (incremental).
    pub leaving: Option<String>,
    /// The whole new member list (non-incremental), when not `None`.
    pub new_members: Option<String>,
    /// The config version the caller expects, or -1 for any.
    pub from_version: i64,
    /// Whether the caller may change the config (checked where the session lives, and
    /// reported last, as ZooKeeper does).
    pub authorized: bool,
}

/// A reconfig handed to the task that runs it (see `cluster::serve_reconfig`).
pub struct ReconfigJob {
    /// The request.
    pub args: ReconfigArgs,
    /// Whether to send it on to the leader when this server does not lead (false for one that
    /// came from another server, so a stale view of the leader cannot bounce it around).
    pub forward: bool,
    /// Where the result goes: the committed change, or the error.
    pub reply: oneshot::Sender<Result<Committed, ErrorCode>>,
}

/// A committed reconfig, as the leader reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// Log index of the last membership entry the change wrote.
    pub index: u64,
    /// `/zookeeper/config` as the leader applied it: the reply on a server the change removed,
    /// which is sent nothing more and so never applies it.
    pub data: Vec<u8>,
    /// Its Stat, jute-encoded.
    pub stat: Vec<u8>,
}

impl Committed {
    /// Whether the new config lists server `id` (as a voter or an observer).
    pub fn lists(&self, id: NodeId) -> bool {
        let prefix = format!("server.{id}=");
        String::from_utf8_lossy(&self.data)
            .lines()
            .any(|l| l.starts_with(&prefix))
    }
}

/// Cluster members with their specs; the role in each spec says voter or not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Members(pub BTreeMap<NodeId, ServerSpec>);

impl Members {
    /// The members of a Raft membership (voters as participants, learners as observers).
    pub fn of(m: &Membership<NodeId, BasicNode>) -> Members {
        let voters: BTreeSet<NodeId> = m.voter_ids().collect();
        Members(
            m.nodes()
                .filter_map(|(id, node)| {
                    let mut spec = ServerSpec::parse(*id, &node.addr).ok()?;
                    spec.role = if voters.contains(id) {
                        ServerRole::Participant
                    } else {
                        ServerRole::Observer
                    };
                    Some((*id, spec))
                })
                .collect(),
        )
    }

    /// The ids of the participants.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.0
            .iter()
            .filter(|(_, s)| s.role == ServerRole::Participant)
            .map(|(id, _)| *id)
            .collect()
    }

    /// ZooKeeper's `server.N=...` lines, in id order, without the version line.
    pub fn lines(&self) -> String {
        self.0
            .iter()
            .map(|(id, s)| format!("server.{id}={s}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The `/zookeeper/config` text of a membership, without its version line; `None` for a
/// joint membership (the middle of a change, which ZooKeeper has no way to show).
pub fn render(m: &Membership<NodeId, BasicNode>) -> Option<String> {
    (m.get_joint_config().len() == 1).then(|| Members::of(m).lines())
}

/// The version of a `/zookeeper/config` text: its last line, `version=<hex>` (0 if none).
pub fn version_of(config: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(config);
    text.lines()
        .last()
        .and_then(|l| l.strip_prefix("version="))
        .and_then(|v| i64::from_str_radix(v, 16).ok())
        .unwrap_or(0)
}

/// Splits a comma- or newline-separated list, trimming items and dropping empty ones.
fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|i| !i.is_empty())
}

/// Parses `server.N=spec` (or `N=spec`); `None` for a `version=` line, which is ignored.
fn member(item: &str, need_client: bool) -> Result<Option<(NodeId, ServerSpec)>, ErrorCode> {
    let (key, value) = item.split_once('=').ok_or(ErrorCode::BadArguments)?;
    let key = key.trim();
    if key == "version" {
        return Ok(None);
    }
    let id = key.rsplit('.').next().unwrap_or(key);
    if key.contains('.') && !key.starts_with("server.") {
        // group.N and weight.N: hierarchical quorums are not supported.
        return Err(ErrorCode::BadArguments);
    }
    let id: NodeId = id.parse().map_err(|_| ErrorCode::BadArguments)?;
    if id == 0 || id >= 1 << 16 {
        return Err(ErrorCode::BadArguments);
    }
    let spec = ServerSpec::parse(id, value).map_err(|_| ErrorCode::BadArguments)?;
    if need_client && spec.client_addr.is_none() {
        // ZooKeeper requires a joiner's client port.
        return Err(ErrorCode::BadArguments);
    }
    Ok(Some((id, spec)))
}

/// The members a reconfig asks for, from the current ones (ZooKeeper's parsing: removals
/// before additions, an id that exists is replaced, an unknown id to remove is ignored).
pub fn plan(current: &Members, args: &ReconfigArgs) -> Result<Members, ErrorCode> {
    let next = match &args.new_members {
        Some(all) => {
            let mut m = Members::default();
            for item in items(all) {
                if let Some((id, spec)) = member(item, false)? {
                    m.0.insert(id, spec);
                }
            }
            if m.0.is_empty() {
                // ZooKeeper fails an empty member list while marshalling it.
                return Err(ErrorCode::MarshallingError);
            }
            m
        }
        None => {
            let mut m = current.clone();
            for id in items(args.leaving.as_deref().unwrap_or_default()) {
                let id: NodeId = id.parse().map_err(|_| ErrorCode::MarshallingError)?;
                m.0.remove(&id);
            }
            for item in items(args.joining.as_deref().unwrap_or_default()) {
                if let Some((id, spec)) = member(item, true)? {
                    m.0.insert(id, spec);
                }
            }
            m
        }
    };
    if next.voters().is_empty() {
        return Err(ErrorCode::BadArguments);
    }
    // Two servers may not share a peer address.
    let mut seen = BTreeSet::new();
    for s in next.0.values() {
        if !seen.insert((s.host.clone(), s.quorum_port)) {
            return Err(ErrorCode::BadArguments);
        }
    }
    Ok(next)
}

/// Waits until each of `ids` (learners just added) has the log up to `index`, for at most
/// `limit`, and no longer once `silence` has passed without a word from one of them (a server
/// that stopped is not waited for the whole time).
async fn catch_up(
    raft: &Raft,
    peers: &Peers,
    ids: &BTreeSet<NodeId>,
    index: u64,
    limit: Duration,
    silence: Duration,
) {
    let start = tokio::time::Instant::now();
    loop {
        let done = {
            let m = raft.metrics();
            let m = m.borrow();
            let r = m.replication.as_ref();
            ids.iter().all(|id| {
                r.and_then(|r| r.get(id).copied().flatten())
                    .is_some_and(|l| l.index >= index)
            })
        };
        let waited = start.elapsed();
        if done
            || waited >= limit
            || (waited >= silence && ids.iter().any(|&id| !peers.heard_within(id, silence)))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many of `voters` are this server (the leader) or members connected and keeping up.
fn in_sync(
    m: &RaftMetrics<NodeId, BasicNode>,
    peers: &Peers,
    my_id: NodeId,
    voters: &BTreeSet<NodeId>,
    within: Duration,
) -> usize {
    voters
        .iter()
        .filter(|&&id| id == my_id || synced(m, peers, id, within))
        .count()
}

/// Adds `newcomers`, voters of the next configuration that are not members yet, as learners,
/// lets them catch up, and returns the members then if the next configuration's `voters` have
/// a quorum in sync counting them (`have` are in sync without them); otherwise removes them
/// again and answers NEWCONFIGNOQUORUM.
async fn join_as_learners(
    core: &Core,
    raft: &Raft,
    peers: &Peers,
    newcomers: BTreeMap<NodeId, BasicNode>,
    voters: &BTreeSet<NodeId>,
    have: usize,
    within: Duration,
) -> Result<Members, ErrorCode> {
    // Only a server that answers can catch up and count: one that does not (not started
    // yet, or unreachable) is not waited for.
    let mut up = BTreeSet::new();
    for (&id, node) in &newcomers {
        let link = peers.link_to(id, node);
        // A second try once the link may dial again, should it have tried just before.
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(crate::raft::peer::REDIAL).await;
            }
            if link.call(Call::Formed, within).await.is_ok() {
                up.insert(id);
                break;
            }
        }
    }
    if (have + up.len()) * 2 <= voters.len() {
        return Err(ErrorCode::NewConfigNoQuorum);
    }
    let ids: BTreeSet<NodeId> = newcomers.keys().copied().collect();
    tracing::info!(servers = ?ids, "reconfig: the new voters join as learners to catch up first");
    let added = change(raft, ChangeMembers::AddNodes(newcomers)).await?;
    let sync_time = Duration::from_millis(
        u64::from(core.config.init_limit) * u64::from(core.config.tick_time_ms),
    );
    // Long enough for openraft to try a server it could not reach at first again twice.
    let silence = within.max(3 * crate::raft::peer::UNREACHABLE_RETRY);
    catch_up(raft, peers, &up, added, sync_time, silence).await;
    let m = raft.metrics().borrow().clone();
    if in_sync(&m, peers, core.my_id, voters, within) * 2 <= voters.len() {
        // A refused reconfig leaves the members as they were.
        tracing::info!(servers = ?ids, "reconfig: no quorum with the new voters; removing them again");
        change(raft, ChangeMembers::RemoveNodes(ids)).await?;
        return Err(ErrorCode::NewConfigNoQuorum);
    }
    Ok(Members::of(m.membership_config.membership()))
}

/// Whether `id`, a member in `m`, is connected and keeping up, so that it can count toward the
/// quorum of a new configuration.
fn synced(m: &RaftMetrics<NodeId, BasicNode>, peers: &Peers, id: NodeId, within: Duration) -> bool {
    m.membership_config.membership().get_node(&id).is_some()
        && m.replication
            .as_ref()
            .is_some_and(|r| r.get(&id).is_some_and(Option::is_some))
        && peers.heard_within(id, within)
}

fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ErrorCode {
    match e {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => match c {
            ChangeMembershipError::InProgress(_) => ErrorCode::ReconfigInProgress,
            _ => ErrorCode::BadArguments,
        },
        // Leadership moved while the change ran: the client may retry elsewhere.
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ErrorCode::ConnectionLoss,
        RaftError::Fatal(_) => ErrorCode::SystemError,
    }
}

/// Runs a reconfig on the leader: checks it in ZooKeeper's order (in progress, version,
/// parse, voters, quorum of the new config, permission) and then changes the membership.
/// Returns the log index of the last membership entry.
pub async fn run(
    core: &Core,
    raft: &Raft,
    peers: &Peers,
    lock: &tokio::sync::Mutex<()>,
    args: ReconfigArgs,
) -> Result<Committed, ErrorCode> {
    let _running = lock.try_lock().map_err(|_| ErrorCode::ReconfigInProgress)?;
    let m = raft.metrics().borrow().clone();
    if m.current_leader != Some(core.my_id) {
        return Err(ErrorCode::ConnectionLoss);
    }
    let effective = m.membership_config.clone();
    let (applied_membership, version) = {
        let sm = core.sm.read();
        let version = sm
            .tree
            .get_data(concord_tree::tree::CONFIG_PATH, &[])
            .map(|(data, _)| version_of(data.unwrap_or_default()))
            .unwrap_or(0);
        (*sm.membership.log_id(), version)
    };
    if effective.membership().get_joint_config().len() > 1
        || *effective.log_id() != applied_membership
    {
        return Err(ErrorCode::ReconfigInProgress);
    }
    if args.from_version != -1 && args.from_version != version {
        return Err(ErrorCode::BadVersion);
    }
    let mut current = Members::of(effective.membership());
    let next = plan(&current, &args)?;
    let voters = next.voters();
    let within = Duration::from_millis(core.config.raft.election_timeout_max_ms);
    let have = in_sync(&m, peers, core.my_id, &voters, within);
    // ZooKeeper counts a joining server that has connected and synced as a non-voting
    // follower. Here a server is sent the log only once it is a member: when the voters in
    // sync are too few, the voters to be that are not members yet join as learners (observers)
    // first, get the time a ZooKeeper follower gets to sync (initLimit ticks), and are
    // counted then.
    let newcomers = if have * 2 <= voters.len() {
        let newcomers: BTreeMap<NodeId, BasicNode> = next
            .0
            .iter()
            .filter(|(id, _)| voters.contains(id) && !current.0.contains_key(id))
            .map(|(id, s)| (*id, BasicNode::new(s.to_string())))
            .collect();
        if newcomers.is_empty() {
            return Err(ErrorCode::NewConfigNoQuorum);
        }
        Some(newcomers)
    } else {
        None
    };
    if !args.authorized {
        return Err(ErrorCode::NoAuth);
    }
    if let Some(newcomers) = newcomers {
        current = join_as_learners(core, raft, peers, newcomers, &voters, have, within).await?;
    }
    let set: BTreeMap<NodeId, BasicNode> = next
        .0
        .iter()
        .filter(|(id, s)| current.0.get(id) != Some(s))
        .map(|(id, s)| (*id, BasicNode::new(s.to_string())))
        .collect();
    let gone: BTreeSet<NodeId> = current
        .0
        .keys()
        .filter(|id| !next.0.contains_key(id))
        .copied()
        .collect();
    let voters_change = voters != current.voters();
    tracing::info!(
        from = %current.lines().replace('\n', ", "),
        to = %next.lines().replace('\n', ", "),
        "reconfig"
    );
    let mut last = None;
    // Every reconfig makes a new config version, as in ZooKeeper, even one that changes
    // nothing: then the (empty) node update is the one entry written.
    if !set.is_empty() || (!voters_change && gone.is_empty()) {
        last = Some(change(raft, ChangeMembers::SetNodes(set)).await?);
    }
    if voters_change {
        last = Some(change(raft, ChangeMembers::ReplaceAllVoters(voters)).await?);
    }
    if !gone.is_empty() {
        last = Some(change(raft, ChangeMembers::RemoveNodes(gone)).await?);
    }
    let index = last.expect("at least one change is made");
    // openraft answers a change once the leader applied it; the wait is for certainty only.
    core.wait_applied(index).await;
    let sm = core.sm.read();
    let (data, stat) = sm
        .tree
        .get_data(concord_tree::tree::CONFIG_PATH, &[])
        .map_err(|_| ErrorCode::SystemError)?;
    let mut encoded = Vec::new();
    stat.encode(&mut encoded);
    Ok(Committed {
        index,
        data: data.unwrap_or_default().to_vec(),
        stat: encoded,
    })
}

/// Completes a membership change that a leader left in its joint stage (it lost leadership
/// or crashed between openraft's two steps; openraft leaves that to the application): moves
/// to the new voter set alone. Without this, every later reconfig would be "in progress".
pub async fn finish_joint(raft: &Raft) {
    let (m, committed) = {
        let m = raft.metrics().borrow().clone();
        (m.membership_config.clone(), m.last_applied)
    };
    let joint = m.membership().get_joint_config();
    // Only once the joint entry is applied here: before that it may still be this leader's own
    // change in progress.
    if joint.len() < 2 || m.log_id().as_ref() > committed.as_ref() {
        return;
    }
    let target = joint.last().cloned().unwrap_or_default();
    tracing::info!(voters = ?target, "finishing a membership change a previous leader left half done");
    if let Err(e) = change(raft, ChangeMembers::ReplaceAllVoters(target)).await {
        tracing::info!("cannot finish the membership change yet: {e}");
    }
}

/// Makes one membership change (keeping removed voters as learners); returns its log index.
async fn change(raft: &Raft, c: ChangeMembers<NodeId, BasicNode>) -> Result<u64, ErrorCode> {
    raft.change_membership(c, true)
        .await
        .map(|r| r.log_id.index)
        .map_err(change_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(lines: &[&str]) -> Members {
        let args = ReconfigArgs {
            joining: None,
            leaving: None,
            new_members: Some(lines.join(",")),
            from_version: -1,
            authorized: true,
        };
        plan(&Members::default(), &args).unwrap()
    }

    fn incremental(joining: Option<&str>, leaving: Option<&str>) -> ReconfigArgs {
        ReconfigArgs {
            joining: joining.map(str::to_string),
            leaving: leaving.map(str::to_string),
            new_members: None,
            from_version: -1,
            authorized: true,
        }
    }

    fn three() -> Members {
        members(&[
            "server.1=localhost:2001:3001:participant",
            "server.2=localhost:2002:3002",
            "server.3=localhost:2003:3003:participant;2183",
        ])
    }

    #[test]
    fn the_version_is_the_last_lines_hex() {
        assert_eq!(version_of(b"server.1=a:1:2:participant\nversion=1f"), 0x1f);
        assert_eq!(version_of(b""), 0);
        assert_eq!(version_of(b"server.1=a:1:2:participant"), 0);
    }

    #[test]
    fn lines_follow_zookeepers_format() {
        assert_eq!(
            three().lines(),
            "server.1=localhost:2001:3001:participant\n\
             server.2=localhost:2002:3002:participant\n\
             server.3=localhost:2003:3003:participant;0.0.0.0:2183"
        );
    }

    #[test]
    fn joining_adds_and_replaces_and_leaving_removes_first() {
        let joined = plan(
            &three(),
            &incremental(
                Some("server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456, 2=localhost:2002:3002:observer;127.0.0.1:2182"),
                Some(" 3 , 99"),
            ),
        )
        .unwrap();
        assert_eq!(
            joined.lines(),
            "server.1=localhost:2001:3001:participant\n\
             server.2=localhost:2002:3002:observer;127.0.0.1:2182\n\
             server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456"
        );
        assert_eq!(joined.voters(), BTreeSet::from([1]));
        // Removed and added again in one call: the removal comes first.
        let back = plan(
            &three(),
            &incremental(Some("server.3=localhost:2003:3003;2183"), Some("3")),
        )
        .unwrap();
        assert_eq!(back, three());
    }

    #[test]
    fn bad_requests_get_zookeepers_codes() {
        let cur = three();
        let bad = |j: Option<&str>, l: Option<&str>| plan(&cur, &incremental(j, l)).unwrap_err();
        assert_eq!(bad(Some("some thing"), None), ErrorCode::BadArguments);
        // A joiner needs its client port.
        assert_eq!(
            bad(Some("server.4=localhost:2004:3004"), None),
            ErrorCode::BadArguments
        );
        assert_eq!(
            bad(Some("server.x=localhost:2004:3004;2184"), None),
            ErrorCode::BadArguments
        );
        assert_eq!(bad(Some("group.1=1:2:3"), None), ErrorCode::BadArguments);
        assert_eq!(bad(None, Some("abc")), ErrorCode::MarshallingError);
        // No voter left.
        assert_eq!(bad(None, Some("1,2,3")), ErrorCode::BadArguments);
        // Two servers on one peer address.
        assert_eq!(
            bad(Some("server.4=localhost:2001:3004;2184"), None),
            ErrorCode::BadArguments
        );
        let empty = ReconfigArgs {
            new_members: Some(String::new()),
            ..incremental(None, None)
        };
        assert_eq!(plan(&cur, &empty).unwrap_err(), ErrorCode::MarshallingError);
    }

    #[test]
    fn non_incremental_replaces_everything_and_ignores_the_version_line() {
        let next = plan(
            &three(),
            &ReconfigArgs {
                new_members: Some(
                    "server.1=localhost:2001:3001:participant;2181\nversion=100000000".into(),
                ),
                joining: Some("server.9=h:1:2;3".into()),
                ..incremental(None, Some("1"))
            },
        )
        .unwrap();
        assert_eq!(
            next.lines(),
            "server.1=localhost:2001:3001:participant;0.0.0.0:2181"
        );
    }

    #[test]
    fn rendering_a_membership_uses_voters_as_participants() {
        let nodes: BTreeMap<NodeId, BasicNode> = three()
            .0
            .iter()
            .map(|(id, s)| (*id, BasicNode::new(s.to_string())))
            .collect();
        let m = Membership::new(vec![BTreeSet::from([1, 3])], nodes.clone());
        assert_eq!(
            render(&m).unwrap(),
            "server.1=localhost:2001:3001:participant\n\
             server.2=localhost:2002:3002:observer\n\
             server.3=localhost:2003:3003:participant;0.0.0.0:2183"
        );
        let joint = Membership::new(
            vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([1, 3])],
            nodes,
        );
        assert_eq!(render(&joint), None);
    }
}
