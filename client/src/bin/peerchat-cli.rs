//! `peerchat-cli`: the line-mode Peerchat client, for people at a terminal and for scripts
//! (`--json` prints every event and result as one JSON object per line).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use peerchat_client::cli::control::{self, ControlReply, ControlRequest};
use peerchat_client::cli::{
    describe, human_time, parse_line, render, CliRecord, DeliveryStatus, Handles, LineCommand,
    TransferRef, HELP,
};
use peerchat_client::profile::Profile;
use peerchat_client::{
    AutoAccept, Client, ClientConfig, ClientError, Direction, Event, EventStream, TransferId,
    TraversalConfig, CLI_AUTO_ACCEPT_MAX,
};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

/// mimalloc, not glibc's malloc: the core hands many small buffers between threads (frames
/// from link tasks to the driver, rows to SQLite's thread); with mimalloc the two clients of
/// a chat flood spent 0.82x the CPU per message (issue #14, docs/PERFORMANCE.md, session 10).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Reset a forgotten password with the recovery code from registration (the new
    /// password from --password or PEERCHAT_PASSWORD, else typed twice; prints the new
    /// recovery code).
    ForgotPassword {
        userid: String,
        email: String,
        /// The recovery code (else PEERCHAT_RECOVERY_CODE, else a prompt).
        #[arg(long, env = "PEERCHAT_RECOVERY_CODE", hide_env_values = true)]
        recovery_code: Option<String>,
    },
    /// Change the password of the profile's account (the current password from --password
    /// or PEERCHAT_PASSWORD, else a prompt; the new one from PEERCHAT_NEW_PASSWORD, else
    /// typed twice). The recovery code stays valid.
    ChangePassword,
    /// Interactive mode: a line editor with history; /chat FRIEND then plain lines go to
    /// FRIEND; events print above the prompt (/help lists the commands). While it runs,
    /// one-shot commands on the same profile are carried out by it.
    Chat,
}

/// Where human lines go: straight to stdout, or, while the line editor runs, through its
/// printer, which draws them above the prompt and redraws what is being typed.
type EditorPrinter = Box<dyn rustyline::ExternalPrinter + Send>;

/// What the editor's printer thread is handed, in order.
enum ToEditor {
    /// A line to print.
    Line(String),
    /// Answer once every line handed over before it has been printed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// How long [`Printer::flush_editor`] waits. The editor's printer blocks only if the
/// editor was already reading the next line when a print began (its queue holds one line);
/// then the line is drawn by that `readline` and waiting longer would gain nothing.
const EDITOR_FLUSH_WAIT: Duration = Duration::from_millis(500);

/// What every printer of this process shares.
struct Shared {
    /// Lines for the editor's printer thread, while the editor runs.
    terminal: Mutex<Option<std::sync::mpsc::Sender<ToEditor>>>,
    handles: Mutex<Handles>,
}

/// Prints events and records, as JSON lines or human text. Records go to the terminal, or
/// into `capture` when the command came through the control socket.
#[derive(Clone)]
struct Printer {
    json: bool,
    shared: Arc<Shared>,
    capture: Option<Arc<Mutex<Vec<ControlReply>>>>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Printer {
            json,
            shared: Arc::new(Shared {
                terminal: Mutex::new(None),
                handles: Mutex::new(Handles::default()),
            }),
            capture: None,
        }
    }

    /// A printer whose records are kept for a control-socket client.
    fn capturing(&self, json: bool) -> Self {
        Printer {
            json,
            shared: self.shared.clone(),
            capture: Some(Arc::default()),
        }
    }

    fn captured(&self) -> Vec<ControlReply> {
        self.capture
            .as_ref()
            .and_then(|c| c.lock().ok().map(|mut v| std::mem::take(&mut *v)))
            .unwrap_or_default()
    }

