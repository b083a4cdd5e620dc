//! A simulated disk for the Raft log: entries written but not yet synced may be lost in a
//! crash, entries synced never are.
//!
//! A [`Disk`] outlives the server process that writes it (it belongs to the simulated
//! machine). Each run of the server opens a [`SimLog`] on it. An append is readable at once
//! and becomes durable after a simulated fsync delay (up to 3 ms, or up to the slow-machine
//! fault's latency), in order; only then is openraft told the entries are flushed, except for
//! the leader's own batches, which the server's `EarlyAck` gate reports flushed at once, as the
//! real log store does. Votes are durable when saved. When a server crashes, its `SimLog` goes
//! with it; the next [`SimLog::open`] keeps every synced entry and a random prefix of the
//! entries written after them (a real disk may or may not have written them back), so
//! recovery sees both outcomes.

use concord_server::raft::early_ack::{Done, EarlyAck};
use concord_server::raft::log_store::bounds;
use concord_server::raft::queue::{TxnQueue, MAX_BATCH};
use concord_server::raft::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use concord_server::rng::random_u64;
use concord_server::server::ServerLog;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, OptionalSend};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The longest simulated fsync, in microseconds.
const MAX_SYNC_MICROS: u64 = 3000;

#[derive(Default)]
struct DiskState {
    /// Everything written, synced or not, by index.
    written: BTreeMap<u64, Entry>,
    /// Entries up to this index (inclusive) are synced.
    synced_upto: Option<u64>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
    /// Entries lost in crashes so far (unsynced writes that did not survive).
    lost: u64,
    /// A broken disk for testing the checks: appends are reported durable before they are.
    lies: bool,
    /// The longest fsync while the disk is slowed down (None: [`MAX_SYNC_MICROS`]).
    slow: Option<Duration>,
}

/// One simulated machine's log disk.
#[derive(Clone, Default)]
pub struct Disk(Arc<Mutex<DiskState>>);

impl Disk {
    /// An empty disk.
    pub fn new() -> Disk {
        Disk::default()
    }

    /// A disk that reports appends durable at once, before they are synced: a crash then
    /// loses writes the cluster acknowledged. Only for showing that the checks catch that.
    pub fn lying() -> Disk {
        let d = Disk::default();
        d.0.lock().lies = true;
        d
    }

    /// Makes every fsync take up to `max` (None: back to normal).
    pub fn set_max_sync(&self, max: Option<Duration>) {
        self.0.lock().slow = max;
    }

    /// How many unsynced entries crashes have thrown away on this disk.
    pub fn lost(&self) -> u64 {
        self.0.lock().lost
    }
}

struct Mem {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

/// (last index, lazy write-back of a lying disk, what to call once synced).
type SyncJob = (u64, bool, Done);

/// The Raft log of one run of a simulated server.
pub struct SimLog {
    disk: Disk,
    mem: Arc<Mutex<Mem>>,
    queue: Option<Arc<TxnQueue>>,
    early: Option<Arc<EarlyAck>>,
    syncs: mpsc::UnboundedSender<SyncJob>,
}

/// Reads a [`SimLog`]'s entries.
pub struct SimLogReader(Arc<Mutex<Mem>>);

impl SimLog {
    /// Opens the log on `disk` as a restarted server would: synced entries survive, and a
    /// random number of the unsynced ones after them.
    pub fn open(disk: &Disk) -> SimLog {
        let mem = {
            let mut d = disk.0.lock();
            let first_unsynced = d.synced_upto.map_or(0, |i| i + 1);
            let unsynced: Vec<u64> = d.written.range(first_unsynced..).map(|(i, _)| *i).collect();
            let keep = if unsynced.is_empty() || d.lies {
                // A lying disk loses all it had not synced.
                0
            } else {
                (random_u64() % (unsynced.len() as u64 + 1)) as usize
            };
            for i in &unsynced[keep..] {
                d.written.remove(i);
            }
            d.lost += (unsynced.len() - keep) as u64;
            // What survived is on the platter now.
            d.synced_upto = d.written.keys().next_back().copied().or(d.synced_upto);
            // The committed id may point past what survived: a lying disk's, and a leader's
            // that acknowledged its appends early (`EarlyAck`: its openraft counts an entry
            // committed before the entry is durable here; the real log store writes the id
            // only once the log under it is durable, which this models).
            let last = d
                .written
                .values()
                .next_back()
                .map(|e| e.log_id)
                .or(d.purged);
            if d.committed > last {
                d.committed = last;
            }
            Mem {
                entries: d.written.clone(),
                vote: d.vote,
                committed: d.committed,
                purged: d.purged,
            }
        };
        let mem = Arc::new(Mutex::new(mem));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(sync_loop(disk.clone(), mem.clone(), rx));
        SimLog {
            disk: disk.clone(),
            mem,
            queue: None,
            early: None,
            syncs: tx,
        }
    }
}

/// Syncs appends in order, each after a random delay, and then reports them flushed.
async fn sync_loop(disk: Disk, mem: Arc<Mutex<Mem>>, mut rx: mpsc::UnboundedReceiver<SyncJob>) {
    while let Some((upto, lazy, done)) = rx.recv().await {
        // A lying disk writes back lazily, up to a fifth of a second after acknowledging.
        let slow = disk.0.lock().slow;
        let max = if lazy {
            200_000
        } else if let Some(slow) = slow {
            slow.as_micros() as u64
        } else {
            MAX_SYNC_MICROS
        };
        tokio::time::sleep(Duration::from_micros(random_u64() % max)).await;
        {
            let m = mem.lock();
            let mut d = disk.0.lock();
            // Only what is still in the log: a truncation may have removed some of it.
            let last = m.entries.range(..=upto).next_back().map(|(i, _)| *i);
            if let Some(last) = last {
                if d.synced_upto.is_none_or(|s| s < last) {
                    d.synced_upto = Some(last);
                }
            }
        }
        done(Ok(()));
    }
}

/// The entries in `r` (none for an empty or reversed range, which `BTreeMap::range` rejects).
fn entries_in<RB: RangeBounds<u64>>(m: &BTreeMap<u64, Entry>, r: &RB) -> Vec<Entry> {
    let (start, end) = bounds(r);
    if start >= end {
        return Vec::new();
    }
    m.range(start..end).map(|(_, e)| e.clone()).collect()
}

impl RaftLogReader<TypeConfig> for SimLogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(entries_in(&self.0.lock().entries, &range))
    }
}

