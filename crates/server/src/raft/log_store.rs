//! The durable Raft log: checksummed segment files, one writer thread, group commit.
//!
//! Files in the log directory:
//! - `log-<first index, 20 digits>.seg`: header `CNCDLOG1` + first index (u64 BE), then records
//!   `[payload length u32 BE][CRC-32C of payload u32 BE][payload = postcard(Entry)]`. A new
//!   segment starts when the current one passes `segment_bytes`.
//! - `meta`: vote, committed and purge point, checksummed, replaced atomically (write temp,
//!   fsync, rename, fsync directory).
//!
//! Appends return at once; the writer thread writes everything queued, fsyncs once and then
//! completes every queued append's callback (group commit). Truncate and purge go through the
//! same thread, so they are ordered with appends. Entries not yet purged are also kept decoded
//! in memory (openraft reads them back to apply and replicate); purging after each snapshot
//! bounds that.
//!
//! Recovery: a damaged record at the end of the last segment with nothing valid after it is a
//! torn write from a crash and is cut; any other damage stops the server with the file and
//! offset named.

use super::types::{decode_entry, encode_entry, Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

const SEG_MAGIC: &[u8; 8] = b"CNCDLOG1";
const SEG_HEADER: u64 = 16;
const REC_HEADER: usize = 8;
/// Largest record accepted when reading back (a corrupt length must not allocate gigabytes).
const MAX_RECORD: usize = 256 << 20;

/// Options of the log store.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// fsync before completing appends (default true).
    pub fsync: bool,
    /// Start a new segment once the current one exceeds this size (default 64 MiB).
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            fsync: true,
            segment_bytes: 64 << 20,
        }
    }
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O error on a file.
    #[error("{file}: {err}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// Damage that is not a torn tail.
    #[error("{file}: corrupt at byte {offset}: {what}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

/// What opening the log found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Segment files read.
    pub segments: usize,
    /// Entries found.
    pub entries: usize,
    /// A torn tail that was cut: (file, offset cut at, bytes dropped).
    pub torn_tail: Option<(PathBuf, u64, u64)>,
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct Meta {
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

struct Segment {
    path: PathBuf,
    first: u64,
    /// Byte offset of each entry's record, for truncation.
    offsets: Vec<u64>,
    len: u64,
}

/// In-memory state shared by the store, its readers and the writer thread.
struct State {
    /// Entries after the purge point, in index order.
    entries: VecDeque<Entry>,
    meta: Meta,
}

impl State {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.log_id.index)
    }
}

/// Called by the writer thread once an append is durable (or failed).
type Done = Box<dyn FnOnce(std::io::Result<()>) + Send>;
type Reply = tokio::sync::oneshot::Sender<std::io::Result<()>>;

enum Job {
    Append(Vec<Entry>, Done),
    Truncate(u64, Reply),
    Purge(LogId, Reply),
    SaveMeta(Meta, Reply),
}

/// The log store handed to openraft.
pub struct LogStore {
    state: Arc<Mutex<State>>,
    jobs: mpsc::Sender<Job>,
    fsyncs: Arc<AtomicU64>,
    recovery: Recovery,
}

/// A reader sharing the store's in-memory entries.
#[derive(Clone)]
pub struct LogReader {
    state: Arc<Mutex<State>>,
}

fn io(file: &Path) -> impl Fn(std::io::Error) -> LogError + '_ {
    move |err| LogError::Io {
        file: file.to_path_buf(),
        err,
    }
}

fn seg_name(first: u64) -> String {
    format!("log-{first:020}.seg")
}

fn write_meta(dir: &Path, meta: &Meta) -> std::io::Result<()> {
    let body = postcard::to_stdvec(meta).map_err(std::io::Error::other)?;
    let tmp = dir.join("meta.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&(body.len() as u32).to_be_bytes())?;
    f.write_all(&crc32c::crc32c(&body).to_be_bytes())?;
    f.write_all(&body)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join("meta"))?;
    File::open(dir)?.sync_all()
}

fn read_meta(dir: &Path) -> Result<Meta, LogError> {
    let p = dir.join("meta");
    let bytes = match fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Meta::default()),
        Err(e) => return Err(io(&p)(e)),
    };
    let corrupt = |what: &str| LogError::Corrupt {
        file: p.clone(),
        offset: 0,
        what: what.to_string(),
    };
    if bytes.len() < 8 {
        return Err(corrupt("too short"));
    }
    let len = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_be_bytes(bytes[4..8].try_into().unwrap());
    let body = bytes.get(8..8 + len).ok_or_else(|| corrupt("truncated"))?;
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    postcard::from_bytes(body).map_err(|e| corrupt(&format!("undecodable: {e}")))
}

