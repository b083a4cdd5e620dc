//! The Raft state machine: applies committed batches to the tree and keeps snapshot files.
//!
//! A snapshot file is `snapshot-<last index>-<term>.snap`: magic `CNCDSNPF`, the Raft snapshot
//! metadata (postcard) with its own CRC-32C, then the tree snapshot (see `concord_tree::snapshot`,
//! itself checksummed). Files are written to a temporary name, fsync'd and renamed, so a crash
//! never leaves a half-written snapshot under a real name. The newest `retain` files are kept.

use super::types::{LogId, NodeId, StorageError, TypeConfig};
use crate::core::{Core, SmState};
use concord_tree::snapshot::{read_snapshot, write_snapshot};
use concord_tree::{DataTree, FrozenTree};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, EntryPayload, ErrorSubject, ErrorVerb, StoredMembership};
use std::fs;
use std::io::{Cursor, Write};
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

/// Lists snapshot files in `dir`, newest first; removes leftover temporary files.
pub fn list_snapshots(dir: &Path) -> std::io::Result<Vec<SnapshotFile>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(e.path());
            continue;
        }
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

/// Loads a snapshot file into an applied state.
pub fn load_snapshot(path: &Path, extended_types: bool) -> Result<(SmState, Meta), String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (meta, tree_bytes) = parse_file(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let tree = read_snapshot(tree_bytes, extended_types)
        .map_err(|e| format!("{}: {e}", path.display()))?;
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

/// Writes a snapshot file durably and returns its path.
fn write_file(dir: &Path, meta: &Meta, tree: &FrozenTree) -> std::io::Result<PathBuf> {
    let (index, term) = meta
        .last_log_id
        .map(|l| (l.index, l.leader_id.term))
        .unwrap_or((0, 0));
    let name = format!("snapshot-{index:020}-{term}.snap");
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(&name);
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&tmp)?);
    let meta_bytes = postcard::to_stdvec(meta).map_err(std::io::Error::other)?;
    f.write_all(MAGIC)?;
    f.write_all(&(meta_bytes.len() as u32).to_be_bytes())?;
    f.write_all(&meta_bytes)?;
    f.write_all(&crc32c::crc32c(&meta_bytes).to_be_bytes())?;
    write_snapshot(tree, &mut f)?;
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &dst)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(dst)
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
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (frozen, meta) = self.frozen.take().expect("a builder builds once");
        let dir = self.dir.clone();
        let retain = self.retain;
        let meta2 = meta.clone();
        let started = std::time::Instant::now();
        let path = tokio::task::spawn_blocking(move || {
            let p = write_file(&dir, &meta2, &frozen)?;
            prune(&dir, retain);
            Ok::<_, std::io::Error>(p)
        })
        .await
        .map_err(|e| io_err(ErrorVerb::Write, e))?
        .map_err(|e| io_err(ErrorVerb::Write, e))?;
        tracing::info!(file = %path.display(), ms = started.elapsed().as_millis() as u64, "snapshot written");
        // openraft only keeps the metadata of a freshly built snapshot; the data is read back
        // from the file when a follower needs it.
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(Vec::new())),
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
        let mut out = Vec::new();
        let mut done = Vec::new();
        let mut events = Vec::new();
        let my_id = self.core.my_id;
        {
            let mut sm = self.core.sm.write();
            let mut txns = 0u64;
            for e in entries {
                out.push(());
                sm.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Membership(m) => {
                        sm.membership = StoredMembership::new(Some(e.log_id), m);
                    }
                    EntryPayload::Normal(batch) => {
                        for (id, txn) in batch.items {
                            let applied = sm.tree.apply(&txn, &mut events);
                            self.core.after_apply(&txn, &applied, &mut events);
                            txns += 1;
                            if batch.origin == my_id {
                                done.push((id, applied));
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
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
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
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
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
        let mut sm = self.core.sm.write();
        sm.tree = tree;
        sm.last_applied = meta.last_log_id;
        sm.membership = meta.last_membership.clone();
        sm.txns_since_snapshot = 0;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let dir = self.dir.clone();
        let found =
            tokio::task::spawn_blocking(move || -> Result<Option<(Meta, Vec<u8>)>, String> {
                let files = list_snapshots(&dir).map_err(|e| e.to_string())?;
                let Some(f) = files.first() else {
                    return Ok(None);
                };
                let bytes = fs::read(&f.path).map_err(|e| format!("{}: {e}", f.path.display()))?;
                let (meta, _) =
                    parse_file(&bytes).map_err(|e| format!("{}: {e}", f.path.display()))?;
                Ok(Some((meta, bytes)))
            })
            .await
            .map_err(|e| io_err(ErrorVerb::Read, e))?
            .map_err(|e| io_err(ErrorVerb::Read, e))?;
        Ok(found.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