    /// Lines go above the prompt while the editor runs. The editor's printer can block
    /// (its queue holds one line until the editor reads it, and the editor reads only
    /// inside `readline`), so it runs on its own thread: a caller never waits for it, and
    /// the loop that hands the editor its next prompt is never stuck behind a print.
    fn set_editor(&self, p: Option<EditorPrinter>) {
        let sender = p.map(|mut p| {
            let (tx, rx) = std::sync::mpsc::channel::<ToEditor>();
            std::thread::spawn(move || {
                for item in rx {
                    match item {
                        ToEditor::Line(line) => {
                            if p.print(line.clone()).is_err() {
                                print!("{line}");
                            }
                        }
                        ToEditor::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
            tx
        });
        if let Ok(mut t) = self.shared.terminal.lock() {
            *t = sender;
        }
    }

    /// Waits (at most [`EDITOR_FLUSH_WAIT`]) until the lines handed to the editor's
    /// printer so far are printed. Called between a typed line and the next prompt: the
    /// editor is not reading then, so its printer writes straight to the terminal. Why:
    /// without the wait, the next `readline` could start first; it reads typed-ahead keys
    /// before queued prints, so after `text⏎/quit⏎` typed in one burst the line's own
    /// result ("queued until …") was never drawn and the session ended without it.
    async fn flush_editor(&self) {
        let (done, printed) = tokio::sync::oneshot::channel();
        let handed = self
            .shared
            .terminal
            .lock()
            .ok()
            .and_then(|t| t.as_ref().map(|tx| tx.send(ToEditor::Flush(done)).is_ok()))
            .unwrap_or(false);
        if handed {
            let _ = tokio::time::timeout(EDITOR_FLUSH_WAIT, printed).await;
        }
    }

    fn terminal(&self, error: bool, line: String) {
        if let Ok(t) = self.shared.terminal.lock() {
            if let Some(tx) = t.as_ref() {
                if tx.send(ToEditor::Line(format!("{line}\n"))).is_ok() {
                    return;
                }
            }
        }
        if error {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn emit(&self, error: bool, line: String) {
        match &self.capture {
            Some(c) => {
                if let Ok(mut v) = c.lock() {
                    v.push(if error {
                        ControlReply::Err(line)
                    } else {
                        ControlReply::Out(line)
                    });
                }
            }
            None => self.terminal(error, line),
        }
    }

    fn event(&self, e: &Event) {
        // `add` prints its own `friend_request_sent` record (with `now_friends`); the event
        // of the same name would only repeat it.
        if matches!(e, Event::FriendRequestSent { .. }) {
            return;
        }
        if self.json {
            if let Some(l) = json_line(e) {
                self.terminal(false, l);
            }
        } else if let Ok(mut h) = self.shared.handles.lock() {
            let line = describe(e, &mut h, &stamp);
            drop(h);
            self.terminal(false, line);
        }
    }

    fn record(&self, r: &CliRecord) {
        if self.json {
            if let Some(l) = json_line(r) {
                self.emit(false, l);
            }
            return;
        }
        let lines = match self.shared.handles.lock() {
            Ok(mut h) => render(r, &mut h, &stamp),
            Err(_) => return,
        };
        for (error, line) in lines {
            self.emit(error, line);
        }
    }

    fn fail(&self, message: String) {
        self.record(&CliRecord::CommandFailed { message });
    }

    fn resolve(&self, t: TransferRef) -> Result<TransferId, ClientError> {
        self.shared
            .handles
            .lock()
            .map_err(|_| ClientError::Closed)?
            .resolve(t)
            .map_err(ClientError::Invalid)
    }
}

/// Local time for people; `--json` keeps the Unix milliseconds.
fn stamp(unix_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    human_time(unix_ms, now, &chrono::Local)
}

fn json_line<T: Serialize>(v: &T) -> Option<String> {
    match serde_json::to_string(v) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("error: cannot encode output: {e}");
            None
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
    let runtime = match peerchat_client::runtime::build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let printer = Printer::new(args.json);
    #[cfg(feature = "test-faults")]
    if let Err(message) = peerchat_client::faults::set(&args.test_fault) {
        printer.fail(message);
        return ExitCode::FAILURE;
    }
    match runtime.block_on(run(args, printer.clone())) {
        Ok(code) => code,
        Err(e) => {
            printer.fail(e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// Reads a secret: the value given, else a prompt on the terminal.
fn secret(given: Option<&String>, prompt: &str, what: &str) -> Result<String, ClientError> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Invalid(format!(
            "no {what}: give it as an option or in the environment, or run on a terminal"
        )));
    }
    rpassword::prompt_password(prompt).map_err(|e| ClientError::io("reading the password", e))
}

/// A new password, typed twice when prompted.
fn new_secret(given: Option<&String>, prompt: &str) -> Result<String, ClientError> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let first = secret(None, prompt, "new password")?;
    let again = secret(None, "again: ", "new password")?;
    if first != again {
        return Err(ClientError::Invalid("the two passwords differ".into()));
    }
    Ok(first)
}

/// Secrets a command needs, read before the client starts, so no event line is printed
/// into a password prompt.
#[derive(Default)]
struct Secrets {
    password: Option<String>,
    new_password: Option<String>,
    recovery_code: Option<String>,
}

fn secrets(args: &Args) -> Result<Secrets, ClientError> {
    let mut s = Secrets::default();
    match &args.command {
        Cmd::Register { .. } | Cmd::Login { .. } => {
            s.password = Some(secret(args.password.as_ref(), "password: ", "password")?);
        }
        Cmd::ForgotPassword {
            recovery_code: code,
            ..
        } => {
            s.recovery_code = Some(secret(code.as_ref(), "recovery code: ", "recovery code")?);
            s.new_password = Some(new_secret(args.password.as_ref(), "new password: ")?);
        }
        Cmd::ChangePassword => {
            s.password = Some(secret(
                args.password.as_ref(),
                "current password: ",
                "current password",
            )?);
            let given = std::env::var("PEERCHAT_NEW_PASSWORD").ok();
            s.new_password = Some(new_secret(given.as_ref(), "new password: ")?);
        }
        _ => {}
    }
    Ok(s)
}

/// A one-shot command in the interactive syntax, for a running session; None for the
/// commands only a fresh client can do.
fn as_line(cmd: &Cmd) -> Result<Option<String>, ClientError> {
    Ok(Some(match cmd {
        Cmd::Find { userid } => format!("/find {userid}"),
        Cmd::Add { userid } => format!("/add {userid}"),
        Cmd::Accept { userid } => format!("/accept {userid}"),
        Cmd::Refuse { userid } => format!("/refuse {userid}"),
        Cmd::Unfriend { userid } => format!("/unfriend {userid}"),
        Cmd::Friends => "/friends".into(),
        Cmd::SendMessage { friend, text } => format!("/msg {friend} {text}"),
        Cmd::SendFile { friend, path } => {
            // The session runs in another folder.
            let path = std::path::absolute(path)
                .map_err(|e| ClientError::io("resolving the file's path", e))?;
            format!("/send {friend} {}", path.display())
        }
        Cmd::History { friend, limit } => format!("/history {friend} {limit}"),
        Cmd::TrustKey {
            friend,
            fingerprint,
        } => format!("/trust-key {friend} {fingerprint}"),
        Cmd::Register { .. }
        | Cmd::Login { .. }
        | Cmd::ForgotPassword { .. }
        | Cmd::ChangePassword
        | Cmd::Chat => return Ok(None),
    }))
}

async fn run(args: Args, printer: Printer) -> Result<ExitCode, ClientError> {
    let profile_dir = match &args.profile {
        Some(p) => p.clone(),
        None => Profile::default_dir()?,
    };
    // A running `chat` session owns the account and the links: talk to it.
    let socket = control::socket_path(&profile_dir);
    if let Ok(stream) = UnixStream::connect(&socket).await {
        return match as_line(&args.command)? {
            Some(line) => forward(stream, args.json, line).await,
            None => Err(ClientError::Invalid(format!(
                "a `peerchat-cli chat` session is running for this profile ({}); leave it \
                 (/quit) first, or run this command there",
                profile_dir.display()
            ))),
        };
    }
    let secrets = secrets(&args)?;
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
    let pump = tokio::spawn(print_events(events, printer.clone(), tx.clone()));
    let result = command(&args, &secrets, &client, &printer, &tx, &profile_dir).await;
    client.shutdown().await;
    let _ = pump.await;
    result
}

/// Sends a one-shot command to the running session and prints its answer.
async fn forward(stream: UnixStream, json: bool, line: String) -> Result<ExitCode, ClientError> {
    let io = |e| ClientError::io("talking to the running chat session", e);
    let (r, mut w) = stream.into_split();
    let mut req = serde_json::to_string(&ControlRequest { json, line })
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    req.push('\n');
    w.write_all(req.as_bytes()).await.map_err(io)?;
    let mut lines = tokio::io::BufReader::new(r).lines();
    while let Some(l) = lines.next_line().await.map_err(io)? {
        match serde_json::from_str::<ControlReply>(&l) {
            Ok(ControlReply::Out(o)) => println!("{o}"),
            Ok(ControlReply::Err(e)) => eprintln!("{e}"),
            Ok(ControlReply::Exit(code)) => return Ok(ExitCode::from(code)),
            Err(_) => {}
        }
    }
    Err(ClientError::Invalid(
        "the running chat session ended before answering".into(),
    ))
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
    secrets: &Secrets,
    client: &Client,
    printer: &Printer,
    tx: &broadcast::Sender<Event>,
    profile_dir: &Path,
) -> Result<ExitCode, ClientError> {
    let pw = || {
        secrets
            .password
            .clone()
            .ok_or_else(|| ClientError::Invalid("no password".into()))
    };
    match &args.command {
        Cmd::Register { userid, email } => {
            let recovery_code = client.register(userid, email, &pw()?).await?;
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
            // The snapshot is printed as the logged_in event.
            client.login(&userid, &pw()?).await?;
        }
        Cmd::ForgotPassword {
            userid,
            email,
            recovery_code: _,
        } => {
            let code = secrets.recovery_code.clone().unwrap_or_default();
            let new = secrets.new_password.clone().unwrap_or_default();
            let recovery_code = client.forgot_password(userid, email, &code, &new).await?;
            printer.record(&CliRecord::PasswordReset {
                userid: userid.clone(),
                recovery_code,
            });
        }
        Cmd::ChangePassword => {
            key_login(client, true).await?;
            let new = secrets.new_password.clone().unwrap_or_default();
            client.change_password(&pw()?, &new).await?;
            printer.record(&CliRecord::PasswordChanged {
                userid: client.profile().account().unwrap_or_default(),
            });
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
                status: if delivered {
                    DeliveryStatus::Delivered
                } else {
                    DeliveryStatus::Queued
                },
            });
            if !delivered {
                if !printer.json {
                    eprintln!(
                        "(it is stored and goes out the next time peerchat-cli runs while \
                         {friend} is reachable)"
                    );
                }
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
            let control = ControlSocket::open(profile_dir).await?;
            key_login(client, false).await?;
            let server = control.map(|c| {
                let task = tokio::spawn(serve_control(c.listener, client.clone(), printer.clone()));
                (task, c.guard)
            });
            interactive(client, printer, profile_dir).await;
            if let Some((task, guard)) = server {
                task.abort();
                drop(guard);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the socket file when the session ends.
struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct ControlSocket {
    listener: UnixListener,
    guard: SocketGuard,
}

impl ControlSocket {
    /// Listens on the profile's control socket, mode 0600; refuses a second session.
    /// None (with a warning) where no socket can be made, e.g. a path too long for one:
    /// chat still works, one-shot commands then start their own client.
    async fn open(profile: &Path) -> Result<Option<Self>, ClientError> {
        let path = control::socket_path(profile);
        if path.exists() {
            if UnixStream::connect(&path).await.is_ok() {
                return Err(ClientError::Invalid(format!(
                    "a `peerchat-cli chat` session is already running for this profile ({})",
                    profile.display()
                )));
            }
            // Left by a session that died.
            let _ = std::fs::remove_file(&path);
        }
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "warning: no control socket at {} ({e}): one-shot commands on this \
                     profile will start their own client while this session runs",
                    path.display()
                );
                return Ok(None);
            }
        };
        let guard = SocketGuard(path.clone());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| ClientError::io("restricting the control socket", e))?;
        Ok(Some(ControlSocket { listener, guard }))
    }
}

/// Answers one-shot commands from other peerchat-cli processes (see `cli::control`).
async fn serve_control(listener: UnixListener, client: Client, printer: Printer) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let client = client.clone();
        let printer = printer.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            let Ok(Some(req)) = lines.next_line().await else {
                return;
            };
            let Ok(req) = serde_json::from_str::<ControlRequest>(&req) else {
                return;
            };
            let out = printer.capturing(req.json);
            let ok = match parse_line(&req.line) {
                Ok(Some(
                    LineCommand::Chat(_)
                    | LineCommand::Say(_)
                    | LineCommand::Quit
                    | LineCommand::Help,
                ))
                | Ok(None) => {
                    out.fail("not a one-shot command".into());
                    false
                }
                Ok(Some(cmd)) => match line_command(&client, &out, cmd).await {
                    Ok(()) => true,
                    Err(e) => {
                        out.fail(e.to_string());
                        false
                    }
                },
                Err(message) => {
                    out.fail(message);
                    false
                }
            };
            let mut replies = out.captured();
            replies.push(ControlReply::Exit(if ok { 0 } else { 1 }));
            for r in replies {
                if let Ok(mut l) = serde_json::to_string(&r) {
                    l.push('\n');
                    if w.write_all(l.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// The interactive session's state: where plain lines go.
#[derive(Default)]
struct ChatState {
    target: Option<String>,
}

impl ChatState {
    fn prompt(&self) -> String {
        match &self.target {
            Some(t) => format!("{t}> "),
            None => "> ".into(),
        }
    }
}

/// A line the editor thread read, with where to send the next prompt (None: stop).
enum Input {
    Line(String, std::sync::mpsc::Sender<Option<String>>),
    End,
}

async fn interactive(client: &Client, printer: &Printer, profile_dir: &Path) {
    if !printer.json {
        printer.terminal(false, HELP.into());
    }
    let mut state = ChatState::default();
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !printer.json && tty {
        if let Some((mut rx, editor)) = start_editor(printer, profile_dir) {
            while let Some(input) = rx.recv().await {
                match input {
                    Input::Line(line, next) => {
                        let go = handle_line(client, printer, &mut state, &line).await;
                        printer.flush_editor().await;
                        let _ = next.send(go.then(|| state.prompt()));
                        if !go {
                            break;
                        }
                    }
                    Input::End => break,
                }
            }
            printer.set_editor(None);
            let _ = tokio::task::spawn_blocking(move || editor.join()).await;
            return;
        }
    }
    // Scripts and pipes: plain lines, no editor.
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !handle_line(client, printer, &mut state, &line).await {
            break;
        }
    }
}

/// Runs the line editor on its own thread (it blocks on the terminal); events meanwhile
/// print above the prompt through its printer. None if the terminal cannot do that.
fn start_editor(
    printer: &Printer,
    profile_dir: &Path,
) -> Option<(
    tokio::sync::mpsc::Receiver<Input>,
    std::thread::JoinHandle<()>,
)> {
    use rustyline::error::ReadlineError;
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(1000)
        .ok()?
        .build();
    let mut rl = rustyline::DefaultEditor::with_config(config).ok()?;
    let history = profile_dir.join("cli_history");
    let _ = rl.load_history(&history);
    let ext = rl.create_external_printer().ok()?;
    printer.set_editor(Some(Box::new(ext)));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let thread = std::thread::spawn(move || {
        let mut prompt = "> ".to_owned();
        loop {
            match rl.readline(&prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = rl.add_history_entry(line.as_str());
                    }
                    let (next_tx, next_rx) = std::sync::mpsc::channel();
                    if tx.blocking_send(Input::Line(line, next_tx)).is_err() {
                        break;
                    }
                    match next_rx.recv() {
                        Ok(Some(p)) => prompt = p,
                        _ => break,
                    }
                }
                // Ctrl-C clears the line, as in a shell.
                Err(ReadlineError::Interrupted) => {}
                Err(_) => {
                    let _ = tx.blocking_send(Input::End);
                    break;
                }
            }
        }
        let _ = rl.save_history(&history);
        #[cfg(unix)]
        let _ = std::fs::set_permissions(&history, std::fs::Permissions::from_mode(0o600));
    });
    Some((rx, thread))
}

/// Handles one typed line; false when the session should end.
async fn handle_line(
    client: &Client,
    printer: &Printer,
    state: &mut ChatState,
    line: &str,
) -> bool {
    let cmd = match parse_line(line) {
        Ok(Some(c)) => c,
        Ok(None) => return true,
        Err(message) => {
            printer.fail(message);
            return true;
        }
    };
    let cmd = match cmd {
        LineCommand::Quit => return false,
        LineCommand::Help => {
            if !printer.json {
                printer.terminal(false, HELP.into());
            }
            return true;
        }
        LineCommand::Chat(friend) => {
            if let Some(f) = &friend {
                let known = client
                    .friends()
                    .await
                    .map(|s| s.friends.iter().any(|v| v.userid.eq_ignore_ascii_case(f)))
                    .unwrap_or(false);
                if !known {
                    printer.fail(format!("{f} is not your friend (/add {f} first)"));
                    return true;
                }
            }
            state.target = friend.clone();
            printer.record(&CliRecord::ChatTarget { friend });
            return true;
        }
        LineCommand::Say(text) => match &state.target {
            Some(friend) => LineCommand::Msg {
                friend: friend.clone(),
                text,
            },
            None => {
                printer.fail(
                    "no chat open: /chat FRIEND first, or /msg FRIEND TEXT (/help lists commands)"
                        .into(),
                );
                return true;
            }
        },
        other => other,
    };
    if let Err(e) = line_command(client, printer, cmd).await {
        printer.fail(e.to_string());
    }
    true
}

/// Where a just-queued message stands: honest words instead of "queued" every time.
async fn delivery_status(client: &Client, friend: &str) -> DeliveryStatus {
    if client.is_connected(friend).await.unwrap_or(false) {
        return DeliveryStatus::Sent;
    }
    let online = client
        .friends()
        .await
        .map(|s| {
            s.friends
                .iter()
                .any(|f| f.online && f.userid.eq_ignore_ascii_case(friend))
        })
        .unwrap_or(false);
    if online {
        DeliveryStatus::Connecting
    } else {
        DeliveryStatus::Queued
    }
}

async fn line_command(
    client: &Client,
    printer: &Printer,
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
            let status = delivery_status(client, &friend).await;
            printer.record(&CliRecord::MessageSent {
                friend,
                message_id,
                delivered: false,
                status,
            });
        }
        LineCommand::Send { friend, path } => {
            // Hashing a big file takes a while: do not block the prompt.
            let client = client.clone();
            let printer = printer.clone();
            tokio::spawn(async move {
                match client.send_file(&friend, Path::new(&path)).await {
                    Ok(transfer_id) => printer.record(&CliRecord::FileQueued {
                        friend,
                        transfer_id,
                        path,
                    }),
                    Err(e) => printer.fail(e.to_string()),
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
        LineCommand::AcceptFile(t) => {
            let id = printer.resolve(t)?;
            client.accept_file(id).await?;
            ok("accept-file", &id.to_string());
        }
        LineCommand::DeclineFile(t) => {
            let id = printer.resolve(t)?;
            client.decline_file(id).await?;
            ok("decline-file", &id.to_string());
        }
        LineCommand::Cancel(t) => {
            let id = printer.resolve(t)?;
            client.cancel_transfer(id).await?;
            ok("cancel", &id.to_string());
        }
        // Handled by the interactive loop.
        LineCommand::Chat(_) | LineCommand::Say(_) | LineCommand::Help | LineCommand::Quit => {}
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
