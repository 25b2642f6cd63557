//! The machine's `DiskJob`s on blocking threads, with plain `std::fs`.
//!
//! Receiving: one writer thread per transfer appends the chunks in order to its `.part`
//! file and hashes them as they pass (SHA-256, or BLAKE3 for a streamed-hash offer), so the
//! `Verify` that follows the last chunk needs no second read of the file; the rename is its
//! own job, asked for only after the machine accepted the result (audit D19). The writer
//! starts each 8 MiB window's writeback as soon as it is full ([`Writeback`]), so the disk
//! works while the next chunks arrive and the closing sync has little left to write.
//!
//! Sending: the machine asks for one chunk at a time. Each read first reserves a slot in the
//! link's bounded bulk queue and only then reads, so a friend that reads slowly holds back
//! the reads (and memory) instead of the driver; the chunk then goes into the slot it
//! reserved. A streamed-hash transfer's reader feeds BLAKE3 as it reads, so its
//! `FileDigest` needs no second pass either, and takes the next slot behind the last chunk.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use peerchat_proto::wire;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio::sync::mpsc::OwnedPermit;

use super::Core;
use crate::events::Event;
use crate::ids::TransferId;
use crate::machine::{DiskEvent, DiskJob, Expected};
use crate::transfer::disk::{create_part, hash_file, held_on_disk, open_part};
use crate::transfer::naming::{
    ensure_real_dir, final_for_part, finalize_part, free_destination, occupied, part_path,
    sanitize_folder_name,
};
use crate::transfer::progress::ProgressMeter;
use crate::transfer::writeback::Writeback;
use crate::transfer::Direction;

/// A slot in a link's bulk queue.
type Slot = OwnedPermit<wire::PeerMessage>;

/// What the disk threads report.
pub(super) enum Done {
    /// A chunk was read (or reading failed) into a reserved slot.
    Chunk {
        id: TransferId,
        offset: u64,
        data: Option<Bytes>,
        slot: Slot,
    },
    /// A streamed-hash transfer's BLAKE3, with the slot for its FileDigest.
    Digest {
        id: TransferId,
        blake3: Option<[u8; 32]>,
        slot: Slot,
    },
    /// A source file's SHA-256 (`None`: unreadable or another size).
    Hashed {
        id: TransferId,
        sha256: Option<[u8; 32]>,
    },
    /// A `.part` file's hash was compared.
    Verified { id: TransferId, matched: bool },
    /// Writing a `.part` file failed.
    WriteFailed { id: TransferId, error: String },
    /// A writer has `bytes` on disk.
    Progress {
        id: TransferId,
        bytes: u64,
        rate: u64,
    },
}

enum WriterMsg {
    Append(u64, Bytes),
    Verify(Expected),
    Discard,
}

/// A receiving transfer's writer thread and its queue.
///
/// The queue is unbounded on purpose: the driver must never wait on one transfer's disk,
/// or every other input (chat from other friends, the user's commands, the server) waits
/// behind a chunk's write whenever the disk is slower than the link. What bounds the queue
/// is the friend the chunks came from: each chunk's bytes hold their share of that friend's
/// receive budget, shared by all its connections, until the writer has written and dropped
/// them ([`crate::peer::budget::RecvBudgets`], `PEER_RECV_BUDGET`), so the friend's links
/// stop reading (and TCP pushes back on that friend) once its chunks fill the budget,
/// whether they wait in the event queue, in the machine or here — even across reconnects.
struct Writer {
    tx: mpsc::UnboundedSender<WriterMsg>,
    join: tokio::task::JoinHandle<()>,
}

/// A source file being read, and the BLAKE3 of its prefix `0..hashed_to`.
#[derive(Default)]
struct Reader {
    file: Option<(PathBuf, File, u64)>,
    blake3: Option<blake3::Hasher>,
    hashed_to: u64,
}

impl Reader {
    /// [`Reader::read_into`] with a buffer of its own (the tests' form).
    #[cfg(test)]
    fn read(&mut self, path: &Path, offset: u64, len: usize, streamed: bool) -> Option<Bytes> {
        self.read_into(Vec::with_capacity(len), path, offset, len, streamed)
    }

