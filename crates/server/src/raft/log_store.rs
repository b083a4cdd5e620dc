//! The durable Raft log: checksummed segment files, one writer thread, group commit.
//!
//! Files in the log directory:
//! - `log-<first index, 20 digits>.seg`: a 24-byte header (magic `CNCDLOG1`, format version
//!   u32 BE = 1, first index u64 BE, CRC-32C of those 20 bytes u32 BE), then records
//!   `[payload length u32 BE][CRC-32C of payload u32 BE][payload = postcard(Entry)]` with
//!   consecutive indexes. A new segment starts once the current one reaches `segment_bytes`;
//!   indexes run on from one segment to the next. The file is extended with zeros ahead of
//!   the records, `prealloc_bytes` at a time, so most fdatasyncs write only data and not the
//!   file size as well (about 0.25 instead of 0.4 ms here); a zero record header marks the end
//!   of the records, and a segment's zero tail is cut when the next segment starts.
//! - `meta`: vote and purge point; `committed`: the committed log id. Both are
//!   `[magic 8 bytes][body length u32 BE][CRC-32C of body u32 BE][body = postcard]` and are
//!   replaced atomically (write `<name>.tmp`, fsync, rename, fsync the directory); `committed`
//!   skips the fsyncs and is rewritten by the writer after a flush at most once a second (and when
//!   the log closes), never ahead of the durable log, a
//!   stale committed id being safe: replacing a file on every commit cost a file creation and
//!   a journal commit per write group.
//! - `LOCK`: locked (flock) while a [`LogStore`] is open, so two servers cannot share a log.
//!
//! Appends return at once: the entries are readable from memory straight away, and the writer
//! thread writes everything queued since its last sync, syncs once and completes every queued
//! append's callback in order (group commit). Truncate, purge and vote saves go through the same
//! thread, so all writes are ordered. The newest `cache_entries` entries stay decoded in memory;
//! older ones are read back from the segment files through an in-memory offset index.
//!
//! Recovery: a damaged record at the end of the last segment with nothing valid after it is a
//! torn write from a crash and is cut, and so is everything from a zero record header on in the
//! last segment (a group written over the zeros ahead of the records whose fsync a power cut
//! interrupted may have kept a later page and not an earlier one; nothing after its first
//! record was acknowledged). Any other damage stops the server with the file and byte offset
//! named.

use super::early_ack::{Done, EarlyAck};
use super::queue::{TxnQueue, MAX_BATCH};
use super::types::{decode_entry, encode_entry, Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

const SEG_MAGIC: &[u8; 8] = b"CNCDLOG1";
const SEG_VERSION: u32 = 1;
const SEG_HEADER: u64 = 24;
const REC_HEADER: u64 = 8;
const META_MAGIC: &[u8; 8] = b"CNCDMETA";
const COMMITTED_MAGIC: &[u8; 8] = b"CNCDCMIT";
const FRAME_HEADER: usize = 16;
/// The writer writes its buffer out mid-batch once it holds this many bytes.
const WRITE_BUF: usize = 4 << 20;
/// Most entries one `limited_get_log_entries` answer holds.
const LIMIT_ENTRIES: usize = 4096;
/// Most bytes read from disk for one `limited_get_log_entries` answer (at least one entry).
const LIMIT_BYTES: u64 = 16 << 20;
/// Largest single read of consecutive records.
const MAX_RUN_BYTES: u64 = 8 << 20;

/// Options of the log store.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// fdatasync before completing appends, truncates and vote saves (default true).
    pub fsync: bool,
    /// Start a new segment once the current one reaches this many bytes (default 64 MiB).
    pub segment_bytes: u64,
    /// How many of the newest entries stay decoded in memory (default 32, at least 1); older
    /// ones are read back from their segment. An entry holds a whole batch of txns, so this
    /// is kept small: at 10 000 it held about 65 MB with a million creates, and at 128 about
    /// 3 MB once entries carried 70-100 txns each. Apply reads an entry right after its sync,
    /// and at most 8 wait to be applied, so 32 still serves every apply from memory.
    pub cache_entries: usize,
    /// Extend the segment with this many zero bytes at a time ahead of the records (default
    /// 1 MiB; 0 turns it off).
    pub prealloc_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            fsync: true,
            segment_bytes: 64 << 20,
            cache_entries: 32,
            prealloc_bytes: 1 << 20,
        }
    }
}

/// Why the log could not be opened; every message names the file (and byte offset).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O operation on a file of the log failed.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file of the log is damaged in a way that is not a torn tail.
    #[error("{} at byte {offset}: {what}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset of the damage in the file.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Another open log store (maybe in another process) holds the directory.
    #[error("{}: the log directory is in use by another process", file.display())]
    Locked {
        /// The lock file.
        file: PathBuf,
    },
}

/// A torn tail cut from the last segment when the log was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Byte offset the file was cut at (the end of the last good record).
    pub offset: u64,
    /// Bytes dropped from the end of the file.
    pub dropped_bytes: u64,
    /// What was found at `offset`.
    pub reason: String,
}

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files read.
    pub segments: usize,
    /// Valid records read from them (including entries at or below the purge point).
    pub records: u64,
    /// Entries in the log after recovery (above the purge point).
    pub entries: u64,
    /// Index of the first entry in the log after recovery.
    pub first_index: Option<u64>,
    /// Index of the last entry in the log after recovery.
    pub last_index: Option<u64>,
    /// Segment files deleted because all their entries were purged (an interrupted purge).
    pub purged_segments_removed: usize,
    /// The torn tail that was cut from the last segment, if any.
    pub torn_tail: Option<TornTail>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
struct Meta {
    vote: Option<Vote>,
    purged: Option<LogId>,
}

/// Where an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// Queued for the writer (only in the cache); the number tells appends apart, so a write
    /// of an entry that was truncated meanwhile cannot claim its replacement's slot.
    Pending(u64),
    /// Written: segment (by first index), byte offset of the record, payload length.
    Disk { seg: u64, offset: u64, len: u32 },
}

/// An open segment file, shared by the writer and the readers.
#[derive(Clone)]
struct SegFile {
    path: Arc<PathBuf>,
    file: Arc<File>,
}

/// In-memory state shared by the store, its readers and the writer thread.
struct State {
    /// Index after the last entry.
    next: u64,
    /// Location of every entry in `[next - locs.len(), next)`.
    locs: VecDeque<Loc>,
    /// The newest entries, `[next - cache.len(), next)`; never empty while `locs` is not, and
    /// holds every entry not yet written.
    cache: VecDeque<Entry>,
    cache_cap: usize,
    /// Open segment files by first index.
    files: BTreeMap<u64, SegFile>,
    vote: Option<Vote>,
    purged: Option<LogId>,
    committed: Option<LogId>,
    /// Number of the last append.
    appends: u64,
}

impl State {
    fn first(&self) -> u64 {
        self.next - self.locs.len() as u64
    }

    fn cache_first(&self) -> u64 {
        self.next - self.cache.len() as u64
    }

    /// Drops the oldest cached entries beyond the cap, as long as they are on disk.
    fn evict(&mut self) {
        while self.cache.len() > self.cache_cap {
            let i = (self.cache_first() - self.first()) as usize;
            if !matches!(self.locs.get(i), Some(Loc::Disk { .. })) {
                break;
            }
            self.cache.pop_front();
        }
    }

    fn truncate(&mut self, index: u64) {
        if index >= self.next {
            return;
        }
        let first = self.first();
        let from = index.max(first);
        let dropped = (self.next - from) as usize;
        self.locs.truncate(self.locs.len() - dropped);
        self.cache
            .truncate(self.cache.len().saturating_sub(dropped));
        self.next = from;
    }

    fn purge(&mut self, upto: LogId) {
        let first = self.first();
        if upto.index >= first {
            let n = (upto.index - first)
                .saturating_add(1)
                .min(self.locs.len() as u64) as usize;
            self.locs.drain(..n);
            let cache_first = self.cache_first();
            if upto.index >= cache_first {
                let n = (upto.index - cache_first)
                    .saturating_add(1)
                    .min(self.cache.len() as u64) as usize;
                self.cache.drain(..n);
            }
        }
        if self.locs.is_empty() {
            self.next = self.next.max(upto.index.saturating_add(1));
        }
        if self.purged.is_none_or(|p| p.index <= upto.index) {
            self.purged = Some(upto);
        }
    }
}

/// State shared by the store, its readers and the writer thread.
struct Shared {
    state: Mutex<State>,
    fsyncs: AtomicU64,
}

type Reply = tokio::sync::oneshot::Sender<io::Result<()>>;

enum Job {
    Append {
        entries: Vec<Entry>,
        append: u64,
        done: Done,
    },
    Truncate {
        index: u64,
        reply: Reply,
    },
    Purge {
        upto: LogId,
        reply: Reply,
    },
    SaveVote {
        vote: Vote,
        reply: Reply,
    },
}

/// The durable Raft log handed to openraft; dropping it stops and joins the writer thread.
pub struct LogStore {
    shared: Arc<Shared>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    recovery: Recovery,
    /// Where open entries take their txns from (see [`super::queue`]).
    queue: Option<Arc<TxnQueue>>,
    /// Decides which appends are acknowledged before they are durable (none without one).
    early: Option<Arc<EarlyAck>>,
}

/// A cloneable reader of the log, sharing the store's cache and segment files.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

fn io_err(file: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        file: file.to_path_buf(),
        source,
    }
}