impl RaftLogReader<TypeConfig> for SimLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(entries_in(&self.mem.lock().entries, &range))
    }
}

impl RaftLogStorage<TypeConfig> for SimLog {
    type LogReader = SimLogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let m = self.mem.lock();
        Ok(LogState {
            last_purged_log_id: m.purged,
            last_log_id: m
                .entries
                .values()
                .next_back()
                .map(|e| e.log_id)
                .or(m.purged),
        })
    }

    async fn get_log_reader(&mut self) -> SimLogReader {
        SimLogReader(self.mem.clone())
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.disk.0.lock().vote = Some(*vote);
        self.mem.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.mem.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.disk.0.lock().committed = committed;
        self.mem.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.mem.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut entries: Vec<Entry> = entries.into_iter().collect();
        for e in &mut entries {
            if let EntryPayload::Normal(b) = &mut e.payload {
                if b.open {
                    let q = self
                        .queue
                        .as_ref()
                        .expect("an open entry reached a log with no queue");
                    b.items = q.take(MAX_BATCH).into();
                    b.open = false;
                }
            }
        }
        let (lies, vote) = {
            let mut m = self.mem.lock();
            let mut d = self.disk.0.lock();
            for e in &entries {
                m.entries.insert(e.log_id.index, e.clone());
                d.written.insert(e.log_id.index, e.clone());
            }
            (d.lies, m.vote)
        };
        let Some(upto) = entries.last().map(|e| e.log_id.index) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let done: Done = if lies {
            // Acknowledged now, synced later.
            callback.log_io_completed(Ok(()));
            Box::new(|_| {})
        } else if let Some(gate) = &self.early {
            gate.on_append(
                vote.as_ref(),
                &entries,
                Box::new(move |r| callback.log_io_completed(r)),
            )
        } else {
            Box::new(move |r| callback.log_io_completed(r))
        };
        let _ = self.syncs.send((upto, lies, done));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut m = self.mem.lock();
        let mut d = self.disk.0.lock();
        m.entries.split_off(&log_id.index);
        d.written.split_off(&log_id.index);
        if d.synced_upto.is_some_and(|s| s >= log_id.index) {
            d.synced_upto = log_id.index.checked_sub(1);
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut m = self.mem.lock();
        let mut d = self.disk.0.lock();
        m.entries = m.entries.split_off(&(log_id.index + 1));
        d.written = d.written.split_off(&(log_id.index + 1));
        m.purged = Some(log_id);
        d.purged = Some(log_id);
        Ok(())
    }
}

impl ServerLog for SimLog {
    fn fill_from(&mut self, queue: Arc<TxnQueue>) {
        self.queue = Some(queue);
    }

    fn ack_early(&mut self, gate: Arc<EarlyAck>) {
        let mut m = self.mem.lock();
        m.vote = gate.restored_vote(m.vote);
        drop(m);
        self.early = Some(gate);
    }
}