    /// Reads `len` bytes of `path` at `offset` into `buf` (its contents are dropped; the
    /// caller allocates it, see `ReadChunk`), extending the streamed BLAKE3 when the chunk
    /// continues it. `None` if the file cannot be read or got shorter.
    fn read_into(
        &mut self,
        mut buf: Vec<u8>,
        path: &Path,
        offset: u64,
        len: usize,
        streamed: bool,
    ) -> Option<Bytes> {
        if self.file.as_ref().is_none_or(|(p, _, _)| p != path) {
            self.file = Some((path.to_owned(), File::open(path).ok()?, 0));
        }
        let (_, file, pos) = self.file.as_mut()?;
        if *pos != offset {
            file.seek(SeekFrom::Start(offset)).ok()?;
        }
        // Read into spare capacity: zeroing each chunk first cost ~5 % of the sender's CPU
        // (docs/PERFORMANCE.md).
        buf.clear();
        Read::take(&mut *file, len as u64)
            .read_to_end(&mut buf)
            .ok()?;
        *pos = offset + buf.len() as u64;
        if buf.len() != len {
            // The file got shorter while it was sent.
            return None;
        }
        if streamed && offset == self.hashed_to {
            self.blake3
                .get_or_insert_with(blake3::Hasher::new)
                .update(&buf);
            self.hashed_to += len as u64;
        }
        Some(Bytes::from(buf))
    }

    fn digest(&self, path: &Path, size: u64) -> Option<[u8; 32]> {
        match &self.blake3 {
            Some(h) if self.hashed_to == size => Some(*h.finalize().as_bytes()),
            _ if size == 0 => Some(*blake3::Hasher::new().finalize().as_bytes()),
            _ => blake3_file(path, size),
        }
    }
}

/// Everything on disk the driver keeps track of.
pub(super) struct Disk {
    tx: mpsc::UnboundedSender<Done>,
    /// `.part` files of incoming transfers.
    parts: HashMap<TransferId, PathBuf>,
    writers: HashMap<TransferId, Writer>,
    readers: HashMap<TransferId, Arc<Mutex<Reader>>>,
    slots: HashMap<TransferId, Slot>,
    meters: HashMap<TransferId, ProgressMeter>,
    /// Writers finishing after shutdown.
    finishing: Vec<tokio::task::JoinHandle<()>>,
}

impl Disk {
    pub(super) fn new() -> (Self, mpsc::UnboundedReceiver<Done>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                parts: HashMap::new(),
                writers: HashMap::new(),
                readers: HashMap::new(),
                slots: HashMap::new(),
                meters: HashMap::new(),
                finishing: Vec::new(),
            },
            rx,
        )
    }

    /// A `.part` file of an earlier run; returns the bytes it holds (§8.3 r8).
    pub(super) fn restore_part(&mut self, id: TransferId, part: PathBuf, size: u64) -> u64 {
        let held = held_on_disk(&part, size);
        self.parts.insert(id, part);
        held
    }

    /// A transfer ended: its reader, slot and meter go; a writer still running was told by
    /// the job that ended it (Verify, DeletePart).
    pub(super) fn forget(&mut self, id: TransferId) {
        self.readers.remove(&id);
        self.slots.remove(&id);
        self.meters.remove(&id);
        if let Some(w) = self.writers.remove(&id) {
            self.finishing.push(w.join);
        }
        self.parts.remove(&id);
    }

    /// Puts a file frame on the bulk queue, in the slot its read reserved.
    pub(super) fn send_bulk(
        &mut self,
        id: TransferId,
        msg: wire::PeerMessage,
        bulk: &mpsc::Sender<wire::PeerMessage>,
    ) {
        match self.slots.remove(&id) {
            Some(slot) => {
                let _ = slot.send(msg);
            }
            None => {
                if let Err(mpsc::error::TrySendError::Full(msg)) = bulk.try_send(msg) {
                    let bulk = bulk.clone();
                    tokio::spawn(async move {
                        let _ = bulk.send(msg).await;
                    });
                }
            }
        }
    }

    /// Lets the writers finish what is queued (the `.part` files stay for a resume).
    pub(super) async fn finish(&mut self) {
        for (_, w) in self.writers.drain() {
            self.finishing.push(w.join);
        }
        for j in self.finishing.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(30), j).await;
        }
    }
}