/// Adds the file name to an I/O error.
fn ctx(file: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", file.display()))
}

fn corrupt(file: &Path, offset: u64, what: impl Into<String>) -> LogError {
    LogError::Corrupt {
        file: file.to_path_buf(),
        offset,
        what: what.into(),
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn seg_name(first: u64) -> String {
    format!("log-{first:020}.seg")
}

fn parse_seg_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn seg_header(first: u64) -> [u8; SEG_HEADER as usize] {
    let mut h = [0u8; SEG_HEADER as usize];
    h[..8].copy_from_slice(SEG_MAGIC);
    h[8..12].copy_from_slice(&SEG_VERSION.to_be_bytes());
    h[12..20].copy_from_slice(&first.to_be_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_be_bytes());
    h
}

/// Checks a segment header; returns the first index it names.
fn check_seg_header(path: &Path, bytes: &[u8]) -> Result<u64, LogError> {
    if bytes.len() < SEG_HEADER as usize {
        return Err(corrupt(
            path,
            0,
            format!("segment header is truncated ({} bytes)", bytes.len()),
        ));
    }
    if &bytes[..8] != SEG_MAGIC {
        return Err(corrupt(path, 0, "not a concord log segment (bad magic)"));
    }
    if be_u32(bytes, 20) != Some(crc32c::crc32c(&bytes[..20])) {
        return Err(corrupt(path, 20, "segment header checksum mismatch"));
    }
    match be_u32(bytes, 8) {
        Some(SEG_VERSION) => {}
        v => {
            return Err(corrupt(
                path,
                8,
                format!("unsupported segment format version {v:?}"),
            ))
        }
    }
    be_u64(bytes, 12).ok_or_else(|| corrupt(path, 12, "segment header is truncated"))
}

/// Whether a segment's content is what a crash while creating it can leave: nothing, zeros,
/// or the start of its header.
fn torn_creation(bytes: &[u8], first: u64) -> bool {
    bytes.iter().all(|&b| b == 0)
        || (bytes.len() < SEG_HEADER as usize && seg_header(first).starts_with(bytes))
}

fn frame(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads a framed file; `None` when it does not exist.
fn read_framed(path: &Path, magic: &[u8; 8]) -> Result<Option<Vec<u8>>, LogError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    if bytes.len() < FRAME_HEADER {
        return Err(corrupt(
            path,
            0,
            format!("file is truncated ({} bytes)", bytes.len()),
        ));
    }
    if &bytes[..8] != magic {
        return Err(corrupt(path, 0, "bad magic"));
    }
    let len = be_u32(&bytes, 8).unwrap_or(0) as usize;
    let crc = be_u32(&bytes, 12).unwrap_or(0);
    let body = &bytes[FRAME_HEADER..];
    if body.len() != len {
        return Err(corrupt(
            path,
            8,
            format!("length says {len} bytes, the file holds {}", body.len()),
        ));
    }
    if crc32c::crc32c(body) != crc {
        return Err(corrupt(path, FRAME_HEADER as u64, "checksum mismatch"));
    }
    Ok(Some(body.to_vec()))
}

/// Replaces `dir/name` atomically: write a temporary file, sync it, rename, sync the directory.
fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync: bool,
    fsyncs: &AtomicU64,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(ctx(&tmp))?;
    f.write_all(bytes).map_err(ctx(&tmp))?;
    if sync {
        f.sync_all().map_err(ctx(&tmp))?;
        fsyncs.fetch_add(1, Ordering::Relaxed);
    }
    drop(f);
    fs::rename(&tmp, &path).map_err(ctx(&path))?;
    if sync {
        sync_dir(dir, fsyncs)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path, fsyncs: &AtomicU64) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ctx(dir))?;
    fsyncs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

enum Rec<'a> {
    Valid(&'a [u8]),
    Bad(&'static str),
}

/// Looks at the record starting at `pos`.
fn record_at(bytes: &[u8], pos: usize) -> Rec<'_> {
    let rest = &bytes[pos.min(bytes.len())..];
    if rest.len() < REC_HEADER as usize {
        return Rec::Bad(if rest.iter().all(|&b| b == 0) {
            "zero bytes where a record would start"
        } else {
            "incomplete record header"
        });
    }
    let len = be_u32(rest, 0).unwrap_or(0) as usize;
    let crc = be_u32(rest, 4).unwrap_or(0);
    if len == 0 {
        return Rec::Bad(if crc == 0 {
            "zero bytes where a record would start"
        } else {
            "record of length 0"
        });
    }
    let Some(body) = rest.get(REC_HEADER as usize..REC_HEADER as usize + len) else {
        return Rec::Bad("incomplete record (it runs past the end of the file)");
    };
    if crc32c::crc32c(body) != crc {
        return Rec::Bad("record checksum mismatch");
    }
    Rec::Valid(body)
}

/// The first byte offset after `from` where a record with a valid checksum starts.
fn valid_record_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from + 1..bytes.len()).find(|&p| matches!(record_at(bytes, p), Rec::Valid(_)))
}

/// The writer thread's view of one segment.
struct WSeg {
    first: u64,
    path: Arc<PathBuf>,
    file: Arc<File>,
    /// Byte offset of each entry's record.
    offsets: Vec<u64>,
    /// Length of the records including buffered, not yet written bytes.
    len: u64,
    /// Length of the file: the records then zeros.
    alloc: u64,
    /// Written since the last sync.
    dirty: bool,
}

impl WSeg {
    fn next(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }
}

/// Collects recovered entries into the in-memory index; keeps the raw bodies of the newest
/// ones, which become the cache (only those are decoded in full at start-up).
struct Loader {
    next: u64,
    locs: VecDeque<Loc>,
    /// (segment path, offset, body) of the newest `cap` entries.
    tail: VecDeque<(Arc<PathBuf>, u64, Vec<u8>)>,
    cap: usize,
    purged: Option<u64>,
}

impl Loader {
    fn push(&mut self, index: u64, body: &[u8], path: &Arc<PathBuf>, loc: Loc) {
        if self.purged.is_some_and(|p| index <= p) {
            return;
        }
        if self.locs.is_empty() {
            self.next = index;
        }
        self.locs.push_back(loc);
        if let Loc::Disk { offset, .. } = loc {
            self.tail.push_back((path.clone(), offset, body.to_vec()));
        }
        if self.tail.len() > self.cap {
            self.tail.pop_front();
        }
        self.next = index + 1;
    }

    /// Decodes the kept tail into cache entries.
    fn decode_tail(&mut self) -> Result<VecDeque<Entry>, LogError> {
        self.tail
            .drain(..)
            .map(|(path, offset, body)| {
                decode_entry(&body).map_err(|e| {
                    corrupt(
                        &path,
                        offset,
                        format!("undecodable entry with a valid checksum: {e}"),
                    )
                })
            })
            .collect()
    }
}

