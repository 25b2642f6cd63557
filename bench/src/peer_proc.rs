//! A Peerchat client core in a child process (hidden subcommand `__peer`), driven by line
//! commands on stdin, answering on stdout.
//!
//! Scenarios 1 and 2 run each end of a peer link in its own child so that each end's peak
//! RSS (VmHWM) is its own, and so that the measuring process's allocations (the baselines,
//! the test file) do not blur them. Latency-sensitive loops (chat round trips) run inside the
//! child, next to the client core they measure.
//!
//! Commands (one line each; every command answers one line):
//! `request U`, `accept-from U`, `wait-friend U`, `warm U N`, `send-file U PATH`,
//! `expect-file`, `mem`, `reset-peak`, `chat-rtt U N BYTES [SECS]` (answers every round trip,
//! in nanoseconds), `chat-flood U N BYTES [SECS]`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use peerchat_client::{AutoAccept, Client, ClientConfig, Direction, Event, EventStream, MessageId};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::child::ChildProc;

/// The password of the peer scenarios' accounts.
const PASSWORD: &str = "bench-password-0123";
/// Longest wait for any single event (a 2 GiB transfer on a slow disk included).
const EVENT_LIMIT: Duration = Duration::from_secs(600);

/// Options of the `__peer` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// Server address.
    #[arg(long)]
    pub server: String,
    /// Profile directory (created).
    #[arg(long)]
    pub profile: PathBuf,
    /// Account to register and log in as.
    #[arg(long)]
    pub userid: String,
    /// Fixed test identity number.
    #[arg(long)]
    pub key: usize,
    /// Where received files go.
    #[arg(long)]
    pub download_dir: Option<PathBuf>,
}

/// Body of `__peer`: start a client, register, log in, then obey commands until stdin ends.
///
/// # Errors
/// Start-up, registration or login failures.
pub async fn peer_main(args: PeerArgs) -> anyhow::Result<()> {
    // Silent unless PEERCHAT_LOG asks (e.g. `peerchat_client::history=debug` for the group
    // commit's batch sizes); the log goes to this peer's stderr log in the work directory.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERCHAT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init()
        .ok();
    std::fs::create_dir_all(&args.profile)?;
    std::fs::write(
        args.profile.join("identity.pem"),
        peerchat_proto::test_keys::pem(args.key),
    )?;
    let mut config = ClientConfig::new(&args.profile, args.server.clone());
    config.peer_listen = "127.0.0.1:0".parse()?;
    config.download_dir = args.download_dir.clone();
    config.auto_accept = AutoAccept::UpTo(u64::MAX);
    let (client, mut events) = Client::start(config).await?;
    let email = format!("{}@bench.example.org", args.userid);
    client.register(&args.userid, &email, PASSWORD).await?;
    client.login(&args.userid, PASSWORD).await?;
    wait_for(&mut events, |e| matches!(e, Event::LoggedIn { .. })).await?;
    println!("READY");

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match command(&client, &mut events, &words).await {
            Ok(a) => a,
            Err(e) => format!("FAILED {e:#}"),
        };
        println!("{answer}");
    }
    client.shutdown().await;
    Ok(())
}

async fn wait_for(
    events: &mut EventStream,
    mut pred: impl FnMut(&Event) -> bool,
) -> anyhow::Result<Event> {
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) if pred(&e) => return Ok(e),
            Ok(Some(Event::Error { message })) => eprintln!("client error event: {message}"),
            Ok(Some(_)) => {}
            Ok(None) => bail!("event stream ended"),
            Err(_) => bail!("timed out waiting for an event"),
        }
    }
}

