//! The threads that move file bytes: the sender's pump (disk → connection) and the
//! receiver's writer (connection → `.part` file → hash check → final name).
//!
//! Both run on tokio's blocking pool with plain `std::fs`, stream the file in chunks of at
//! most [`MAX_FILE_CHUNK`] bytes, and never hold more than a few chunks in memory: the pump
//! waits on the bounded queue of the connection's writer, the receiver's connection waits on
//! the bounded queue of the writer thread. They report to the client core through
//! [`DiskEvent`]s and decide nothing themselves.
//!
//! Hashing happens while the bytes pass (SPEC.md §8.3.1): the pump of a streamed-hash
//! transfer feeds every chunk it reads to BLAKE3 and ends with FileDigest; the writer feeds
//! every chunk it writes to the hash the transfer uses (BLAKE3, or SHA-256 for a version-1
//! offer). Only a resumed transfer reads its kept prefix again, once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use peerchat_proto::limits::MAX_FILE_CHUNK;
use peerchat_proto::wire::{self, peer_message::Body};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::naming::{final_for_part, finalize_part};
use super::progress::ProgressMeter;
use super::sender::chunk_ranges;
use crate::ids::TransferId;

/// Chunks a receiver's writer thread may have queued before the connection waits. Four
/// chunks (1 MiB) keep the disk busy (writes land in the page cache); each queued chunk can
/// pin a whole received record buffer, and 16 of them were a large part of the receiver's
/// peak RSS (docs/PERFORMANCE.md).
pub const WRITER_QUEUE: usize = 4;

/// What the disk threads report to the core.
#[derive(Debug)]
pub enum DiskEvent {
    /// The pump handed bytes up to `sent` to the connection.
    PumpProgress {
        /// Transfer.
        id: TransferId,
        /// Which pump (a transfer gets a new pump on every accept).
        generation: u64,
        /// Bytes handed over in total (counting the accepted offset).
        sent: u64,
        /// Rate since the previous report.
        rate: u64,
    },
    /// The pump handed over the last byte.
    PumpDone {
        /// Transfer.
        id: TransferId,
        /// Which pump.
        generation: u64,
    },
    /// The SHA-256 a version-1 offer needs is computed ([`spawn_sha256`]).
    Hashed {
        /// Transfer.
        id: TransferId,
        /// The hash and the length hashed, or why not.
        result: Result<([u8; 32], u64), String>,
    },
    /// Reading the source file failed.
    PumpFailed {
        /// Transfer.
        id: TransferId,
        /// Which pump.
        generation: u64,
        /// What went wrong.
        error: String,
    },
    /// The writer has `bytes` on disk.
    WriteProgress {
        /// The sender (lower-case userid).
        friend: String,
        /// Transfer.
        id: TransferId,
        /// Bytes on disk.
        bytes: u64,
        /// Rate since the previous report.
        rate: u64,
    },
    /// The writer finished: the final path, or why not.
    Written {
        /// The sender (lower-case userid).
        friend: String,
        /// Transfer.
        id: TransferId,
        /// Outcome.
        result: Result<PathBuf, WriteFailure>,
    },
}

/// Why a received file was not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteFailure {
    /// The bytes do not hash to the offered SHA-256 (or FileDigest's BLAKE3); the `.part`
    /// file was removed.
    HashMismatch,
    /// A disk operation failed.
    Io(String),
}

/// Stops a pump (at the next chunk boundary).
#[derive(Debug, Clone, Default)]
pub struct PumpHandle {
    stop: Arc<AtomicBool>,
}