/// Reads only the log id at the front of an encoded entry (postcard writes it first).
fn decode_log_id(body: &[u8]) -> Result<LogId, postcard::Error> {
    postcard::take_from_bytes::<LogId>(body).map(|(id, _)| id)
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail and refusing any other damage.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<LogStore, LogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LogError::Locked { file: lock_path }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let fsyncs = AtomicU64::new(0);

        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err(dir))? {
            let e = e.map_err(io_err(dir))?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp")
                && (name.starts_with("log-")
                    || name.starts_with("meta")
                    || name.starts_with("committed"))
            {
                // Left by a crash before its rename: never part of the log.
                fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
                continue;
            }
            if let Some(first) = parse_seg_name(&name) {
                names.push((first, e.path()));
            }
        }
        names.sort();

        let meta_path = dir.join("meta");
        let meta: Meta = match read_framed(&meta_path, META_MAGIC)? {
            None => Meta::default(),
            Some(body) => postcard::from_bytes(&body).map_err(|e| {
                corrupt(&meta_path, FRAME_HEADER as u64, format!("undecodable: {e}"))
            })?,
        };
        let committed_path = dir.join("committed");
        let committed = match read_framed(&committed_path, COMMITTED_MAGIC) {
            Ok(None) => None,
            Ok(Some(body)) => match postcard::from_bytes::<Option<LogId>>(&body) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(file = %committed_path.display(), "ignoring undecodable committed log id: {e}");
                    None
                }
            },
            // Written without fsync, so a crash may leave it damaged; a stale value is safe.
            Err(e) => {
                tracing::warn!("ignoring the committed log id: {e}");
                None
            }
        };
        let purged_next = meta.purged.map(|p| p.index.saturating_add(1));

        let mut recovery = Recovery::default();
        // A segment whose successor starts at or before the purge point holds only purged
        // entries: a purge was interrupted before deleting it.
        let mut skip = 0;
        if let Some(pn) = purged_next {
            while skip + 1 < names.len() && names[skip + 1].0 <= pn {
                fs::remove_file(&names[skip].1).map_err(io_err(&names[skip].1))?;
                recovery.purged_segments_removed += 1;
                skip += 1;
            }
        }
        let names = &names[skip..];

        let mut loader = Loader {
            next: purged_next.unwrap_or(0),
            locs: VecDeque::new(),
            tail: VecDeque::new(),
            cap: opts.cache_entries.max(1),
            purged: meta.purged.map(|p| p.index),
        };
        let mut segs: Vec<WSeg> = Vec::new();
        for (k, (name_first, path)) in names.iter().enumerate() {
            let is_last = k + 1 == names.len();
            let bytes = fs::read(path).map_err(io_err(path))?;
            if is_last && torn_creation(&bytes, *name_first) {
                // A crash while creating the segment (possible when fsync is off): it never
                // held a record.
                let why = "segment file without a complete header (a crash while creating it)";
                tracing::warn!(
                    file = %path.display(),
                    "removing {} ({} bytes): {why}",
                    path.display(),
                    bytes.len()
                );
                fs::remove_file(path).map_err(io_err(path))?;
                if opts.fsync {
                    sync_dir(dir, &fsyncs).map_err(io_err(dir))?;
                }
                recovery.torn_tail = Some(TornTail {
                    file: path.clone(),
                    offset: 0,
                    dropped_bytes: bytes.len() as u64,
                    reason: why.to_string(),
                });
                continue;
            }
            let first = check_seg_header(path, &bytes)?;
            let shared_path = Arc::new(path.clone());
            if first != *name_first {
                return Err(corrupt(
                    path,
                    12,
                    format!(
                        "header says the first index is {first}, the file name says {name_first}"
                    ),
                ));
            }
            match segs.last() {
                Some(prev) if prev.next() != first => {
                    return Err(corrupt(
                        path,
                        12,
                        format!(
                            "index gap: segment starts at {first} but {} ends before {}",
                            prev.path.display(),
                            prev.next()
                        ),
                    ));
                }
                None => {
                    if let Some(pn) = purged_next.filter(|&pn| first > pn) {
                        return Err(corrupt(
                            path,
                            12,
                            format!(
                                "entries {pn}..{} are missing (the log is purged only up to {})",
                                first - 1,
                                pn - 1
                            ),
                        ));
                    }
                }
                _ => {}
            }
            let mut pos = SEG_HEADER as usize;
            let mut offsets = Vec::new();
            let mut torn = None;
            while pos < bytes.len() {
                match record_at(&bytes, pos) {
                    Rec::Valid(body) => {
                        // Only the log id is decoded here; entries are decoded in full when
                        // they are read (and the cached tail just below).
                        let log_id = decode_log_id(body).map_err(|e| {
                            corrupt(
                                path,
                                pos as u64,
                                format!("undecodable entry with a valid checksum: {e}"),
                            )
                        })?;
                        let want = first + offsets.len() as u64;
                        if log_id.index != want {
                            return Err(corrupt(
                                path,
                                pos as u64,
                                format!("entry index {} where {want} was expected", log_id.index),
                            ));
                        }
                        let loc = Loc::Disk {
                            seg: first,
                            offset: pos as u64,
                            len: body.len() as u32,
                        };
                        offsets.push(pos as u64);
                        pos += REC_HEADER as usize + body.len();
                        loader.push(log_id.index, body, &shared_path, loc);
                    }
                    Rec::Bad(_) if bytes[pos..].iter().all(|&b| b == 0) => {
                        // The zeros the writer extends segments with: the records end here.
                        break;
                    }
                    Rec::Bad(_)
                        if is_last
                            && bytes.get(pos..pos + REC_HEADER as usize) == Some(&[0u8; 8][..]) =>
                    {
                        // A write group lands on zeros that are already in the file, and a
                        // crash during its fsync may keep a later page of it and not an
                        // earlier one. Nothing after the first record of an unsynced group was
                        // acknowledged, so the records end at the first zero header.
                        torn = Some(
                            "zero record header: a write group cut short by a crash (anything \
                             after it was never acknowledged)",
                        );
                        break;
                    }
                    Rec::Bad(why) => {
                        if !is_last {
                            return Err(corrupt(
                                path,
                                pos as u64,
                                format!("{why} in a segment that is not the last"),
                            ));
                        }
                        if let Some(p) = valid_record_after(&bytes, pos) {
                            return Err(corrupt(
                                path,
                                pos as u64,
                                format!("{why}, followed by a valid record at byte {p}"),
                            ));
                        }
                        torn = Some(why);
                        break;
                    }
                }
            }
            let mut alloc = bytes.len() as u64;
            if let Some(why) = torn {
                alloc = pos as u64;
                let dropped = (bytes.len() - pos) as u64;
                tracing::warn!(
                    file = %path.display(),
                    offset = pos,
                    dropped,
                    "cutting a torn tail left by a crash from {} at byte {pos} ({dropped} bytes dropped): {why}",
                    path.display()
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(path))?;
                f.set_len(pos as u64).map_err(io_err(path))?;
                if opts.fsync {
                    f.sync_all().map_err(io_err(path))?;
                    fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                recovery.torn_tail = Some(TornTail {
                    file: path.clone(),
                    offset: pos as u64,
                    dropped_bytes: dropped,
                    reason: why.to_string(),
                });
            }
            recovery.segments += 1;
            recovery.records += offsets.len() as u64;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            segs.push(WSeg {
                first,
                path: shared_path,
                file: Arc::new(file),
                offsets,
                len: pos as u64,
                alloc,
                dirty: false,
            });
        }
        // The last segment may hold only purged entries too.
        if let (Some(pn), Some(last)) = (purged_next, segs.last()) {
            if last.next() <= pn {
                fs::remove_file(last.path.as_path()).map_err(io_err(&last.path))?;
                recovery.purged_segments_removed += 1;
                segs.pop();
            }
        }

        recovery.entries = loader.locs.len() as u64;
        if !loader.locs.is_empty() {
            recovery.first_index = Some(loader.next - loader.locs.len() as u64);
            recovery.last_index = Some(loader.next - 1);
        }
        let files = segs
            .iter()
            .map(|s| {
                (
                    s.first,
                    SegFile {
                        path: s.path.clone(),
                        file: s.file.clone(),
                    },
                )
            })
            .collect();
        let cache = loader.decode_tail()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next: loader.next,
                locs: loader.locs,
                cache,
                cache_cap: loader.cap,
                files,
                vote: meta.vote,
                purged: meta.purged,
                committed,
                appends: 0,
            }),
            fsyncs,
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            opts,
            shared: shared.clone(),
            segs,
            meta,
            _lock: lock,
            pending: Vec::new(),
            written: Vec::new(),
            buf: Vec::new(),
            buf_pos: 0,
            err: None,
            poisoned: None,
            dir_dirty: false,
            committed: None,
            committed_at: None,
        };
        let handle = std::thread::Builder::new()
            .name("concord-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        Ok(LogStore {
            shared,
            jobs: Some(tx),
            writer: Some(handle),
            recovery,
            queue: None,
            early: None,
        })
    }

    /// Fills open entries from `queue` as they are appended.
    pub fn fill_from(&mut self, queue: Arc<TxnQueue>) {
        self.queue = Some(queue);
    }

    /// Lets `gate` acknowledge appends before they are durable (see [`super::early_ack`]).
    pub fn ack_early(&mut self, gate: Arc<EarlyAck>) {
        let mut st = self.shared.state.lock();
        st.vote = gate.restored_vote(st.vote);
        drop(st);
        self.early = Some(gate);
    }

    /// Number of fsync/fdatasync calls (files and directory) made so far.
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// What opening the log found.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the log writer is stopped"))?
            .send(job)
            .map_err(|_| io::Error::other("the log writer thread is gone"))
    }

    /// Runs an ordered operation on the writer thread and waits for it.
    async fn call(&self, make: impl FnOnce(Reply) -> Job) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(make(tx))?;
        rx.await
            .map_err(|_| io::Error::other("the log writer thread is gone"))?
    }

    /// Makes `entries` readable at once and queues them for the writer, which calls `done`
    /// once they are durable (or failed).
    fn enqueue(&mut self, mut entries: Vec<Entry>, done: Done) -> io::Result<()> {
        let append = {
            let mut st = self.shared.state.lock();
            // Entries at or below the purge point are already gone (openraft does not send
            // them; its storage test suite does): dropping them keeps the log contiguous.
            if let Some(p) = st.purged {
                entries.retain(|e| e.log_id.index > p.index);
            }
            let mut want = if st.locs.is_empty() {
                st.purged.map(|p| p.index + 1)
            } else {
                Some(st.next)
            };
            for e in &entries {
                let index = e.log_id.index;
                if want.is_some_and(|w| w != index) {
                    return Err(io::Error::other(format!(
                        "append of entry {index} would leave a hole or overlap: entry {} was expected",
                        want.unwrap_or_default()
                    )));
                }
                want = Some(index + 1);
            }
            // Fill open entries, now that nothing can refuse or drop them.
            for e in &mut entries {
                let EntryPayload::Normal(b) = &mut e.payload else {
                    continue;
                };
                if !b.open {
                    continue;
                }
                let q = self.queue.as_ref().ok_or_else(|| {
                    io::Error::other("an open entry reached a log store with no queue")
                })?;
                b.items = q.take(MAX_BATCH).into();
                b.open = false;
            }
            st.appends += 1;
            let append = st.appends;
            for e in &entries {
                if st.locs.is_empty() {
                    st.next = e.log_id.index;
                }
                st.locs.push_back(Loc::Pending(append));
                st.cache.push_back(e.clone());
                st.next = e.log_id.index + 1;
            }
            append
        };
        self.send(Job::Append {
            entries,
            append,
            done,
        })
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit.
        drop(self.jobs.take());
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

struct Writer {
    dir: PathBuf,
    opts: LogOptions,
    shared: Arc<Shared>,
    segs: Vec<WSeg>,
    meta: Meta,
    /// Holds the directory's flock until the thread ends.
    _lock: File,
    /// Callbacks of appends written but not yet synced.
    pending: Vec<Done>,
    /// (index, append number, location) of entries written since the last sync.
    written: Vec<(u64, u64, Loc)>,
    /// Bytes for the last segment not yet written, starting at file offset `buf_pos`.
    buf: Vec<u8>,
    buf_pos: u64,
    /// The first error of the current group.
    err: Option<io::Error>,
    /// After a failure nothing more is written: the files' state is unknown.
    poisoned: Option<String>,
    /// A segment was created or deleted since the directory was last synced.
    dir_dirty: bool,
    /// The committed id last written to `committed` (None: not written yet), and when.
    committed: Option<Option<LogId>>,
    committed_at: Option<std::time::Instant>,
}

/// Zero bytes for extending segments (never written, so they take no memory).
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Least time between two rewrites of the `committed` file.
const COMMITTED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn copy_result(r: &io::Result<()>) -> io::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            let mut jobs = vec![job];
            jobs.extend(rx.try_iter());
            for job in jobs {
                match job {
                    Job::Append {
                        entries,
                        append,
                        done,
                    } => {
                        self.write_entries(&entries, append);
                        self.pending.push(done);
                    }
                    Job::Truncate { index, reply } => {
                        self.flush();
                        let _ = reply.send(self.guarded(|w| w.truncate(index)));
                    }
                    Job::Purge { upto, reply } => {
                        self.flush();
                        let _ = reply.send(self.guarded(|w| w.purge(upto)));
                    }
                    Job::SaveVote { vote, reply } => {
                        self.flush();
                        let _ = reply.send(self.guarded(|w| {
                            w.meta.vote = Some(vote);
                            w.write_meta()
                        }));
                    }
                }
            }
            self.flush();
            if self
                .committed_at
                .is_none_or(|t| t.elapsed() >= COMMITTED_EVERY)
            {
                self.save_committed();
            }
        }
        self.save_committed();
    }

    /// Writes the committed id openraft last reported, if it changed and its entry is durable
    /// here (the id never runs ahead of the log on disk).
    fn save_committed(&mut self) {
        let c = self.shared.state.lock().committed;
        if Some(c) == self.committed {
            return;
        }
        let durable = self.segs.last().map(|s| s.next());
        if c.is_some_and(|c| durable.is_none_or(|next| c.index >= next)) {
            return;
        }
        self.write_committed(c);
        self.committed = Some(c);
        self.committed_at = Some(std::time::Instant::now());
    }

    fn stopped(&self) -> Option<io::Error> {
        self.poisoned.as_ref().map(|p| {
            io::Error::other(format!(
                "the Raft log writer stopped after an earlier error: {p}"
            ))
        })
    }

    fn poison(&mut self, e: &io::Error) {
        tracing::error!(dir = %self.dir.display(), "Raft log write failed, the log accepts no more writes: {e}");
        self.poisoned = Some(e.to_string());
    }

    fn guarded(&mut self, f: impl FnOnce(&mut Self) -> io::Result<()>) -> io::Result<()> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        let r = f(self);
        if let Err(e) = &r {
            self.poison(e);
        }
        r
    }

    fn write_entries(&mut self, entries: &[Entry], append: u64) {
        if self.poisoned.is_some() || self.err.is_some() {
            return;
        }
        for e in entries {
            if let Err(err) = self.write_one(e, append) {
                self.err = Some(err);
                return;
            }
        }
    }

    fn write_one(&mut self, e: &Entry, append: u64) -> io::Result<()> {
        let index = e.log_id.index;
        self.segment_for(index)?;
        let body = encode_entry(e);
        let len = u32::try_from(body.len()).map_err(|_| {
            io::Error::other(format!("entry {index} is too large ({} bytes)", body.len()))
        })?;
        let Some(seg) = self.segs.last_mut() else {
            return Err(io::Error::other("no segment to write to"));
        };
        let offset = seg.len;
        if self.buf.is_empty() {
            self.buf_pos = offset;
        }
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf
            .extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        self.buf.extend_from_slice(&body);
        seg.len += REC_HEADER + len as u64;
        seg.offsets.push(offset);
        seg.dirty = true;
        let loc = Loc::Disk {
            seg: seg.first,
            offset,
            len,
        };
        self.written.push((index, append, loc));
        if self.buf.len() >= WRITE_BUF {
            self.write_buf()?;
        }
        Ok(())
    }

    /// Writes the buffered bytes to the last segment.
    fn write_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let step = self.opts.prealloc_bytes;
        let Some(seg) = self.segs.last_mut() else {
            return Err(io::Error::other("no segment to write to"));
        };
        seg.file
            .write_all_at(&self.buf, self.buf_pos)
            .map_err(ctx(&seg.path))?;
        let end = self.buf_pos + self.buf.len() as u64;
        self.buf.clear();
        if step > 0 && end > seg.alloc {
            // Zeros up to the next multiple of the step, written (and synced) with these
            // records, so the next groups' fdatasyncs do not change the file's size.
            let target = end.div_ceil(step) * step;
            let mut at = seg.alloc.max(end);
            while at < target {
                let n = ZEROS.len().min((target - at) as usize);
                seg.file
                    .write_all_at(&ZEROS[..n], at)
                    .map_err(ctx(&seg.path))?;
                at += n as u64;
            }
            seg.alloc = target;
        }
        seg.alloc = seg.alloc.max(end);
        Ok(())
    }

    /// Cuts the zeros after the records of the last segment (before a new segment starts).
    fn cut_zero_tail(&mut self) -> io::Result<()> {
        if let Some(s) = self.segs.last_mut() {
            if s.alloc > s.len {
                s.file.set_len(s.len).map_err(ctx(&s.path))?;
                s.alloc = s.len;
                s.dirty = true;
            }
        }
        Ok(())
    }

    /// Makes the last segment the place for entry `index`: rolls to a new segment when the
    /// current one is full or there is none.
    fn segment_for(&mut self, index: u64) -> io::Result<()> {
        if let Some(s) = self.segs.last() {
            let next = s.next();
            if next == index && (s.len < self.opts.segment_bytes || s.offsets.is_empty()) {
                return Ok(());
            }
            if next != index {
                if !s.offsets.is_empty() {
                    return Err(io::Error::other(format!(
                        "{}: entry {index} does not follow entry {}",
                        s.path.display(),
                        next - 1
                    )));
                }
                // An empty segment made for another index (a crash right after creating it).
                self.write_buf()?;
                if let Some(s) = self.segs.pop() {
                    self.shared.state.lock().files.remove(&s.first);
                    fs::remove_file(s.path.as_path()).map_err(ctx(&s.path))?;
                    self.dir_dirty = true;
                }
            } else {
                self.write_buf()?;
                self.cut_zero_tail()?;
            }
        }
        self.create_segment(index)
    }

    fn create_segment(&mut self, first: u64) -> io::Result<()> {
        let path = self.dir.join(seg_name(first));
        let tmp = self.dir.join(format!("{}.tmp", seg_name(first)));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&tmp)
            .map_err(ctx(&tmp))?;
        f.write_all(&seg_header(first)).map_err(ctx(&tmp))?;
        if self.opts.fsync {
            // A segment never shows up under its real name with a partial header.
            f.sync_all().map_err(ctx(&tmp))?;
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        fs::rename(&tmp, &path).map_err(ctx(&path))?;
        self.dir_dirty = true;
        let seg = WSeg {
            first,
            path: Arc::new(path),
            file: Arc::new(f),
            offsets: Vec::new(),
            len: SEG_HEADER,
            alloc: SEG_HEADER,
            dirty: true,
        };
        self.shared.state.lock().files.insert(
            first,
            SegFile {
                path: seg.path.clone(),
                file: seg.file.clone(),
            },
        );
        self.segs.push(seg);
        Ok(())
    }

    fn sync_dirty(&mut self) -> io::Result<()> {
        // Oldest first: a crash between two syncs must not leave a newer segment durable after
        // an older one missing its tail.
        let from = self
            .segs
            .iter()
            .rposition(|s| !s.dirty)
            .map_or(0, |i| i + 1);
        for s in &mut self.segs[from..] {
            if self.opts.fsync {
                s.file.sync_data().map_err(ctx(&s.path))?;
                self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            s.dirty = false;
        }
        if self.dir_dirty {
            if self.opts.fsync {
                sync_dir(&self.dir, &self.shared.fsyncs)?;
            }
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Writes and syncs the group, publishes the entries' locations, completes the callbacks.
    fn flush(&mut self) {
        if self.pending.is_empty() && self.buf.is_empty() && self.written.is_empty() {
            return;
        }
        let result = if let Some(e) = self.stopped() {
            Err(e)
        } else if let Some(e) = self.err.take() {
            Err(e)
        } else {
            self.write_buf().and_then(|()| self.sync_dirty())
        };
        match &result {
            Ok(()) => {
                let mut st = self.shared.state.lock();
                let first = st.first();
                for (index, append, loc) in self.written.drain(..) {
                    if index < first || index >= st.next {
                        continue;
                    }
                    let slot = &mut st.locs[(index - first) as usize];
                    if *slot == Loc::Pending(append) {
                        *slot = loc;
                    }
                }
                st.evict();
            }
            Err(e) => {
                if self.poisoned.is_none() {
                    self.poison(e);
                }
                self.written.clear();
                self.buf.clear();
            }
        }
        for done in self.pending.drain(..) {
            done(copy_result(&result));
        }
    }

    fn truncate(&mut self, index: u64) -> io::Result<()> {
        while let Some(s) = self.segs.last_mut() {
            if s.first >= index {
                let first = s.first;
                let path = s.path.clone();
                self.segs.pop();
                self.shared.state.lock().files.remove(&first);
                fs::remove_file(path.as_path()).map_err(ctx(&path))?;
                self.dir_dirty = true;
                continue;
            }
            let keep = (index - s.first) as usize;
            if keep < s.offsets.len() {
                let cut = s.offsets[keep];
                s.file.set_len(cut).map_err(ctx(&s.path))?;
                s.offsets.truncate(keep);
                s.len = cut;
                s.alloc = cut;
                if self.opts.fsync {
                    s.file.sync_all().map_err(ctx(&s.path))?;
                    self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
            break;
        }
        if self.dir_dirty {
            if self.opts.fsync {
                sync_dir(&self.dir, &self.shared.fsyncs)?;
            }
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        if self.meta.purged.is_none_or(|p| p.index < upto.index) {
            self.meta.purged = Some(upto);
            self.write_meta()?;
        }
        // Whole segments at or below the purge point go, oldest first, so no gap ever opens.
        // No directory sync: a deletion lost in a crash is redone when the log is opened.
        let next = upto.index.saturating_add(1);
        while self.segs.first().is_some_and(|s| s.next() <= next) {
            let s = self.segs.remove(0);
            self.shared.state.lock().files.remove(&s.first);
            fs::remove_file(s.path.as_path()).map_err(ctx(&s.path))?;
        }
        Ok(())
    }

    fn write_meta(&mut self) -> io::Result<()> {
        let body = postcard::to_stdvec(&self.meta).map_err(io::Error::other)?;
        write_atomic(
            &self.dir,
            "meta",
            &frame(META_MAGIC, &body),
            self.opts.fsync,
            &self.shared.fsyncs,
        )
    }

    fn write_committed(&mut self, committed: Option<LogId>) {
        if self.poisoned.is_some() {
            return;
        }
        let r = postcard::to_stdvec(&committed)
            .map_err(io::Error::other)
            .and_then(|body| {
                write_atomic(
                    &self.dir,
                    "committed",
                    &frame(COMMITTED_MAGIC, &body),
                    false,
                    &self.shared.fsyncs,
                )
            });
        if let Err(e) = r {
            tracing::warn!("cannot save the committed log id: {e}");
        }
    }
}

/// A range of log indexes as `start..end` (end exclusive).
pub fn bounds<RB: RangeBounds<u64>>(r: &RB) -> (u64, u64) {
    let start = match r.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match r.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// An entry to read from a segment file.
#[derive(Clone, Copy)]
struct DiskRef {
    index: u64,
    seg: u64,
    offset: u64,
    len: u32,
}

enum Slot {
    Mem(Entry),
    Disk(DiskRef),
}

type ReadError = (u64, io::Error);

fn read_range(
    shared: &Shared,
    start: u64,
    end: u64,
    limited: bool,
) -> Result<Vec<Entry>, ReadError> {
    // Plan under the lock, read the files without it.
    let (slots, files) = {
        let st = shared.state.lock();
        let first = st.first();
        let from = start.max(first);
        let to = end.min(st.next);
        if from >= to {
            return Ok(Vec::new());
        }
        let cache_first = st.cache_first();
        let mut slots = Vec::new();
        let mut files: BTreeMap<u64, SegFile> = BTreeMap::new();
        let mut disk_bytes = 0u64;
        for index in from..to {
            if limited
                && !slots.is_empty()
                && (slots.len() >= LIMIT_ENTRIES || disk_bytes >= LIMIT_BYTES)
            {
                break;
            }
            if index >= cache_first {
                slots.push(Slot::Mem(st.cache[(index - cache_first) as usize].clone()));
                continue;
            }
            match st.locs[(index - first) as usize] {
                Loc::Disk { seg, offset, len } => {
                    if let std::collections::btree_map::Entry::Vacant(v) = files.entry(seg) {
                        let Some(f) = st.files.get(&seg) else {
                            return Err((
                                index,
                                io::Error::other(format!("segment {} is not open", seg_name(seg))),
                            ));
                        };
                        v.insert(f.clone());
                    }
                    disk_bytes += REC_HEADER + len as u64;
                    slots.push(Slot::Disk(DiskRef {
                        index,
                        seg,
                        offset,
                        len,
                    }));
                }
                Loc::Pending(_) => {
                    return Err((
                        index,
                        io::Error::other("entry is neither cached nor written"),
                    ))
                }
            }
        }
        (slots, files)
    };

    let mut out = Vec::with_capacity(slots.len());
    let mut from_disk: Vec<(usize, DiskRef)> = Vec::new();
    let mut run: Vec<DiskRef> = Vec::new();
    for slot in slots {
        match slot {
            Slot::Mem(e) => {
                read_run(&files, &mut run, &mut out, &mut from_disk)?;
                out.push(e);
            }
            Slot::Disk(d) => {
                let joins = run.last().is_some_and(|p| {
                    p.seg == d.seg
                        && p.offset + REC_HEADER + p.len as u64 == d.offset
                        && d.offset + REC_HEADER + d.len as u64 - run[0].offset <= MAX_RUN_BYTES
                });
                if !joins {
                    read_run(&files, &mut run, &mut out, &mut from_disk)?;
                }
                run.push(d);
            }
        }
    }
    read_run(&files, &mut run, &mut out, &mut from_disk)?;

    // An entry truncated or purged while we read is gone: answer with what came before it.
    if !from_disk.is_empty() {
        let st = shared.state.lock();
        let first = st.first();
        for (pos, d) in from_disk {
            let current = d.index >= first
                && d.index < st.next
                && st.locs[(d.index - first) as usize]
                    == (Loc::Disk {
                        seg: d.seg,
                        offset: d.offset,
                        len: d.len,
                    });
            if !current {
                out.truncate(pos);
                break;
            }
        }
    }
    Ok(out)
}

/// Reads a run of consecutive records of one segment with one read.
fn read_run(
    files: &BTreeMap<u64, SegFile>,
    run: &mut Vec<DiskRef>,
    out: &mut Vec<Entry>,
    from_disk: &mut Vec<(usize, DiskRef)>,
) -> Result<(), ReadError> {
    let (Some(&first), Some(&last)) = (run.first(), run.last()) else {
        return Ok(());
    };
    let Some(f) = files.get(&first.seg) else {
        return Err((first.index, io::Error::other("segment is not open")));
    };
    let start = first.offset;
    let end = last.offset + REC_HEADER + last.len as u64;
    let mut buf = vec![0u8; (end - start) as usize];
    f.file.read_exact_at(&mut buf, start).map_err(|e| {
        (
            first.index,
            io::Error::new(
                e.kind(),
                format!("{} at byte {start}: {e}", f.path.display()),
            ),
        )
    })?;
    for d in run.drain(..) {
        let at = (d.offset - start) as usize;
        let bad = |what: String| {
            (
                d.index,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} at byte {}: {what}", f.path.display(), d.offset),
                ),
            )
        };
        let entry = match record_at(&buf, at) {
            Rec::Valid(body) if body.len() == d.len as usize => {
                decode_entry(body).map_err(|e| bad(format!("undecodable entry: {e}")))?
            }
            Rec::Valid(body) => {
                return Err(bad(format!(
                    "record length {} where {} was expected",
                    body.len(),
                    d.len
                )))
            }
            Rec::Bad(why) => return Err(bad(why.to_string())),
        };
        if entry.log_id.index != d.index {
            return Err(bad(format!(
                "entry index {} where {} was expected",
                entry.log_id.index, d.index
            )));
        }
        from_disk.push((out.len(), d));
        out.push(entry);
    }
    Ok(())
}

fn read_error((index, e): ReadError) -> StorageError {
    StorageError::from_io_error(ErrorSubject::LogIndex(index), ErrorVerb::Read, e)
}

fn write_error(subject: ErrorSubject<u64>, e: io::Error) -> StorageError {
    StorageError::from_io_error(subject, ErrorVerb::Write, e)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = bounds(&range);
        read_range(&self.shared, start, end, false).map_err(read_error)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        read_range(&self.shared, start, end, true).map_err(read_error)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = bounds(&range);
        read_range(&self.shared, start, end, false).map_err(read_error)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        read_range(&self.shared, start, end, true).map_err(read_error)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let st = self.shared.state.lock();
        Ok(LogState {
            last_purged_log_id: st.purged,
            last_log_id: st.cache.back().map(|e| e.log_id).or(st.purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.call(|reply| Job::SaveVote { vote, reply })
            .await
            .map_err(|e| write_error(ErrorSubject::Vote, e))?;
        self.shared.state.lock().vote = Some(vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.shared.state.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Picked up by the writer after its next flush (at most once a second) and when it
        // stops, without fsync and without a wake-up of its own: a stale committed id only
        // means re-applying less on restart.
        self.shared.state.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.shared.state.lock().committed)
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        let ack: Done = Box::new(move |r| callback.log_io_completed(r));
        let done = match &self.early {
            Some(gate) => {
                let vote = self.shared.state.lock().vote;
                gate.on_append(vote.as_ref(), &entries, ack)
            }
            None => ack,
        };
        self.enqueue(entries, done)
            .map_err(|e| write_error(ErrorSubject::Logs, e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let index = log_id.index;
        let reload = {
            let mut st = self.shared.state.lock();
            st.truncate(index);
            (st.cache.is_empty() && !st.locs.is_empty()).then(|| st.next - 1)
        };
        // The cache always holds the last entry (it is the last log id): read it back.
        if let Some(last) = reload {
            let mut got = read_range(&self.shared, last, last + 1, false).map_err(read_error)?;
            let mut st = self.shared.state.lock();
            if let Some(e) = got
                .pop()
                .filter(|_| st.cache.is_empty() && st.next == last + 1)
            {
                st.cache.push_back(e);
            }
        }
        self.call(|reply| Job::Truncate { index, reply })
            .await
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.shared.state.lock().purge(log_id);
        self.call(|reply| Job::Purge {
            upto: log_id,
            reply,
        })
        .await
        .map_err(|e| StorageError::from_io_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::snap_file::SnapFile;
    use crate::raft::types::Batch;
    use openraft::storage::{
        RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta,
    };
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{BasicNode, CommittedLeaderId, EntryPayload, StoredMembership};
    use tokio::sync::oneshot;

    fn lid(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    /// An entry whose payload tells it apart from another one at the same index.
    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: lid(term, index),
            payload: EntryPayload::Normal(Batch {
                origin: index * 1000 + term,
                items: Vec::new().into(),
                open: false,
            }),
        }
    }

    fn entries(term: u64, from: u64, to: u64) -> Vec<Entry> {
        (from..=to).map(|i| entry(term, i)).collect()
    }

    fn opts(segment_bytes: u64, cache_entries: usize) -> LogOptions {
        LogOptions {
            fsync: true,
            segment_bytes,
            cache_entries,
            prealloc_bytes: 256,
        }
    }

    /// Queues an append without waiting for it to be durable.
    fn queue(s: &mut LogStore, es: Vec<Entry>) -> oneshot::Receiver<io::Result<()>> {
        let (tx, rx) = oneshot::channel();
        s.enqueue(
            es,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .unwrap();
        rx
    }

    async fn append(s: &mut LogStore, es: Vec<Entry>) {
        s.blocking_append(es).await.unwrap();
    }

    async fn all(s: &mut LogStore) -> Vec<Entry> {
        s.try_get_log_entries(..).await.unwrap()
    }

    fn seg_files(dir: &Path) -> Vec<u64> {
        let mut v: Vec<u64> = fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| parse_seg_name(&e.unwrap().file_name().to_string_lossy()))
            .collect();
        v.sort();
        v
    }

    fn seg_path(dir: &Path, first: u64) -> PathBuf {
        dir.join(seg_name(first))
    }

    fn open_err(dir: &Path, o: LogOptions) -> String {
        match LogStore::open(dir, o) {
            Ok(_) => panic!("the damaged log was opened"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn appended_entries_read_back_at_once_and_after_sync() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        let mut reader = s.get_log_reader().await;
        let rx = queue(&mut s, entries(1, 0, 5));
        // Readable before the writer has reported them durable.
        assert_eq!(
            reader.try_get_log_entries(..).await.unwrap(),
            entries(1, 0, 5)
        );
        rx.await.unwrap().unwrap();
        append(&mut s, entries(2, 6, 10)).await;
        assert_eq!(
            reader.try_get_log_entries(3..7).await.unwrap(),
            [entries(1, 3, 5), entries(2, 6, 6)].concat()
        );
        assert_eq!(
            s.try_get_log_entries(9..=20).await.unwrap(),
            entries(2, 9, 10)
        );
        assert!(s.try_get_log_entries(11..).await.unwrap().is_empty());
        let limited = reader.limited_get_log_entries(2, 11).await.unwrap();
        assert_eq!(limited[0], entry(1, 2));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(lid(2, 10)));
        assert_eq!(st.last_purged_log_id, None);
        // A hole is refused.
        assert!(s.blocking_append(entries(2, 12, 12)).await.is_err());
        assert_eq!(s.recovery(), &Recovery::default());
    }

    #[tokio::test]
    async fn an_open_entry_takes_the_queued_txns_when_appended() {
        use crate::raft::queue::tests::txn;
        let open = |index: u64| Entry {
            log_id: lid(1, index),
            payload: EntryPayload::Normal(Batch {
                origin: 1,
                items: Vec::new().into(),
                open: true,
            }),
        };
        let dir = tempfile::tempdir().unwrap();
        let filled = {
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            // Without a queue an open entry is refused, not stored empty.
            assert!(s.blocking_append([open(1)]).await.is_err());
            let q = Arc::new(TxnQueue::default());
            s.fill_from(q.clone());
            // Queued before the append: taken by it. Queued after: left for the next one.
            assert!(q.push(10, txn(10)).await);
            assert!(q.push(11, txn(11)).await);
            let rx = queue(&mut s, vec![open(1)]);
            assert!(q.push(12, txn(12)).await);
            rx.await.unwrap().unwrap();
            let got = all(&mut s).await;
            assert_eq!(q.take(MAX_BATCH).len(), 1, "the later txn stays queued");
            got
        };
        let EntryPayload::Normal(b) = &filled[0].payload else {
            panic!("payload kind changed: {:?}", filled[0]);
        };
        assert!(!b.open);
        let ids: Vec<u64> = b.items.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [10, 11]);
        // What was stored is the filled entry.
        let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(all(&mut s).await, filled);
    }

    #[tokio::test]
    async fn reopen_restores_entries_vote_committed_and_purge_point() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), opts(300, 4)).unwrap();
            for from in (1..=50).step_by(5) {
                append(&mut s, entries(1, from, from + 4)).await;
            }
            s.save_vote(&Vote::new(5, 2)).await.unwrap();
            s.save_committed(Some(lid(1, 40))).await.unwrap();
            s.purge(lid(1, 10)).await.unwrap();
            assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(5, 2)));
        }
        let mut s = LogStore::open(dir.path(), opts(300, 4)).unwrap();
        assert_eq!(all(&mut s).await, entries(1, 11, 50));
        assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(5, 2)));
        assert_eq!(s.read_committed().await.unwrap(), Some(lid(1, 40)));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(lid(1, 10)));
        assert_eq!(st.last_log_id, Some(lid(1, 50)));
        let r = s.recovery().clone();
        assert!(r.segments > 1, "{r:?}");
        assert_eq!(r.entries, 40);
        assert_eq!((r.first_index, r.last_index), (Some(11), Some(50)));
        assert_eq!(r.torn_tail, None);
    }

    #[tokio::test]
    async fn group_commit_syncs_fewer_times_than_it_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        let before = s.fsync_count();
        let waits: Vec<_> = (1..=200)
            .map(|i| queue(&mut s, vec![entry(1, i)]))
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let syncs = s.fsync_count() - before;
        println!("group commit: 200 appends, {syncs} fsyncs");
        assert!((1..200).contains(&syncs), "{syncs} fsyncs for 200 appends");
        assert!(syncs <= 50, "{syncs} fsyncs for 200 appends");
        assert_eq!(all(&mut s).await, entries(1, 1, 200));
        drop(s);
        let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(all(&mut s).await, entries(1, 1, 200));

        // Without fsync nothing is synced, and order and durability across reopen still hold.
        let dir = tempfile::tempdir().unwrap();
        let o = LogOptions {
            fsync: false,
            ..opts(500, 3)
        };
        let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
        let waits: Vec<_> = (1..=200)
            .map(|i| queue(&mut s, vec![entry(1, i)]))
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        s.save_vote(&Vote::new(2, 1)).await.unwrap();
        assert_eq!(s.fsync_count(), 0);
        drop(s);
        let mut s = LogStore::open(dir.path(), o).unwrap();
        assert_eq!(all(&mut s).await, entries(1, 1, 200));
        assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    }

    /// A record of `e` as it is on disk, with the checksum flipped if `bad_crc`.
    fn record(e: &Entry, bad_crc: bool) -> Vec<u8> {
        let body = encode_entry(e);
        let mut crc = crc32c::crc32c(&body);
        if bad_crc {
            crc ^= 1;
        }
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Where the records of a segment file end (the zeros it was extended with start).
    fn records_end(bytes: &[u8]) -> usize {
        let mut pos = SEG_HEADER as usize;
        while let Rec::Valid(body) = record_at(bytes, pos) {
            pos += REC_HEADER as usize + body.len();
        }
        pos
    }

    fn append_bytes(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        // Not extended with zeros, so the damage below goes right after the records.
        let o = LogOptions {
            prealloc_bytes: 0,
            ..LogOptions::default()
        };
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            append(&mut s, entries(1, 1, 10)).await;
        }
        let seg = seg_path(dir.path(), 1);
        let good = fs::metadata(&seg).unwrap().len();
        // Zeros alone are where the records end, as in a segment extended ahead of them.
        append_bytes(&seg, &[0u8; 37]);
        let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
        assert_eq!(s.recovery().torn_tail, None);
        assert_eq!(all(&mut s).await, entries(1, 1, 10));
        drop(s);
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(good)
            .unwrap();
        let full = record(&entry(1, 11), false);
        let tails: Vec<(Vec<u8>, &str)> = vec![
            (full[..full.len() - 3].to_vec(), "incomplete record"),
            (full[..5].to_vec(), "incomplete record header"),
            (vec![0xab; 3], "incomplete record header"),
            (record(&entry(1, 11), true), "checksum mismatch"),
        ];
        for (tail, why) in tails {
            append_bytes(&seg, &tail);
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            let torn = s.recovery().torn_tail.clone().expect("the tail is cut");
            assert_eq!(torn.file, seg);
            assert_eq!(torn.offset, good);
            assert_eq!(torn.dropped_bytes, tail.len() as u64);
            assert!(torn.reason.contains(why), "{} vs {why}", torn.reason);
            assert_eq!(fs::metadata(&seg).unwrap().len(), good);
            assert_eq!(all(&mut s).await, entries(1, 1, 10));
            assert_eq!(s.recovery().entries, 10);
        }
        {
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            assert_eq!(s.recovery().torn_tail, None);
            append(&mut s, entries(2, 11, 12)).await;
        }
        let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(s.recovery().torn_tail, None);
        assert_eq!(
            all(&mut s).await,
            [entries(1, 1, 10), entries(2, 11, 12)].concat()
        );
    }

    #[tokio::test]
    async fn segments_are_extended_with_zeros_ahead_of_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let o = LogOptions {
            segment_bytes: 200,
            cache_entries: 4,
            prealloc_bytes: 1024,
            ..LogOptions::default()
        };
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            append(&mut s, entries(1, 1, 3)).await;
        }
        let seg1 = seg_path(dir.path(), 1);
        let bytes = fs::read(&seg1).unwrap();
        let end = records_end(&bytes);
        assert_eq!(bytes.len() % 1024, 0);
        assert!(bytes.len() > end, "{} <= {end}", bytes.len());
        assert!(bytes[end..].iter().all(|&b| b == 0));

        // Reopened: the zeros are no torn tail, and appends go on over them.
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            assert_eq!(s.recovery().torn_tail, None);
            assert_eq!(all(&mut s).await, entries(1, 1, 3));
            for i in 4..=40 {
                append(&mut s, vec![entry(1, i)]).await;
            }
        }
        let segs = seg_files(dir.path());
        assert!(segs.len() >= 3, "{segs:?}");
        for (k, first) in segs.iter().enumerate() {
            let bytes = fs::read(seg_path(dir.path(), *first)).unwrap();
            if k + 1 < segs.len() {
                // The zeros are cut once the next segment starts.
                assert_eq!(records_end(&bytes), bytes.len(), "segment {first}");
            } else {
                assert_eq!(bytes.len() % 1024, 0, "segment {first}");
            }
        }

        // A crash before that cut reached the disk: a zero tail on an earlier segment.
        let earlier = seg_path(dir.path(), segs[0]);
        append_bytes(&earlier, &[0u8; 100]);
        // A record torn inside the last segment's zeros.
        let last = seg_path(dir.path(), *segs.last().unwrap());
        let bytes = fs::read(&last).unwrap();
        let end = records_end(&bytes);
        fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .write_all_at(&record(&entry(1, 41), true), end as u64)
            .unwrap();
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            let t = s
                .recovery()
                .torn_tail
                .clone()
                .expect("the torn record is cut");
            assert_eq!((t.file, t.offset), (last.clone(), end as u64));
            assert_eq!(all(&mut s).await, entries(1, 1, 40));
            append(&mut s, entries(1, 41, 45)).await;
        }
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            assert_eq!(s.recovery().torn_tail, None);
            assert_eq!(all(&mut s).await, entries(1, 1, 45));
        }
        // A power cut during a group's fsync kept a later page of it and not an earlier one:
        // a valid record after zeros. Nothing from the zeros on was acknowledged: cut.
        let segs = seg_files(dir.path());
        let last = seg_path(dir.path(), *segs.last().unwrap());
        let bytes = fs::read(&last).unwrap();
        let end = records_end(&bytes);
        assert!(bytes.len() >= end + 200);
        fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .write_all_at(&record(&entry(1, 47), false), end as u64 + 100)
            .unwrap();
        let mut s = LogStore::open(dir.path(), o).unwrap();
        let t = s.recovery().torn_tail.clone().expect("cut at the zeros");
        assert_eq!((t.file, t.offset), (last, end as u64));
        assert_eq!(all(&mut s).await, entries(1, 1, 45));
    }

    #[tokio::test]
    async fn a_segment_torn_while_being_created_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            append(&mut s, entries(1, 1, 10)).await;
        }
        let next = seg_path(dir.path(), 11);
        for content in [vec![], vec![0u8; 4096], seg_header(11)[..13].to_vec()] {
            fs::write(&next, &content).unwrap();
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            let torn = s.recovery().torn_tail.clone().expect("reported");
            assert_eq!((torn.file, torn.offset), (next.clone(), 0));
            assert_eq!(torn.dropped_bytes, content.len() as u64);
            assert!(!next.exists());
            assert_eq!(all(&mut s).await, entries(1, 1, 10));
        }
        // A header that is not the start of the right one is damage, not a torn creation.
        fs::write(&next, &seg_header(12)[..23]).unwrap();
        let msg = open_err(dir.path(), LogOptions::default());
        assert!(
            msg.contains(&seg_name(11)) && msg.contains("at byte 0"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn damage_that_is_not_a_torn_tail_is_refused() {
        let name = seg_name(1);
        // A flipped byte in a record followed by valid records.
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            append(&mut s, entries(1, 1, 10)).await;
        }
        let seg = seg_path(dir.path(), 1);
        // Without the zeros the segment was extended with.
        let mut pristine = fs::read(&seg).unwrap();
        pristine.truncate(records_end(&pristine));
        let mut bytes = pristine.clone();
        bytes[SEG_HEADER as usize + REC_HEADER as usize + 2] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let msg = open_err(dir.path(), LogOptions::default());
        assert!(msg.contains(&name) && msg.contains("at byte 24"), "{msg}");
        assert!(msg.contains("followed by a valid record"), "{msg}");

        // A zeroed record in the middle of the last segment is where a write group a crash
        // cut short begins (see the module comment): the records end there.
        let mut bytes = pristine.clone();
        let len = REC_HEADER as usize + be_u32(&bytes, SEG_HEADER as usize).unwrap() as usize;
        let second = SEG_HEADER as usize + len;
        bytes[second..second + len].fill(0);
        fs::write(&seg, &bytes).unwrap();
        {
            let mut s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
            let t = s
                .recovery()
                .torn_tail
                .clone()
                .expect("cut at the zero header");
            assert_eq!(t.offset, second as u64);
            assert!(t.reason.contains("zero record header"), "{}", t.reason);
            assert_eq!(all(&mut s).await, entries(1, 1, 1));
        }
        // A damaged header that is not zero, followed by valid records, is refused.
        let mut bytes = pristine.clone();
        bytes[second..second + 4].copy_from_slice(&1u32.to_be_bytes());
        fs::write(&seg, &bytes).unwrap();
        let msg = open_err(dir.path(), LogOptions::default());
        assert!(
            msg.contains(&name) && msg.contains(&format!("at byte {second}")),
            "{msg}"
        );
        assert!(msg.contains("followed by a valid record"), "{msg}");

        // A bad header.
        let mut bytes = pristine.clone();
        bytes[0] = b'X';
        fs::write(&seg, &bytes).unwrap();
        let msg = open_err(dir.path(), LogOptions::default());
        assert!(msg.contains(&name) && msg.contains("at byte 0"), "{msg}");

        // A valid checksum over a payload that is not an entry, even at the tail.
        let mut bytes = pristine.clone();
        let junk = [0xffu8; 5];
        bytes.extend_from_slice(&5u32.to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&junk).to_be_bytes());
        bytes.extend_from_slice(&junk);
        fs::write(&seg, &bytes).unwrap();
        let msg = open_err(dir.path(), LogOptions::default());
        assert!(
            msg.contains(&name) && msg.contains(&format!("at byte {}", pristine.len())),
            "{msg}"
        );
        assert!(msg.contains("undecodable"), "{msg}");

        // A valid record with the wrong index.
        let mut bytes = pristine.clone();
        bytes.extend_from_slice(&record(&entry(1, 12), false));
        fs::write(&seg, &bytes).unwrap();
        let msg = open_err(dir.path(), LogOptions::default());
        assert!(
            msg.contains("entry index 12 where 11 was expected"),
            "{msg}"
        );
        fs::write(&seg, &pristine).unwrap();
        assert!(LogStore::open(dir.path(), LogOptions::default()).is_ok());

        // Damage at the end of a segment that is not the last, and a missing segment.
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), opts(200, 10)).unwrap();
            for i in 1..=40 {
                append(&mut s, vec![entry(1, i)]).await;
            }
        }
        let segs = seg_files(dir.path());
        assert!(segs.len() >= 3, "{segs:?}");
        let first = seg_path(dir.path(), segs[0]);
        let pristine = fs::read(&first).unwrap();
        let mut bytes = pristine.clone();
        *bytes.last_mut().unwrap() ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        let msg = open_err(dir.path(), opts(200, 10));
        assert!(msg.contains(&seg_name(segs[0])), "{msg}");
        assert!(msg.contains("not the last"), "{msg}");
        fs::write(&first, &pristine).unwrap();
        fs::remove_file(seg_path(dir.path(), segs[1])).unwrap();
        let msg = open_err(dir.path(), opts(200, 10));
        assert!(
            msg.contains(&seg_name(segs[2])) && msg.contains("index gap"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn truncate_then_append_then_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(200, 3);
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            append(&mut s, entries(1, 1, 40)).await;
            let before = seg_files(dir.path());
            s.truncate(lid(1, 15)).await.unwrap();
            assert_eq!(all(&mut s).await, entries(1, 1, 14));
            // The cache held only 38..40: the new last entry was read back from disk.
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_log_id, Some(lid(1, 14)));
            let after = seg_files(dir.path());
            assert!(after.len() < before.len(), "{before:?} -> {after:?}");
            assert!(after.iter().all(|&f| f <= 14), "{after:?}");
            append(&mut s, entries(2, 15, 20)).await;
            // Truncating inside the newest segment.
            s.truncate(lid(2, 19)).await.unwrap();
            assert_eq!(
                s.get_log_state().await.unwrap().last_log_id,
                Some(lid(2, 18))
            );
        }
        let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
        assert_eq!(s.recovery().torn_tail, None);
        assert_eq!(
            all(&mut s).await,
            [entries(1, 1, 14), entries(2, 15, 18)].concat()
        );
        // Truncating everything leaves an empty log that takes any index.
        s.truncate(lid(1, 1)).await.unwrap();
        assert!(all(&mut s).await.is_empty());
        assert!(seg_files(dir.path()).is_empty());
        assert_eq!(s.get_log_state().await.unwrap().last_log_id, None);
        append(&mut s, entries(3, 1, 2)).await;
        drop(s);
        let mut s = LogStore::open(dir.path(), o).unwrap();
        assert_eq!(all(&mut s).await, entries(3, 1, 2));
    }

    #[tokio::test]
    async fn truncate_is_ordered_with_queued_appends() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = LogStore::open(dir.path(), opts(200, 2)).unwrap();
            let first = queue(&mut s, entries(1, 1, 10));
            s.truncate(lid(1, 5)).await.unwrap();
            let second = queue(&mut s, entries(2, 5, 7));
            first.await.unwrap().unwrap();
            second.await.unwrap().unwrap();
            assert_eq!(
                all(&mut s).await,
                [entries(1, 1, 4), entries(2, 5, 7)].concat()
            );
        }
        let mut s = LogStore::open(dir.path(), opts(200, 2)).unwrap();
        assert_eq!(
            all(&mut s).await,
            [entries(1, 1, 4), entries(2, 5, 7)].concat()
        );
    }

    #[tokio::test]
    async fn purge_deletes_whole_segments_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(200, 5);
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            append(&mut s, entries(1, 1, 60)).await;
            let before = seg_files(dir.path());
            assert!(before.len() >= 4, "{before:?}");
            s.purge(lid(1, 30)).await.unwrap();
            let after = seg_files(dir.path());
            assert!(after.len() < before.len(), "{before:?} -> {after:?}");
            // The oldest segment left holds entry 31; every deleted one ended at or before 30.
            assert!(
                after[0] <= 31 && after.get(1).is_none_or(|&f| f > 31),
                "{after:?}"
            );
            assert_eq!(
                before.iter().filter(|&&f| f < after[0]).count(),
                before.len() - after.len()
            );
            assert_eq!(all(&mut s).await, entries(1, 31, 60));
            assert!(s.try_get_log_entries(1..=30).await.unwrap().is_empty());
        }
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(lid(1, 30)));
            assert_eq!(st.last_log_id, Some(lid(1, 60)));
            assert_eq!(all(&mut s).await, entries(1, 31, 60));
            assert_eq!(s.recovery().first_index, Some(31));
            // Purging past the end empties the log; the next entry follows the purge point.
            s.purge(lid(2, 70)).await.unwrap();
            assert!(seg_files(dir.path()).is_empty());
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_log_id, Some(lid(2, 70)));
            assert!(s.blocking_append(entries(2, 72, 72)).await.is_err());
            append(&mut s, entries(2, 71, 72)).await;
        }
        let mut s = LogStore::open(dir.path(), o).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(lid(2, 70)));
        assert_eq!(st.last_log_id, Some(lid(2, 72)));
        assert_eq!(all(&mut s).await, entries(2, 71, 72));
    }

    #[tokio::test]
    async fn an_interrupted_purge_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let backup = tempfile::tempdir().unwrap();
        let o = opts(200, 5);
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            append(&mut s, entries(1, 1, 30)).await;
            for f in seg_files(dir.path()) {
                fs::copy(seg_path(dir.path(), f), seg_path(backup.path(), f)).unwrap();
            }
            s.purge(lid(1, 20)).await.unwrap();
        }
        // As if the crash came after the purge point was saved, before the files went.
        for f in seg_files(backup.path()) {
            fs::copy(seg_path(backup.path(), f), seg_path(dir.path(), f)).unwrap();
        }
        let mut s = LogStore::open(dir.path(), o).unwrap();
        assert!(
            s.recovery().purged_segments_removed > 0,
            "{:?}",
            s.recovery()
        );
        assert_eq!(all(&mut s).await, entries(1, 21, 30));
        assert!(seg_files(dir.path())[0] <= 21);
    }

    #[tokio::test]
    async fn entries_older_than_the_cache_are_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(1000, 5);
        {
            let mut s = LogStore::open(dir.path(), o.clone()).unwrap();
            for i in 1..=100 {
                append(&mut s, vec![entry(1, i)]).await;
            }
            assert!(s.shared.state.lock().cache.len() <= 5);
            assert_eq!(all(&mut s).await, entries(1, 1, 100));
            let mut reader = s.get_log_reader().await;
            assert_eq!(
                reader.try_get_log_entries(40..45).await.unwrap(),
                entries(1, 40, 44)
            );
            let limited = reader.limited_get_log_entries(1, 101).await.unwrap();
            assert_eq!(limited, entries(1, 1, 100));
        }
        let mut s = LogStore::open(dir.path(), o).unwrap();
        assert_eq!(s.shared.state.lock().cache.len(), 5);
        assert_eq!(all(&mut s).await, entries(1, 1, 100));
        assert_eq!(
            s.try_get_log_entries(7..=7).await.unwrap(),
            vec![entry(1, 7)]
        );
    }

    #[tokio::test]
    async fn a_log_directory_is_opened_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = LogStore::open(dir.path(), LogOptions::default()).unwrap();
        match LogStore::open(dir.path(), LogOptions::default()) {
            Err(LogError::Locked { file }) => assert_eq!(file, dir.path().join("LOCK")),
            other => panic!("expected Locked, got {:?}", other.err()),
        }
        drop(s);
        assert!(LogStore::open(dir.path(), LogOptions::default()).is_ok());
    }

    /// A minimal in-memory state machine, only for openraft's storage test suite.
    #[derive(Clone, Default)]
    struct MemSm(Arc<Mutex<MemSmState>>);

    #[derive(Default)]
    struct MemSmState {
        applied: Option<LogId>,
        membership: StoredMembership<u64, BasicNode>,
        snapshot: Option<(SnapshotMeta<u64, BasicNode>, Vec<u8>)>,
        built: u64,
    }

    impl RaftSnapshotBuilder<TypeConfig> for MemSm {
        async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
            let mut g = self.0.lock();
            let data = postcard::to_stdvec(&(g.applied, g.membership.clone())).unwrap();
            g.built += 1;
            let meta = SnapshotMeta {
                last_log_id: g.applied,
                last_membership: g.membership.clone(),
                snapshot_id: format!("snap-{}", g.built),
            };
            g.snapshot = Some((meta.clone(), data.clone()));
            Ok(Snapshot {
                meta,
                snapshot: mem_file(&data),
            })
        }
    }

    impl RaftStateMachine<TypeConfig> for MemSm {
        type SnapshotBuilder = MemSm;

        async fn applied_state(
            &mut self,
        ) -> Result<(Option<LogId>, StoredMembership<u64, BasicNode>), StorageError> {
            let g = self.0.lock();
            Ok((g.applied, g.membership.clone()))
        }

        async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
        where
            I: IntoIterator<Item = Entry> + OptionalSend,
            I::IntoIter: OptionalSend,
        {
            let mut g = self.0.lock();
            let mut out = Vec::new();
            for e in entries {
                g.applied = Some(e.log_id);
                if let EntryPayload::Membership(m) = &e.payload {
                    g.membership = StoredMembership::new(Some(e.log_id), m.clone());
                }
                out.push(());
            }
            Ok(out)
        }

        async fn get_snapshot_builder(&mut self) -> MemSm {
            self.clone()
        }

        async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapFile>, StorageError> {
            Ok(mem_file(&[]))
        }

        async fn install_snapshot(
            &mut self,
            meta: &SnapshotMeta<u64, BasicNode>,
            mut snapshot: Box<SnapFile>,
        ) -> Result<(), StorageError> {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut data = Vec::new();
            snapshot.seek(std::io::SeekFrom::Start(0)).await.unwrap();
            snapshot.read_to_end(&mut data).await.unwrap();
            let (applied, membership) = postcard::from_bytes(&data).unwrap();
            let mut g = self.0.lock();
            g.applied = applied;
            g.membership = membership;
            g.snapshot = Some((meta.clone(), data));
            Ok(())
        }

        async fn get_current_snapshot(
            &mut self,
        ) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
            Ok(self.0.lock().snapshot.clone().map(|(meta, data)| Snapshot {
                meta,
                snapshot: mem_file(&data),
            }))
        }
    }

    /// An anonymous temporary file holding `data`, positioned at its start.
    fn mem_file(data: &[u8]) -> Box<SnapFile> {
        use std::io::{Seek, Write};
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f.rewind().unwrap();
        Box::new(SnapFile::Pooled(tokio::fs::File::from_std(f)))
    }

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, MemSm, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, MemSm), StorageError> {
            let dir = tempfile::tempdir().unwrap();
            // Tiny segments and cache, so the suite also runs across files and disk reads.
            let store = LogStore::open(dir.path(), opts(120, 2)).unwrap();
            Ok((dir, store, MemSm::default()))
        }
    }

    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }
}
