//! The proposer: moves queued txns into the log, through this server's Raft when it leads and
//! through the leader otherwise.
//!
//! On the leader it keeps one open entry waiting in openraft whenever txns are queued. The
//! entry carries no txns when it is proposed; the log store fills it from the
//! [`TxnQueue`](super::queue::TxnQueue) at the moment openraft appends it (see [`super::queue`]).
//! As soon as it has been filled, and while it is being written and synced, the proposer
//! proposes the next open entry if more txns have arrived: openraft takes it the moment the
//! previous append is durable, with everything that queued during that fsync (group commit).
//!
//! On a follower or observer it takes the queued txns in batches and forwards them to the
//! leader in order ([`Call::Forward`]); the leader queues them like its own. Their request ids
//! name this server, which answers the clients when it applies the entry. A forward that fails
//! abandons its txns (their clients' connections close, outcome unknown, as with ZooKeeper).

use super::peer::{Call, Peers, ReplyBody};
use super::queue::MAX_BATCH;
use super::types::{Batch, Raft};
use crate::core::Core;
use openraft::error::ClientWriteError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Most entries proposed and not yet applied (a bound should applying fall behind the disk).
const MAX_UNAPPLIED: usize = 8;
/// Most forwards to the leader awaiting its answer.
const MAX_FORWARDS: usize = 8;
/// How long to wait for a leader change after openraft refused an entry as not the leader.
const REFUSED_PAUSE: Duration = Duration::from_millis(20);
/// How long the leader may take to queue a forward.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until the write path fails, which stops it (see [`Core::fail_all`]). `peers` is None
/// for a single-server group.
pub async fn run(core: Arc<Core>, raft: Raft, peers: Option<Arc<Peers>>) {
    let queue = core.queue.clone();
    let unapplied = Arc::new(Semaphore::new(MAX_UNAPPLIED));
    let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
    let mut taken = queue.taken();
    let mut leader_rx = core.leader_watch();
    // Ends once the queue is closed, i.e. once some entry failed.
    while queue.wait_arrived().await {
        let leader = *leader_rx.borrow_and_update();
        match leader {
            Some(l) if l == core.my_id => {}
            Some(l) => {
                if let Some(peers) = &peers {
                    forward(&core, &raft, peers, &forwards, l).await;
                    continue;
                }
            }
            None => {}
        }
        if leader != Some(core.my_id) {
            // No leader (or one this server cannot reach): wait for the next one. Queued txns
            // are dropped when the leader changes (`Core::reset_writes`).
            let _ = leader_rx.changed().await;
            continue;
        }
        let Ok(permit) = unapplied.clone().acquire_owned().await else {
            break;
        };
        let batch = Batch {
            origin: core.my_id,
            items: Vec::new().into(),
            open: true,
        };
        let seen = *taken.borrow_and_update();
        let resp = match raft.client_write_ff(batch).await {
            Ok(resp) => resp,
            Err(e) => {
                core.fail_all(format!("Raft refused a write: {e}"));
                break;
            }
        };
        let core2 = core.clone();
        let mut outcome = tokio::spawn(async move {
            let (failed, not_leader) = match resp.await {
                Ok(Ok(_)) => (None, false),
                // Leadership lost before the entry committed: not a failure of this server.
                Ok(Err(ClientWriteError::ForwardToLeader(_))) => (None, true),
                Ok(Err(e)) => (Some(format!("a Raft entry failed: {e}")), false),
                Err(e) => (Some(format!("a Raft entry's outcome was lost: {e}")), false),
            };
            drop(permit);
            if let Some(e) = failed {
                core2.fail_all(e);
            }
            not_leader
        });
        // The next entry once this one has taken its txns, or once it is done (applied before
        // this task looked, or failed, which closed the queue).
        let refused = tokio::select! {
            _ = taken.wait_for(|&n| n > seen) => false,
            not_leader = &mut outcome => not_leader.unwrap_or(false),
            _ = leader_rx.changed() => false,
        };
        if refused {
            // openraft no longer leads though the role watcher has not seen it yet: wait for
            // it to notice rather than proposing again at once.
            let _ = tokio::time::timeout(REFUSED_PAUSE, leader_rx.changed()).await;
        }
    }
}