/// Reads one segment file; returns its entries, offsets and valid length, and whether (and
/// where) the file ends in damage with nothing valid after it.
#[allow(clippy::type_complexity)]
fn read_segment(path: &Path) -> Result<(u64, Vec<(u64, Entry)>, u64, Option<u64>), LogError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(path))?;
    let corrupt = |offset: u64, what: String| LogError::Corrupt {
        file: path.to_path_buf(),
        offset,
        what,
    };
    if bytes.len() < SEG_HEADER as usize || &bytes[..8] != SEG_MAGIC {
        return Err(corrupt(0, "bad segment header".into()));
    }
    let first = u64::from_be_bytes(bytes[8..16].try_into().unwrap());
    let mut pos = SEG_HEADER as usize;
    let mut out = Vec::new();
    let mut damaged_at = None;
    while pos < bytes.len() {
        let rec_ok = (|| {
            let hdr = bytes.get(pos..pos + REC_HEADER)?;
            let len = u32::from_be_bytes(hdr[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_be_bytes(hdr[4..8].try_into().unwrap());
            if len == 0 || len > MAX_RECORD {
                return None;
            }
            let body = bytes.get(pos + REC_HEADER..pos + REC_HEADER + len)?;
            (crc32c::crc32c(body) == crc).then_some((len, body))
        })();
        match rec_ok {
            Some((len, body)) => {
                let e = decode_entry(body)
                    .map_err(|err| corrupt(pos as u64, format!("undecodable entry: {err}")))?;
                let want = first + out.len() as u64;
                if e.log_id.index != want {
                    return Err(corrupt(
                        pos as u64,
                        format!("entry index {} where {want} was expected", e.log_id.index),
                    ));
                }
                out.push((pos as u64, e));
                pos += REC_HEADER + len;
            }
            None => {
                damaged_at = Some(pos as u64);
                break;
            }
        }
    }
    if let Some(at) = damaged_at {
        // A torn tail has no valid record after it. Look for one: any later offset where a
        // record with a matching checksum starts means the damage is in the middle.
        let mut p = at as usize + 1;
        while p + REC_HEADER < bytes.len() {
            let len = u32::from_be_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
            if len > 0 && len <= MAX_RECORD && p + REC_HEADER + len <= bytes.len() {
                let crc = u32::from_be_bytes(bytes[p + 4..p + 8].try_into().unwrap());
                if crc32c::crc32c(&bytes[p + REC_HEADER..p + REC_HEADER + len]) == crc {
                    return Err(corrupt(
                        at,
                        format!("damaged record followed by a valid one at byte {p}"),
                    ));
                }
            }
            p += 1;
        }
    }
    Ok((first, out, pos as u64, damaged_at))
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<LogStore, LogError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let _ = fs::remove_file(dir.join("meta.tmp"));
        let meta = read_meta(dir)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for e in fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_prefix("log-")
                .and_then(|r| r.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                names.push((n, e.path()));
            }
        }
        names.sort();
        let mut recovery = Recovery::default();
        let mut segments: Vec<Segment> = Vec::new();
        let mut entries = VecDeque::new();
        let count = names.len();
        for (i, (n, path)) in names.into_iter().enumerate() {
            let (first, recs, valid_len, damaged) = read_segment(&path)?;
            if first != n {
                return Err(LogError::Corrupt {
                    file: path,
                    offset: 8,
                    what: format!("header says first index {first}, name says {n}"),
                });
            }
            if let Some(prev) = segments.last() {
                let expect = prev.first + prev.offsets.len() as u64;
                let purged_next = meta.purged.map(|p| p.index + 1).unwrap_or(0);
                if first != expect && first > purged_next {
                    return Err(LogError::Corrupt {
                        file: path,
                        offset: 8,
                        what: format!("first index {first} does not follow {}", expect - 1),
                    });
                }
            }
            if let Some(at) = damaged {
                if i + 1 != count {
                    return Err(LogError::Corrupt {
                        file: path,
                        offset: at,
                        what: "damaged record in a segment that is not the last".into(),
                    });
                }
                let size = fs::metadata(&path).map_err(io(&path))?.len();
                tracing::warn!(
                    file = %path.display(),
                    offset = valid_len,
                    dropped = size - valid_len,
                    "cutting a torn tail left by a crash"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                f.set_len(valid_len).map_err(io(&path))?;
                f.sync_all().map_err(io(&path))?;
                recovery.torn_tail = Some((path.clone(), valid_len, size - valid_len));
            }
            recovery.segments += 1;
            recovery.entries += recs.len();
            let mut offsets = Vec::with_capacity(recs.len());
            for (off, e) in recs {
                offsets.push(off);
                entries.push_back(e);
            }
            segments.push(Segment {
                path,
                first,
                offsets,
                len: valid_len,
            });
        }
        // Entries at or below the purge point may still sit in a segment not yet deleted.
        if let Some(p) = meta.purged {
            while entries
                .front()
                .is_some_and(|e: &Entry| e.log_id.index <= p.index)
            {
                entries.pop_front();
            }
        }
        let state = Arc::new(Mutex::new(State { entries, meta }));
        let (tx, rx) = mpsc::channel();
        let fsyncs = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            dir: dir.to_path_buf(),
            opts,
            segments,
            file: None,
            fsyncs: fsyncs.clone(),
        };
        std::thread::Builder::new()
            .name("concord-log".into())
            .spawn(move || writer.run(rx))
            .map_err(io(dir))?;
        Ok(LogStore {
            state,
            jobs: tx,
            fsyncs,
            recovery,
        })
    }

    /// Number of fsyncs made so far.
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// What opening the log found.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Runs an ordered operation on the writer thread and waits for it.
    async fn call(&self, make: impl FnOnce(Reply) -> Job) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let err = |e: std::io::Error| {
            StorageError::from_io_error(ErrorSubject::Logs, ErrorVerb::Write, e)
        };
        self.jobs
            .send(make(tx))
            .map_err(|_| err(std::io::Error::other("log writer stopped")))?;
        rx.await
            .map_err(|_| err(std::io::Error::other("log writer stopped")))?
            .map_err(err)
    }

    /// Makes `entries` readable at once and durable later; `done` runs on the writer thread
    /// once they are synced (or failed).
    // openraft's StorageError is what the trait returns; boxing it here would only move the cost.
    #[allow(clippy::result_large_err)]
    pub fn append_with(
        &self,
        entries: Vec<Entry>,
        done: impl FnOnce(std::io::Result<()>) + Send + 'static,
    ) -> Result<(), StorageError> {
        self.state.lock().entries.extend(entries.iter().cloned());
        self.jobs
            .send(Job::Append(entries, Box::new(done)))
            .map_err(|_| {
                StorageError::from_io_error(
                    ErrorSubject::Logs,
                    ErrorVerb::Write,
                    std::io::Error::other("log writer stopped"),
                )
            })
    }
}

