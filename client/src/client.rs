//! The public handle of the client core: what a user interface (the CLI, the GUI) calls.
//!
//! [`Client::start`] opens the profile, starts the server link, the peer listener and the
//! core task, and returns a [`Client`] (cheap to clone, `Send`) plus the stream of
//! [`Event`]s. Every method is async and returns when the action is done or queued.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use peerchat_proto::limits::MAX_FILE_NAME;
use peerchat_proto::message::{Endpoint, LoginSnapshot, Request, ResponseBody, Secret};
use peerchat_proto::LocalIdentity;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::driver::{Command, Core, CoreInputs, CoreSettings, FriendsSnapshot};
use crate::error::ClientError;
use crate::events::Event;
use crate::friends::FriendBook;
use crate::history::{History, HistoryEntry};
use crate::ids::{MessageId, TransferId};
use crate::peer::session::SessionContext;
use crate::peer::traversal::TraversalConfig;
use crate::profile::Profile;
use crate::server_session::{self, ServerHandle, ServerSettings, ServerTarget};
/// Moved to [`crate::transfer`] (the client machine needs it, and must not depend on this
/// module); kept here under its old path.
pub use crate::transfer::AutoAccept;

/// Peer events a slow core may have queued before the connections wait. As many as one
/// driver turn gathers ([`crate::driver::MAX_GATHERED`]): the frames that arrive while a
/// batch syncs form the next batch, so this bounds the group commit's batch size. The bytes
/// they hold are bounded per link by its receive budget (SPEC.md §7.9).
const PEER_EVENT_QUEUE: usize = crate::driver::MAX_GATHERED;

/// How to start a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The profile folder (identity key, pins, friend cache, history, downloads).
    pub profile_dir: PathBuf,
    /// The server, `HOST:PORT`, or several nodes of one cluster, `HOST:PORT,HOST:PORT`,
    /// tried in order at every (re)connect.
    pub server: String,
    /// Where to accept peer connections (`0.0.0.0:0`: any interface, a free port).
    pub peer_listen: SocketAddr,
    /// Where received files go (default: `<profile>/downloads`).
    pub download_dir: Option<PathBuf>,
    /// Which offered files are accepted without asking (default: none; SPEC.md §8.3 rule 3).
    pub auto_accept: AutoAccept,
    /// On start, log in with the identity key as the profile's account, if it has one.
    pub auto_login: bool,
    /// First reconnect delay after the server went away.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Steps of the connection order (SPEC.md §7.6) to leave out; tests force the relay
    /// on loopback with it.
    pub traversal: TraversalConfig,
    /// `OFFER_DATA_TIMEOUT`, shortened by tests (SPEC.md §10 allows it); keep the default.
    #[doc(hidden)]
    pub offer_data_timeout: Duration,
    /// The §3.6 idle timers of peer links; tests shorten them (SPEC.md's by default).
    #[doc(hidden)]
    pub peer_idle: crate::peer::idle::IdleTimers,
}

/// The CLI's default for automatic accepting: files up to 100 MiB; larger ones wait for
/// `/accept-file`.
pub const CLI_AUTO_ACCEPT_MAX: u64 = 100 * 1024 * 1024;

impl ClientConfig {
    /// Defaults for `profile_dir` and `server`.
    pub fn new(profile_dir: impl Into<PathBuf>, server: impl Into<String>) -> Self {
        Self {
            profile_dir: profile_dir.into(),
            server: server.into(),
            peer_listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            download_dir: None,
            auto_accept: AutoAccept::Never,
            auto_login: true,
            reconnect_min: peerchat_proto::limits::RECONNECT_BACKOFF_MIN,
            reconnect_max: peerchat_proto::limits::RECONNECT_BACKOFF_MAX,
            traversal: TraversalConfig::default(),
            offer_data_timeout: peerchat_proto::limits::OFFER_DATA_TIMEOUT,
            peer_idle: crate::peer::idle::IdleTimers::default(),
        }
    }
}

/// The stream of events of one client.
pub type EventStream = mpsc::UnboundedReceiver<Event>;

/// A running client. Clone it freely; [`Client::shutdown`] stops it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    server: ServerHandle,
    profile: Profile,
    me: Arc<RwLock<Option<String>>>,
    peer_addr: SocketAddr,
    fingerprint: String,
    cancel: CancellationToken,
    core_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Client({}, peer {})",
            self.inner.profile.dir().display(),
            self.inner.peer_addr
        )
    }
}