impl PumpHandle {
    /// Asks the pump to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Where a pump reads and where it writes.
#[derive(Debug, Clone)]
pub struct PumpJob {
    /// Transfer.
    pub id: TransferId,
    /// Pump generation.
    pub generation: u64,
    /// Source file.
    pub path: PathBuf,
    /// First byte to send.
    pub from: u64,
    /// Size announced in the offer.
    pub size: u64,
    /// A streamed-hash transfer: hash `0..size` with BLAKE3 while sending (the prefix
    /// `0..from` first) and end with FileDigest (SPEC.md §8.3.1).
    pub digest: bool,
}

/// Streams `job.from..job.size` of the file as FileChunk frames into `out` (the
/// connection's bulk queue), then FileDigest for a streamed-hash transfer.
pub fn spawn_pump(
    job: PumpJob,
    out: mpsc::Sender<wire::PeerMessage>,
    events: mpsc::UnboundedSender<DiskEvent>,
) -> PumpHandle {
    let handle = PumpHandle::default();
    let stop = handle.stop.clone();
    tokio::task::spawn_blocking(move || {
        let (id, generation) = (job.id, job.generation);
        let event = match pump(&job, &out, &events, &stop) {
            Ok(true) => DiskEvent::PumpDone { id, generation },
            Ok(false) => return,
            Err(e) => DiskEvent::PumpFailed {
                id,
                generation,
                error: format!("{}: {e}", job.path.display()),
            },
        };
        let _ = events.send(event);
    });
    handle
}

/// Returns Ok(true) when everything was handed over, Ok(false) when stopped or the
/// connection went away.
fn pump(
    job: &PumpJob,
    out: &mpsc::Sender<wire::PeerMessage>,
    events: &mpsc::UnboundedSender<DiskEvent>,
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    let mut file = File::open(&job.path)?;
    let mut hasher = job.digest.then(blake3::Hasher::new);
    if let Some(h) = hasher.as_mut() {
        hash_prefix(&mut file, job.from, &mut FileHasher::Blake3(h))?;
    }
    file.seek(SeekFrom::Start(job.from))?;
    let mut meter = ProgressMeter::new(Instant::now(), job.from);
    for (offset, len) in chunk_ranges(job.from, job.size, MAX_FILE_CHUNK) {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        // Read into spare capacity: zeroing each chunk first cost ~5 % of the sender's CPU
        // (docs/PERFORMANCE.md); `read_to_end` fills uninitialised space.
        let mut buf = Vec::with_capacity(len);
        (&mut file).take(len as u64).read_to_end(&mut buf)?;
        if buf.len() != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file got shorter while it was sent",
            ));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buf);
        }
        let msg = wire::PeerMessage {
            body: Some(Body::FileChunk(wire::FileChunk {
                transfer_id: Bytes::copy_from_slice(&job.id.0),
                offset,
                data: Bytes::from(buf),
            })),
        };
        if out.blocking_send(msg).is_err() {
            return Ok(false);
        }
        if let Some(r) = meter.update(Instant::now(), offset + len as u64) {
            let _ = events.send(DiskEvent::PumpProgress {
                id: job.id,
                generation: job.generation,
                sent: r.bytes,
                rate: r.rate_bytes_per_sec,
            });
        }
    }
    if let Some(h) = hasher {
        // Behind the last chunk on the same queue, so it arrives after it (§8.3.1 rule 2).
        let msg = wire::PeerMessage {
            body: Some(Body::FileDigest(wire::FileDigest {
                transfer_id: Bytes::copy_from_slice(&job.id.0),
                blake3: Bytes::copy_from_slice(h.finalize().as_bytes()),
            })),
        };
        if stop.load(Ordering::Relaxed) || out.blocking_send(msg).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Computes the SHA-256 a version-1 offer needs, on the blocking pool; reports
/// [`DiskEvent::Hashed`].
pub fn spawn_sha256(id: TransferId, path: PathBuf, events: mpsc::UnboundedSender<DiskEvent>) {
    tokio::task::spawn_blocking(move || {
        let result = hash_file(&path).map_err(|e| format!("{}: {e}", path.display()));
        let _ = events.send(DiskEvent::Hashed { id, result });
    });
}

/// Where a writer writes.
#[derive(Debug, Clone)]
pub struct WriteJob {
    /// The sender (lower-case userid), echoed in events.
    pub friend: String,
    /// Transfer.
    pub id: TransferId,
    /// The `.part` file.
    pub part: PathBuf,
    /// The folder of the final file.
    pub dir: PathBuf,
    /// The safe final name (a free variant is chosen at the end).
    pub name: String,
    /// Bytes already in the `.part` file that belong to this transfer.
    pub held: u64,
    /// A new transfer: the `.part` file must not exist yet (created exclusively, so an
    /// existing file is never opened, SPEC.md §8.4). False when resuming.
    pub fresh: bool,
    /// The offered size.
    pub size: u64,
    /// The offered SHA-256; `None` for a streamed-hash offer, whose BLAKE3 comes through
    /// [`WriterHandle::give_digest`] (SPEC.md §8.3.1).
    pub sha256: Option<[u8; 32]>,
}

/// Feeds a writer thread; dropping it without [`WriterHandle::discard`] leaves the `.part`
/// file for a later resume.
#[derive(Debug)]
pub struct WriterHandle {
    /// Chunk data, in order.
    pub tx: mpsc::Sender<Bytes>,
    digest: Option<oneshot::Sender<[u8; 32]>>,
    discard: Arc<AtomicBool>,
    join: tokio::task::JoinHandle<()>,
}

impl WriterHandle {
    /// Hands over the sender's FileDigest (streamed-hash transfers); the writer compares it
    /// once every byte is on disk. Later calls do nothing.
    pub fn give_digest(&mut self, blake3: [u8; 32]) {
        if let Some(tx) = self.digest.take() {
            let _ = tx.send(blake3);
        }
    }

    /// Stops the writer and removes the `.part` file (cancelled transfer).
    pub fn discard(self) {
        self.discard.store(true, Ordering::Relaxed);
    }

    /// Stops feeding the writer; the returned handle finishes once everything queued is on
    /// disk (so a restarted client can reopen the `.part` file safely).
    pub fn finish(self) -> tokio::task::JoinHandle<()> {
        self.join
    }
}

/// Starts the writer thread of an accepted transfer.
pub fn spawn_writer(job: WriteJob, events: mpsc::UnboundedSender<DiskEvent>) -> WriterHandle {
    let (tx, rx) = mpsc::channel(WRITER_QUEUE);
    let (digest_tx, digest_rx) = oneshot::channel();
    let discard = Arc::new(AtomicBool::new(false));
    let flag = discard.clone();
    let join = tokio::task::spawn_blocking(move || {
        let outcome = write(&job, rx, digest_rx, &events);
        if flag.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(&job.part);
            return;
        }
        let result = match outcome {
            Ok(None) => return,
            Ok(Some(r)) => r,
            Err(e) => Err(WriteFailure::Io(format!("{}: {e}", job.part.display()))),
        };
        let _ = events.send(DiskEvent::Written {
            friend: job.friend.clone(),
            id: job.id,
            result,
        });
    });
    WriterHandle {
        tx,
        digest: Some(digest_tx),
        discard,
        join,
    }
}