struct Writer {
    dir: PathBuf,
    opts: LogOptions,
    segments: Vec<Segment>,
    file: Option<File>,
    fsyncs: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            // Appends are written in order; one sync then completes all of them.
            let mut flushed: Vec<Done> = Vec::new();
            let mut result: std::io::Result<()> = Ok(());
            for job in jobs {
                match job {
                    Job::Append(entries, cb) => {
                        if result.is_ok() {
                            result = self.append(&entries);
                        }
                        flushed.push(cb);
                    }
                    other => {
                        // Ordered operations: settle the pending appends first.
                        self.finish(&mut flushed, std::mem::replace(&mut result, Ok(())));
                        match other {
                            Job::Truncate(index, tx) => {
                                let _ = tx.send(self.truncate(index));
                            }
                            Job::Purge(upto, tx) => {
                                let _ = tx.send(self.purge(upto));
                            }
                            Job::SaveMeta(meta, tx) => {
                                let _ = tx.send(write_meta(&self.dir, &meta));
                            }
                            Job::Append(..) => unreachable!("handled above"),
                        }
                    }
                }
            }
            self.finish(&mut flushed, result);
        }
    }

    /// Syncs and completes pending appends with the outcome.
    fn finish(&mut self, flushed: &mut Vec<Done>, mut result: std::io::Result<()>) {
        if flushed.is_empty() {
            return;
        }
        if result.is_ok() && self.opts.fsync {
            if let Some(f) = &self.file {
                result = f.sync_data();
                self.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Err(e) = &result {
            tracing::error!(dir = %self.dir.display(), "log write failed: {e}");
        }
        for cb in flushed.drain(..) {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            cb(r);
        }
    }

    /// Opens the segment to append `next_index` to, starting a new one when the current one is
    /// full or does not end right before `next_index` (after everything was purged).
    fn current(&mut self, next_index: u64) -> std::io::Result<()> {
        let fits = self.segments.last().is_some_and(|s| {
            s.len < self.opts.segment_bytes && s.first + s.offsets.len() as u64 == next_index
        });
        if fits {
            if self.file.is_none() {
                let s = self.segments.last().expect("a segment exists");
                let mut f = OpenOptions::new().write(true).open(&s.path)?;
                f.seek(SeekFrom::Start(s.len))?;
                self.file = Some(f);
            }
            return Ok(());
        }
        if let Some(f) = self.file.take() {
            if self.opts.fsync {
                f.sync_data()?;
            }
        }
        let path = self.dir.join(seg_name(next_index));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        f.write_all(SEG_MAGIC)?;
        f.write_all(&next_index.to_be_bytes())?;
        f.sync_all()?;
        File::open(&self.dir)?.sync_all()?;
        self.segments.push(Segment {
            path,
            first: next_index,
            offsets: Vec::new(),
            len: SEG_HEADER,
        });
        self.file = Some(f);
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        self.current(first.log_id.index)?;
        let base = self.segments.last().map(|s| s.len).unwrap_or(SEG_HEADER);
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            let body = encode_entry(e);
            offsets.push(base + buf.len() as u64);
            buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
            buf.extend_from_slice(&body);
        }
        let f = self.file.as_mut().expect("file open");
        f.write_all(&buf)?;
        let s = self.segments.last_mut().expect("a segment exists");
        s.offsets.extend(offsets);
        s.len += buf.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        self.file = None;
        while let Some(s) = self.segments.last_mut() {
            if s.first >= index {
                fs::remove_file(&s.path)?;
                self.segments.pop();
                continue;
            }
            let keep = (index - s.first) as usize;
            if keep < s.offsets.len() {
                let cut = s.offsets[keep];
                let f = OpenOptions::new().write(true).open(&s.path)?;
                f.set_len(cut)?;
                f.sync_all()?;
                s.offsets.truncate(keep);
                s.len = cut;
            }
            break;
        }
        File::open(&self.dir)?.sync_all()
    }

    fn purge(&mut self, upto: LogId) -> std::io::Result<()> {
        // Delete whole segments whose every entry is purged, never the one being written.
        while self.segments.len() > 1 {
            let s = &self.segments[0];
            let last = s.first + s.offsets.len() as u64;
            if last == 0 || last - 1 > upto.index {
                break;
            }
            fs::remove_file(&s.path)?;
            self.segments.remove(0);
        }
        File::open(&self.dir)?.sync_all()
    }
}

