//! The queue of txns waiting for a Raft entry, and the "open entry" that takes them.
//!
//! openraft 0.9 appends one entry at a time: its core waits for each append's fsync before it
//! takes the next request. Group commit therefore happens above it, and the question is only
//! when an entry's txns are chosen. Choosing them when the entry is proposed puts a hop on the
//! critical path after every fsync: the writer wakes the proposer, the proposer drains the queue
//! and hands openraft the entry, openraft hands it to the writer. Instead the proposer keeps one
//! *open* entry (a [`Batch`](super::types::Batch) with `open` set and no txns) waiting in
//! openraft's queue, and the log store fills it from this queue at the moment openraft appends
//! it. Everything that arrived during the previous fsync goes into the next one, and the hop
//! through the proposer happens while the disk is busy rather than after.

use concord_tree::Txn;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::{watch, Notify};

/// Most txns packed into one entry.
pub const MAX_BATCH: usize = 2048;

/// Most txns waiting at once; past this, proposers wait for an entry to take some.
pub const MAX_QUEUED: usize = 1 << 16;

#[derive(Default)]
struct State {
    items: VecDeque<(u64, Txn)>,
    /// Set once the write path has stopped: nothing will take the queue again.
    closed: bool,
}

/// Txns proposed on this server and not yet in a Raft entry, in the order they were proposed.
pub struct TxnQueue {
    state: Mutex<State>,
    /// Wakes the proposer when the queue turns non-empty.
    arrived: Notify,
    /// Counts the times an open entry took from the queue (the proposer waits for it to move).
    taken: watch::Sender<u64>,
    /// Wakes proposers waiting for room.
    room: Notify,
}

impl Default for TxnQueue {
    fn default() -> TxnQueue {
        TxnQueue {
            state: Mutex::default(),
            arrived: Notify::new(),
            taken: watch::Sender::new(0),
            room: Notify::new(),
        }
    }
}

impl TxnQueue {
    /// Queues `txn` (request id `id`); waits while the queue is full. Returns false, without
    /// queueing, once the write path has stopped.
    pub async fn push(&self, id: u64, txn: Txn) -> bool {
        self.push_all(std::iter::once((id, txn))).await
    }

    /// Queues `items` in order (a follower's forwarded batch); waits while the queue is full.
    /// Returns false once the write path has stopped; the items not yet queued are dropped.
    pub async fn push_all(&self, items: impl IntoIterator<Item = (u64, Txn)>) -> bool {
        let mut items = items.into_iter().peekable();
        loop {
            // Registered for a wake-up only once the queue was found full, so the common
            // case takes the lock once and no more.
            match self.push_some(&mut items) {
                None => return false,
                Some(true) => return true,
                Some(false) => {}
            }
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.push_some(&mut items) {
                None => return false,
                Some(true) => return true,
                Some(false) => room.await,
            }
        }
    }

    /// Queues as many of `items` as there is room for: Some(true) once all are queued,
    /// Some(false) if the queue filled first, None if it is closed.
    fn push_some<I: Iterator<Item = (u64, Txn)>>(
        &self,
        items: &mut std::iter::Peekable<I>,
    ) -> Option<bool> {
        let mut st = self.state.lock();
        if st.closed {
            return None;
        }
        let was_empty = st.items.is_empty();
        while st.items.len() < MAX_QUEUED {
            match items.next() {
                Some(item) => st.items.push_back(item),
                None => break,
            }
        }
        let done = items.peek().is_none();
        let arrived = was_empty && !st.items.is_empty();
        drop(st);
        if arrived {
            self.arrived.notify_one();
        }
        Some(done)
    }

    /// Takes up to `max` of the oldest txns (called as an open entry is appended).
    pub fn take(&self, max: usize) -> Vec<(u64, Txn)> {
        let taken = {
            let q = &mut self.state.lock().items;
            let n = q.len().min(max);
            q.drain(..n).collect()
        };
        self.taken.send_modify(|n| *n += 1);
        self.room.notify_waiters();
        taken
    }

    /// Waits until some txn is queued; false once the queue is closed.
    pub async fn wait_arrived(&self) -> bool {
        loop {
            {
                let st = self.state.lock();
                if st.closed {
                    return false;
                }
                if !st.items.is_empty() {
                    return true;
                }
            }
            self.arrived.notified().await;
        }
    }

    /// Follows the number of times an open entry took from the queue.
    pub fn taken(&self) -> watch::Receiver<u64> {
        self.taken.subscribe()
    }

    /// Drops every queued txn (the leader changed), returning their ids; the queue stays open.
    pub fn clear(&self) -> Vec<u64> {
        let ids: Vec<u64> = self
            .state
            .lock()
            .items
            .drain(..)
            .map(|(id, _)| id)
            .collect();
        self.room.notify_waiters();
        ids
    }