/// Opens a file inside the downloads folder without following a symbolic link at its name
/// (SPEC.md §8.4): `O_NOFOLLOW` where the system has it; `create_new` refuses any existing
/// name, links included, everywhere.
pub(crate) fn open_part(part: &Path, fresh: bool) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if fresh {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    let file = opts.open(part)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", part.display()),
        ));
    }
    Ok(file)
}

/// Creates an empty `.part` file exclusively (a new transfer, SPEC.md §8.4): an existing
/// name, a symbolic link included, is never opened.
///
/// # Errors
/// I/O errors; `AlreadyExists` if the name is taken.
pub fn create_part(part: &Path) -> std::io::Result<()> {
    open_part(part, true).map(drop)
}

/// A transfer resumed with all bytes held but no `.part` file: the process died after
/// moving the verified file to its final name and before recording it (SPEC.md §8.3 rule
/// 8). The final file is this transfer's if it has the offered size and hash; anything else
/// there is the user's and is left alone. `Ok(Some(None))`: it may be ours, but the
/// FileDigest to tell never came (the connection went): leave everything as it is.
fn finished_before(
    job: &WriteJob,
    digest: &mut Option<oneshot::Receiver<[u8; 32]>>,
) -> std::io::Result<Option<Option<PathBuf>>> {
    if job.held != job.size || std::fs::symlink_metadata(&job.part).is_ok() {
        return Ok(None);
    }
    let Some(done) = final_for_part(&job.part).filter(|d| std::fs::symlink_metadata(d).is_ok())
    else {
        return Ok(None);
    };
    #[cfg(unix)]
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&done)?
    };
    #[cfg(not(unix))]
    let mut file = File::open(&done)?;
    let mut hasher = FileHasher::for_job(job);
    hash_prefix(&mut file, job.size, &mut hasher)?;
    let actual = hasher.finalize();
    let Some(expected) = expected_hash(job, digest) else {
        return Ok(Some(None));
    };
    if actual == expected && file.metadata()?.len() == job.size {
        Ok(Some(Some(done)))
    } else {
        Err(std::io::Error::other(format!(
            "{} is not the offered file; it is left as it is",
            done.display()
        )))
    }
}

