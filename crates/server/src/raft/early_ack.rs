//! Early acknowledgement of appends to openraft, so that the leader's fsync and the
//! followers' run side by side instead of one after the other, and a follower's openraft is
//! not held up by its own fsync.
//!
//! openraft 0.9 replicates an entry only once the leader's own append of it has been reported
//! durable (`RaftCore::append_to_log` awaits the log's flush callback before the replication
//! commands run). One write through a cluster therefore waited for two fsyncs in series. The
//! leader now reports its appends of client batches durable at once, while its log writer
//! syncs them, so openraft sends them to the followers at once.
//!
//! openraft then counts the leader in the quorum of an entry that may not be on its disk yet.
//! Raft's guarantee holds because nothing such an entry carries can be seen before it is:
//! - the state machine applies an entry only once it is durable on this server
//!   ([`EarlyAck::wait_durable`]), so no client reply, read, watch or snapshot shows it first;
//! - the commit index the leader sends its followers never passes its durable log
//!   ([`EarlyAck::clamp_commit`]), so no follower applies it first either.
//!
//! An entry is thus seen only once it is on the leader's disk and on the disks of the
//! followers openraft counted (they acknowledge only after their own fsync): a majority, as
//! Raft requires. If the leader crashes before its sync, the entry may be lost, but nobody saw
//! it committed, exactly as with an entry that never reached a majority.
//!
//! A follower's core, too, waits for each append's fsync before it handles the next request,
//! so a commit index that arrived with new entries was applied only after those entries were
//! synced. A follower therefore reports its leader's batches durable to its own openraft at
//! once as well; what the leader counts is the follower's answer, which `peer::serve_conn`
//! sends only once the entries it acknowledges are durable here
//! ([`EarlyAck::wait_durable`]), and the state machine waits for them as on the leader.
//!
//! A leader that restarts does not lead on in its old term (see [`EarlyAck::restored_vote`]).
//!
//! Only appends that are safe to count early are acknowledged early: every entry a client
//! batch of the leader of the current (committed) vote, following an entry of the same
//! leadership. Blank and membership entries are acknowledged only once durable, so a
//! membership change never goes ahead on an undurable copy of the previous one, and entries
//! of older leaders (a catching-up follower, or a new leader's old entries sent back) wait for
//! their sync too.

use super::types::{Entry, LogId, NodeId, Vote};
use openraft::EntryPayload;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

/// Called by a log store once an append is durable (or failed).
pub type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

/// An append acknowledged early and not yet durable.
struct Unsynced {
    seq: u64,
    /// Index of its first entry.
    first: u64,
    /// Log id of the entry before it, which is durable once every earlier append is.
    prev: LogId,
}

struct State {
    /// The last entry appended through this gate.
    last: Option<LogId>,
    /// Early-acknowledged appends not yet durable, oldest first.
    unsynced: VecDeque<Unsynced>,
    seq: u64,
    /// Why an early-acknowledged append failed to become durable; nothing more is applied.
    failed: Option<String>,
    /// A commit index sent to a follower was held back: once the log has synced further,
    /// the followers are sent the real one ([`EarlyAck::resend_commits`]).
    owed: bool,
}

/// Settles an early-acknowledged append; dropped without being called (the store failed or
/// stopped before syncing it), it settles the append as failed, so nothing waits for it forever.
struct Settle {
    gate: Arc<EarlyAck>,
    seq: u64,
    settled: bool,
}

impl Settle {
    fn finish(&mut self, r: io::Result<()>) {
        self.settled = true;
        self.gate.settle(self.seq, r);
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if !self.settled {
            self.gate.settle(
                self.seq,
                Err(io::Error::other("the log store dropped the append")),
            );
        }
    }
}

/// Decides which appends are acknowledged early and holds back what they carry until they
/// are durable; shared by the log store, the state machine and the peer network.
pub struct EarlyAck {
    my_id: NodeId,
    enabled: bool,
    state: Mutex<State>,
    /// Bumped whenever an unsynced append becomes durable or fails.
    changed: tokio::sync::watch::Sender<u64>,
    /// Woken when a held-back commit index may now be sent in full.
    owed: tokio::sync::Notify,
}

