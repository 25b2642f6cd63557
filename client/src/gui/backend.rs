//! The backend thread: owns the tokio runtime and the [`Client`], runs the UI's
//! [`Action`]s, and forwards the core's events to the UI as [`Msg`]s.
//!
//! The UI never waits for it: actions go through an unbounded channel, every action runs as
//! its own task (a slow login never holds up a chat message), and answers come back through
//! FLTK's `app::Sender`, which wakes the UI loop. Changing the server address restarts the
//! core with the same profile.

use std::path::PathBuf;
use std::time::Duration;

use fltk::app;
use peerchat_client::history::now_ms;
use peerchat_client::{Client, ClientConfig, ClientError};
use tokio::sync::mpsc;

use super::msg::{Action, Msg, Problem};
use super::wording::{explain, Doing};

/// How long quitting waits for the core to close its connections and flush received data.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The UI's end of the backend.
pub struct Backend {
    actions: mpsc::UnboundedSender<Action>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Starts the runtime thread and the client core (talking to `server`, profile `profile`;
    /// `auto_login`: log in by key as the profile's account).
    ///
    /// # Errors
    /// If the runtime or the thread cannot be created.
    pub fn start(
        server: String,
        profile: PathBuf,
        auto_login: bool,
        ui: app::Sender<Msg>,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        // The core's one thread is this backend thread (`peerchat_client::runtime`).
        let rt = peerchat_client::runtime::build()?;
        let thread = std::thread::Builder::new()
            .name("peerchat-backend".into())
            .spawn(move || {
                rt.block_on(run(server, profile, auto_login, rx, ui));
                // Do not wait for stuck blocking tasks (a file being hashed) when quitting.
                rt.shutdown_timeout(Duration::from_millis(500));
            })?;
        Ok(Self {
            actions: tx,
            thread: Some(thread),
        })
    }

    /// Queues an action; never blocks.
    pub fn send(&self, action: Action) {
        let _ = self.actions.send(action);
    }

    /// Stops the core (closing connections properly) and waits a little for it.
    pub fn shutdown(&mut self) {
        let _ = self.actions.send(Action::Shutdown);
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + SHUTDOWN_GRACE + Duration::from_secs(1);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// One running core and the server it talks to.
struct Running {
    client: Client,
    server: String,
}

async fn start_client(
    server: &str,
    profile: &std::path::Path,
    auto_login: bool,
    ui: app::Sender<Msg>,
) -> Option<Running> {
    ui.send(Msg::Starting);
    let mut config = ClientConfig::new(profile, server);
    config.auto_login = auto_login;
    // Received files go under the user's Downloads folder; small ones may be taken without
    // asking if the user set a limit (settings page).
    let settings = super::settings::Settings::load(profile);
    config.download_dir = Some(settings.downloads());
    config.auto_accept = settings.auto_accept();
    match Client::start(config).await {
        Ok((client, mut events)) => {
            ui.send(Msg::Ready {
                account: client.userid(),
                server: server.to_owned(),
                fingerprint: client.fingerprint().to_owned(),
            });
            // Forward events until this core stops (its stream ends).
            tokio::spawn(async move {
                while let Some(e) = events.recv().await {
                    ui.send(Msg::Core(e));
                }
            });
            Some(Running {
                client,
                server: server.to_owned(),
            })
        }
        Err(e) => {
            ui.send(Msg::StartFailed(explain(&e, Doing::Other, server)));
            None
        }
    }
}

async fn run(
    server: String,
    profile: PathBuf,
    auto_login: bool,
    mut actions: mpsc::UnboundedReceiver<Action>,
    ui: app::Sender<Msg>,
) {
    let mut running = start_client(&server, &profile, auto_login, ui).await;
    while let Some(action) = actions.recv().await {
        // The account actions carry the server address from the login window: switch first.
        let wanted = match &action {
            Action::Login { server, .. }
            | Action::Register { server, .. }
            | Action::ForgotPassword { server, .. } => Some(server.trim().to_owned()),
            _ => None,
        };
        if let Some(wanted) = wanted {
            if running.as_ref().map(|r| r.server.as_str()) != Some(wanted.as_str()) {
                if let Some(r) = running.take() {
                    r.client.shutdown().await;
                }
                // A server picked in the login window: the user logs in with a password there.
                running = start_client(&wanted, &profile, false, ui).await;
            }
        }
        if matches!(action, Action::Shutdown) {
            if let Some(r) = running.take() {
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, r.client.shutdown()).await;
            }
            ui.send(Msg::ShutDown);
            return;
        }
        let Some(r) = running.as_ref() else {
            fail_without_client(action, ui);
            continue;
        };
        tokio::spawn(perform(r.client.clone(), r.server.clone(), action, ui));
    }
}

/// Answers an action when the core could not start (the login window shows why).
fn fail_without_client(action: Action, ui: app::Sender<Msg>) {
    let p = Problem {
        headline: "Peerchat could not start.".into(),
        detail: "See the message above; fix it and restart the app.".into(),
    };
    match action {
        Action::Login { .. } => ui.send(Msg::LoginDone(Err(p))),
        Action::Register { userid, .. } => ui.send(Msg::RegisterDone {
            userid,
            result: Err(p),
        }),
        Action::ForgotPassword { .. } => ui.send(Msg::ForgotDone(Err(p))),
        _ => {}
    }
}

async fn perform(client: Client, server: String, action: Action, ui: app::Sender<Msg>) {
    let other = |e: &ClientError| explain(e, Doing::Other, &server);
    match action {
        Action::Login {
            userid, password, ..
        } => {
            let r = client
                .login(userid.trim(), &password)
                .await
                .map(|s| s.userid)
                .map_err(|e| explain(&e, Doing::Login, &server));
            ui.send(Msg::LoginDone(r));
        }
        Action::Register {
            userid,
            email,
            password,
            ..
        } => {
            let userid = userid.trim().to_owned();
            let result = client
                .register(&userid, email.trim(), &password)
                .await
                .map_err(|e| explain(&e, Doing::Register, &server));
            ui.send(Msg::RegisterDone { userid, result });
        }
        Action::ForgotPassword {
            userid,
            email,
            recovery_code,
            new_password,
            ..
        } => {
            let r = client
                .forgot_password(
                    userid.trim(),
                    email.trim(),
                    recovery_code.trim(),
                    &new_password,
                )
                .await
                .map_err(|e| explain(&e, Doing::Reset, &server));
            ui.send(Msg::ForgotDone(r));
        }
        Action::Logout => {
            // Going back to the login window must work even with the server gone.
            let _ = tokio::time::timeout(Duration::from_secs(5), client.logout()).await;
            ui.send(Msg::LogoutDone);
        }
        Action::RetryNow => {
            // Every back-off ends: the server and the friends with something waiting are
            // dialled now; the ServerStatus and PeerConnected events that follow say how it went.
            if let Err(e) = client.retry_now() {
                ui.send(Msg::TransferActionFailed(other(&e)));
            }
        }
        Action::ChangePassword { old, new } => {
            // The recovery code is kept (SPEC.md §5.7), so there is no new code to show.
            let r = client
                .change_password(&old, &new)
                .await
                .map(|()| None)
                .map_err(|e| super::wording::change_password_failed(&e, &server));
            ui.send(Msg::PasswordChanged(r));
        }
        Action::UpdateSettings {
            download_dir,
            auto_accept,
        } => {
            if let Err(e) = client.update_settings(&download_dir, auto_accept).await {
                ui.send(Msg::TransferActionFailed(other(&e)));
            }
        }
        Action::Find(userid) => {
            let result = client.find(userid.trim()).await.map_err(|e| other(&e));
            ui.send(Msg::FindDone {
                query: userid,
                result,
            });
        }
        Action::SendFriendRequest(userid) => {
            let result = client
                .send_friend_request(&userid)
                .await
                .map_err(|e| other(&e));
            ui.send(Msg::RequestSent { userid, result });
            refresh(&client, ui).await;
        }
        Action::Accept(userid) => {
            let result = client.accept_friend(&userid).await.map_err(|e| other(&e));
            ui.send(Msg::FriendActionDone {
                what: "accept",
                userid,
                result,
            });
            refresh(&client, ui).await;
        }
        Action::Refuse(userid) => {
            let result = client.refuse_friend(&userid).await.map_err(|e| other(&e));
            ui.send(Msg::FriendActionDone {
                what: "refuse",
                userid,
                result,
            });
            refresh(&client, ui).await;
        }
        Action::Unfriend(userid) => {
            let result = client.unfriend(&userid).await.map_err(|e| other(&e));
            ui.send(Msg::FriendActionDone {
                what: "unfriend",
                userid,
                result,
            });
            refresh(&client, ui).await;
        }
        Action::AcceptFriendKey {
            friend,
            fingerprint,
        } => {
            let result = client
                .accept_friend_key(&friend, &fingerprint)
                .await
                .map_err(|e| other(&e));
            ui.send(Msg::FriendActionDone {
                what: "trust key",
                userid: friend,
                result,
            });
            refresh(&client, ui).await;
        }
        Action::RefreshFriends => refresh(&client, ui).await,
        Action::LoadHistory(friend) => {
            if let Ok(entries) = client.history(&friend, 500).await {
                let files = client.file_history(&friend, 500).await.unwrap_or_default();
                ui.send(Msg::History {
                    friend,
                    entries,
                    files,
                });
            }
        }
        Action::SendMessage { friend, text } => match client.send_message(&friend, &text).await {
            Ok(message_id) => ui.send(Msg::MessageSent {
                friend,
                message_id,
                text,
                sent_at_unix_ms: now_ms(),
            }),
            Err(e) => ui.send(Msg::MessageFailed {
                friend,
                text,
                problem: other(&e),
            }),
        },
        Action::Typing { friend, active } => {
            let _ = client.set_typing(&friend, active).await;
        }
        Action::SendFile { friend, path } => match client.send_file(&friend, &path).await {
            Ok(transfer_id) => ui.send(Msg::FileQueued {
                friend,
                path,
                transfer_id,
            }),
            Err(e) => ui.send(Msg::FileFailed {
                friend,
                path,
                problem: other(&e),
            }),
        },
        Action::AcceptFile(id) => {
            if let Err(e) = client.accept_file(id).await {
                ui.send(Msg::TransferActionFailed(other(&e)));
            }
        }
        Action::DeclineFile(id) => {
            if let Err(e) = client.decline_file(id).await {
                ui.send(Msg::TransferActionFailed(other(&e)));
            }
        }
        Action::CancelTransfer(id) => {
            if let Err(e) = client.cancel_transfer(id).await {
                ui.send(Msg::TransferActionFailed(other(&e)));
            }
        }
        Action::Shutdown => {}
    }
}

async fn refresh(client: &Client, ui: app::Sender<Msg>) {
    if let Ok(s) = client.friends().await {
        ui.send(Msg::Friends(s));
    }
}
