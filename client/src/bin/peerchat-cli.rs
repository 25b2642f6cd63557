//! `peerchat-cli`: the line-mode Peerchat client, for people at a terminal and for scripts
//! (`--json` prints every event and result as one JSON object per line).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use peerchat_client::cli::{describe, parse_line, CliRecord, LineCommand, HELP};
use peerchat_client::profile::Profile;
use peerchat_client::{
    AutoAccept, Client, ClientConfig, ClientError, Direction, Event, EventStream, TraversalConfig,
    CLI_AUTO_ACCEPT_MAX,
};
use serde::Serialize;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::broadcast;

#[derive(Parser, Debug)]
#[command(
    name = "peerchat-cli",
    version,
    about = "Peerchat line-mode client: direct encrypted chat and file transfer between friends"
)]
struct Args {
    /// The Peerchat server, HOST:PORT.
    #[arg(long, env = "PEERCHAT_SERVER", default_value = "127.0.0.1:7878")]
    server: String,
    /// Profile folder (identity key, pinned server key, friend cache, history, downloads).
    #[arg(long, env = "PEERCHAT_PROFILE")]
    profile: Option<PathBuf>,
    /// Print every event and result as one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Password for register and login (else PEERCHAT_PASSWORD, else a prompt).
    #[arg(long, env = "PEERCHAT_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Where to accept direct connections from friends.
    #[arg(long, default_value = "0.0.0.0:0")]
    peer_listen: SocketAddr,
    /// Reach friends only through the server's end-to-end-encrypted relay: never dial their
    /// addresses, ask for a reversal or punch (SPEC.md §7.6 steps 1–3). Friends may still
    /// dial this client.
    #[arg(long)]
    relay_only: bool,
    /// Where received files go (default: <profile>/downloads).
    #[arg(long)]
    download_dir: Option<PathBuf>,
    /// Accept offered files automatically up to this many bytes (default 104857600, 100 MiB;
    /// 0: accept none automatically). Larger offers wait for `/accept-file ID` or
    /// `/decline-file ID`.
    #[arg(long, default_value_t = CLI_AUTO_ACCEPT_MAX)]
    auto_accept_max: u64,
    /// Seconds send-message waits for the acknowledgement, send-file for completion
    /// (0: send-file waits as long as it takes).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// TEST ONLY (feature `test-hooks`): the peer links' §3.6 idle timers in milliseconds,
    /// "PING,CLOSE", for the peer conformance suite's timer cases.
    #[cfg(feature = "test-hooks")]
    #[arg(long, hide = true, value_name = "PING,CLOSE")]
    test_idle_ms: Option<String>,
    /// TEST ONLY (feature `test-faults`): a deliberate defect (repeatable), for the peer
    /// conformance suite's fault self-test (`peerchat_client::faults`).
    #[cfg(feature = "test-faults")]
    #[arg(long = "test-fault", hide = true, value_name = "NAME")]
    test_fault: Vec<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create an account for this profile's identity key (prints the recovery code).
    Register { userid: String, email: String },
    /// Log in with the password (USERID defaults to the profile's account).
    Login { userid: Option<String> },
    /// Whether a user exists.
    Find { userid: String },
    /// Send a friend request.
    Add { userid: String },
    /// Accept a friend request.
    Accept { userid: String },
    /// Refuse a friend request.
    Refuse { userid: String },
    /// End a friendship.
    Unfriend { userid: String },
    /// List friends and pending requests.
    Friends,
    /// Send a chat message and wait for the acknowledgement.
    SendMessage { friend: String, text: String },
    /// Send a file and wait until the friend has it.
    SendFile { friend: String, path: PathBuf },
    /// Show the local history with a friend.
    History {
        friend: String,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Accept a friend's new identity key after a key change, naming the presented
    /// fingerprint exactly as shown (releases the messages held for them).
    TrustKey { friend: String, fingerprint: String },
    /// Interactive mode: commands on stdin (/msg, /send, /accept, ... /help), events on stdout.
    Chat,
}

/// Prints events and records, as JSON lines or human text.
#[derive(Clone, Copy)]
struct Printer {
    json: bool,
}

impl Printer {
    fn event(&self, e: &Event) {
        if self.json {
            self.json_line(e);
        } else {
            println!("{}", describe(e));
        }
    }

