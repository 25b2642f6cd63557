//! The two message types of the app: [`Action`]s go from the UI thread to the backend
//! thread (which owns the tokio runtime and the [`peerchat_client::Client`]), [`Msg`]s come
//! back to the UI thread through FLTK's `app::channel` (and widget callbacks post `Msg::Ui`
//! there too), so every widget is touched only on the main thread.

use std::path::PathBuf;

use peerchat_client::{Event, FileEntry, FriendsSnapshot, HistoryEntry, MessageId, TransferId};

/// What the UI asks the backend to do. Each one is answered by one or more [`Msg`]s.
#[derive(Debug, Clone)]
pub enum Action {
    /// Log in with a password (reconnecting to `server` first if it changed).
    Login {
        server: String,
        userid: String,
        password: String,
    },
    /// Create an account.
    Register {
        server: String,
        userid: String,
        email: String,
        password: String,
    },
    /// Reset a forgotten password with the recovery code.
    ForgotPassword {
        server: String,
        userid: String,
        email: String,
        recovery_code: String,
        new_password: String,
    },
    /// Log out and go back to the login window.
    Logout,
    /// Does this userid exist?
    Find(String),
    /// Reconnect to the server now instead of after the back-off.
    RetryNow,
    /// Ask a user to be friends.
    SendFriendRequest(String),
    /// Accept a request.
    Accept(String),
    /// Refuse a request.
    Refuse(String),
    /// End a friendship.
    Unfriend(String),
    /// Re-read friends and requests from the core.
    RefreshFriends,
    /// Load the stored history with a friend.
    LoadHistory(String),
    /// Send a chat message.
    SendMessage { friend: String, text: String },
    /// Typing indicator on/off.
    Typing { friend: String, active: bool },
    /// Offer a file.
    SendFile { friend: String, path: PathBuf },
    /// Accept an offered file.
    AcceptFile(TransferId),
    /// Decline an offered file.
    DeclineFile(TransferId),
    /// Cancel a transfer.
    CancelTransfer(TransferId),
    /// Trust a friend's new identity key, naming the fingerprint the user was shown.
    AcceptFriendKey { friend: String, fingerprint: String },
    /// Settings › Change password: the current and the new password.
    ChangePassword { old: String, new: String },
    /// New settings: where files go and which offers are taken without asking, at once.
    UpdateSettings {
        /// Received files go here.
        download_dir: PathBuf,
        /// Offers taken without asking.
        auto_accept: peerchat_client::AutoAccept,
    },
    /// Close everything (the app is quitting).
    Shutdown,
}

/// A failure, already worded for a person (see [`crate::gui::wording`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// One sentence: what went wrong.
    pub headline: String,
    /// What to do about it / technical detail (may be empty).
    pub detail: String,
}

impl Problem {
    /// Headline and detail as one text for a label.
    pub fn text(&self) -> String {
        if self.detail.is_empty() {
            self.headline.clone()
        } else {
            format!("{}\n{}", self.headline, self.detail)
        }
    }
}

/// What reaches the UI thread.
#[derive(Debug, Clone)]
pub enum Msg {
    // ----- from the backend --------------------------------------------------------------
    /// The client core is starting (first start: generating an identity key takes seconds).
    Starting,
    /// The client core is running.
    Ready {
        /// The profile's account, if it has one (prefills the login window).
        account: Option<String>,
        /// The server the core talks to.
        server: String,
        /// Our identity key fingerprint.
        fingerprint: String,
    },
    /// The client core could not start.
    StartFailed(Problem),
    /// An event of the core.
    Core(Event),
    /// Login answered.
    LoginDone(Result<String, Problem>),
    /// Register answered: the recovery code.
    RegisterDone {
        userid: String,
        result: Result<String, Problem>,
    },
    /// Forgot password answered: the new recovery code.
    ForgotDone(Result<String, Problem>),
    /// Logged out (or the server was gone: we go back to the login window anyway).
    LogoutDone,
    /// Find answered: the registered spelling, if the user exists.
    FindDone {
        query: String,
        result: Result<Option<String>, Problem>,
    },
    /// A friend request was sent (`true`: they had asked us, we are friends now).
    RequestSent {
        userid: String,
        result: Result<bool, Problem>,
    },
    /// Accept / refuse / unfriend answered.
    FriendActionDone {
        what: &'static str,
        userid: String,
        result: Result<(), Problem>,
    },
    /// Friends and requests as the core knows them.
    Friends(FriendsSnapshot),
    /// Stored history with a friend: messages and completed files.
    History {
        friend: String,
        entries: Vec<HistoryEntry>,
        files: Vec<FileEntry>,
    },
    /// A message was stored and queued for delivery.
    MessageSent {
        friend: String,
        message_id: MessageId,
        text: String,
        sent_at_unix_ms: u64,
    },
    /// A message could not be sent.
    MessageFailed {
        friend: String,
        text: String,
        problem: Problem,
    },
    /// A file was hashed and offered (or queued until the friend is reachable).
    FileQueued {
        friend: String,
        path: PathBuf,
        transfer_id: TransferId,
    },
    /// A file could not be offered.
    FileFailed {
        friend: String,
        path: PathBuf,
        problem: Problem,
    },
    /// A transfer action (accept/decline/cancel) failed.
    TransferActionFailed(Problem),
    /// The answer to ChangePassword: a new recovery code if the server issued one.
    PasswordChanged(Result<Option<String>, Problem>),
    /// The backend finished shutting down.
    ShutDown,