/// Sends one batch of queued txns to `leader`; the answer is awaited in the background.
/// Neither the sending (which may first have to dial the leader) nor the wait for the answer
/// outlasts `leader`'s leadership: once another server leads (or none), the batch is abandoned
/// (its clients' connections were closed by the leader change, see [`Core::reset_writes`]) and
/// its forward slot freed, so writes to the next leader never queue behind a dial to, or an
/// answer from, a leader that was cut off silently.
async fn forward(
    core: &Arc<Core>,
    raft: &Raft,
    peers: &Peers,
    forwards: &Arc<Semaphore>,
    leader: u64,
) {
    let Ok(permit) = forwards.clone().acquire_owned().await else {
        return;
    };
    let items = core.queue.take(MAX_BATCH);
    if items.is_empty() {
        return;
    }
    let ids: Vec<u64> = items.iter().map(|(id, _)| *id).collect();
    let Some(link) = peers.link_via(raft, leader) else {
        tracing::warn!(leader, "the leader is not in this server's membership");
        core.abandon(ids);
        return;
    };
    let batch = Batch {
        origin: core.my_id,
        items: items.into(),
        open: false,
    };
    let mut deposed = core.leader_watch();
    let sent = tokio::select! {
        r = link.start(Call::Forward(batch)) => r,
        () = leader_moved(&mut deposed, leader) => {
            tracing::debug!(leader, "the leader changed while writes were being forwarded to it");
            core.abandon(ids);
            return;
        }
    };
    let pending = match sent {
        Ok(p) => p,
        Err(e) => {
            // While a dead leader is being replaced this happens for every write: debug only.
            tracing::debug!(leader, "cannot forward writes to the leader: {e}");
            core.abandon(ids);
            return;
        }
    };
    let core = core.clone();
    tokio::spawn(async move {
        let failed = tokio::select! {
            r = pending.wait(FORWARD_TIMEOUT) => match r {
                Ok(ReplyBody::Forwarded(Ok(()))) => None,
                Ok(ReplyBody::Forwarded(Err(e))) => Some(e),
                Ok(_) => Some("the leader answered with the wrong kind of reply".into()),
                Err(e) => Some(e.to_string()),
            },
            () = leader_moved(&mut deposed, leader) => Some("the leader changed".into()),
        };
        drop(permit);
        if let Some(e) = failed {
            tracing::info!(leader, "forwarded writes dropped: {e}");
            core.abandon(ids);
        }
    });
}

/// Resolves once `leader` no longer leads as `rx` sees it (at once if it already does not).
async fn leader_moved(rx: &mut tokio::sync::watch::Receiver<Option<u64>>, leader: u64) {
    if rx.wait_for(|l| *l != Some(leader)).await.is_err() {
        // The watch's sender is gone (the server is stopping): nothing more will change.
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::leader_moved;
    use std::time::Duration;
    use tokio::sync::watch;

    /// Whether `leader_moved` has resolved after the runtime has had a chance to run it.
    async fn resolved(task: &tokio::task::JoinHandle<()>) -> bool {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        task.is_finished()
    }

    #[tokio::test]
    async fn a_forward_gives_up_once_its_leader_no_longer_leads() {
        let (tx, rx) = watch::channel(Some(1));
        let watching = |rx: &watch::Receiver<Option<u64>>| {
            let mut rx = rx.clone();
            tokio::spawn(async move { leader_moved(&mut rx, 1).await })
        };
        // While server 1 leads, nothing happens, even when the same leader is announced again.
        let t = watching(&rx);
        tx.send_replace(Some(1));
        assert!(!resolved(&t).await, "server 1 still leads");
        // Another leader, or none, ends the wait.
        tx.send_replace(Some(2));
        assert!(resolved(&t).await, "server 2 leads now");
        let t = watching(&rx);
        assert!(resolved(&t).await, "already moved when the forward started");
        tx.send_replace(Some(1));
        let t = watching(&rx);
        tx.send_replace(None);
        assert!(resolved(&t).await, "no leader");
        // A server that stops (the watch goes away) abandons nothing: the wait never ends.
        tx.send_replace(Some(1));
        let t = watching(&rx);
        drop(tx);
        assert!(!resolved(&t).await, "the server is stopping");
        t.abort();
        // (A bound only so a regression fails instead of hanging.)
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
}