    fn record(&self, r: &CliRecord) {
        if self.json {
            self.json_line(r);
            return;
        }
        match r {
            CliRecord::Registered {
                userid,
                recovery_code,
            } => {
                println!("registered {userid}. Recovery code (write it down, it is shown only once): {recovery_code}");
            }
            CliRecord::FindResult {
                query,
                found: true,
                userid,
            } => println!("{} exists", userid.as_deref().unwrap_or(query)),
            CliRecord::FindResult { query, .. } => println!("{query}: no such user"),
            CliRecord::FriendRequestSent {
                userid,
                now_friends: true,
            } => println!("{userid} had asked you too: you are friends now"),
            CliRecord::FriendRequestSent { userid, .. } => {
                println!("friend request sent to {userid}")
            }
            CliRecord::Ok { command, target } => println!("{command} {target}: ok"),
            CliRecord::Friends(s) => {
                for f in &s.friends {
                    let link = f.path.map(|p| format!(" ({p})")).unwrap_or_default();
                    println!(
                        "{} {}{link} {}",
                        if f.online { "online " } else { "offline" },
                        f.userid,
                        f.fingerprint
                    );
                    if let Some(p) = &f.presented_fingerprint {
                        println!(
                            "        KEY CHANGED: presents {p}; messages held until /trust-key {} {p}",
                            f.userid
                        );
                    }
                }
                for r in &s.incoming_requests {
                    println!("request from {}", r.userid);
                }
                for r in &s.outgoing_requests {
                    println!("request to {}", r.userid);
                }
            }
            CliRecord::History { messages, friend } => {
                for m in messages {
                    let who = if m.direction == "in" {
                        friend.as_str()
                    } else {
                        "me"
                    };
                    println!("[{}] <{who}> {}", m.sent_at_unix_ms, m.text);
                }
            }
            CliRecord::MessageSent {
                friend,
                delivered: true,
                ..
            } => println!("delivered to {friend}"),
            CliRecord::MessageSent { friend, .. } => {
                println!("queued for {friend}; it is delivered when you are both online")
            }
            CliRecord::FileQueued {
                friend,
                path,
                transfer_id,
            } => println!("offering {path} to {friend} (transfer {transfer_id})"),
            CliRecord::CommandFailed { message } => eprintln!("error: {message}"),
        }
    }

    fn json_line<T: Serialize>(&self, v: &T) {
        match serde_json::to_string(v) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot encode output: {e}"),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERCHAT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let printer = Printer { json: args.json };
    #[cfg(feature = "test-faults")]
    if let Err(message) = peerchat_client::faults::set(&args.test_fault) {
        printer.record(&CliRecord::CommandFailed { message });
        return ExitCode::FAILURE;
    }
    match runtime.block_on(run(args, printer)) {
        Ok(code) => code,
        Err(e) => {
            printer.record(&CliRecord::CommandFailed {
                message: e.to_string(),
            });
            ExitCode::FAILURE
        }
    }
}

fn password(args: &Args) -> Result<String, ClientError> {
    if let Some(p) = &args.password {
        return Ok(p.clone());
    }
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Invalid(
            "no password: use --password, PEERCHAT_PASSWORD or a terminal".into(),
        ));
    }
    rpassword::prompt_password("password: ").map_err(|e| ClientError::io("reading the password", e))
}

async fn run(args: Args, printer: Printer) -> Result<ExitCode, ClientError> {
    let profile_dir = match &args.profile {
        Some(p) => p.clone(),
        None => Profile::default_dir()?,
    };
    let mut config = ClientConfig::new(&profile_dir, args.server.clone());
    config.peer_listen = args.peer_listen;
    if args.relay_only {
        config.traversal = TraversalConfig {
            skip_direct: true,
            skip_reverse: true,
            skip_punch: true,
        };
    }
    config.download_dir = args.download_dir.clone();
    config.auto_accept = match args.auto_accept_max {
        0 => AutoAccept::Never,
        max => AutoAccept::UpTo(max),
    };
    // The CLI logs in explicitly (below) so that it can report a failure.
    config.auto_login = false;
    #[cfg(feature = "test-hooks")]
    if let Some(spec) = &args.test_idle_ms {
        config.peer_idle = parse_idle_ms(spec)?;
    }
    let (client, events) = Client::start(config).await?;
    // Every event is printed; commands that wait for one subscribe to the copy.
    let (tx, _) = broadcast::channel::<Event>(4096);
    let pump = tokio::spawn(print_events(events, printer, tx.clone()));
    let result = command(&args, &client, printer, &tx).await;
    client.shutdown().await;
    let _ = pump.await;
    result
}

async fn print_events(mut events: EventStream, printer: Printer, tx: broadcast::Sender<Event>) {
    while let Some(e) = events.recv().await {
        printer.event(&e);
        let _ = tx.send(e);
    }
}

