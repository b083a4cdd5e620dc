//! The proposer: keeps one open entry waiting in openraft whenever txns are queued.
//!
//! The entry carries no txns when it is proposed; the log store fills it from the
//! [`TxnQueue`] at the moment openraft appends it (see [`super::queue`]). As soon as it has been
//! filled, and while it is being written and synced, the proposer proposes the next open entry
//! if more txns have arrived: openraft takes it the moment the previous append is durable, with
//! everything that queued during that fsync (group commit).

use super::queue::TxnQueue;
use super::types::{Batch, Raft};
use crate::core::Core;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Most entries proposed and not yet applied (a bound should applying fall behind the disk).
const MAX_UNAPPLIED: usize = 8;

/// Runs until the write path fails; then stops it (see [`Core::fail_all`]).
pub async fn run(core: Arc<Core>, raft: Raft, queue: Arc<TxnQueue>) {
    let unapplied = Arc::new(Semaphore::new(MAX_UNAPPLIED));
    let mut taken = queue.taken();
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
        let mut outcome = tokio::spawn(async move {
            let r = match resp.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            drop(permit);
            r
        });
        // The next entry once this one has taken its txns (or, should it fail first, never).
        tokio::select! {
            _ = taken.wait_for(|&n| n > seen) => {
                let core = core.clone();
                tokio::spawn(async move {
                    if let Some(e) = failure(outcome.await) {
                        core.fail_all(e);
                    }
                });
            }
            r = &mut outcome => {
                // Ok: taken, written and applied before this task looked.
                if let Some(e) = failure(r) {
                    core.fail_all(e);
                    break;
                }
            }
        }
    }
}

/// Why an entry's write failed, if it did.
fn failure(r: Result<Result<(), String>, tokio::task::JoinError>) -> Option<String> {
    match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("a Raft entry failed: {e}")),
        Err(e) => Some(format!("a Raft entry's outcome was lost: {e}")),
    }
}