fn text(bytes: usize) -> String {
    (0..bytes.max(1))
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

async fn acked(events: &mut EventStream, id: MessageId) -> anyhow::Result<()> {
    wait_for(
        events,
        |e| matches!(e, Event::MessageAcked { message_id, .. } if *message_id == id),
    )
    .await?;
    Ok(())
}

fn number(words: &[&str], i: usize) -> anyhow::Result<usize> {
    words
        .get(i)
        .context("missing argument")?
        .parse()
        .context("not a number")
}

async fn command(
    client: &Client,
    events: &mut EventStream,
    words: &[&str],
) -> anyhow::Result<String> {
    let arg = |i: usize| words.get(i).copied().context("missing argument");
    match words.first().copied().unwrap_or("") {
        "request" => {
            client.send_friend_request(arg(1)?).await?;
            Ok("OK".into())
        }
        "accept-from" => {
            let from = arg(1)?.to_owned();
            wait_for(
                events,
                |e| matches!(e, Event::FriendRequestReceived { from: f } if *f == from),
            )
            .await?;
            client.accept_friend(&from).await?;
            Ok("OK".into())
        }
        "wait-friend" => {
            let who = arg(1)?.to_owned();
            wait_for(
                events,
                |e| matches!(e, Event::FriendAdded { friend } if friend.userid == who),
            )
            .await?;
            Ok("OK".into())
        }
        "warm" => {
            // Brings the peer link up (and the history database's caches warm).
            for _ in 0..number(words, 2)? {
                let id = client.send_message(arg(1)?, "warm-up").await?;
                acked(events, id).await?;
            }
            Ok("OK".into())
        }
        "send-file" => {
            let path = PathBuf::from(arg(2)?);
            let t0 = Instant::now();
            let id = client.send_file(arg(1)?, &path).await?;
            let offered = t0.elapsed();
            println!("OFFERED {}", offered.as_secs_f64());
            let e = wait_for(events, |e| match e {
                Event::TransferComplete { transfer_id, .. }
                | Event::TransferCancelled { transfer_id, .. } => *transfer_id == id,
                _ => false,
            })
            .await?;
            match e {
                Event::TransferComplete { .. } => {
                    Ok(format!("DONE {}", t0.elapsed().as_secs_f64()))
                }
                other => bail!("transfer stopped: {other:?}"),
            }
        }
        "expect-file" => {
            let e = wait_for(events, |e| match e {
                Event::TransferComplete { direction, .. }
                | Event::TransferCancelled { direction, .. } => *direction == Direction::Incoming,
                _ => false,
            })
            .await?;
            match e {
                Event::TransferComplete { path, .. } => Ok(format!("RECEIVED {path}")),
                other => bail!("incoming transfer stopped: {other:?}"),
            }
        }
        "mem" => {
            let m = crate::procfs::memory(None)?;
            Ok(format!("MEM {} {}", m.rss, m.hwm))
        }
        "reset-peak" => {
            // Linux resets VmHWM to the current RSS when "5" is written to clear_refs.
            Ok(match std::fs::write("/proc/self/clear_refs", "5") {
                Ok(()) => "OK".into(),
                Err(e) => format!("OK unsupported: {e}"),
            })
        }
        "chat-rtt" => {
            let (friend, n, body) = (arg(1)?, number(words, 2)?, text(number(words, 3)?));
            let cap = Duration::from_secs_f64(
                words
                    .get(4)
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(f64::MAX / 4.0),
            );
            let started = Instant::now();
            let mut rtts = Vec::with_capacity(n);
            while rtts.len() < n && started.elapsed() < cap {
                let t0 = Instant::now();
                let id = client.send_message(friend, &body).await?;
                acked(events, id).await?;
                rtts.push(t0.elapsed());
            }
            // Every sample, not a summary: scenario 2 runs several blocks between its floors'
            // blocks and summarises them together.
            let nanos: Vec<u64> = rtts
                .iter()
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .collect();
            Ok(format!("RTT {}", serde_json::to_string(&nanos)?))
        }
        "chat-flood" => {
            // Sends without waiting until `n` messages or the time cap, then waits for the
            // acks of everything sent. Answers: seconds to the last ack, seconds to the last
            // send, messages sent.
            let (friend, n, body) = (
                arg(1)?.to_owned(),
                number(words, 2)?,
                text(number(words, 3)?),
            );
            let cap = Duration::from_secs_f64(
                words
                    .get(4)
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(f64::MAX / 4.0),
            );
            let sender = client.clone();
            let t0 = Instant::now();
            // Up to FLOOD_IN_FLIGHT sends are outstanding at once, as a program (or many
            // windows of one user) handing messages over faster than one disk sync each
            // would: the client may then write a burst of them with one sync (group
            // commit, issue #14). Each send still returns only once its message is durable.
            let mut sending = tokio::spawn(async move {
                use futures::stream::{FuturesOrdered, StreamExt};
                let mut sent = 0usize;
                let mut issued = 0usize;
                let mut pending = FuturesOrdered::new();
                loop {
                    while issued < n && pending.len() < FLOOD_IN_FLIGHT && t0.elapsed() < cap {
                        let (c, f, b) = (sender.clone(), friend.clone(), body.clone());
                        pending.push_back(async move { c.send_message(&f, &b).await });
                        issued += 1;
                    }
                    match pending.next().await {
                        Some(r) => {
                            r?;
                            sent += 1;
                        }
                        None => break,
                    }
                }
                Ok::<_, peerchat_client::ClientError>((sent, t0.elapsed()))
            });
            let mut acks = 0usize;
            let mut done: Option<(usize, Duration)> = None;
            loop {
                if let Some((sent, _)) = done {
                    if acks >= sent {
                        break;
                    }
                }
                tokio::select! {
                    r = &mut sending, if done.is_none() => done = Some(r??),
                    e = wait_for(events, |e| matches!(e, Event::MessageAcked { .. })) => {
                        e?;
                        acks += 1;
                    }
                }
            }
            let all_acked = t0.elapsed();
            let (sent, all_sent) = done.context("sender finished")?;
            Ok(format!(
                "FLOOD {} {} {sent}",
                all_acked.as_secs_f64(),
                all_sent.as_secs_f64()
            ))
        }
        other => bail!("unknown command {other:?}"),
    }
}

/// Sends a chat flood keeps outstanding at once (see `chat-flood`).
const FLOOD_IN_FLIGHT: usize = 1024;

/// A `__peer` child, seen from the parent.
pub struct PeerProc {
    proc: ChildProc,
    /// Its userid.
    pub userid: String,
}

impl PeerProc {
    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Starts a client child, registered and logged in (log in `<profile>.log`).
    ///
    /// # Errors
    /// The child fails to start or to log in.
    pub async fn spawn(
        server: &str,
        profile: &std::path::Path,
        userid: &str,
        key: usize,
        download_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut args = vec![
            "__peer".to_owned(),
            "--server".to_owned(),
            server.to_owned(),
            "--profile".to_owned(),
            profile.display().to_string(),
            "--userid".to_owned(),
            userid.to_owned(),
            "--key".to_owned(),
            key.to_string(),
        ];
        if let Some(d) = download_dir {
            args.extend(["--download-dir".to_owned(), d.display().to_string()]);
        }
        let log = profile.with_extension("log");
        let mut proc = ChildProc::spawn(&args, &log).await?;
        proc.expect("READY", Duration::from_secs(120))
            .await
            .with_context(|| format!("client {userid} did not start (see {})", log.display()))?;
        Ok(Self {
            proc,
            userid: userid.to_owned(),
        })
    }

    /// Sends a command and returns the answer line (an error if it starts with FAILED).
    ///
    /// # Errors
    /// The child failed the command or died.
    pub async fn call(&mut self, cmd: &str, answer_prefix: &str) -> anyhow::Result<String> {
        self.proc.send(cmd).await?;
        self.answer(answer_prefix).await
    }

    /// Reads the next answer of an earlier command.
    ///
    /// # Errors
    /// The child failed the command or died.
    pub async fn answer(&mut self, prefix: &str) -> anyhow::Result<String> {
        let line = self.proc.expect("", EVENT_LIMIT).await?;
        if let Some(rest) = line.strip_prefix("FAILED") {
            bail!("{}: {}", self.userid, rest.trim());
        }
        match line.strip_prefix(prefix) {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => bail!("{}: expected {prefix:?}, got {line:?}", self.userid),
        }
    }

    /// Sends a command without waiting for its answer.
    ///
    /// # Errors
    /// The child's stdin is closed.
    pub async fn send(&mut self, cmd: &str) -> anyhow::Result<()> {
        self.proc.send(cmd).await
    }

    /// The child's memory (rss, peak).
    ///
    /// # Errors
    /// The child died.
    pub async fn memory(&mut self) -> anyhow::Result<crate::procfs::Memory> {
        let a = self.call("mem", "MEM").await?;
        let mut it = a.split_whitespace().map(str::parse::<u64>);
        match (it.next(), it.next()) {
            (Some(Ok(rss)), Some(Ok(hwm))) => Ok(crate::procfs::Memory { rss, hwm }),
            _ => bail!("bad MEM answer {a:?}"),
        }
    }

    /// Shuts the client down.
    pub async fn stop(self) {
        self.proc.finish(Duration::from_secs(20)).await;
    }
}

/// Makes `a` and `b` friends.
///
/// # Errors
/// Any step failed.
pub async fn befriend(a: &mut PeerProc, b: &mut PeerProc) -> anyhow::Result<()> {
    a.call(&format!("request {}", b.userid), "OK").await?;
    b.call(&format!("accept-from {}", a.userid), "OK").await?;
    a.call(&format!("wait-friend {}", b.userid), "OK").await?;
    Ok(())
}
