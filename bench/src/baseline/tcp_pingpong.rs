//! Plain TCP ping-pong over loopback: the baseline of scenario 2.
//!
//! Each "message" is a 4-byte length plus `payload` bytes; the other end answers each with
//! a 20-byte "ack" (length plus a 16-byte id, the size of a MessageAck's id). No encryption,
//! no storage. Both ends run in this process.

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

/// Runs `rtt_count` sequential round trips, then `flood_count` pipelined messages.
///
/// # Errors
/// I/O errors.
pub async fn run(rtt_count: usize, flood_count: usize, payload: usize) -> anyhow::Result<PingPong> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await?;
        echo_acks(s).await
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
        w.write_u32(payload as u32).await?;
        w.write_all(&msg).await?;
        w.flush().await?;
        let _ = r.read_u32().await?;
        r.read_exact(&mut ack).await?;
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
