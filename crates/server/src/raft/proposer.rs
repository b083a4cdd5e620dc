//! The proposer: drains queued txns into Raft entries, many txns per entry.
//!
//! openraft 0.9 appends one entry at a time: its core waits for each append's fsync before it
//! takes the next request. So the proposer hands it a batch exactly when it can take one: the
//! first batch at once, and each next batch when the log writer reports the previous append
//! flushed. Everything that queued during that fsync goes into the next entry (group commit),
//! openraft's per-entry cost is paid once per batch, and the next fsync starts while the last
//! batch is still being applied and answered instead of after.

use super::types::{Batch, Raft};
use crate::core::{Core, Proposal};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Semaphore};

/// Most txns packed into one entry.
pub const MAX_BATCH: usize = 2048;

/// Most batches proposed and not yet applied (a bound should applying fall behind the disk).
const MAX_UNAPPLIED: usize = 8;

/// Runs until the proposal queue closes. `flushes` moves each time the log writer completes a
/// flush (see [`super::log_store::LogStore::flushes`]).
pub async fn run(
    core: Arc<Core>,
    raft: Raft,
    mut rx: mpsc::Receiver<Proposal>,
    mut flushes: watch::Receiver<u64>,
) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    let unapplied = Arc::new(Semaphore::new(MAX_UNAPPLIED));
    while rx.recv_many(&mut buf, MAX_BATCH).await > 0 {
        let Ok(permit) = unapplied.clone().acquire_owned().await else {
            return;
        };
        let ids: Vec<u64> = buf.iter().map(|p| p.id).collect();
        let batch = Batch {
            origin: core.my_id,
            items: buf
                .drain(..)
                .map(|p| (p.id, p.txn))
                .collect::<Vec<_>>()
                .into(),
        };
        let seen = *flushes.borrow_and_update();
        let resp = match raft.client_write_ff(batch).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::error!("raft stopped: {e}");
                core.fail_proposals(&ids);
                return;
            }
        };
        let core2 = core.clone();
        let mut outcome = tokio::spawn(async move {
            match resp.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!("write not committed: {e}");
                    core2.fail_proposals(&ids);
                }
                Err(_) => core2.fail_proposals(&ids),
            }
            drop(permit);
        });
        // Next batch once this one is flushed (or, should no flush be reported, once it is
        // applied or failed).
        tokio::select! {
            _ = flushes.wait_for(|&n| n > seen) => {}
            _ = &mut outcome => {}
        }
    }
}
