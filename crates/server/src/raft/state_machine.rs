//! The Raft state machine: applies committed batches to the tree and keeps snapshot files.
//!
//! A snapshot file is `snapshot-<last index>-<term>.snap`: magic `CNCDSNPF`, the Raft snapshot
//! metadata (postcard) with its own CRC-32C, then the tree snapshot (see `concord_tree::snapshot`,
//! itself checksummed). Files are written to a temporary name, fsync'd and renamed, so a crash
//! never leaves a half-written snapshot under a real name. The newest `retain` files are kept.

use super::snap_file::SnapFile;
use super::types::{LogId, NodeId, StorageError, TypeConfig};
use crate::core::{Core, SmState};
use concord_tree::snapshot::{read_snapshot, write_snapshot};
use concord_tree::{DataTree, FrozenTree};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, EntryPayload, ErrorSubject, ErrorVerb, StoredMembership};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"CNCDSNPF";

type Meta = SnapshotMeta<NodeId, BasicNode>;

/// A snapshot file found on disk.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// Its path.
    pub path: PathBuf,
    /// Index of the last entry it contains.
    pub index: u64,
}

/// Removes temporary files a crash left behind (half-written or half-received snapshots); only
/// called at start-up, when nothing can be writing them.
pub fn remove_leftovers(dir: &Path) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".tmp") {
            tracing::info!(file = %e.path().display(), "removing an unfinished snapshot file");
            fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// Lists snapshot files in `dir`, newest first.
pub fn list_snapshots(dir: &Path) -> std::io::Result<Vec<SnapshotFile>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name
            .strip_prefix("snapshot-")
            .and_then(|r| r.strip_suffix(".snap"))
        else {
            continue;
        };
        let Some(index) = rest.split('-').next().and_then(|i| i.parse::<u64>().ok()) else {
            continue;
        };
        out.push(SnapshotFile {
            path: e.path(),
            index,
        });
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.index));
    Ok(out)
}

/// Splits a snapshot file into its metadata and tree bytes, checking the header.
fn parse_file(bytes: &[u8]) -> Result<(Meta, &[u8]), String> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err("not a concord snapshot file (bad magic)".into());
    }
    let len = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    if bytes.len() < 16 + len {
        return Err("truncated header".into());
    }
    let meta_bytes = &bytes[12..12 + len];
    let crc = u32::from_be_bytes(bytes[12 + len..16 + len].try_into().unwrap());
    if crc32c::crc32c(meta_bytes) != crc {
        return Err("header checksum mismatch".into());
    }
    let meta: Meta = postcard::from_bytes(meta_bytes).map_err(|e| format!("bad header: {e}"))?;
    Ok((meta, &bytes[16 + len..]))
}

/// Reads only the metadata at the front of a snapshot file.
fn read_meta(path: &Path) -> Result<Meta, String> {
    use std::io::Read;
    let named = |e: String| format!("{}: {e}", path.display());
    let mut f = fs::File::open(path).map_err(|e| named(e.to_string()))?;
    let mut head = vec![0u8; 12];
    f.read_exact(&mut head)
        .map_err(|_| named("truncated header".into()))?;
    let len = u32::from_be_bytes(head[8..12].try_into().unwrap()) as usize;
    if len > 1 << 20 {
        return Err(named(format!("implausible header length {len}")));
    }
    head.resize(16 + len, 0);
    f.read_exact(&mut head[12..])
        .map_err(|_| named("truncated header".into()))?;
    parse_file(&head).map(|(m, _)| m).map_err(named)
}

/// Opens a snapshot file for openraft, which streams it to followers that need it.
async fn open_data(path: &Path) -> Result<Box<SnapFile>, StorageError> {
    SnapFile::open(path)
        .await
        .map(Box::new)
        .map_err(|e| io_err(ErrorVerb::Read, format!("{}: {e}", path.display())))
}

/// The file a snapshot sent by the leader is received into.
const INCOMING: &str = "incoming.snap.tmp";

/// Loads a snapshot file into an applied state.
pub fn load_snapshot(path: &Path, extended_types: bool) -> Result<(SmState, Meta), String> {
    let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let bytes = map_file(path).map_err(|e| named(&e))?;
    let (meta, tree_bytes) = parse_file(&bytes).map_err(|e| named(&e))?;
    let tree = read_snapshot(tree_bytes, extended_types).map_err(|e| named(&e))?;
    Ok((
        SmState {
            tree,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            txns_since_snapshot: 0,
        },
        meta,
    ))
}

