//! The proposer: drains queued txns into Raft entries, many txns per entry.
//!
//! One entry is in flight at a time; whatever queues while it is being fsync'd and applied goes
//! into the next one, so under load one fsync covers many client writes (group commit) and
//! openraft's per-entry cost is paid once per batch, not per request.

use super::types::{Batch, Raft};
use crate::core::{Core, Proposal};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most txns packed into one entry.
pub const MAX_BATCH: usize = 2048;

/// Runs until the proposal queue closes.
pub async fn run(core: Arc<Core>, raft: Raft, mut rx: mpsc::Receiver<Proposal>) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut buf, MAX_BATCH).await > 0 {
        let ids: Vec<u64> = buf.iter().map(|p| p.id).collect();
        let batch = Batch {
            origin: core.my_id,
            items: buf
                .drain(..)
                .map(|p| (p.id, p.txn))
                .collect::<Vec<_>>()
                .into(),
        };
        match raft.client_write_ff(batch).await {
            // One entry in flight at a time: openraft 0.9 waits for each append's fsync before
            // taking the next one anyway, so waiting here lets every request that arrives during
            // this fsync join the next batch instead of queueing behind it as its own entry.
            Ok(resp) => match resp.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!("write not committed: {e}");
                    core.fail_proposals(&ids);
                }
                Err(_) => core.fail_proposals(&ids),
            },
            Err(e) => {
                tracing::error!("raft stopped: {e}");
                core.fail_proposals(&ids);
                return;
            }
        }
    }
}