impl Core {
    pub(super) async fn disk_job(&mut self, job: DiskJob) {
        let now = Instant::now();
        match job {
            DiskJob::CreatePart {
                friend,
                id,
                name,
                dir,
            } => {
                // R9 from an empty file asks again: the `.part` file of the first accept
                // is still there (nothing was written to it) and is used again.
                if self
                    .disk
                    .parts
                    .get(&id)
                    .is_some_and(|p| std::fs::symlink_metadata(p).is_ok())
                {
                    return;
                }
                let folder = dir.join(sanitize_folder_name(&self.display(&friend)));
                match new_part(&folder, &name) {
                    Ok(part) => {
                        if let Err(e) = self
                            .history
                            .set_transfer_path(&friend, Direction::Incoming, id, &part)
                            .await
                        {
                            self.error(e.to_string());
                        }
                        self.disk.parts.insert(id, part);
                    }
                    Err(e) => {
                        self.error(e);
                        self.machine.handle_disk(DiskEvent::WriteFailed { id }, now);
                    }
                }
            }
            DiskJob::Append { id, offset, data } => {
                if !self.disk.writers.contains_key(&id) {
                    let Some(part) = self.disk.parts.get(&id).cloned() else {
                        self.machine.handle_disk(DiskEvent::WriteFailed { id }, now);
                        return;
                    };
                    let streamed = self.machine.incoming_streamed(id).unwrap_or(false);
                    let size = self.machine.transfer_info(id).map_or(0, |(_, s, _)| s);
                    let w = spawn_writer(id, part, offset, streamed, size, self.disk.tx.clone());
                    self.disk.writers.insert(id, w);
                }
                // Never waits: the friend's receive budget is the backpressure (`Writer`).
                let sent = self
                    .disk
                    .writers
                    .get(&id)
                    .is_some_and(|w| w.tx.send(WriterMsg::Append(offset, data)).is_ok());
                if !sent {
                    self.disk.writers.remove(&id);
                    self.machine.handle_disk(DiskEvent::WriteFailed { id }, now);
                }
            }
            DiskJob::Verify { id, expect } => {
                if let Some(w) = self.disk.writers.remove(&id) {
                    if w.tx.send(WriterMsg::Verify(expect)).is_ok() {
                        self.disk.finishing.push(w.join);
                        return;
                    }
                }
                // No writer (nothing was appended in this run): hash the file as it is.
                let Some(part) = self.disk.parts.get(&id).cloned() else {
                    self.machine
                        .handle_disk(DiskEvent::Verified { id, matched: false }, now);
                    return;
                };
                let tx = self.disk.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let matched = verify_file(&part, expect);
                    let _ = tx.send(Done::Verified { id, matched });
                });
            }
            DiskJob::Rename { id } => {
                let renamed = self.disk.parts.get(&id).cloned().and_then(|part| {
                    let done = final_for_part(&part)?;
                    if std::fs::symlink_metadata(&part).is_err() {
                        // Renamed just before a restart (§8.3 r8): the hash just matched it.
                        return Some(done);
                    }
                    let dir = done.parent()?.to_path_buf();
                    let name = done.file_name()?.to_string_lossy().into_owned();
                    finalize_part(&part, &dir, &name).ok()
                });
                match renamed {
                    Some(path) => {
                        if let Some(friend) = self.machine.transfer_friend(id) {
                            if let Err(e) = self
                                .history
                                .set_transfer_path(&friend, Direction::Incoming, id, &path)
                                .await
                            {
                                self.error(e.to_string());
                            }
                        }
                        self.disk.parts.remove(&id);
                        let path = path.display().to_string();
                        self.machine
                            .handle_disk(DiskEvent::Renamed { id, path }, now);
                    }
                    None => self.machine.handle_disk(DiskEvent::WriteFailed { id }, now),
                }
            }
            DiskJob::DeletePart { id } => {
                match self.disk.writers.remove(&id) {
                    // Behind what is queued: the writer removes the file itself.
                    Some(w) => {
                        let _ = w.tx.send(WriterMsg::Discard);
                        self.disk.finishing.push(w.join);
                    }
                    None => {
                        if let Some(part) = self.disk.parts.get(&id) {
                            let _ = std::fs::remove_file(part);
                        }
                    }
                }
                self.disk.parts.remove(&id);
            }
            DiskJob::ReadChunk {
                id,
                path,
                offset,
                len,
            } => {
                let Some(bulk) = self.bulk_of(id) else {
                    return;
                };
                let streamed = self.machine.outgoing_streamed(id);
                let reader = self.disk.readers.entry(id).or_default().clone();
                let tx = self.disk.tx.clone();
                tokio::spawn(async move {
                    // No slot: the link is gone, and so is the transfer's SENDING state.
                    let Ok(slot) = bulk.reserve_owned().await else {
                        return;
                    };
                    // The chunk's buffer is allocated here, on a runtime worker, not on the
                    // blocking-pool thread that fills it: the link's write task frees it on a
                    // worker too. Allocated on up to `BULK_QUEUE` pool threads, each with
                    // allocator pages of its own, the sender's memory crept over a process's
                    // transfers (docs/PERFORMANCE.md, session 16).
                    let buf = Vec::with_capacity(len);
                    let data = tokio::task::spawn_blocking(move || {
                        reader
                            .lock()
                            .ok()
                            .and_then(|mut r| r.read_into(buf, &path, offset, len, streamed))
                    })
                    .await
                    .ok()
                    .flatten();
                    let _ = tx.send(Done::Chunk {
                        id,
                        offset,
                        data,
                        slot,
                    });
                });
            }
            DiskJob::CheckSource { id, path, size } => {
                let ok = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size);
                self.machine
                    .handle_disk(DiskEvent::SourceChecked { id, ok }, now);
            }
            DiskJob::HashSource { id, path, size } => {
                let tx = self.disk.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let sha256 = hash_file(&path)
                        .ok()
                        .filter(|(_, len)| *len == size)
                        .map(|(h, _)| h);
                    let _ = tx.send(Done::Hashed { id, sha256 });
                });
            }
            DiskJob::Digest { id, path, size } => {
                let Some(bulk) = self.bulk_of(id) else {
                    return;
                };
                let reader = self.disk.readers.entry(id).or_default().clone();
                let tx = self.disk.tx.clone();
                tokio::spawn(async move {
                    let Ok(slot) = bulk.reserve_owned().await else {
                        return;
                    };
                    let blake3 = tokio::task::spawn_blocking(move || {
                        reader.lock().ok().and_then(|r| r.digest(&path, size))
                    })
                    .await
                    .ok()
                    .flatten();
                    let _ = tx.send(Done::Digest { id, blake3, slot });
                });
            }
        }
    }

    /// The bulk queue of the link an outgoing transfer runs on.
    fn bulk_of(&self, id: TransferId) -> Option<mpsc::Sender<wire::PeerMessage>> {
        let link = self.machine.outgoing_state(id)?.link()?;
        self.links.get(&link).map(|l| l.bulk.clone())
    }

    pub(super) fn on_disk(&mut self, done: Done) {
        let now = Instant::now();
        let ev = match done {
            Done::Chunk {
                id,
                offset,
                data,
                slot,
            } => match data {
                Some(data) => {
                    self.disk.slots.insert(id, slot);
                    DiskEvent::ChunkRead { id, offset, data }
                }
                None => DiskEvent::ReadFailed { id },
            },
            Done::Digest { id, blake3, slot } => {
                self.disk.slots.insert(id, slot);
                DiskEvent::Digested { id, blake3 }
            }
            Done::Hashed { id, sha256 } => DiskEvent::SourceHashed { id, sha256 },
            Done::Verified { id, matched } => DiskEvent::Verified { id, matched },
            Done::WriteFailed { id, error } => {
                self.error(error);
                self.disk.writers.remove(&id);
                DiskEvent::WriteFailed { id }
            }
            Done::Progress { id, bytes, rate } => {
                if let Some((k, size, direction)) = self.machine.transfer_info(id) {
                    self.emit(Event::TransferProgress {
                        friend: self.display(&k),
                        transfer_id: id,
                        direction,
                        bytes,
                        size,
                        rate_bytes_per_sec: rate,
                    });
                }
                return;
            }
        };
        self.machine.handle_disk(ev, now);
    }

    /// Progress of an outgoing transfer: `bytes` handed to the link.
    pub(super) fn progress_out(&mut self, id: TransferId, bytes: u64) {
        let now = Instant::now();
        let report = self
            .disk
            .meters
            .entry(id)
            .or_insert_with(|| ProgressMeter::new(now, bytes))
            .update(now, bytes);
        let Some(r) = report else { return };
        if let Some((k, size, direction)) = self.machine.transfer_info(id) {
            self.emit(Event::TransferProgress {
                friend: self.display(&k),
                transfer_id: id,
                direction,
                bytes: r.bytes,
                size,
                rate_bytes_per_sec: r.rate_bytes_per_sec,
            });
        }
    }
}