/// Maps a snapshot file for reading. Reading it into a buffer instead cost a fifth of a
/// restart with a million znodes: the kernel zeroes every page of a fresh 200+ MB buffer and
/// then copies the page cache into it, where a mapping uses the page cache pages themselves.
fn map_file(path: &Path) -> std::io::Result<memmap2::Mmap> {
    let f = fs::File::open(path)?;
    // SAFETY: snapshot files are written whole under a temporary name and renamed into place;
    // nothing in the server writes or truncates one afterwards (purging unlinks it, which
    // leaves a mapping intact), and the data directory's lock keeps a second server out. A
    // disk read error while the pages are populated would end the process with SIGBUS rather
    // than an error message; `populate` reads the whole file at once, here at start-up.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&f)? };
    Ok(map)
}

/// Writes a snapshot file durably and returns its path.
fn write_file(dir: &Path, meta: &Meta, tree: &FrozenTree) -> std::io::Result<PathBuf> {
    let (index, term) = meta
        .last_log_id
        .map(|l| (l.index, l.leader_id.term))
        .unwrap_or((0, 0));
    let name = format!("snapshot-{index:020}-{term}.snap");
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(&name);
    // No BufWriter: `write_snapshot` already writes in 64 KiB pieces, so a second buffer
    // would only copy each of them once more.
    let mut f = Paced::new(fs::File::create(&tmp)?);
    let meta_bytes = postcard::to_stdvec(meta).map_err(std::io::Error::other)?;
    let mut head = Vec::with_capacity(MAGIC.len() + meta_bytes.len() + 8);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&(meta_bytes.len() as u32).to_be_bytes());
    head.extend_from_slice(&meta_bytes);
    head.extend_from_slice(&crc32c::crc32c(&meta_bytes).to_be_bytes());
    f.write_all(&head)?;
    write_snapshot(tree, &mut f)?;
    let f = f.f;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &dst)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(dst)
}

/// Bytes of snapshot written between two writeback steps.
const PACE: u64 = 8 << 20;

/// A snapshot file that starts the kernel's writeback of every 8 MiB as it is written and waits
/// for the earlier ones, so the final fsync does not push tens of MB to the disk at once in
/// front of the log's fsyncs (which stalled writes for as long).
struct Paced {
    f: fs::File,
    written: u64,
    started: u64,
}

impl Paced {
    fn new(f: fs::File) -> Paced {
        Paced {
            f,
            written: 0,
            started: 0,
        }
    }
}

impl Write for Paced {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.f.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= PACE {
            use std::os::fd::AsRawFd;
            let fd = self.f.as_raw_fd();
            // SAFETY: plain syscalls on an open descriptor. Both are hints: errors surface at
            // the final fsync, so their results are not needed.
            unsafe {
                libc::sync_file_range(
                    fd,
                    self.started as i64,
                    (self.written - self.started) as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
                // (A length of 0 would mean "to the end of the file".)
                if self.started > 0 {
                    libc::sync_file_range(
                        fd,
                        0,
                        self.started as i64,
                        libc::SYNC_FILE_RANGE_WAIT_BEFORE
                            | libc::SYNC_FILE_RANGE_WRITE
                            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                    );
                }
            }
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.f.flush()
    }
}

/// Deletes all but the newest `retain` snapshot files.
fn prune(dir: &Path, retain: usize) {
    if let Ok(files) = list_snapshots(dir) {
        for f in files.into_iter().skip(retain.max(1)) {
            match fs::remove_file(&f.path) {
                Ok(()) => tracing::info!(file = %f.path.display(), "removed old snapshot"),
                Err(e) => {
                    tracing::warn!(file = %f.path.display(), "cannot remove old snapshot: {e}")
                }
            }
        }
    }
}

fn io_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::Snapshot(None),
        verb,
        std::io::Error::other(e.to_string()),
    )
}

/// The state machine handed to openraft.
pub struct StateMachine {
    core: Arc<Core>,
    dir: PathBuf,
    retain: usize,
}

impl StateMachine {
    /// A state machine over `core`'s tree, keeping snapshots in `dir`.
    pub fn new(core: Arc<Core>, dir: PathBuf, retain: usize) -> StateMachine {
        StateMachine { core, dir, retain }
    }
}