/// Ok(None): the feed stopped before the end (connection lost; keep the part).
fn write(
    job: &WriteJob,
    mut rx: mpsc::Receiver<Bytes>,
    digest_rx: oneshot::Receiver<[u8; 32]>,
    events: &mpsc::UnboundedSender<DiskEvent>,
) -> std::io::Result<Option<Result<PathBuf, WriteFailure>>> {
    let mut digest_rx = Some(digest_rx);
    match finished_before(job, &mut digest_rx)? {
        Some(Some(done)) => return Ok(Some(Ok(done))),
        Some(None) => return Ok(None),
        None => {}
    }
    let mut file = open_part(&job.part, job.fresh)?;
    file.set_len(job.held)?;
    let mut hasher = FileHasher::for_job(job);
    if job.held > 0 {
        hash_prefix(&mut file, job.held, &mut hasher)?;
    }
    file.seek(SeekFrom::Start(job.held))?;
    let mut written = job.held;
    let mut meter = ProgressMeter::new(Instant::now(), written);
    while written < job.size {
        let Some(data) = rx.blocking_recv() else {
            file.sync_data()?;
            return Ok(None);
        };
        file.write_all(&data)?;
        hasher.update(&data);
        written += data.len() as u64;
        if let Some(r) = meter.update(Instant::now(), written) {
            let _ = events.send(DiskEvent::WriteProgress {
                friend: job.friend.clone(),
                id: job.id,
                bytes: r.bytes,
                rate: r.rate_bytes_per_sec,
            });
        }
    }
    file.sync_all()?;
    drop(file);
    let actual = hasher.finalize();
    let Some(expected) = expected_hash(job, &mut digest_rx) else {
        // All bytes are on disk but FileDigest did not come: keep the part; the re-offer is
        // answered with FileAccept{offset: size} and brings it (SPEC.md §8.3.1 rule 5).
        return Ok(None);
    };
    if actual != expected || written != job.size {
        std::fs::remove_file(&job.part)?;
        return Ok(Some(Err(WriteFailure::HashMismatch)));
    }
    Ok(Some(Ok(finalize_part(&job.part, &job.dir, &job.name)?)))
}

/// The hash a transfer is checked with: SHA-256 for an offer that carries one, BLAKE3 for a
/// streamed-hash offer (SPEC.md §8.3.1).
enum FileHasher<'a> {
    Sha256(Box<Sha256>),
    Blake3Owned(Box<blake3::Hasher>),
    Blake3(&'a mut blake3::Hasher),
}

