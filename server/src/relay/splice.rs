//! The byte pump of a relayed link (SPEC.md §7.7 "The switch" and rules 2–4): every byte one
//! end sends goes verbatim to the other end, in order, at most `RELAY_LINK_RATE` per
//! direction and `RELAY_SERVER_RATE` for the whole server, holding at most one read's worth
//! per direction. The bytes are never parsed, stored or logged (a test-only tap aside).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::limits::{ByteBucket, SharedBucket};

/// Largest single read of a pump.
const CHUNK: usize = 64 * 1024;

/// The rates and time-out of one link.
#[derive(Debug, Clone)]
pub struct SpliceParams {
    /// Bytes per second per direction.
    pub link_rate: u64,
    /// The server-wide bucket.
    pub server: SharedBucket,
    /// Close after this long with no byte either way.
    pub idle_timeout: Duration,
    /// Test-only copy of the relayed bytes.
    pub tap: Tap,
    /// Fault switch for the conformance suite's self-test: corrupt what is relayed.
    pub tamper: bool,
}

/// Why a link ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Both ends closed their sending side.
    Closed,
    /// A read or write failed (reset, broken pipe).
    Failed,
    /// No byte moved for the idle time-out.
    Idle,
    /// Stopped from outside: a session or the friendship ended, or the server shuts down.
    Stopped,
}

/// One end of the link: the socket and the raw bytes already read from it.
pub struct End {
    /// The connection.
    pub stream: TcpStream,
    /// Bytes read past the last record of the server's own Noise session: the start of the
    /// relayed stream, forwarded first.
    pub leftover: BytesMut,
}

/// When a byte last moved, as milliseconds since the link started.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Relays between `opener` and `joiner` until both close, one fails, the link idles out or
/// `stop` completes. Returns why it ended and the bytes moved each way (opener→joiner,
/// joiner→opener).
pub async fn run(
    opener: End,
    joiner: End,
    params: SpliceParams,
    stop: impl Future<Output = ()>,
) -> (Ended, u64, u64) {
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (or, ow) = opener.stream.into_split();
    let (jr, jw) = joiner.stream.into_split();
    let moved_oj = AtomicU64::new(0);
    let moved_jo = AtomicU64::new(0);
    let oj = pump(
        or,
        opener.leftover,
        jw,
        &params,
        &activity,
        &moved_oj,
        Direction::OpenerToJoiner,
    );
    let jo = pump(
        jr,
        joiner.leftover,
        ow,
        &params,
        &activity,
        &moved_jo,
        Direction::JoinerToOpener,
    );
    let idle = async {
        loop {
            let deadline = activity.last() + params.idle_timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
        }
    };
    let ended = tokio::select! {
        r = async { tokio::try_join!(oj, jo) } => match r {
            Ok(_) => Ended::Closed,
            Err(_) => Ended::Failed,
        },
        _ = idle => Ended::Idle,
        _ = stop => Ended::Stopped,
    };
    (
        ended,
        moved_oj.load(Ordering::Relaxed),
        moved_jo.load(Ordering::Relaxed),
    )
}

/// Which way a pump moves bytes (names the tap file).
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// From the opener to the joiner.
    OpenerToJoiner,
    /// From the joiner to the opener.
    JoinerToOpener,
}

async fn pump(
    mut from: OwnedReadHalf,
    leftover: BytesMut,
    mut to: OwnedWriteHalf,
    params: &SpliceParams,
    activity: &Activity,
    moved: &AtomicU64,
    dir: Direction,
) -> std::io::Result<()> {
    let mut tap = params.tap.open(dir).await;
    let mut bucket = ByteBucket::new(params.link_rate, Instant::now());
    let mut buf = vec![0u8; bucket.read_size(CHUNK)];
    let mut pending = leftover;
    loop {
        let n = if pending.is_empty() {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                to.shutdown().await?;
                return Ok(());
            }
            n
        } else {
            let n = pending.len().min(buf.len());
            buf[..n].copy_from_slice(&pending.split_to(n));
            n
        };
        activity.touch();
        if params.tamper {
            buf[0] ^= 0x01;
        }
        tap.write(&buf[..n]).await;
        to.write_all(&buf[..n]).await?;
        activity.touch();
        moved.fetch_add(n as u64, Ordering::Relaxed);
        let now = Instant::now();
        let wait = bucket.consume(n, now).max(params.server.consume(n, now));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Test-only tap (feature `test-hooks`): appends what a link relays to files, so a test can
/// prove that a chat text or a file's bytes never appear in the clear. Without the feature
/// it is an empty type and does nothing.
#[derive(Debug, Clone, Default)]
pub struct Tap {
    #[cfg(feature = "test-hooks")]
    target: Option<(std::path::PathBuf, u64)>,
}

impl Tap {
    /// No tap.
    pub fn none() -> Self {
        Self::default()
    }

    /// Link `link`'s bytes go to files in `dir`.
    #[cfg(feature = "test-hooks")]
    pub fn to_dir(dir: std::path::PathBuf, link: u64) -> Self {
        Self {
            target: Some((dir, link)),
        }
    }

    async fn open(&self, dir: Direction) -> TapFile {
        #[cfg(feature = "test-hooks")]
        if let Some((d, n)) = &self.target {
            let name = match dir {
                Direction::OpenerToJoiner => format!("{n}-opener-to-joiner.bin"),
                Direction::JoinerToOpener => format!("{n}-joiner-to-opener.bin"),
            };
            let path = d.join(name);
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await;
            return match file {
                Ok(f) => TapFile(Some(f)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "relay tap cannot open file");
                    TapFile(None)
                }
            };
        }
        let _ = dir;
        TapFile(None)
    }
}

struct TapFile(Option<tokio::fs::File>);

impl TapFile {
    async fn write(&mut self, bytes: &[u8]) {
        if let Some(f) = &mut self.0 {
            if f.write_all(bytes).await.is_err() || f.flush().await.is_err() {
                self.0 = None;
            }
        }
    }
}