/// Builds a snapshot from a frozen tree on a blocking thread.
pub struct SnapshotBuilder {
    frozen: Option<(FrozenTree, Meta)>,
    dir: PathBuf,
    retain: usize,
    core: Arc<Core>,
}

/// Gives the calling thread (on Linux a nice value is per thread) nice 10.
fn lower_priority() {
    // SAFETY: setpriority only reads its arguments; `who` 0 is the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        tracing::debug!(
            "cannot lower the snapshot thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (frozen, meta) = self.frozen.take().expect("a builder builds once");
        let dir = self.dir.clone();
        let retain = self.retain;
        let meta2 = meta.clone();
        let started = std::time::Instant::now();
        let write = move || write_file(&dir, &meta2, &frozen).inspect(|_| prune(&dir, retain));
        // On its own thread at a lower CPU priority: on a small machine the writer would
        // otherwise take a core from the write path for the whole snapshot. A simulation
        // writes it inline, at one point in its time.
        let written = if crate::rng::simulated() {
            write()
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("concord-snapshot".into())
                .spawn(move || {
                    lower_priority();
                    let _ = tx.send(write());
                })
                .map_err(|e| io_err(ErrorVerb::Write, e))?;
            rx.await
                .map_err(|_| io_err(ErrorVerb::Write, "snapshot thread died"))?
        };
        let path = written.map_err(|e| io_err(ErrorVerb::Write, e))?;
        tracing::info!(file = %path.display(), ms = started.elapsed().as_millis() as u64, "snapshot written");
        self.core
            .stats
            .snapshots_written
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Snapshot {
            meta,
            snapshot: open_data(&path).await?,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let s = self.core.sm.read();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = super::types::Entry> + Send,
    {
        let entries: Vec<super::types::Entry> = entries.into_iter().collect();
        // An entry the leader acknowledged early shows nothing before it is on its disk.
        if let Some(last) = entries.last() {
            self.core
                .early
                .wait_durable(last.log_id.index)
                .await
                .map_err(|e| {
                    StorageError::from_io_error(
                        ErrorSubject::Apply(last.log_id),
                        ErrorVerb::Write,
                        std::io::Error::other(e),
                    )
                })?;
        }
        let mut out = Vec::new();
        let mut done = Vec::new();
        let mut events = Vec::new();
        let my_id = self.core.my_id;
        let clustered = crate::server::is_cluster(&self.core.config);
        {
            let mut sm = self.core.sm.write();
            let mut txns = 0u64;
            for e in entries {
                out.push(());
                sm.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Membership(m) => {
                        if clustered {
                            if let Some(lines) = crate::reconfig::render(&m) {
                                sm.tree.set_config(&lines, e.log_id.index + 1, &mut events);
                                let zxid = sm.tree.last_zxid();
                                self.core.deliver(&mut events, zxid);
                            }
                        }
                        sm.membership = StoredMembership::new(Some(e.log_id), m);
                    }
                    EntryPayload::Normal(batch) => {
                        for (id, txn) in batch.items.iter() {
                            let origin = crate::core::origin_of(*id);
                            let applied = sm.tree.apply_from(txn, origin, &mut events);
                            self.core.after_apply(txn, &applied, &mut events);
                            if matches!(txn.op, concord_tree::TxnOp::MoveSession) && origin != my_id
                            {
                                self.core.session_moved_away(txn.session);
                            }
                            txns += 1;
                            if origin == my_id {
                                done.push((*id, applied));
                            }
                        }
                    }
                }
            }
            let stats = &self.core.stats;
            stats
                .entries_applied
                .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
            stats
                .txns_applied
                .fetch_add(txns, std::sync::atomic::Ordering::Relaxed);
            self.core.note_applied(&mut sm, txns);
            if let Some(l) = sm.last_applied {
                self.core.set_applied(l.index);
            }
        }
        self.core.complete(done);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        let mut sm = self.core.sm.write();
        self.core.snapshot_started(&mut sm);
        let last = sm.last_applied;
        let meta = Meta {
            last_log_id: last,
            last_membership: sm.membership.clone(),
            snapshot_id: format!(
                "{}-{}-{}",
                last.map(|l| l.leader_id.term).unwrap_or(0),
                last.map(|l| l.index).unwrap_or(0),
                sm.tree.last_zxid()
            ),
        };
        SnapshotBuilder {
            frozen: Some((sm.tree.freeze(), meta)),
            dir: self.dir.clone(),
            retain: self.retain,
            core: self.core.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapFile>, StorageError> {
        let path = self.dir.join(INCOMING);
        SnapFile::create(&path)
            .await
            .map(Box::new)
            .map_err(|e| io_err(ErrorVerb::Write, format!("{}: {e}", path.display())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        mut snapshot: Box<SnapFile>,
    ) -> Result<(), StorageError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut bytes = Vec::new();
        snapshot
            .seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| io_err(ErrorVerb::Read, e))?;
        snapshot
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| io_err(ErrorVerb::Read, e))?;
        drop(snapshot);
        let incoming = self.dir.join(INCOMING);
        let _ = crate::rng::blocking(move || fs::remove_file(incoming)).await;
        let (file_meta, tree_bytes) = parse_file(&bytes).map_err(|e| io_err(ErrorVerb::Read, e))?;
        if file_meta.last_log_id != meta.last_log_id {
            return Err(io_err(
                ErrorVerb::Read,
                "snapshot metadata does not match its data",
            ));
        }
        let tree: DataTree = read_snapshot(tree_bytes, self.core.config.extended_types_enabled)
            .map_err(|e| io_err(ErrorVerb::Read, e))?;
        let name = format!(
            "snapshot-{:020}-{}.snap",
            meta.last_log_id.map(|l| l.index).unwrap_or(0),
            meta.last_log_id.map(|l| l.leader_id.term).unwrap_or(0)
        );
        let dir = self.dir.clone();
        let retain = self.retain;
        crate::rng::blocking(move || -> std::io::Result<()> {
            let tmp = dir.join(format!("{name}.tmp"));
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, dir.join(&name))?;
            fs::File::open(&dir)?.sync_all()?;
            prune(&dir, retain);
            Ok(())
        })
        .await
        .map_err(|e| io_err(ErrorVerb::Write, e))?
        .map_err(|e| io_err(ErrorVerb::Write, e))?;
        {
            let mut sm = self.core.sm.write();
            sm.tree = tree;
            sm.last_applied = meta.last_log_id;
            sm.membership = meta.last_membership.clone();
            sm.txns_since_snapshot = 0;
        }
        self.core.tree_replaced();
        self.core
            .stats
            .snapshots_installed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            index = meta.last_log_id.map_or(0, |l| l.index),
            "installed a snapshot from the leader"
        );
        if let Some(l) = meta.last_log_id {
            self.core.set_applied(l.index);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let dir = self.dir.clone();
        // Only the header is read here (openraft asks at start-up, for the metadata); the data
        // is the open file, read only if a follower needs it.
        let found = crate::rng::blocking(move || -> Result<Option<(Meta, PathBuf)>, String> {
            let files = list_snapshots(&dir).map_err(|e| e.to_string())?;
            let Some(f) = files.first() else {
                return Ok(None);
            };
            Ok(Some((read_meta(&f.path)?, f.path.clone())))
        })
        .await
        .map_err(|e| io_err(ErrorVerb::Read, e))?
        .map_err(|e| io_err(ErrorVerb::Read, e))?;
        match found {
            Some((meta, path)) => Ok(Some(Snapshot {
                meta,
                snapshot: open_data(&path).await?,
            })),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_files_load_through_a_mapping_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta {
            last_log_id: None,
            last_membership: StoredMembership::default(),
            snapshot_id: "0-0-1".into(),
        };
        let tree = DataTree::new(false);
        let path = write_file(dir.path(), &meta, &tree.freeze()).unwrap();
        let (state, back) = load_snapshot(&path, false).unwrap();
        assert_eq!(back.snapshot_id, "0-0-1");
        assert_eq!(state.tree.node_count(), tree.node_count());
        let good = fs::read(&path).unwrap();
        // Empty, cut short and damaged files each give an error naming the file.
        for (name, bytes) in [
            ("empty.snap", Vec::new()),
            ("short.snap", good[..good.len() / 2].to_vec()),
            ("flipped.snap", {
                let mut b = good.clone();
                let at = b.len() - 20;
                b[at] ^= 1;
                b
            }),
        ] {
            let p = dir.path().join(name);
            fs::write(&p, bytes).unwrap();
            let Err(e) = load_snapshot(&p, false) else {
                panic!("{name} loaded");
            };
            assert!(e.contains(name), "{e}");
        }
        let Err(e) = load_snapshot(&dir.path().join("missing.snap"), false) else {
            panic!("a missing file loaded");
        };
        assert!(e.contains("missing.snap"), "{e}");
    }
}
