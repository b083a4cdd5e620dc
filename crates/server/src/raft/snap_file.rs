//! The snapshot file openraft reads (to stream it to a follower) and writes (as a follower
//! receives one): tokio's file in a real server; in a simulation, a standard file read and
//! written inline, since tokio's file hands every call to another thread, which would finish
//! at a time the simulation does not control.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// A snapshot file as openraft's `SnapshotData`.
pub enum SnapFile {
    /// A real server's file: every call runs on tokio's blocking pool.
    Pooled(tokio::fs::File),
    /// A simulation's file: every call runs inline. The pending seek's outcome is kept for
    /// `poll_complete`.
    Inline(std::fs::File, Option<std::io::Result<u64>>),
}

impl SnapFile {
    fn wrap(f: std::fs::File) -> SnapFile {
        if crate::rng::simulated() {
            SnapFile::Inline(f, None)
        } else {
            SnapFile::Pooled(tokio::fs::File::from_std(f))
        }
    }

    /// Opens `path` for reading.
    pub async fn open(path: &Path) -> std::io::Result<SnapFile> {
        let path = path.to_owned();
        crate::rng::blocking(move || std::fs::File::open(path))
            .await?
            .map(SnapFile::wrap)
    }

    /// Creates (or empties) `path` for reading and writing.
    pub async fn create(path: &Path) -> std::io::Result<SnapFile> {
        let path = path.to_owned();
        crate::rng::blocking(move || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
        })
        .await?
        .map(SnapFile::wrap)
    }
}

impl AsyncRead for SnapFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapFile::Pooled(f) => Pin::new(f).poll_read(cx, buf),
            SnapFile::Inline(f, _) => {
                let n = f.read(buf.initialize_unfilled())?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for SnapFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            SnapFile::Pooled(f) => Pin::new(f).poll_write(cx, buf),
            SnapFile::Inline(f, _) => Poll::Ready(f.write(buf)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapFile::Pooled(f) => Pin::new(f).poll_flush(cx),
            SnapFile::Inline(f, _) => Poll::Ready(f.flush()),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapFile::Pooled(f) => Pin::new(f).poll_shutdown(cx),
            SnapFile::Inline(f, _) => Poll::Ready(f.flush()),
        }
    }
}

impl AsyncSeek for SnapFile {
    fn start_seek(self: Pin<&mut Self>, pos: SeekFrom) -> std::io::Result<()> {
        match self.get_mut() {
            SnapFile::Pooled(f) => Pin::new(f).start_seek(pos),
            SnapFile::Inline(f, pending) => {
                *pending = Some(f.seek(pos));
                Ok(())
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        match self.get_mut() {
            SnapFile::Pooled(f) => Pin::new(f).poll_complete(cx),
            SnapFile::Inline(f, pending) => Poll::Ready(match pending.take() {
                Some(r) => r,
                // No seek pending: the current position.
                None => f.stream_position(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    /// Writes, seeks and reads back through `f`.
    async fn round_trip(mut f: SnapFile) {
        f.write_all(b"hello, snapshot").await.unwrap();
        f.flush().await.unwrap();
        assert_eq!(f.seek(SeekFrom::Start(7)).await.unwrap(), 7);
        let mut rest = String::new();
        f.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "snapshot");
        assert_eq!(f.stream_position().await.unwrap(), 15);
    }

    #[tokio::test]
    async fn a_pooled_file_writes_seeks_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let f = SnapFile::create(&dir.path().join("s")).await.unwrap();
        assert!(matches!(f, SnapFile::Pooled(_)));
        round_trip(f).await;
    }

    #[tokio::test]
    async fn a_simulations_file_does_the_same_inline() {
        let dir = tempfile::tempdir().unwrap();
        crate::rng::set_clock(Some(|| 0));
        let f = SnapFile::create(&dir.path().join("s")).await;
        crate::rng::set_clock(None);
        let f = f.unwrap();
        assert!(matches!(f, SnapFile::Inline(..)));
        round_trip(f).await;
        let back = std::fs::read(dir.path().join("s")).unwrap();
        assert_eq!(back, b"hello, snapshot");
    }
}
