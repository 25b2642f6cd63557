//! Plain tokio TCP copy of a file over loopback to disk: the baseline of scenario 1.
//!
//! Same shape as the Peerchat transfer minus the protocol: the sender streams the file from
//! disk into a socket, the receiver streams the socket into a new file and, like the
//! Peerchat receiver, calls `sync_all` before it reports the file complete. No encryption, no
//! hashing. Both ends run in this process on the multi-threaded runtime.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

const BUF: usize = 1 << 20;

/// Copies `src` to `dst` through a loopback TCP connection; returns the time from connect to
/// the receiver's completed `sync_all`.
///
/// # Errors
/// I/O errors on either end.
pub async fn copy(src: &Path, dst: &Path) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let dst = dst.to_owned();
    let receiver = tokio::spawn(async move {
        let (sock, _) = listener.accept().await?;
        sock.set_nodelay(true)?;
        let mut file = tokio::fs::File::create(&dst).await?;
        let mut input = BufReader::with_capacity(BUF, sock);
        let n = tokio::io::copy_buf(&mut input, &mut file).await?;
        file.flush().await?;
        file.sync_all().await?;
        Ok::<u64, std::io::Error>(n)
    });
    let t0 = Instant::now();
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let mut file = BufReader::with_capacity(BUF, tokio::fs::File::open(src).await?);
    tokio::io::copy_buf(&mut file, &mut sock).await?;
    sock.shutdown().await?;
    let n = receiver.await.context("receiver task")??;
    let elapsed = t0.elapsed();
    let want = std::fs::metadata(src)?.len();
    anyhow::ensure!(n == want, "baseline copied {n} of {want} bytes");
    Ok(elapsed)
}
