//! Plain TCP ping-pong over loopback: the baseline of scenario 2.
//!
//! Each "message" is a 4-byte length plus `payload` bytes; the other end answers each with
//! a 20-byte "ack" (length plus a 16-byte id, the size of a MessageAck's id). No encryption.
//! Both ends run in this process.
//!
//! Two receivers: the plain one stores nothing; the durable one appends every message to a
//! file and `fdatasync`s it before acknowledging, the floor that durable-before-ack (SPEC.md
//! §8.1) puts under any implementation on this disk. Under a flood it commits a whole burst
//! with one sync ("group commit"), which is what lets durability and throughput coexist.
//!
//! With a sender's file as well ([`Durable::Both`]), the sender appends and syncs each
//! message before sending it: the floor of a round trip as SPEC.md §8.1 orders it (the
//! outbox entry durable before the send, rule 2; the receiver's copy durable before the
//! ack, rule 8), two syncs in sequence.
//!
//! [`Durable::Overlapped`] is the floor of §8.1 r2 as it stands: the sender sends first and
//! syncs its copy on another thread while the message travels; a round trip ends when the
//! ack has arrived *and* that sync is done. On two machines the two syncs would run on two
//! disks; when both ends share one disk, as in this benchmark, they contend for it, and this
//! floor shows what that costs any implementation of r2 on this machine.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// What the baseline measured.
#[derive(Debug)]
pub struct PingPong {
    /// One round trip per message, one message at a time.
    pub rtts: Vec<Duration>,
    /// Messages per second with the sender never waiting for acks.
    pub flood_per_sec: f64,
}

async fn echo_acks(sock: TcpStream) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let (r, w) = sock.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let mut buf = Vec::new();
    loop {
        let len = match r.read_u32().await {
            Ok(l) => l as usize,
            Err(_) => return Ok(()),
        };
        buf.resize(len, 0);
        r.read_exact(&mut buf).await?;
        w.write_u32(16).await?;
        w.write_all(&[7u8; 16]).await?;
        // Flush when no further message is already buffered: one write per burst.
        if r.buffer().is_empty() {
            w.flush().await?;
        }
    }
}

/// The durable receiver, on a thread of its own with blocking I/O: reads every message
/// already buffered, appends them all to `file`, syncs once, then acknowledges them all.
fn durable_acks(sock: std::net::TcpStream, file: std::path::PathBuf) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    sock.set_nodelay(true)?;
    let mut out = std::io::BufWriter::new(sock.try_clone()?);
    let mut r = std::io::BufReader::with_capacity(1 << 20, sock);
    let mut store = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let mut msg = Vec::new();
    loop {
        let mut pending = 0usize;
        loop {
            let mut len = [0u8; 4];
            if let Err(e) = r.read_exact(&mut len) {
                if pending == 0 {
                    return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        Ok(())
                    } else {
                        Err(e)
                    };
                }
                return Err(e);
            }
            msg.resize(u32::from_be_bytes(len) as usize, 0);
            r.read_exact(&mut msg)?;
            store.write_all(&msg)?;
            pending += 1;
            // Another complete header already here? Then it joins this commit.
            if r.buffer().len() < 4 {
                break;
            }
        }
        store.sync_data()?;
        for _ in 0..pending {
            out.write_all(&16u32.to_be_bytes())?;
            out.write_all(&[7u8; 16])?;
        }
        out.flush()?;
    }
}

/// Which ends sync what they store.
#[derive(Debug, Clone)]
pub enum Durable {
    /// Nothing is stored.
    No,
    /// The receiver syncs every message (or burst) to this file before acking.
    Receiver(std::path::PathBuf),
    /// As `Receiver`, and the sender syncs each round trip's message to the second file
    /// before sending it (round trips only: the flood is not run).
    Both(std::path::PathBuf, std::path::PathBuf),
    /// As `Both`, but the sender syncs its copy on another thread while the message
    /// travels (§8.1 r2); a round trip ends at the later of the ack and that sync.
    Overlapped(std::path::PathBuf, std::path::PathBuf),
}

/// The sender's copy of each message, synced before (`Both`) or during (`Overlapped`) its
/// round trip.
struct SenderCopy {
    file: std::sync::Arc<std::fs::File>,
    overlapped: bool,
}

impl SenderCopy {
    fn open(path: std::path::PathBuf, overlapped: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file: std::sync::Arc::new(file),
            overlapped,
        })
    }

    fn append_and_sync(file: &std::fs::File, msg: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut &*file, msg)?;
        file.sync_data()
    }
}

/// Runs `rtt_count` sequential round trips, then `flood_count` pipelined messages, with
/// `durable` saying which ends sync.
///
/// # Errors
/// I/O errors.
pub async fn run(
    rtt_count: usize,
    flood_count: usize,
    payload: usize,
    durable: Durable,
) -> anyhow::Result<PingPong> {
    let (durable, outbox) = match durable {
        Durable::No => (None, None),
        Durable::Receiver(f) => (Some(f), None),
        Durable::Both(receiver, sender) => (Some(receiver), Some(SenderCopy::open(sender, false)?)),
        Durable::Overlapped(receiver, sender) => {
            (Some(receiver), Some(SenderCopy::open(sender, true)?))
        }
    };
    let flood_count = if outbox.is_some() { 0 } else { flood_count };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await?;
        match durable {
            None => echo_acks(s).await,
            Some(file) => {
                let s = s.into_std()?;
                s.set_nonblocking(false)?;
                tokio::task::spawn_blocking(move || durable_acks(s, file)).await?
            }
        }
    });
    let sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let (r, w) = sock.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let msg: Vec<u8> = (0..payload).map(|i| b'a' + (i % 26) as u8).collect();
    let mut ack = [0u8; 16];

    let mut rtts = Vec::with_capacity(rtt_count);
    for _ in 0..rtt_count {
        let t0 = Instant::now();
        let mut syncing = None;
        match &outbox {
            // Blocks this thread for the sync, as a sender that waits for its outbox does;
            // the receiver runs on a thread of its own.
            Some(o) if !o.overlapped => SenderCopy::append_and_sync(&o.file, &msg)?,
            Some(o) => {
                let (file, copy) = (o.file.clone(), msg.clone());
                syncing = Some(tokio::task::spawn_blocking(move || {
                    SenderCopy::append_and_sync(&file, &copy)
                }));
            }
            None => {}
        }
        w.write_u32(payload as u32).await?;
        w.write_all(&msg).await?;
        w.flush().await?;
        let _ = r.read_u32().await?;
        r.read_exact(&mut ack).await?;
        if let Some(sync) = syncing {
            sync.await.context("sender's sync")??;
        }
        rtts.push(t0.elapsed());
    }

    let t0 = Instant::now();
    let reader = tokio::spawn(async move {
        for _ in 0..flood_count {
            let _ = r.read_u32().await?;
            r.read_exact(&mut ack).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    for _ in 0..flood_count {
        w.write_u32(payload as u32).await?;
        w.write_all(&msg).await?;
    }
    w.flush().await?;
    reader.await.context("ack reader")??;
    let flood = t0.elapsed();
    w.shutdown().await?;
    drop(w);
    let _ = server.await;
    Ok(PingPong {
        rtts,
        flood_per_sec: crate::stats::per_sec(flood_count as u64, flood),
    })
}