impl Client {
    /// Opens the profile and starts everything.
    ///
    /// # Errors
    /// Profile, identity, history or listener errors.
    pub async fn start(config: ClientConfig) -> Result<(Client, EventStream), ClientError> {
        let profile = Profile::open(&config.profile_dir, config.download_dir.as_deref())?;
        let id_profile = profile.clone();
        let (keypair, _created) = tokio::task::spawn_blocking(move || id_profile.load_identity())
            .await
            .map_err(|e| ClientError::Identity(e.to_string()))??;
        let local =
            LocalIdentity::new(keypair).map_err(|e| ClientError::Identity(e.to_string()))?;
        let fingerprint = local.public_key().fingerprint().to_string();
        let history = History::open(&profile.history_path()).await?;
        let book = Arc::new(RwLock::new(FriendBook::load(&profile.friends_path())));
        let account = profile.account();
        // Our userid is known from the profile, so the listener can accept friends even
        // before (or without) a login, for example while the server is down.
        let me = Arc::new(RwLock::new(account.clone()));

        // Port reuse lets the server connection and punches leave from this port (SPEC.md §7.5).
        let listener =
            crate::net::bind_listener(config.peer_listen).map_err(|e| ClientError::Listen {
                addr: config.peer_listen.to_string(),
                source: e,
            })?;
        let peer_addr = listener.local_addr().map_err(|e| ClientError::Listen {
            addr: config.peer_listen.to_string(),
            source: e,
        })?;
        let endpoint = Endpoint {
            host: (!peer_addr.ip().is_unspecified()).then(|| peer_addr.ip()),
            port: peer_addr.port(),
        };

        let cancel = CancellationToken::new();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (peer_tx, peer_rx) = mpsc::channel(PEER_EVENT_QUEUE);
        let (server_tx, server_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();

        let session_ctx = SessionContext {
            local: local.clone(),
            book: book.clone(),
            me: me.clone(),
            events: peer_tx,
            cancel: cancel.clone(),
            next_conn: Arc::new(AtomicU64::new(1)),
            listen_addr: Some(peer_addr),
            server: Arc::new(ServerTarget {
                server: config.server.clone(),
                known_servers: profile.known_servers_path(),
            }),
            idle: config.peer_idle,
            links: TaskTracker::new(),
            recv_budgets: Default::default(),
        };
        let server = server_session::spawn(
            ServerSettings {
                server: config.server.clone(),
                known_servers: profile.known_servers_path(),
                peer_endpoint: Some(endpoint),
                listen_addr: Some(peer_addr),
                auto_login: if config.auto_login { account } else { None },
                reconnect_min: config.reconnect_min,
                reconnect_max: config.reconnect_max,
            },
            local,
            server_tx,
            cancel.clone(),
        );
        let core = Core::new(CoreSettings {
            profile: profile.clone(),
            history,
            book,
            me: me.clone(),
            events: events_tx,
            session_ctx: session_ctx.clone(),
            auto_accept: config.auto_accept,
            offer_data_timeout: config.offer_data_timeout,
            server: server.clone(),
            traversal: config.traversal,
        })
        .await?;
        tokio::spawn(crate::peer::listener::run(listener, session_ctx));
        let core_task = tokio::spawn(core.run(
            CoreInputs {
                commands: cmd_rx,
                server: server_rx,
                peers: peer_rx,
            },
            cancel.clone(),
        ));
        let inner = Inner {
            commands: cmd_tx,
            server,
            profile,
            me,
            peer_addr,
            fingerprint,
            cancel,
            core_task: Mutex::new(Some(core_task)),
        };
        Ok((
            Client {
                inner: Arc::new(inner),
            },
            events_rx,
        ))
    }

    /// The address the peer listener is bound to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr
    }

    /// Changes which steps of the connection order (SPEC.md §7.6) new attempts use.
    ///
    /// # Errors
    /// [`ClientError::Closed`] after shutdown.
    pub fn set_traversal(&self, config: TraversalConfig) -> Result<(), ClientError> {
        self.inner
            .commands
            .send(Command::SetTraversal { config })
            .map_err(|_| ClientError::Closed)
    }

    /// Our identity key's fingerprint (`SHA256:...`).
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// The profile in use.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// Our userid, once registered or logged in (from the profile before that).
    pub fn userid(&self) -> Option<String> {
        self.inner.me.read().ok().and_then(|m| m.clone())
    }

    async fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Command,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(make(tx))
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    // ----- account -----------------------------------------------------------------------

