//! The proposer: keeps one open entry waiting in openraft whenever txns are queued.
//!
//! The entry carries no txns when it is proposed; the log store fills it from the
//! [`TxnQueue`](super::queue::TxnQueue) at the moment openraft appends it (see [`super::queue`]). As soon as it has been
//! filled, and while it is being written and synced, the proposer proposes the next open entry
//! if more txns have arrived: openraft takes it the moment the previous append is durable, with
//! everything that queued during that fsync (group commit).

use super::types::{Batch, Raft};
use crate::core::Core;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Most entries proposed and not yet applied (a bound should applying fall behind the disk).
const MAX_UNAPPLIED: usize = 8;

/// Runs until the write path fails, which stops it (see [`Core::fail_all`]).
pub async fn run(core: Arc<Core>, raft: Raft) {
    let queue = core.queue.clone();
    let unapplied = Arc::new(Semaphore::new(MAX_UNAPPLIED));
    let mut taken = queue.taken();
    // Ends once the queue is closed, i.e. once some entry failed.
    while queue.wait_arrived().await {
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
            let failed = match resp.await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("a Raft entry failed: {e}")),
                Err(e) => Some(format!("a Raft entry's outcome was lost: {e}")),
            };
            drop(permit);
            if let Some(e) = failed {
                core2.fail_all(e);
            }
        });
        // The next entry once this one has taken its txns, or once it is done (applied before
        // this task looked, or failed, which closed the queue).
        tokio::select! {
            _ = taken.wait_for(|&n| n > seen) => {}
            _ = &mut outcome => {}
        }
    }
}