impl EarlyAck {
    /// A gate for server `my_id`; a disabled one acknowledges every append once durable.
    pub fn new(my_id: NodeId, enabled: bool) -> Arc<EarlyAck> {
        Arc::new(EarlyAck {
            my_id,
            enabled,
            state: Mutex::new(State {
                last: None,
                unsynced: VecDeque::new(),
                seq: 0,
                failed: None,
                owed: false,
            }),
            changed: tokio::sync::watch::Sender::new(0),
            owed: tokio::sync::Notify::new(),
        })
    }

    /// The vote a restarted server starts from, given the one its log holds: its own committed
    /// vote (it was the leader) comes back uncommitted, so it campaigns in a new term instead
    /// of leading on in the old one. openraft would otherwise resume leadership at once; but
    /// entries it acknowledged early may have been lost in the crash after reaching followers,
    /// and leading on in the same term it would give new entries their log ids: two entries
    /// with one id, which Raft's log matching cannot tell apart.
    pub fn restored_vote(&self, vote: Option<Vote>) -> Option<Vote> {
        match vote {
            Some(v) if self.enabled && v.committed && v.leader_id.node_id == self.my_id => {
                Some(Vote::new(v.leader_id.term, self.my_id))
            }
            v => v,
        }
    }

    /// Called by a log store for each append of `entries` (already readable) with the vote
    /// it holds and `ack`, which reports the append durable to openraft: calls `ack` now if
    /// that is safe, and returns what the store calls once the append is durable.
    pub fn on_append(self: &Arc<Self>, vote: Option<&Vote>, entries: &[Entry], ack: Done) -> Done {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return ack;
        };
        let seq = {
            let mut st = self.state.lock();
            let prev = st.last.replace(last.log_id);
            let early = self.enabled && st.failed.is_none() && {
                match (vote, prev) {
                    (Some(v), Some(prev)) => {
                        v.committed
                            && prev.leader_id == v.leader_id
                            && prev.index + 1 == first.log_id.index
                            && entries.iter().all(|e| {
                                e.log_id.leader_id == v.leader_id
                                    && matches!(e.payload, EntryPayload::Normal(_))
                            })
                    }
                    _ => false,
                }
            };
            if !early {
                return ack;
            }
            st.seq += 1;
            let seq = st.seq;
            st.unsynced.push_back(Unsynced {
                seq,
                first: first.log_id.index,
                prev: prev.expect("checked above"),
            });
            seq
        };
        ack(Ok(()));
        let mut guard = Settle {
            gate: self.clone(),
            seq,
            settled: false,
        };
        Box::new(move |r| guard.finish(r))
    }

    /// Records that early-acknowledged append `seq` (and so every earlier one) is durable, or
    /// that it failed.
    fn settle(&self, seq: u64, r: io::Result<()>) {
        {
            let mut st = self.state.lock();
            match r {
                Ok(()) => {
                    while st.unsynced.front().is_some_and(|u| u.seq <= seq) {
                        st.unsynced.pop_front();
                    }
                    if std::mem::take(&mut st.owed) {
                        self.owed.notify_one();
                    }
                }
                Err(e) => {
                    tracing::error!("an early-acknowledged Raft append failed to sync: {e}");
                    st.failed.get_or_insert(e.to_string());
                }
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Waits until the entry at `index` (and every one before it) is durable on this server;
    /// fails if an early-acknowledged append could not be synced.
    pub async fn wait_durable(&self, index: u64) -> Result<(), String> {
        if !self.enabled {
            // Nothing is acknowledged early: every appended entry is durable already.
            return Ok(());
        }
        // Subscribed before looking, so a sync that lands in between still wakes this.
        let mut rx = self.changed.subscribe();
        loop {
            {
                let st = self.state.lock();
                if let Some(e) = &st.failed {
                    return Err(format!("the Raft log could not sync an entry: {e}"));
                }
                if st.unsynced.front().is_none_or(|u| u.first > index) {
                    return Ok(());
                }
            }
            if rx.changed().await.is_err() {
                return Err("the Raft log gate was dropped".into());
            }
        }
    }

    /// The commit index to send to a follower in place of `committed`: never past the
    /// leader's durable log.
    pub fn clamp_commit(&self, committed: Option<LogId>) -> Option<LogId> {
        let c = committed?;
        let mut st = self.state.lock();
        match st.unsynced.front() {
            Some(u) if c.index >= u.first => {
                let prev = u.prev;
                st.owed = true;
                Some(prev)
            }
            _ => Some(c),
        }
    }

    /// Waits until a commit index [`EarlyAck::clamp_commit`] held back may be sent in full.
    pub async fn commit_owed(&self) {
        self.owed.notified().await
    }

    /// Runs on a cluster's servers: once a commit index sent to the followers was held back
    /// and the log has synced since, has openraft send them a heartbeat, which carries the
    /// commit index in full. openraft sends the commit index again only when it changes, or
    /// with the next append: without this, a follower whose leader fell idle right after
    /// such an append would learn of the commit only with the next heartbeat, a heartbeat
    /// interval later, and its clients would wait as long for their writes.
    pub async fn resend_commits(self: Arc<Self>, raft: super::types::Raft) {
        loop {
            self.commit_owed().await;
            // openraft ignores it on a server that does not lead; an error means it stopped.
            if raft.trigger().heartbeat().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::Batch;
    use openraft::{CommittedLeaderId, Membership};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn lid(term: u64, node: NodeId, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    fn batch(term: u64, node: NodeId, index: u64) -> Entry {
        Entry {
            log_id: lid(term, node, index),
            payload: EntryPayload::Normal(Batch::default()),
        }
    }

    fn blank(term: u64, node: NodeId, index: u64) -> Entry {
        Entry {
            log_id: lid(term, node, index),
            payload: EntryPayload::Blank,
        }
    }

    fn leader_vote(term: u64, node: NodeId) -> Vote {
        let mut v = Vote::new(term, node);
        v.commit();
        v
    }

    /// An ack that counts its calls; Ok results only.
    fn counting(n: &Arc<AtomicUsize>) -> Done {
        let n = n.clone();
        Box::new(move |r| {
            r.unwrap();
            n.fetch_add(1, Ordering::SeqCst);
        })
    }

    /// Appends `entries` through `gate` with `vote`: whether it was acknowledged at once, and
    /// what the store calls once it is durable.
    fn append(gate: &Arc<EarlyAck>, vote: &Vote, entries: &[Entry]) -> (bool, Done) {
        let n = Arc::new(AtomicUsize::new(0));
        let done = gate.on_append(Some(vote), entries, counting(&n));
        (n.load(Ordering::SeqCst) == 1, done)
    }

    #[test]
    fn only_batches_of_the_current_leader_after_its_own_entries_are_acknowledged_early() {
        let gate = EarlyAck::new(1, true);
        let v = leader_vote(2, 1);
        // The leadership's first entry (blank) waits for its sync; so does one before it.
        let (early, done) = append(&gate, &v, &[batch(1, 3, 1)]);
        assert!(!early, "an entry of another leader");
        done(Ok(()));
        let (early, done) = append(&gate, &v, &[blank(2, 1, 2)]);
        assert!(!early, "a blank entry");
        done(Ok(()));
        // Batches of this leadership after it are acknowledged at once.
        let (early, d3) = append(&gate, &v, &[batch(2, 1, 3), batch(2, 1, 4)]);
        assert!(early, "the leader's own batches");
        let (early, d5) = append(&gate, &v, &[batch(2, 1, 5)]);
        assert!(early);
        d3(Ok(()));
        d5(Ok(()));
        // Membership entries wait for their sync.
        let m = Entry {
            log_id: lid(2, 1, 6),
            payload: EntryPayload::Membership(Membership::new(vec![[1, 2, 3].into()], None)),
        };
        let (early, done) = append(&gate, &v, &[m]);
        assert!(!early, "a membership entry");
        done(Ok(()));
        // A gap (after a truncation or a snapshot) or an uncommitted vote: no early ack.
        let (early, done) = append(&gate, &v, &[batch(2, 1, 9)]);
        assert!(!early, "not right after the last entry seen");
        done(Ok(()));
        let (early, done) = append(&gate, &Vote::new(2, 1), &[batch(2, 1, 10)]);
        assert!(!early, "a candidate's vote");
        done(Ok(()));
        // A follower appending its leader's batches acknowledges them early too, under the
        // same rules (its answer to the leader waits for the sync: `peer::serve_conn`).
        let follower = EarlyAck::new(2, true);
        let (early, done) = append(&follower, &v, &[blank(2, 1, 2)]);
        assert!(!early, "the leader's blank entry");
        done(Ok(()));
        let (early, d3) = append(&follower, &v, &[batch(2, 1, 3)]);
        assert!(early, "a follower's append of its leader's batch");
        let (early, done) = append(&follower, &v, &[batch(1, 3, 4)]);
        assert!(!early, "an entry of an older leader");
        done(Ok(()));
        d3(Ok(()));
        let newer = leader_vote(3, 2);
        let (early, done) = append(&gate, &newer, &[batch(2, 1, 11)]);
        assert!(
            !early,
            "this server's old-term entries sent back by a newer leader"
        );
        done(Ok(()));
        // A disabled gate (a single server) never does.
        let off = EarlyAck::new(1, false);
        let (_, done) = append(&off, &v, &[blank(2, 1, 2)]);
        done(Ok(()));
        let (early, done) = append(&off, &v, &[batch(2, 1, 3)]);
        assert!(!early);
        done(Ok(()));
    }

    #[test]
    fn a_restarted_leader_does_not_lead_on_in_its_old_term() {
        let gate = EarlyAck::new(1, true);
        let restored = gate.restored_vote(Some(leader_vote(4, 1))).unwrap();
        assert_eq!(restored, Vote::new(4, 1));
        assert!(!restored.committed);
        // Other votes come back as they were, and a single server (no early acks) leads on.
        assert_eq!(
            gate.restored_vote(Some(leader_vote(4, 2))),
            Some(leader_vote(4, 2))
        );
        assert_eq!(
            gate.restored_vote(Some(Vote::new(5, 3))),
            Some(Vote::new(5, 3))
        );
        assert_eq!(gate.restored_vote(None), None);
        let single = EarlyAck::new(1, false);
        assert_eq!(
            single.restored_vote(Some(leader_vote(4, 1))),
            Some(leader_vote(4, 1))
        );
    }

    #[tokio::test]
    async fn early_entries_are_held_back_until_durable() {
        let gate = EarlyAck::new(1, true);
        let v = leader_vote(2, 1);
        let (_, done) = append(&gate, &v, &[blank(2, 1, 7)]);
        done(Ok(()));
        let (early, d8) = append(&gate, &v, &[batch(2, 1, 8), batch(2, 1, 9)]);
        assert!(early);
        let (early, d10) = append(&gate, &v, &[batch(2, 1, 10)]);
        assert!(early);
        // Entries up to 7 are durable; 8 and later are not.
        gate.wait_durable(7).await.unwrap();
        let c = |i| Some(lid(2, 1, i));
        assert_eq!(gate.clamp_commit(c(7)), c(7));
        assert_eq!(
            gate.clamp_commit(c(10)),
            c(7),
            "commit held at the durable log"
        );
        assert_eq!(gate.clamp_commit(None), None);
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.wait_durable(9).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "entry 9 is not durable yet");
        d8(Ok(()));
        waiter.await.unwrap().unwrap();
        assert_eq!(gate.clamp_commit(c(10)), c(9));
        // A failed sync fails everything after it; so does a store that drops the append.
        drop(d10);
        let err = gate.wait_durable(10).await.unwrap_err();
        assert!(err.contains("dropped the append"), "{err}");
        let (early, _) = append(&gate, &v, &[batch(2, 1, 11)]);
        assert!(!early, "no early ack after a failure");
    }

    #[tokio::test]
    async fn a_held_back_commit_is_owed_to_the_followers_once_the_log_syncs() {
        let gate = EarlyAck::new(1, true);
        let v = leader_vote(2, 1);
        let (_, done) = append(&gate, &v, &[blank(2, 1, 1)]);
        done(Ok(()));
        let (_, d2) = append(&gate, &v, &[batch(2, 1, 2)]);
        let c = |i| Some(lid(2, 1, i));
        let owed = |gate: &Arc<EarlyAck>| {
            let gate = gate.clone();
            tokio::spawn(async move { gate.commit_owed().await })
        };
        // A commit index sent in full owes nothing, even once the log syncs.
        assert_eq!(gate.clamp_commit(c(1)), c(1));
        let (_, d3) = append(&gate, &v, &[batch(2, 1, 3)]);
        d2(Ok(()));
        let w = owed(&gate);
        tokio::task::yield_now().await;
        assert!(!w.is_finished(), "nothing was held back");
        // One held back is owed as soon as the log syncs past it.
        assert_eq!(gate.clamp_commit(c(3)), c(2));
        tokio::task::yield_now().await;
        assert!(!w.is_finished(), "the log has not synced yet");
        d3(Ok(()));
        // (A bound only so a regression fails instead of hanging.)
        tokio::time::timeout(std::time::Duration::from_secs(10), w)
            .await
            .expect("the held-back commit was not owed once the log synced")
            .unwrap();
        assert_eq!(gate.clamp_commit(c(3)), c(3));
    }
}