    /// Creates an account whose identity is this profile's key. Returns the recovery code
    /// (show it once). Remembers the userid in the profile; does not log in.
    ///
    /// # Errors
    /// [`ClientError::Server`] (USERID_TAKEN, WEAK_PASSWORD...), [`ClientError::ServerUnavailable`].
    pub async fn register(
        &self,
        userid: &str,
        email: &str,
        password: &str,
    ) -> Result<String, ClientError> {
        let req = Request::Register {
            userid: userid.into(),
            email: email.into(),
            password: Secret(password.into()),
        };
        match self.inner.server.request(req).await? {
            ResponseBody::Register { recovery_code } => {
                self.inner.profile.set_account(userid)?;
                Ok(recovery_code)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Logs in with a password (replacing the account's key by this profile's if it
    /// differs: a new device). After this the client logs in again by itself (KeyLogin)
    /// whenever it reconnects.
    ///
    /// # Errors
    /// [`ClientError::Server`] (BAD_CREDENTIALS, RATE_LIMITED...), [`ClientError::ServerUnavailable`].
    pub async fn login(&self, userid: &str, password: &str) -> Result<LoginSnapshot, ClientError> {
        let req = Request::Login {
            userid: userid.into(),
            password: Secret(password.into()),
            endpoint: None,
            announcement: Default::default(),
        };
        match self.inner.server.request(req).await? {
            ResponseBody::Login(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Logs in with the identity key only, as `userid` or the profile's account.
    ///
    /// # Errors
    /// As [`Client::login`]; [`ClientError::NotLoggedIn`] if no account is known.
    pub async fn key_login(&self, userid: Option<&str>) -> Result<LoginSnapshot, ClientError> {
        let userid = userid
            .map(str::to_owned)
            .or_else(|| self.inner.profile.account())
            .ok_or(ClientError::NotLoggedIn)?;
        match self
            .inner
            .server
            .request(Request::KeyLogin {
                userid,
                endpoint: None,
                announcement: Default::default(),
            })
            .await?
        {
            ResponseBody::Login(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Resets a forgotten password with the recovery code. Returns the new recovery code.
    ///
    /// # Errors
    /// [`ClientError::Server`] (RESET_REFUSED, WEAK_PASSWORD...).
    pub async fn forgot_password(
        &self,
        userid: &str,
        email: &str,
        recovery_code: &str,
        new_password: &str,
    ) -> Result<String, ClientError> {
        let req = Request::ForgotPassword {
            userid: userid.into(),
            email: email.into(),
            recovery_code: Secret(recovery_code.into()),
            new_password: Secret(new_password.into()),
        };
        match self.inner.server.request(req).await? {
            ResponseBody::ForgotPassword { recovery_code } => Ok(recovery_code),
            other => Err(unexpected(&other)),
        }
    }

    /// Changes the logged-in account's password (SPEC.md §5.7). The session, the identity key
    /// and the recovery code stay as they are; only `Login` from now on needs `new_password`.
    ///
    /// # Errors
    /// [`ClientError::Server`] with BAD_CREDENTIALS (wrong current password), WEAK_PASSWORD,
    /// RATE_LIMITED (too many wrong passwords, §5.1.7) or NOT_LOGGED_IN.
    pub async fn change_password(
        &self,
        old_password: &str,
        new_password: &str,
    ) -> Result<(), ClientError> {
        let req = Request::ChangePassword {
            old_password: Secret(old_password.into()),
            new_password: Secret(new_password.into()),
        };
        match self.inner.server.request(req).await? {
            ResponseBody::ChangePassword => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Logs out and makes this client unreachable until the next login: every peer link
    /// (direct or relayed) closes and new ones are refused (SPEC.md §5.6). This happens
    /// first and locally, so it holds even when the server is unreachable.
    ///
    /// # Errors
    /// Server errors (the client is offline for friends all the same).
    pub async fn logout(&self) -> Result<(), ClientError> {
        let (reply, done) = oneshot::channel();
        self.inner
            .commands
            .send(Command::GoOffline { reply })
            .map_err(|_| ClientError::Closed)?;
        done.await.map_err(|_| ClientError::Closed)?;
        self.inner.server.request(Request::Logout).await.map(|_| ())
    }

    // ----- connection and settings -------------------------------------------------------

    /// "Retry now": every back-off wait ends at once — friends with messages or files
    /// waiting are dialled and the server is reconnected now (a connected link is left as
    /// it is). What happens shows up as events (`ServerStatus`, `PeerConnected`).
    ///
    /// # Errors
    /// [`ClientError::Closed`] after shutdown.
    pub fn retry_now(&self) -> Result<(), ClientError> {
        self.inner
            .commands
            .send(Command::RetryNow)
            .map_err(|_| ClientError::Closed)
    }

    /// Changes where received files go and which offers are accepted without asking; both
    /// take effect for the next offer, without a restart.
    ///
    /// # Errors
    /// [`ClientError::Profile`] when the folder cannot be created (the old settings stay).
    pub async fn update_settings(
        &self,
        download_dir: &Path,
        auto_accept: AutoAccept,
    ) -> Result<(), ClientError> {
        self.command(|reply| Command::UpdateSettings {
            download_dir: download_dir.to_owned(),
            auto_accept,
            reply,
        })
        .await
    }

    // ----- friends -----------------------------------------------------------------------

    /// Whether a user exists: their registered spelling, or None.
    ///
    /// # Errors
    /// Server errors.
    pub async fn find(&self, userid: &str) -> Result<Option<String>, ClientError> {
        match self
            .inner
            .server
            .request(Request::Find {
                userid: userid.into(),
            })
            .await?
        {
            ResponseBody::Find {
                found: true,
                userid,
            } => Ok(Some(userid)),
            ResponseBody::Find { .. } => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks a user to be friends. True if that made us friends at once (they had asked us).
    ///
    /// # Errors
    /// Server errors (USER_NOT_FOUND, ALREADY_FRIENDS, DUPLICATE_REQUEST...).
    pub async fn send_friend_request(&self, userid: &str) -> Result<bool, ClientError> {
        match self
            .inner
            .server
            .request(Request::SendFriendRequest {
                userid: userid.into(),
            })
            .await?
        {
            ResponseBody::SendFriendRequest { friend } => Ok(friend.is_some()),
            other => Err(unexpected(&other)),
        }
    }

    /// Accepts a friend request.
    ///
    /// # Errors
    /// Server errors (REQUEST_NOT_FOUND...).
    pub async fn accept_friend(&self, userid: &str) -> Result<(), ClientError> {
        self.inner
            .server
            .request(Request::AcceptFriendRequest {
                userid: userid.into(),
            })
            .await
            .map(|_| ())
    }

    /// Refuses a friend request.
    ///
    /// # Errors
    /// Server errors (REQUEST_NOT_FOUND).
    pub async fn refuse_friend(&self, userid: &str) -> Result<(), ClientError> {
        self.inner
            .server
            .request(Request::RefuseFriendRequest {
                userid: userid.into(),
            })
            .await
            .map(|_| ())
    }

    /// Ends a friendship.
    ///
    /// # Errors
    /// Server errors (NOT_FRIENDS).
    pub async fn unfriend(&self, userid: &str) -> Result<(), ClientError> {
        self.inner
            .server
            .request(Request::Unfriend {
                userid: userid.into(),
            })
            .await
            .map(|_| ())
    }

    /// Friends and pending requests as currently known (from the cache while offline).
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn friends(&self) -> Result<FriendsSnapshot, ClientError> {
        self.command(|reply| Command::Friends { reply }).await
    }

    /// Whether a direct connection to `friend` is up.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn is_connected(&self, friend: &str) -> Result<bool, ClientError> {
        self.command(|reply| Command::IsConnected {
            friend: friend.into(),
            reply,
        })
        .await
    }

    // ----- chat --------------------------------------------------------------------------

    /// Sends a chat message: stored in history and the outbox at once, delivered now or as
    /// soon as a connection to the friend is up. [`Event::MessageAcked`] follows delivery.
    ///
    /// # Errors
    /// [`ClientError::NotAFriend`], [`ClientError::Invalid`] (empty or longer than 16 KiB).
    pub async fn send_message(&self, friend: &str, text: &str) -> Result<MessageId, ClientError> {
        self.command(|reply| Command::SendMessage {
            friend: friend.into(),
            text: text.into(),
            reply,
        })
        .await
    }

    /// Tells the friend we are (or stopped) typing; rate-limited to one frame per 3 s.
    ///
    /// # Errors
    /// [`ClientError::Closed`].
    pub async fn set_typing(&self, friend: &str, active: bool) -> Result<(), ClientError> {
        self.inner
            .commands
            .send(Command::SetTyping {
                friend: friend.into(),
                active,
            })
            .map_err(|_| ClientError::Closed)
    }

    /// Accepts a friend's new identity key after a key change (SPEC.md §12.4): the key whose
    /// fingerprint is `presented_fingerprint` (as shown in [`Event::FriendKeyChanged`])
    /// becomes the pin, and the messages and files held meanwhile go out, in order, once.
    ///
    /// # Errors
    /// [`ClientError::KeyChange`] when no change is pending for the friend or the presented
    /// key is no longer the one named (it changed again: show the new one and ask again).
    pub async fn accept_friend_key(
        &self,
        friend: &str,
        presented_fingerprint: &str,
    ) -> Result<(), ClientError> {
        self.command(|reply| Command::AcceptFriendKey {
            friend: friend.to_owned(),
            fingerprint: presented_fingerprint.to_owned(),
            reply,
        })
        .await
    }

    /// The last `limit` messages with a friend, oldest first. Local only.
    ///
    /// # Errors
    /// History errors.
    pub async fn history(
        &self,
        friend: &str,
        limit: u64,
    ) -> Result<Vec<HistoryEntry>, ClientError> {
        self.command(|reply| Command::History {
            friend: friend.into(),
            limit,
            reply,
        })
        .await
    }

    /// The last `limit` completed files with a friend, oldest first. Local only.
    ///
    /// # Errors
    /// History errors.
    pub async fn file_history(
        &self,
        friend: &str,
        limit: u64,
    ) -> Result<Vec<crate::history::FileEntry>, ClientError> {
        self.command(|reply| Command::FileHistory {
            friend: friend.into(),
            limit,
            reply,
        })
        .await
    }

    // ----- files -------------------------------------------------------------------------

    /// Offers a file to a friend, now or when a connection is up; resumes by itself after
    /// drops. Nothing is read before the offer: with a friend whose client names
    /// `file-blake3` the file is hashed while it is sent; only for a version-1 friend the
    /// core computes its SHA-256 first (SPEC.md §8.3.1).
    ///
    /// # Errors
    /// [`ClientError::Io`] if the file cannot be read, [`ClientError::NotAFriend`].
    pub async fn send_file(&self, friend: &str, path: &Path) -> Result<TransferId, ClientError> {
        let path = std::fs::canonicalize(path)
            .map_err(|e| ClientError::io(path.display().to_string(), e))?;
        let meta =
            std::fs::metadata(&path).map_err(|e| ClientError::io(path.display().to_string(), e))?;
        if !meta.is_file() {
            return Err(ClientError::Invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let name = offered_name(&path);
        self.offer_file(friend, &path, &name, meta.len(), None)
            .await
    }

    /// Offers a file under a given name with a known size and hash (the caller vouches for
    /// them; tests use this to offer hostile names).
    ///
    /// # Errors
    /// [`ClientError::NotAFriend`], [`ClientError::Invalid`] for a bad name.
    pub async fn send_file_as(
        &self,
        friend: &str,
        path: &Path,
        name: &str,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<TransferId, ClientError> {
        self.offer_file(friend, path, name, size, Some(sha256))
            .await
    }

    async fn offer_file(
        &self,
        friend: &str,
        path: &Path,
        name: &str,
        size: u64,
        sha256: Option<[u8; 32]>,
    ) -> Result<TransferId, ClientError> {
        if name.is_empty() || name.len() > MAX_FILE_NAME {
            return Err(ClientError::Invalid(format!(
                "a file name must have 1..={MAX_FILE_NAME} bytes"
            )));
        }
        let (friend, path, name) = (friend.to_owned(), path.to_owned(), name.to_owned());
        self.command(|reply| Command::SendFile {
            friend,
            path,
            name,
            size,
            sha256,
            reply,
        })
        .await
    }

    /// Accepts an offered file ([`Event::FileOffered`]).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for an unknown transfer or a disconnected friend.
    pub async fn accept_file(&self, id: TransferId) -> Result<(), ClientError> {
        self.command(|reply| Command::AcceptFile { id, reply })
            .await
    }

    /// Declines an offered file.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for an unknown transfer.
    pub async fn decline_file(&self, id: TransferId) -> Result<(), ClientError> {
        self.command(|reply| Command::DeclineFile { id, reply })
            .await
    }

    /// Cancels a transfer in either direction.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for an unknown transfer.
    pub async fn cancel_transfer(&self, id: TransferId) -> Result<(), ClientError> {
        self.command(|reply| Command::CancelTransfer { id, reply })
            .await
    }

    // ----- lifecycle ---------------------------------------------------------------------

    /// Closes every connection (with Close frames), stops all tasks and waits until
    /// received data queued for disk is written. Unfinished transfers resume on the next
    /// start with the same profile.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown { reply: tx })
            .is_ok()
        {
            let _ = rx.await;
        }
        self.inner.cancel.cancel();
        let task = self.inner.core_task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

fn unexpected(body: &ResponseBody) -> ClientError {
    ClientError::Invalid(format!("unexpected answer from the server: {body:?}"))
}

/// The name to offer for a file: its last path component, cut to 255 bytes.
fn offered_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = name.len().min(MAX_FILE_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = &name[..end];
    if name.is_empty() {
        "file".to_owned()
    } else {
        name.to_owned()
    }
}