fn range_to_bounds<RB: RangeBounds<u64>>(r: &RB) -> (u64, u64) {
    let start = match r.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match r.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

fn read_entries<RB: RangeBounds<u64>>(state: &Mutex<State>, range: RB) -> Vec<Entry> {
    let (start, end) = range_to_bounds(&range);
    let st = state.lock();
    let Some(first) = st.first_index() else {
        return Vec::new();
    };
    let from = start.max(first);
    if from >= end {
        return Vec::new();
    }
    let skip = (from - first) as usize;
    let take = (end - from).min(usize::MAX as u64) as usize;
    st.entries.iter().skip(skip).take(take).cloned().collect()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_entries(&self.state, range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(read_entries(&self.state, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let st = self.state.lock();
        let last = st
            .entries
            .back()
            .map(|e| *e.get_log_id())
            .or(st.meta.purged);
        Ok(LogState {
            last_purged_log_id: st.meta.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            state: self.state.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let meta = {
            let mut st = self.state.lock();
            st.meta.vote = Some(*vote);
            st.meta.clone()
        };
        self.call(|tx| Job::SaveMeta(meta, tx)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.state.lock().meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced on its own: a stale committed index is safe (it only delays applying).
        self.state.lock().meta.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.state.lock().meta.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
    {
        self.append_with(entries.into_iter().collect(), move |r| {
            callback.log_io_completed(r)
        })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut st = self.state.lock();
            while st
                .entries
                .back()
                .is_some_and(|e| e.log_id.index >= log_id.index)
            {
                st.entries.pop_back();
            }
        }
        self.call(|tx| Job::Truncate(log_id.index, tx)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let meta = {
            let mut st = self.state.lock();
            while st
                .entries
                .front()
                .is_some_and(|e| e.log_id.index <= log_id.index)
            {
                st.entries.pop_front();
            }
            st.meta.purged = Some(log_id);
            st.meta.clone()
        };
        self.call(|tx| Job::SaveMeta(meta, tx)).await?;
        self.call(|tx| Job::Purge(log_id, tx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append_async(
        s: &LogStore,
        entries: Vec<Entry>,
    ) -> tokio::sync::oneshot::Receiver<std::io::Result<()>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        s.append_with(entries, move |r| {
            let _ = tx.send(r);
        })
        .unwrap();
        rx
    }

    async fn append(s: &mut LogStore, from: u64, to: u64) {
        let rx = append_async(s, (from..=to).map(|i| entry(i, 1)).collect());
        rx.await.unwrap().unwrap();
    }

    async fn indexes(s: &mut LogStore) -> Vec<u64> {
        s.try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    fn small() -> LogOptions {
        LogOptions {
            fsync: true,
            segment_bytes: 200,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn append_reopen_vote_and_state() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), small()).unwrap();
            for i in (1..=30).step_by(3) {
                append(&mut s, i, i + 2).await;
            }
            let v = Vote::new(3, 1);
            s.save_vote(&v).await.unwrap();
            assert_eq!(indexes(&mut s).await, (1..=30).collect::<Vec<_>>());
        }
        let mut s = LogStore::open(dir.path(), small()).unwrap();
        assert_eq!(indexes(&mut s).await, (1..=30).collect::<Vec<_>>());
        assert!(s.recovery().segments > 1, "small segments roll");
        assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id.unwrap().index, 30);
        assert_eq!(s.try_get_log_entries(5..8).await.unwrap().len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_syncs_less_than_it_appends() {
        let dir = tempfile::tempdir().unwrap();
        let s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        let mut waits = Vec::new();
        for i in 1..=200 {
            waits.push(append_async(&s, vec![entry(i, 1)]));
        }
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let syncs = s.fsync_count();
        assert!((1..200).contains(&syncs), "{syncs} fsyncs for 200 appends");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_tail_is_cut_and_later_appends_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            append(&mut s, 1, 10).await;
        }
        let seg = dir.path().join(seg_name(1));
        let good = fs::metadata(&seg).unwrap().len();
        for tail in [vec![0u8; 37], vec![0, 0, 0, 50, 1, 2, 3], vec![0xab; 3]] {
            let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
            f.write_all(&tail).unwrap();
            drop(f);
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            let (file, at, dropped) = s.recovery().torn_tail.clone().expect("tail cut");
            assert_eq!((file, at, dropped), (seg.clone(), good, tail.len() as u64));
            assert_eq!(indexes(&mut s).await, (1..=10).collect::<Vec<_>>());
        }
        {
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            append(&mut s, 11, 12).await;
        }
        let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        assert!(s.recovery().torn_tail.is_none());
        assert_eq!(indexes(&mut s).await, (1..=12).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn damage_in_the_middle_stops_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            append(&mut s, 1, 10).await;
        }
        let seg = dir.path().join(seg_name(1));
        let mut bytes = fs::read(&seg).unwrap();
        bytes[SEG_HEADER as usize + REC_HEADER + 2] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let err = LogStore::open(dir.path(), LogOptions::default())
            .err()
            .expect("refuses");
        let msg = err.to_string();
        assert!(msg.contains("log-00000000000000000001.seg"), "{msg}");
        // A bad header is damage too.
        bytes[0] = b'X';
        fs::write(&seg, &bytes).unwrap();
        assert!(LogStore::open(dir.path(), LogOptions::default()).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), small()).unwrap();
            for i in (1..=40).step_by(4) {
                append(&mut s, i, i + 3).await;
            }
            s.truncate(LogId::new(CommittedLeaderId::new(1, 1), 35))
                .await
                .unwrap();
            assert_eq!(indexes(&mut s).await, (1..=34).collect::<Vec<_>>());
            append(&mut s, 35, 36).await;
            let segs = || {
                fs::read_dir(dir.path())
                    .unwrap()
                    .filter(|e| {
                        e.as_ref()
                            .unwrap()
                            .file_name()
                            .to_string_lossy()
                            .ends_with(".seg")
                    })
                    .count()
            };
            let before = segs();
            s.purge(LogId::new(CommittedLeaderId::new(1, 1), 20))
                .await
                .unwrap();
            let after = segs();
            assert!(
                after < before,
                "purge deletes segments ({before} -> {after})"
            );
            assert_eq!(indexes(&mut s).await, (21..=36).collect::<Vec<_>>());
        }
        let mut s = LogStore::open(dir.path(), small()).unwrap();
        assert_eq!(indexes(&mut s).await, (21..=36).collect::<Vec<_>>());
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id.unwrap().index, 20);
        assert_eq!(st.last_log_id.unwrap().index, 36);
        // Purging everything keeps the purge point as the last log id.
        s.purge(LogId::new(CommittedLeaderId::new(1, 1), 36))
            .await
            .unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id.unwrap().index, 36);
        append(&mut s, 37, 38).await;
        drop(s);
        let mut s = LogStore::open(dir.path(), small()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![37, 38]);
    }
}