impl FileHasher<'_> {
    fn for_job(job: &WriteJob) -> FileHasher<'static> {
        match job.sha256 {
            Some(_) => FileHasher::Sha256(Box::default()),
            None => FileHasher::Blake3Owned(Box::default()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            FileHasher::Sha256(h) => h.update(data),
            FileHasher::Blake3Owned(h) => {
                h.update(data);
            }
            FileHasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    fn finalize(self) -> [u8; 32] {
        match self {
            FileHasher::Sha256(h) => h.finalize().into(),
            FileHasher::Blake3Owned(h) => *h.finalize().as_bytes(),
            FileHasher::Blake3(h) => *h.finalize().as_bytes(),
        }
    }
}

/// The hash to compare with: the offer's SHA-256, or the sender's FileDigest, waited for.
/// `None`: the digest will not come on this writer (connection gone, transfer suspended).
fn expected_hash(
    job: &WriteJob,
    digest: &mut Option<oneshot::Receiver<[u8; 32]>>,
) -> Option<[u8; 32]> {
    match job.sha256 {
        Some(h) => Some(h),
        None => digest.take()?.blocking_recv().ok(),
    }
}

fn hash_prefix(file: &mut File, len: u64, hasher: &mut FileHasher<'_>) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// Bytes free for an unprivileged user on the volume holding `path` (or its nearest existing
/// ancestor), if the system says; an offer larger than this is refused (SPEC.md §8.3 rule 3).
pub fn free_space(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
        // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs that the
        // call fills; nothing is kept past the call.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        #[allow(clippy::unnecessary_cast)]
        (r == 0).then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = existing;
        None
    }
}

/// The bytes a resumed transfer already holds: the `.part` file's length, or the whole size
/// when the `.part` is gone and its final file is there with the right length (finished just
/// before a restart; the writer checks its hash, SPEC.md §8.3 rule 8). A link is not ours:
/// 0, and the writer refuses to open it.
pub fn held_on_disk(part: &Path, size: u64) -> u64 {
    match std::fs::symlink_metadata(part) {
        Ok(m) if m.file_type().is_file() => m.len(),
        Ok(_) => 0,
        Err(_) => final_for_part(part)
            .and_then(|f| std::fs::symlink_metadata(f).ok())
            .filter(|m| m.file_type().is_file() && m.len() == size)
            .map_or(0, |_| size),
    }
}

/// SHA-256 and length of a whole file, streamed (for the offer).
///
/// # Errors
/// I/O errors.
pub fn hash_file(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finalize().into(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: &Path, held: u64, content: &[u8]) -> WriteJob {
        WriteJob {
            friend: "bob".into(),
            id: TransferId([5; 16]),
            part: dir.join("f.bin.part"),
            dir: dir.to_owned(),
            name: "f.bin".into(),
            held,
            fresh: held == 0,
            size: content.len() as u64,
            sha256: Some(Sha256::digest(content).into()),
        }
    }

    async fn finish(
        events: &mut mpsc::UnboundedReceiver<DiskEvent>,
    ) -> Result<PathBuf, WriteFailure> {
        loop {
            match events.recv().await {
                Some(DiskEvent::Written { result, .. }) => return result,
                Some(_) => continue,
                None => return Err(WriteFailure::Io("no result".into())),
            }
        }
    }

    #[tokio::test]
    async fn writer_resumes_from_a_part_file_and_verifies() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("f.bin.part"), &content[..40_000])?;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let w = spawn_writer(job(dir.path(), 40_000, &content), etx);
        w.tx.send(Bytes::copy_from_slice(&content[40_000..70_000]))
            .await
            .map_err(std::io::Error::other)?;
        w.tx.send(Bytes::copy_from_slice(&content[70_000..]))
            .await
            .map_err(std::io::Error::other)?;
        let path = finish(&mut erx)
            .await
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        assert_eq!(path, dir.path().join("f.bin"));
        assert_eq!(std::fs::read(&path)?, content);
        assert!(!dir.path().join("f.bin.part").exists());
        Ok(())
    }

    #[tokio::test]
    async fn writer_removes_a_corrupt_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let w = spawn_writer(job(dir.path(), 0, b"hello"), etx);
        w.tx.send(Bytes::from_static(b"hellO"))
            .await
            .map_err(std::io::Error::other)?;
        assert_eq!(finish(&mut erx).await, Err(WriteFailure::HashMismatch));
        assert!(!dir.path().join("f.bin.part").exists());
        assert!(!dir.path().join("f.bin").exists());
        Ok(())
    }

    #[tokio::test]
    async fn empty_file_completes_without_chunks() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let _w = spawn_writer(job(dir.path(), 0, b""), etx);
        let path = finish(&mut erx)
            .await
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        assert_eq!(std::fs::read(path)?, b"");
        Ok(())
    }

    fn streamed(dir: &Path, held: u64, content: &[u8]) -> WriteJob {
        WriteJob {
            sha256: None,
            ..job(dir, held, content)
        }
    }

    #[tokio::test]
    async fn streamed_writer_resumes_and_checks_the_digest() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("f.bin.part"), &content[..40_000])?;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let mut w = spawn_writer(streamed(dir.path(), 40_000, &content), etx);
        w.tx.send(Bytes::copy_from_slice(&content[40_000..]))
            .await
            .map_err(std::io::Error::other)?;
        w.give_digest(*blake3::hash(&content).as_bytes());
        let path = finish(&mut erx)
            .await
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        assert_eq!(std::fs::read(&path)?, content);

        let (etx, mut erx) = mpsc::unbounded_channel();
        let mut w = spawn_writer(streamed(dir.path(), 0, b"hello"), etx);
        w.tx.send(Bytes::from_static(b"hello"))
            .await
            .map_err(std::io::Error::other)?;
        w.give_digest(*blake3::hash(b"hellO").as_bytes());
        assert_eq!(finish(&mut erx).await, Err(WriteFailure::HashMismatch));
        assert!(!dir.path().join("f.bin.part").exists());
        Ok(())
    }

    #[tokio::test]
    async fn streamed_writer_keeps_the_whole_part_when_the_digest_never_comes(
    ) -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let w = spawn_writer(streamed(dir.path(), 0, b"hello"), etx);
        w.tx.send(Bytes::from_static(b"hello"))
            .await
            .map_err(std::io::Error::other)?;
        w.finish().await.map_err(std::io::Error::other)?;
        while let Ok(ev) = erx.try_recv() {
            assert!(
                !matches!(ev, DiskEvent::Written { .. }),
                "no verdict without the digest"
            );
        }
        assert_eq!(std::fs::read(dir.path().join("f.bin.part"))?, b"hello");
        Ok(())
    }

    #[test]
    fn free_space_is_known_and_finite() {
        let free = free_space(Path::new("/definitely/not/here/but/root/is"));
        if cfg!(unix) {
            assert!(free.is_some_and(|f| f < u64::MAX));
        }
    }

    #[test]
    fn held_bytes_after_a_restart() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let part = dir.path().join("f.bin.part");
        assert_eq!(held_on_disk(&part, 7), 0, "nothing there: from the start");
        std::fs::write(&part, b"pay")?;
        assert_eq!(held_on_disk(&part, 7), 3, "the .part's length");
        std::fs::remove_file(&part)?;
        std::fs::write(dir.path().join("f.bin"), b"payload")?;
        assert_eq!(held_on_disk(&part, 7), 7, "finished before the crash");
        assert_eq!(
            held_on_disk(&part, 8),
            0,
            "a final file of another size is not ours"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_file_finished_before_a_crash_is_recognised_not_fetched_again() -> std::io::Result<()>
    {
        let dir = tempfile::tempdir()?;
        // The crash came after the rename: no .part, the final file is complete.
        std::fs::write(dir.path().join("f.bin"), b"payload")?;
        let mut j = job(dir.path(), 7, b"payload");
        j.fresh = false;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let _w = spawn_writer(j.clone(), etx);
        let path = finish(&mut erx)
            .await
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        assert_eq!(path, dir.path().join("f.bin"));
        assert!(!dir.path().join("f (1).bin").exists());

        // A different file of that name is the user's: refused, and left alone.
        std::fs::write(dir.path().join("f.bin"), b"PAYLOAD")?;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let _w = spawn_writer(j, etx);
        assert!(matches!(finish(&mut erx).await, Err(WriteFailure::Io(_))));
        assert_eq!(std::fs::read(dir.path().join("f.bin"))?, b"PAYLOAD");
        Ok(())
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_linked_part_file_is_not_followed() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("victim.txt");
        std::fs::write(&target, b"keep me")?;
        std::os::unix::fs::symlink(&target, dir.path().join("f.bin.part"))?;
        let mut j = job(dir.path(), 0, b"evil");
        j.fresh = false;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let w = spawn_writer(j, etx);
        let _ = w.tx.send(Bytes::from_static(b"evil")).await;
        assert!(matches!(finish(&mut erx).await, Err(WriteFailure::Io(_))));
        assert_eq!(std::fs::read(&target)?, b"keep me");
        assert!(create_part(&dir.path().join("f.bin.part")).is_err());
        Ok(())
    }

    #[tokio::test]
    async fn pump_streams_the_range_in_order() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("src.bin");
        let content: Vec<u8> = (0..(MAX_FILE_CHUNK * 2 + 10))
            .map(|i| (i % 253) as u8)
            .collect();
        std::fs::write(&path, &content)?;
        let (otx, mut orx) = mpsc::channel(4);
        let (etx, mut erx) = mpsc::unbounded_channel();
        let id = TransferId([1; 16]);
        let from = 7u64;
        spawn_pump(
            PumpJob {
                id,
                generation: 1,
                path,
                from,
                size: content.len() as u64,
                digest: true,
            },
            otx,
            etx,
        );
        let mut got = Vec::new();
        let mut expect = from;
        let mut digest = None;
        while let Some(m) = orx.recv().await {
            match m.body {
                Some(Body::FileChunk(c)) => {
                    assert!(digest.is_none(), "FileDigest comes after the last chunk");
                    assert_eq!(c.offset, expect);
                    expect += c.data.len() as u64;
                    got.extend_from_slice(&c.data);
                }
                Some(Body::FileDigest(d)) => digest = Some(d.blake3),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, &content[from as usize..]);
        assert_eq!(
            digest.as_deref(),
            Some(&blake3::hash(&content).as_bytes()[..]),
            "the digest covers the whole file, the resumed prefix included"
        );
        loop {
            match erx.recv().await {
                Some(DiskEvent::PumpDone { generation: 1, .. }) => break,
                Some(DiskEvent::PumpProgress { .. }) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
        Ok(())
    }
}