/// A new transfer's `.part` file in the friend's folder `dir`, created empty and exclusively
/// at the first free candidate of `name` (SPEC.md §8.4); its path without the suffix is the
/// final name.
fn new_part(dir: &Path, name: &str) -> Result<PathBuf, String> {
    ensure_real_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for _ in 0..16 {
        let dest = free_destination(dir, name, occupied).ok_or("no free file name")?;
        let part = part_path(&dest);
        match create_part(&part) {
            Ok(()) => return Ok(part),
            // Taken between the check and the create: the next candidate.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", part.display())),
        }
    }
    Err("no free file name".into())
}

/// The hash a received file is checked with.
enum Hasher {
    Sha256(Box<Sha256>),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(streamed: bool) -> Self {
        if streamed {
            Hasher::Blake3(Box::default())
        } else {
            Hasher::Sha256(Box::default())
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    /// True if this hash is the one `expect` names and it matches.
    fn matches(self, expect: Expected) -> Option<bool> {
        match (self, expect) {
            (Hasher::Sha256(h), Expected::Sha256(want)) => {
                Some(<[u8; 32]>::from(h.finalize()) == want)
            }
            (Hasher::Blake3(h), Expected::Blake3(want)) => Some(*h.finalize().as_bytes() == want),
            _ => None,
        }
    }
}

fn hash_prefix(file: &mut File, len: u64, hasher: &mut Hasher) -> std::io::Result<()> {
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

/// Hashes a whole `.part` file (or, if it was renamed just before a restart, its final
/// file) and compares.
fn verify_file(part: &Path, expect: Expected) -> bool {
    let path = if std::fs::symlink_metadata(part).is_ok() {
        part.to_path_buf()
    } else {
        match final_for_part(part) {
            Some(p) => p,
            None => return false,
        }
    };
    let Ok(mut file) = open_part(&path, false) else {
        return false;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut h = Hasher::new(matches!(expect, Expected::Blake3(_)));
    hash_prefix(&mut file, len, &mut h).is_ok() && h.matches(expect) == Some(true)
}

fn blake3_file(path: &Path, size: u64) -> Option<[u8; 32]> {
    let mut file = File::open(path).ok()?;
    if file.metadata().ok()?.len() != size {
        return None;
    }
    let mut h = Hasher::new(true);
    hash_prefix(&mut file, size, &mut h).ok()?;
    match h {
        Hasher::Blake3(h) => Some(*h.finalize().as_bytes()),
        Hasher::Sha256(_) => None,
    }
}

/// Starts the writer thread of a transfer whose `.part` file holds `start` bytes.
fn spawn_writer(
    id: TransferId,
    part: PathBuf,
    start: u64,
    streamed: bool,
    size: u64,
    done: mpsc::UnboundedSender<Done>,
) -> Writer {
    let (tx, rx) = mpsc::unbounded_channel();
    let join = tokio::task::spawn_blocking(move || {
        if let Err(e) = write(id, &part, start, streamed, size, rx, &done) {
            let _ = done.send(Done::WriteFailed {
                id,
                error: format!("{}: {e}", part.display()),
            });
        }
    });
    Writer { tx, join }
}

fn write(
    id: TransferId,
    part: &Path,
    start: u64,
    streamed: bool,
    size: u64,
    mut rx: mpsc::UnboundedReceiver<WriterMsg>,
    done: &mpsc::UnboundedSender<Done>,
) -> std::io::Result<()> {
    let mut file = open_part(part, false)?;
    file.set_len(start)?;
    let mut hasher = Hasher::new(streamed);
    if start > 0 {
        hash_prefix(&mut file, start, &mut hasher)?;
    }
    file.seek(SeekFrom::Start(start))?;
    let mut written = start;
    let mut meter = ProgressMeter::new(Instant::now(), written);
    let mut writeback = Writeback::new(written);
    loop {
        let Some(msg) = rx.blocking_recv() else {
            // The transfer was suspended or the client stops: keep the part for a resume.
            file.sync_data()?;
            return Ok(());
        };
        match msg {
            WriterMsg::Append(offset, data) => {
                if offset != written {
                    return Err(std::io::Error::other(format!(
                        "chunk at {offset}, file at {written}"
                    )));
                }
                file.write_all(&data)?;
                hasher.update(&data);
                written += data.len() as u64;
                writeback.after_write(&file, written);
                if let Some(r) = meter.update(Instant::now(), written) {
                    let _ = done.send(Done::Progress {
                        id,
                        bytes: r.bytes,
                        rate: r.rate_bytes_per_sec,
                    });
                }
            }
            WriterMsg::Verify(expect) => {
                file.sync_all()?;
                drop(file);
                let matched = match (written == size).then(|| hasher.matches(expect)).flatten() {
                    Some(m) => m,
                    None => verify_file(part, expect),
                };
                let _ = done.send(Done::Verified { id, matched });
                return Ok(());
            }
            WriterMsg::Discard => {
                drop(file);
                let _ = std::fs::remove_file(part);
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The writer and reader threads alone (the machine decides; these only move bytes):
    //! resume from a `.part` file, hashing on the way, the verdict on a wrong hash, a
    //! link at the `.part` name, a chunk out of order, and the sender's streamed BLAKE3.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn content() -> Vec<u8> {
        (0..100_000u32).map(|i| (i % 251) as u8).collect()
    }

    fn sha(data: &[u8]) -> Expected {
        Expected::Sha256(Sha256::digest(data).into())
    }

    const ID: TransferId = TransferId([5; 16]);

    /// Runs a writer over `msgs` and returns what it reported last (Verified or WriteFailed).
    async fn run_writer(
        part: &Path,
        start: u64,
        streamed: bool,
        size: u64,
        msgs: Vec<WriterMsg>,
    ) -> Option<Done> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let w = spawn_writer(ID, part.to_owned(), start, streamed, size, tx);
        for m in msgs {
            if w.tx.send(m).is_err() {
                break;
            }
        }
        drop(w.tx);
        w.join.await.unwrap();
        let mut last = None;
        while let Ok(d) = rx.try_recv() {
            if !matches!(d, Done::Progress { .. }) {
                last = Some(d);
            }
        }
        last
    }

    #[tokio::test]
    async fn the_writer_resumes_from_a_part_file_and_verifies_without_reading_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.bin.part");
        let c = content();
        std::fs::write(&part, &c[..40_000]).unwrap();
        let done = run_writer(
            &part,
            40_000,
            false,
            c.len() as u64,
            vec![
                WriterMsg::Append(40_000, Bytes::copy_from_slice(&c[40_000..70_000])),
                WriterMsg::Append(70_000, Bytes::copy_from_slice(&c[70_000..])),
                WriterMsg::Verify(sha(&c)),
            ],
        )
        .await;
        assert!(matches!(done, Some(Done::Verified { matched: true, .. })));
        assert_eq!(
            std::fs::read(&part).unwrap(),
            c,
            "the rename is a job of its own (D19)"
        );
    }

    /// The writer's queue is unbounded so that the driver never waits on a disk; this is
    /// what still bounds it: queued chunks keep their friend's receive budget until the
    /// writer has written them, so a friend can have no more than `PEER_RECV_BUDGET` of
    /// chunks waiting for the disk, and its readers stop there.
    #[tokio::test]
    async fn queued_chunks_hold_their_friends_receive_budget_until_written() {
        use crate::peer::budget::{frame_cost, RecvBudget};
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.bin.part");
        let c = content();
        let budget = RecvBudget::new(1 << 20);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut held = 0;
        for (i, piece) in c.chunks(25_000).enumerate() {
            let data = budget.hold(Bytes::copy_from_slice(piece)).await;
            held += frame_cost(piece.len());
            // A send on the queue is not async: nothing here can wait on the disk.
            tx.send(WriterMsg::Append((i * 25_000) as u64, data))
                .unwrap();
        }
        tx.send(WriterMsg::Verify(sha(&c))).unwrap();
        // No writer has run yet: every queued byte still counts against the friend.
        assert_eq!(budget.in_use(), held);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let size = c.len() as u64;
        tokio::task::spawn_blocking(move || write(ID, &part, 0, false, size, rx, &done_tx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(budget.in_use(), 0, "written chunks give their budget back");
        let mut verdict = None;
        while let Ok(d) = done_rx.try_recv() {
            if let Done::Verified { matched, .. } = d {
                verdict = Some(matched);
            }
        }
        assert_eq!(verdict, Some(true));
    }

    #[tokio::test]
    async fn a_wrong_hash_is_a_verdict_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.bin.part");
        create_part(&part).unwrap();
        let done = run_writer(
            &part,
            0,
            false,
            5,
            vec![
                WriterMsg::Append(0, Bytes::from_static(b"hellO")),
                WriterMsg::Verify(sha(b"hello")),
            ],
        )
        .await;
        assert!(matches!(done, Some(Done::Verified { matched: false, .. })));
    }

    #[tokio::test]
    async fn a_streamed_transfer_resumes_and_checks_the_blake3_digest() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.bin.part");
        let c = content();
        std::fs::write(&part, &c[..40_000]).unwrap();
        let done = run_writer(
            &part,
            40_000,
            true,
            c.len() as u64,
            vec![
                WriterMsg::Append(40_000, Bytes::copy_from_slice(&c[40_000..])),
                WriterMsg::Verify(Expected::Blake3(*blake3::hash(&c).as_bytes())),
            ],
        )
        .await;
        assert!(matches!(done, Some(Done::Verified { matched: true, .. })));
    }

    #[tokio::test]
    async fn a_writer_that_ends_without_a_verdict_keeps_every_byte_for_a_resume() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.bin.part");
        create_part(&part).unwrap();
        let done = run_writer(
            &part,
            0,
            true,
            10,
            vec![WriterMsg::Append(0, Bytes::from_static(b"hello"))],
        )
        .await;
        assert!(done.is_none(), "suspended: nothing to report");
        assert_eq!(std::fs::read(&part).unwrap(), b"hello");
    }

    #[tokio::test]
    async fn discard_removes_the_part_file() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.bin.part");
        create_part(&part).unwrap();
        let done = run_writer(
            &part,
            0,
            false,
            10,
            vec![
                WriterMsg::Append(0, Bytes::from_static(b"hello")),
                WriterMsg::Discard,
            ],
        )
        .await;
        assert!(done.is_none());
        assert!(!part.exists());
    }

    #[tokio::test]
    async fn a_chunk_out_of_order_fails_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("f.bin.part");
        create_part(&part).unwrap();
        let done = run_writer(
            &part,
            0,
            false,
            10,
            vec![WriterMsg::Append(3, Bytes::from_static(b"lo"))],
        )
        .await;
        assert!(matches!(done, Some(Done::WriteFailed { .. })));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_linked_part_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim.txt");
        std::fs::write(&target, b"keep me").unwrap();
        let part = dir.path().join("f.bin.part");
        std::os::unix::fs::symlink(&target, &part).unwrap();
        let done = run_writer(
            &part,
            0,
            false,
            4,
            vec![WriterMsg::Append(0, Bytes::from_static(b"evil"))],
        )
        .await;
        assert!(matches!(done, Some(Done::WriteFailed { .. })));
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }

    #[test]
    fn the_reader_hashes_as_it_reads_and_a_resumed_one_hashes_the_prefix_once() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        let c = content();
        std::fs::write(&src, &c).unwrap();
        let size = c.len() as u64;
        let mut r = Reader::default();
        let mut got = Vec::new();
        for off in (0..c.len()).step_by(30_000) {
            let len = (c.len() - off).min(30_000);
            got.extend_from_slice(&r.read(&src, off as u64, len, true).unwrap());
        }
        assert_eq!(got, c);
        assert_eq!(r.digest(&src, size), Some(*blake3::hash(&c).as_bytes()));
        // Resumed at 40,000: the digest still covers the whole file.
        let mut r = Reader::default();
        let rest = r.read(&src, 40_000, c.len() - 40_000, true).unwrap();
        assert_eq!(&rest[..], &c[40_000..]);
        assert_eq!(r.digest(&src, size), Some(*blake3::hash(&c).as_bytes()));
        // A file that got shorter while it was sent is not read past its end.
        assert!(Reader::default().read(&src, size - 10, 20, false).is_none());
    }
}