/// Logs in with the key; `required` commands fail without the server, the others go on
/// offline (peer sessions work from the friend cache).
async fn key_login(client: &Client, required: bool) -> Result<(), ClientError> {
    match client.key_login(None).await {
        Ok(_) => Ok(()),
        Err(e @ (ClientError::ServerUnavailable(_) | ClientError::Pin(_))) if !required => {
            eprintln!("warning: {e}; continuing offline with the cached friend list");
            Ok(())
        }
        Err(ClientError::NotLoggedIn) => Err(ClientError::Invalid(
            "this profile has no account yet: run register and login first".into(),
        )),
        Err(e) => Err(e),
    }
}

async fn command(
    args: &Args,
    client: &Client,
    printer: Printer,
    tx: &broadcast::Sender<Event>,
) -> Result<ExitCode, ClientError> {
    match &args.command {
        Cmd::Register { userid, email } => {
            let pw = password(args)?;
            let recovery_code = client.register(userid, email, &pw).await?;
            printer.record(&CliRecord::Registered {
                userid: userid.clone(),
                recovery_code,
            });
        }
        Cmd::Login { userid } => {
            let userid = userid
                .clone()
                .or_else(|| client.profile().account())
                .ok_or_else(|| ClientError::Invalid("login needs a USERID".into()))?;
            let pw = password(args)?;
            // The snapshot is printed as the logged_in event.
            client.login(&userid, &pw).await?;
        }
        Cmd::Find { userid } => {
            key_login(client, true).await?;
            let found = client.find(userid).await?;
            printer.record(&CliRecord::FindResult {
                query: userid.clone(),
                found: found.is_some(),
                userid: found,
            });
        }
        Cmd::Add { userid } => {
            key_login(client, true).await?;
            let now_friends = client.send_friend_request(userid).await?;
            printer.record(&CliRecord::FriendRequestSent {
                userid: userid.clone(),
                now_friends,
            });
        }
        Cmd::Accept { userid } => {
            key_login(client, true).await?;
            client.accept_friend(userid).await?;
            printer.record(&CliRecord::Ok {
                command: "accept".into(),
                target: userid.clone(),
            });
        }
        Cmd::Refuse { userid } => {
            key_login(client, true).await?;
            client.refuse_friend(userid).await?;
            printer.record(&CliRecord::Ok {
                command: "refuse".into(),
                target: userid.clone(),
            });
        }
        Cmd::Unfriend { userid } => {
            key_login(client, true).await?;
            client.unfriend(userid).await?;
            printer.record(&CliRecord::Ok {
                command: "unfriend".into(),
                target: userid.clone(),
            });
        }
        Cmd::TrustKey {
            friend,
            fingerprint,
        } => {
            // Logged in first, so the decision is checked against the latest presented key.
            key_login(client, false).await?;
            client.accept_friend_key(friend, fingerprint).await?;
            printer.record(&CliRecord::Ok {
                command: "trust-key".into(),
                target: friend.clone(),
            });
        }
        Cmd::Friends => {
            key_login(client, false).await?;
            printer.record(&CliRecord::Friends(client.friends().await?));
        }
        Cmd::SendMessage { friend, text } => {
            let mut rx = tx.subscribe();
            key_login(client, false).await?;
            let id = client.send_message(friend, text).await?;
            let wait = async {
                loop {
                    match rx.recv().await {
                        Ok(Event::MessageAcked { message_id, .. }) if message_id == id => {
                            return true
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return false,
                    }
                }
            };
            let delivered = tokio::time::timeout(Duration::from_secs(args.timeout), wait)
                .await
                .unwrap_or(false);
            printer.record(&CliRecord::MessageSent {
                friend: friend.clone(),
                message_id: id,
                delivered,
            });
            if !delivered {
                return Ok(ExitCode::from(2));
            }
        }
        Cmd::SendFile { friend, path } => {
            let mut rx = tx.subscribe();
            key_login(client, false).await?;
            let id = client.send_file(friend, path).await?;
            printer.record(&CliRecord::FileQueued {
                friend: friend.clone(),
                transfer_id: id,
                path: path.display().to_string(),
            });
            let wait = async {
                loop {
                    match rx.recv().await {
                        Ok(Event::TransferComplete {
                            transfer_id,
                            direction: Direction::Outgoing,
                            ..
                        }) if transfer_id == id => return true,
                        Ok(Event::TransferCancelled { transfer_id, .. }) if transfer_id == id => {
                            return false
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return false,
                    }
                }
            };
            let done = if args.timeout == 0 {
                wait.await
            } else {
                tokio::time::timeout(Duration::from_secs(args.timeout), wait)
                    .await
                    .unwrap_or(false)
            };
            if !done {
                return Ok(ExitCode::from(2));
            }
        }
        Cmd::History { friend, limit } => {
            let messages = client.history(friend, *limit).await?;
            printer.record(&CliRecord::History {
                friend: friend.clone(),
                messages,
            });
        }
        Cmd::Chat => {
            key_login(client, false).await?;
            interactive(client, printer).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn interactive(client: &Client, printer: Printer) {
    if !printer.json {
        println!("{HELP}");
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let cmd = match parse_line(&line) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(message) => {
                printer.record(&CliRecord::CommandFailed { message });
                continue;
            }
        };
        if cmd == LineCommand::Quit {
            break;
        }
        if let Err(e) = line_command(client, printer, cmd).await {
            printer.record(&CliRecord::CommandFailed {
                message: e.to_string(),
            });
        }
    }
}

async fn line_command(
    client: &Client,
    printer: Printer,
    cmd: LineCommand,
) -> Result<(), ClientError> {
    let ok = |command: &str, target: &str| {
        printer.record(&CliRecord::Ok {
            command: command.into(),
            target: target.into(),
        })
    };
    match cmd {
        LineCommand::Msg { friend, text } => {
            let message_id = client.send_message(&friend, &text).await?;
            printer.record(&CliRecord::MessageSent {
                friend,
                message_id,
                delivered: false,
            });
        }
        LineCommand::Send { friend, path } => {
            // Hashing a big file takes a while: do not block the prompt.
            let client = client.clone();
            tokio::spawn(async move {
                match client.send_file(&friend, Path::new(&path)).await {
                    Ok(transfer_id) => printer.record(&CliRecord::FileQueued {
                        friend,
                        transfer_id,
                        path,
                    }),
                    Err(e) => printer.record(&CliRecord::CommandFailed {
                        message: e.to_string(),
                    }),
                }
            });
        }
        LineCommand::Add(u) => {
            let now_friends = client.send_friend_request(&u).await?;
            printer.record(&CliRecord::FriendRequestSent {
                userid: u,
                now_friends,
            });
        }
        LineCommand::Accept(u) => {
            client.accept_friend(&u).await?;
            ok("accept", &u);
        }
        LineCommand::Refuse(u) => {
            client.refuse_friend(&u).await?;
            ok("refuse", &u);
        }
        LineCommand::Unfriend(u) => {
            client.unfriend(&u).await?;
            ok("unfriend", &u);
        }
        LineCommand::TrustKey {
            friend,
            fingerprint,
        } => {
            client.accept_friend_key(&friend, &fingerprint).await?;
            ok("trust-key", &friend);
        }
        LineCommand::Find(u) => {
            let found = client.find(&u).await?;
            printer.record(&CliRecord::FindResult {
                query: u,
                found: found.is_some(),
                userid: found,
            });
        }
        LineCommand::Friends => printer.record(&CliRecord::Friends(client.friends().await?)),
        LineCommand::History { friend, limit } => {
            let messages = client.history(&friend, limit).await?;
            printer.record(&CliRecord::History { friend, messages });
        }
        LineCommand::Typing { friend, active } => client.set_typing(&friend, active).await?,
        LineCommand::AcceptFile(id) => {
            client.accept_file(id).await?;
            ok("accept-file", &id.to_string());
        }
        LineCommand::DeclineFile(id) => {
            client.decline_file(id).await?;
            ok("decline-file", &id.to_string());
        }
        LineCommand::Cancel(id) => {
            client.cancel_transfer(id).await?;
            ok("cancel", &id.to_string());
        }
        LineCommand::Help => {
            if !printer.json {
                println!("{HELP}");
            }
        }
        LineCommand::Quit => {}
    }
    Ok(())
}

/// `--test-idle-ms PING,CLOSE` (test-only).
#[cfg(feature = "test-hooks")]
fn parse_idle_ms(spec: &str) -> Result<peerchat_client::peer::idle::IdleTimers, ClientError> {
    let bad = || ClientError::Invalid(format!("--test-idle-ms takes PING,CLOSE in ms, not {spec}"));
    let (p, c) = spec.split_once(',').ok_or_else(bad)?;
    let p: u64 = p.trim().parse().map_err(|_| bad())?;
    let c: u64 = c.trim().parse().map_err(|_| bad())?;
    Ok(peerchat_client::peer::idle::IdleTimers {
        ping_after: Duration::from_millis(p),
        timeout: Duration::from_millis(c),
    })
}