    // ----- from widgets (posted on the UI thread itself) -------------------------------
    /// A button, menu or key in some window.
    Ui(Ui),
}

/// Widget callbacks: what the user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ui {
    /// Login window: Log in (button or Enter).
    LoginSubmit,
    /// Login window: open "Create account".
    OpenRegister,
    /// Login window: open "Forgot password".
    OpenForgot,
    /// Create account: submit.
    RegisterSubmit,
    /// Create account: close (Cancel, Esc, or Continue after the code was shown).
    RegisterClose,
    /// Forgot password: submit.
    ForgotSubmit,
    /// Forgot password: close.
    ForgotClose,
    /// Copy a recovery code to the clipboard.
    CopyCode(String),
    /// Main window: Find.
    Find,
    /// Main window: send a request to the user just found.
    SendRequestToFound,
    /// Main window: a friend was selected in the list.
    FriendSelected,
    /// Main window: the pointer entered (true) or left the friend list.
    FriendListHover(bool),
    /// Main window: Unfriend the selected friend.
    Unfriend,
    /// Main window: accept the selected request.
    AcceptRequest,
    /// Main window: refuse the selected request.
    RefuseRequest,
    /// Status bar: reconnect now.
    RetryNow,
    /// Main window: open the settings page.
    OpenSettings,
    /// Settings: save and close.
    SettingsSave,
    /// Settings: close without saving.
    SettingsClose,
    /// Main window: log out.
    Logout,
    /// Chat: send the input line.
    SendMessage,
    /// Chat: the input line changed (typing indicator).
    InputChanged,
    /// A keyboard shortcut (see `keys`).
    Key(super::keys::KeyAction),
    /// Chat search: the next match.
    SearchNext,
    /// Chat search: close it.
    SearchClose,
    /// Chat: pick a file and send it.
    SendFile,
    /// Chat: files dropped on the chat (newline-separated paths or file:// URIs).
    FilesDropped(String),
    /// Chat: open the downloads folder of the current friend.
    OpenDownloads,
    /// Chat: a click in the history: a link or a file name opens it; a double click on a
    /// `<File>` line opens its folder.
    HistoryClicked { pos: i32, double: bool },
    /// Transfer row: accept an offered file.
    AcceptFile(TransferId),
    /// Transfer row: decline an offered file.
    DeclineFile(TransferId),
    /// Transfer row: cancel.
    CancelTransfer(TransferId),
    /// Transfer row: open the containing folder.
    OpenFolder(PathBuf),
    /// Transfer row: hide a finished transfer.
    DismissTransfer(TransferId),
    /// Key change dialog: accept the presented key.
    KeyChangeAccept,
    /// Key change dialog: not now (messages stay held).
    KeyChangeNotNow,
    /// Chat pane banner: show the key change dialog again.
    ReviewKeyChange,
    /// Settings › "Change password…".
    OpenPassword,
    /// The Change password form's Change button (or Enter).
    PasswordSubmit,
    /// The Change password form closes.
    PasswordClose,
    /// "Profile…" in the chat header: the selected friend's profile.
    OpenProfile,
    /// The profile's Verified box was ticked (true) or cleared.
    ProfileVerified(bool),
    /// The profile window closes.
    ProfileClose,
    /// The main window is closing: quit.
    Quit,
    /// Periodic tick (typing expiry, test hooks).
    Tick,
}