    /// Stops the queue: later pushes fail, and the ids of the txns still queued are returned.
    pub fn close(&self) -> Vec<u64> {
        let ids = {
            let mut st = self.state.lock();
            st.closed = true;
            st.items.drain(..).map(|(id, _)| id).collect()
        };
        self.room.notify_waiters();
        self.arrived.notify_one();
        ids
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use concord_jute::Request;
    use concord_tree::TxnOp;
    use std::sync::Arc;
    use std::time::Duration;

    /// A txn told apart by `n` (its time and path).
    pub(crate) fn txn(n: i64) -> Txn {
        Txn {
            session: 1,
            time: n,
            auth: vec![],
            op: TxnOp::Write(Request::Delete {
                path: format!("/n{n}"),
                version: -1,
            }),
        }
    }

    /// A full queue, and a push of id `u64::MAX` waiting for room in it.
    async fn full_with_a_waiting_push() -> (Arc<TxnQueue>, tokio::task::JoinHandle<bool>) {
        let q = Arc::new(TxnQueue::default());
        for i in 0..MAX_QUEUED as u64 {
            assert!(q.push(i, txn(0)).await);
        }
        let q2 = q.clone();
        let late = tokio::spawn(async move { q2.push(u64::MAX, txn(1)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!late.is_finished(), "a push past MAX_QUEUED must wait");
        (q, late)
    }

    #[tokio::test]
    async fn takes_the_oldest_first_and_at_most_max() {
        let q = TxnQueue::default();
        for i in 0..5 {
            assert!(q.push(i, txn(i as i64)).await);
        }
        let mut taken = q.taken();
        let first: Vec<u64> = q.take(3).into_iter().map(|(id, _)| id).collect();
        assert_eq!(first, [0, 1, 2]);
        assert_eq!(*taken.borrow_and_update(), 1);
        let rest: Vec<i64> = q.take(3).into_iter().map(|(_, t)| t.time).collect();
        assert_eq!(rest, [3, 4]);
        assert!(q.take(3).is_empty());
        assert_eq!(*taken.borrow(), 3);
    }

    #[tokio::test]
    async fn a_push_to_a_full_queue_waits_for_a_take() {
        let (q, late) = full_with_a_waiting_push().await;
        assert_eq!(q.take(MAX_BATCH).len(), MAX_BATCH);
        assert!(late.await.unwrap());
        let all = q.take(MAX_QUEUED);
        assert_eq!(all.len(), MAX_QUEUED - MAX_BATCH + 1);
        assert_eq!(all.last().unwrap().0, u64::MAX);
    }

    #[tokio::test]
    async fn a_batch_pushed_past_the_limit_waits_and_keeps_its_order() {
        let q = Arc::new(TxnQueue::default());
        let n = MAX_QUEUED as u64 - 2;
        assert!(q.push_all((0..n).map(|i| (i, txn(0)))).await);
        // Five more: two fit, three wait for room.
        let q2 = q.clone();
        let rest = tokio::spawn(async move { q2.push_all((n..n + 5).map(|i| (i, txn(1)))).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!rest.is_finished(), "three of the batch have no room yet");
        assert_eq!(q.take(MAX_BATCH).len(), MAX_BATCH);
        assert!(rest.await.unwrap());
        let ids: Vec<u64> = q.take(MAX_QUEUED).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), MAX_QUEUED - MAX_BATCH + 3);
        assert!(
            ids.windows(2).all(|w| w[0] + 1 == w[1]),
            "in the order pushed"
        );
        assert_eq!(ids.last(), Some(&(n + 4)));
        // A closed queue refuses a batch.
        q.close();
        assert!(!q.push_all([(9, txn(0))]).await);
    }

    #[tokio::test]
    async fn close_returns_the_queued_ids_and_refuses_later_pushes() {
        let q = Arc::new(TxnQueue::default());
        assert!(q.push(7, txn(0)).await);
        assert!(q.push(8, txn(0)).await);
        assert_eq!(q.close(), [7, 8]);
        assert!(!q.push(9, txn(0)).await);
        assert!(q.take(10).is_empty());
    }

    #[tokio::test]
    async fn close_releases_a_push_waiting_for_room() {
        let (q, late) = full_with_a_waiting_push().await;
        assert_eq!(q.close().len(), MAX_QUEUED);
        assert!(!late.await.unwrap());
    }

    #[tokio::test]
    async fn wait_arrived_returns_once_something_is_queued() {
        let q = Arc::new(TxnQueue::default());
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.wait_arrived().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "nothing is queued yet");
        assert!(q.push(1, txn(0)).await);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the proposer is woken")
            .unwrap();
    }
}
