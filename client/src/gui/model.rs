//! What the app shows, as plain data: friends, requests, chats, transfers, the server
//! state. Events of the core and answers of the backend are applied here first; the windows
//! then redraw from it. No widgets in this file, so every rule (unread counts, ticks that
//! may arrive before the send is confirmed, `<File>` lines) is unit-tested.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use peerchat_client::{
    Direction, Event, FileEntry, FriendsSnapshot, HistoryEntry, MessageId, OfflineReason,
    TransferId,
};

use super::wording;

/// The friend list key of a userid (lookups are case-insensitive, SPEC.md §5.1).
pub fn key(userid: &str) -> String {
    userid.to_ascii_lowercase()
}

/// The server link as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// Not known yet.
    Connecting,
    /// Connected.
    Online,
    /// Not reachable (or logged out, or refused), by the core's typed reason; the core
    /// retries where retrying helps.
    Offline(Option<OfflineReason>),
    /// The server presents another key than the pinned one: not connecting (a security
    /// matter, never shown as "unreachable"; issue #15 item 5).
    KeyChanged(KeyChange),
    /// Our account logged in on another device, which took over this session.
    Replaced,
}

/// One friend in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Friend {
    /// Registered spelling.
    pub userid: String,
    /// Online at the server.
    pub online: bool,
    /// Direct connection up.
    pub connected: bool,
    /// How that connection was made (direct, reversed, punched, relayed; SPEC.md §7.6).
    pub path: Option<peerchat_client::LinkPath>,
    /// Messages received while their chat was not shown.
    pub unread: u32,
    /// Typing right now.
    pub typing: bool,
    /// Their key changed and we have not decided (SPEC.md §12.4): messages to them are held.
    pub key_change: Option<KeyChange>,
    /// The fingerprint of their pinned identity key (`SHA256:...`; empty until known).
    pub fingerprint: String,
    /// The user compared this pinned key's fingerprint with the friend and marked it
    /// verified. Never true while a key change is pending, nor for another key than the
    /// one verified ([`Model::set_verified`]).
    pub verified: bool,
}

/// A friend's key change awaiting the user's decision: the two fingerprints to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The trusted (pinned) fingerprint.
    pub pinned: String,
    /// The fingerprint the server presents now.
    pub presented: String,
}

/// How a friend's presence is shown (the list colour and the chat header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Online at the server and a direct connection is up.
    OnlineDirect,
    /// Online at the server.
    Online,
    /// A direct connection is up, the server does not say (it is unreachable).
    Direct,
    /// Offline at the server.
    Offline,
    /// Not connected and the server is unreachable: unknown.
    Unknown,
}

impl Presence {
    /// Shown in green (as in the original); the others are grey.
    pub fn is_green(self) -> bool {
        matches!(
            self,
            Presence::OnlineDirect | Presence::Online | Presence::Direct
        )
    }

    /// Words for the chat header.
    pub fn words(self) -> &'static str {
        match self {
            Presence::OnlineDirect => "● online · connected directly",
            Presence::Online => "● online",
            Presence::Direct => "● connected directly",
            Presence::Offline => "○ offline — messages will be delivered later",
            Presence::Unknown => "○ not connected — messages will be delivered later",
        }
    }
}

impl Friend {
    /// The friend's lower-case userid (the list key).
    pub fn key(&self) -> String {
        key(&self.userid)
    }

    /// The connection's path for display ("relayed"), when connected.
    pub fn path_words(&self) -> Option<&'static str> {
        self.path.filter(|_| self.connected).map(|p| p.as_str())
    }

    /// The chat header's words: the presence, and for a link how it was made, so a user can
    /// tell a direct link from one the server relays (SPEC.md §7.6 "Path"). A relayed link is
    /// still end-to-end encrypted, and the words say so.
    pub fn header_words(&self, server_online: bool) -> String {
        use peerchat_client::LinkPath;
        let p = self.presence(server_online);
        let link = match self.path.filter(|_| self.connected) {
            Some(LinkPath::Direct) | None => return p.words().to_owned(),
            Some(LinkPath::Reversed) => "connected directly (reversed)",
            Some(LinkPath::Punched) => "connected directly (hole-punched)",
            Some(LinkPath::Relayed) => "relayed, end-to-end encrypted",
        };
        match p {
            Presence::OnlineDirect => format!("● online · {link}"),
            _ => format!("● {link}"),
        }
    }

    /// The presence to show. While the server is unreachable its last word on who is
    /// online is stale, so only direct connections count then.
    pub fn presence(&self, server_online: bool) -> Presence {
        match (self.connected, self.online && server_online, server_online) {
            (true, true, _) => Presence::OnlineDirect,
            (true, false, _) => Presence::Direct,
            (false, true, _) => Presence::Online,
            (false, false, true) => Presence::Offline,
            (false, false, false) => Presence::Unknown,
        }
    }
}

/// One line of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A chat message.
    Message {
        /// Its id (hex).
        id: String,
        /// Sent by us.
        outgoing: bool,
        /// The text.
        text: String,
        /// Sender's clock.
        at_ms: u64,
        /// Outgoing: the friend stored it.
        acked: bool,
    },
    /// A file that arrived or was sent: `<File> sender: 'name'`.
    File {
        /// The transfer id (hex), so the stored line and the live one are shown once.
        id: String,
        /// Who sent it.
        sender: String,
        /// The file name.
        name: String,
        /// Received: where it is on disk; sent: the source file.
        path: PathBuf,
        /// When, for ordering.
        at_ms: u64,
    },
    /// Something the app says (a failed send, a cancelled transfer).
    Notice {
        /// The text.
        text: String,
        /// When.
        at_ms: u64,
    },
}

impl Line {
    fn at_ms(&self) -> u64 {
        match self {
            Line::Message { at_ms, .. } | Line::File { at_ms, .. } | Line::Notice { at_ms, .. } => {
                *at_ms
            }
        }
    }
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// Outgoing: hashing the file before the offer.
    Preparing,
    /// Offered; waiting for the other side (or for a connection).
    Waiting,
    /// Incoming offer that needs the user's decision.
    NeedsDecision,
    /// Bytes flowing.
    Running,
    /// Its link closed; it resumes when the friend is back (SPEC.md §8.3 SUSPENDED).
    Suspended,
    /// Done.
    Complete,
    /// Stopped; why.
    Stopped(String),
}

/// One transfer row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The id (None while an outgoing file is still being hashed).
    pub id: Option<TransferId>,
    /// Which way.
    pub direction: Direction,
    /// File name.
    pub name: String,
    /// Size, when known.
    pub size: u64,
    /// Bytes done.
    pub bytes: u64,
    /// Bytes per second.
    pub rate: u64,
    /// State.
    pub state: TransferState,
    /// The file: the source (outgoing) or the received file (incoming, once complete).
    pub path: Option<PathBuf>,
    /// When the last progress report came (ms), to tell a stalled transfer from a running
    /// one: a receiver that died says nothing, and its old speed must not stay on screen.
    pub progress_at_ms: u64,
}

/// A running transfer with no progress for this long is shown as stalled, without a speed.
pub const STALLED_AFTER_MS: u64 = 5_000;

impl Transfer {
    /// The speed and time left, only while bytes are flowing (Running, with progress in
    /// the last [`STALLED_AFTER_MS`]); None otherwise: a suspended, stopped, finished or
    /// stalled row shows no speed or ETA.
    pub fn speed(&self, now_ms: u64) -> Option<(u64, Option<u64>)> {
        if self.state != TransferState::Running
            || self.rate == 0
            || now_ms.saturating_sub(self.progress_at_ms) > STALLED_AFTER_MS
        {
            return None;
        }
        let left = self.size.saturating_sub(self.bytes);
        Some((self.rate, (left > 0).then(|| left.div_ceil(self.rate))))
    }

    /// The row's progress words while running: "3 MB of 10 MB · 1 MB/s · 7 s left", or
    /// "… · stalled" when no progress came lately; `compact` keeps only the speed part.
    pub fn running_words(&self, now_ms: u64, compact: bool) -> String {
        let speed = match self.speed(now_ms) {
            Some((rate, Some(eta))) => format!(
                "{} · {} left",
                super::format::rate(rate),
                super::format::duration_secs(eta)
            ),
            Some((rate, None)) => super::format::rate(rate),
            None if self.rate == 0 && self.bytes == 0 => "starting…".to_owned(),
            None => "stalled — no data lately".to_owned(),
        };
        if compact {
            speed
        } else {
            format!(
                "{} of {} · {speed}",
                super::format::bytes(self.bytes),
                super::format::bytes(self.size)
            )
        }
    }
}

/// The chat with one friend.
#[derive(Debug, Clone, Default)]
pub struct Chat {
    /// Lines, oldest first.
    pub lines: Vec<Line>,
    /// Transfers shown under the chat, oldest first.
    pub transfers: Vec<Transfer>,
    /// History was loaded from the core.
    pub history_loaded: bool,
    /// Acks that arrived before the send was confirmed to the UI.
    early_acks: HashSet<String>,
}

impl Chat {
    fn has_file(&self, id: &str) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l, Line::File { id: i, .. } if i == id))
    }

    fn has_message(&self, id: &str) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l, Line::Message { id: i, .. } if i == id))
    }

    fn push(&mut self, line: Line) {
        // Keep time order; lines are nearly always appended at the end.
        let at = line.at_ms();
        let pos = self
            .lines
            .iter()
            .rposition(|l| l.at_ms() <= at)
            .map_or(0, |p| p + 1);
        self.lines.insert(pos, line);
    }

    fn transfer_mut(&mut self, id: TransferId) -> Option<&mut Transfer> {
        self.transfers.iter_mut().find(|t| t.id == Some(id))
    }

    /// Adds or updates the row of transfer `id`.
    fn upsert(
        &mut self,
        id: TransferId,
        direction: Direction,
        name: &str,
        size: u64,
    ) -> &mut Transfer {
        if let Some(i) = self.transfers.iter().position(|t| t.id == Some(id)) {
            return &mut self.transfers[i];
        }
        self.transfers.push(Transfer {
            id: Some(id),
            direction,
            name: name.to_owned(),
            size,
            bytes: 0,
            rate: 0,
            state: TransferState::Waiting,
            path: None,
            progress_at_ms: 0,
        });
        let last = self.transfers.len() - 1;
        &mut self.transfers[last]
    }
}

/// What an update changed, so the UI redraws only that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The friend list (presence, unread, typing).
    pub friends: bool,
    /// The request lists.
    pub requests: bool,
    /// The status bar.
    pub status: bool,
    /// Chats whose lines changed (keys).
    pub chats: HashSet<String>,
    /// Chats whose transfer rows changed (keys).
    pub transfers: HashSet<String>,
    /// A one-off message for the status bar ("bob refused your request").
    pub notice: Option<String>,
    /// The notice reports a failure (shown in red).
    pub notice_is_error: bool,
    /// We are logged in now (switch to the main window).
    pub logged_in: bool,
    /// We were logged out.
    pub logged_out: bool,
    /// A friend's key changed: ask the user now (friend key; see [`Model::key_change`]).
    pub ask_key_change: Option<String>,
    /// Tell the user through a desktop notification (and the urgency hint).
    pub notify: Option<Notification>,
    /// The server's key changed: explain it in a dialog (once per change).
    pub server_key_changed: bool,
    /// The friends' verification marks changed: save them ([`Model::verified_marks`]).
    pub verified: bool,
}

/// A desktop notification: who, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The summary line ("bob", "Peerchat").
    pub title: String,
    /// The text.
    pub body: String,
}

/// At most this many characters of a message go into a notification.
const NOTIFY_CHARS: usize = 140;

impl Changes {
    fn chat(&mut self, k: &str) {
        self.chats.insert(k.to_owned());
    }
    fn transfer(&mut self, k: &str) {
        self.transfers.insert(k.to_owned());
    }
}

/// Everything the app shows.
#[derive(Debug, Clone)]
pub struct Model {
    /// Our userid once logged in.
    pub me: Option<String>,
    /// The server link.
    pub server: ServerState,
    /// Friends by key, sorted.
    pub friends: BTreeMap<String, Friend>,
    /// Users who asked us.
    pub incoming: Vec<String>,
    /// Users we asked.
    pub outgoing: Vec<String>,
    /// Chats by friend key (kept after an unfriend, so the history stays visible).
    pub chats: HashMap<String, Chat>,
    /// The friend whose chat is shown.
    pub selected: Option<String>,
    /// The friend list order frozen while the pointer is over the list (keys), so a line
    /// never moves under the mouse between aiming and clicking (issue #15 item 10).
    frozen_order: Option<Vec<String>>,
    /// The app window has the keyboard focus (the user is looking at it).
    pub window_active: bool,
    /// Which key the user verified for each friend: friend key -> fingerprint (saved in
    /// the settings). A friend is shown verified only while this is their pinned key.
    verified: BTreeMap<String, String>,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self {
            me: None,
            server: ServerState::Connecting,
            friends: BTreeMap::new(),
            incoming: Vec::new(),
            outgoing: Vec::new(),
            chats: HashMap::new(),
            selected: None,
            frozen_order: None,
            window_active: true,
            verified: BTreeMap::new(),
        }
    }

    /// Takes the saved verification marks (friend key -> verified fingerprint) at start.
    pub fn load_verified(&mut self, saved: BTreeMap<String, String>) {
        self.verified = saved;
        let mut c = Changes::default();
        self.check_verified(&mut c);
    }

    /// The verification marks to save.
    pub fn verified_marks(&self) -> &BTreeMap<String, String> {
        &self.verified
    }

    /// The user marks `friend`'s current key as verified (compared in person or by phone),
    /// or takes the mark away. A friend whose key change is pending, or whose key is not
    /// known yet, cannot be marked: the user would verify a key we do not trust.
    ///
    /// # Errors
    /// Why the mark cannot be set, in words for the user.
    pub fn set_verified(&mut self, friend: &str, verified: bool) -> Result<Changes, String> {
        let k = key(friend);
        let f = self
            .friends
            .get(&k)
            .ok_or_else(|| format!("{friend} is not your friend."))?;
        if verified {
            if f.key_change.is_some() {
                return Err(format!(
                    "{}'s key changed: decide on the new key first.",
                    f.userid
                ));
            }
            if f.fingerprint.is_empty() {
                return Err(format!("{}'s key is not known yet.", f.userid));
            }
            self.verified.insert(k.clone(), f.fingerprint.clone());
        } else {
            self.verified.remove(&k);
        }
        let mut c = Changes {
            friends: true,
            verified: true,
            ..Changes::default()
        };
        c.chat(&k);
        self.check_verified(&mut c);
        Ok(c)
    }

    /// Recomputes every friend's `verified` and drops marks of keys that are no longer the
    /// pin or that are in doubt: a key change never keeps "verified" (not even when the
    /// friend changes back to the verified key: verify again).
    fn check_verified(&mut self, c: &mut Changes) {
        let mut dropped = Vec::new();
        for (k, f) in &mut self.friends {
            let mark = self.verified.get(k);
            let ok =
                !f.fingerprint.is_empty() && f.key_change.is_none() && mark == Some(&f.fingerprint);
            if mark.is_some() && !ok && !f.fingerprint.is_empty() {
                dropped.push(k.clone());
            }
            if f.verified != ok {
                f.verified = ok;
                c.friends = true;
                c.chats.insert(k.clone());
            }
        }
        for k in dropped {
            self.verified.remove(&k);
            c.verified = true;
        }
    }

    /// Whether news in `friend`'s chat needs a notification: the user is not looking at
    /// that chat (another one is shown, or the window is not active).
    fn unseen(&self, friend_key: &str) -> bool {
        !self.window_active || self.selected.as_deref() != Some(friend_key)
    }

    /// The pointer entered the friend list (`Some(order shown)`) or left it (`None`). While
    /// it is inside, [`Model::friends_in_list_order`] keeps the shown order; leaving sorts
    /// again.
    pub fn freeze_list(&mut self, shown: Option<Vec<String>>) -> Changes {
        let was = self.frozen_order.is_some();
        self.frozen_order = shown;
        Changes {
            friends: was && self.frozen_order.is_none(),
            ..Changes::default()
        }
    }

    /// The friend list as shown: sorted ([`Model::friends_sorted`]) unless frozen; frozen,
    /// the lines keep their places, gone friends drop out and new ones go to the end.
    pub fn friends_in_list_order(&self) -> Vec<&Friend> {
        let sorted = self.friends_sorted();
        let Some(order) = &self.frozen_order else {
            return sorted;
        };
        let mut v: Vec<&Friend> = order.iter().filter_map(|k| self.friends.get(k)).collect();
        for f in sorted {
            if !order.contains(&key(&f.userid)) {
                v.push(f);
            }
        }
        v
    }

    /// The friend `delta` places below the selected one in the list (Ctrl+Down/Up), staying
    /// at the ends; with nothing selected, the first.
    pub fn neighbour(&self, delta: i32) -> Option<String> {
        let keys: Vec<String> = self
            .friends_in_list_order()
            .iter()
            .map(|f| key(&f.userid))
            .collect();
        let last = keys.len().checked_sub(1)?;
        let at = self
            .selected
            .as_ref()
            .and_then(|s| keys.iter().position(|k| k == s));
        let i = match at {
            None => 0,
            Some(i) => (i as i64 + i64::from(delta)).clamp(0, last as i64) as usize,
        };
        keys.get(i).cloned()
    }

    /// The n-th friend of the list (Ctrl+1..9), 0-based.
    pub fn nth_in_list(&self, n: usize) -> Option<String> {
        self.friends_in_list_order().get(n).map(|f| key(&f.userid))
    }

    /// Unread messages and files over all chats (the window title and the urgency hint).
    pub fn total_unread(&self) -> u32 {
        self.friends.values().map(|f| f.unread).sum()
    }

    /// The main window's title: the unread count first, so it shows in a task bar
    /// (issue #15 item 7).
    pub fn window_title(&self) -> String {
        let me = self.me.as_deref().unwrap_or("");
        match self.total_unread() {
            0 => format!("Peerchat — {me}"),
            n => format!("({n}) Peerchat — {me}"),
        }
    }

    /// The chat with `friend` (created empty).
    pub fn chat_mut(&mut self, friend: &str) -> &mut Chat {
        self.chats.entry(key(friend)).or_default()
    }

    /// The display spelling of a friend.
    pub fn display(&self, friend: &str) -> String {
        self.friends
            .get(&key(friend))
            .map_or_else(|| friend.to_owned(), |f| f.userid.clone())
    }

    /// Friends, online ones first, then by name.
    pub fn friends_sorted(&self) -> Vec<&Friend> {
        let on = self.server_online();
        let mut v: Vec<&Friend> = self.friends.values().collect();
        v.sort_by(|a, b| {
            let green = |f: &Friend| f.presence(on).is_green();
            green(b)
                .cmp(&green(a))
                .then_with(|| key(&a.userid).cmp(&key(&b.userid)))
        });
        v
    }

    /// Whether the server link is up.
    pub fn server_online(&self) -> bool {
        self.server == ServerState::Online
    }

    /// Shows the chat with `friend` (None: nothing selected); clears its unread count.
    pub fn select(&mut self, friend: Option<&str>) -> Changes {
        let mut c = Changes::default();
        self.selected = friend.map(key);
        if let Some(f) = self.selected.as_ref().and_then(|k| self.friends.get_mut(k)) {
            if f.unread > 0 {
                f.unread = 0;
                c.friends = true;
            }
        }
        c
    }

    /// The pending key change of `friend`, if any.
    pub fn key_change(&self, friend: &str) -> Option<&KeyChange> {
        self.friends
            .get(&key(friend))
            .and_then(|f| f.key_change.as_ref())
    }

    /// Every friend's pending key change, before an update.
    fn key_changes(&self) -> HashMap<String, Option<KeyChange>> {
        self.friends
            .iter()
            .map(|(k, f)| (k.clone(), f.key_change.clone()))
            .collect()
    }

    /// A pending key change that was not there `before` (a change still pending from the
    /// last run, or learned while we were away): asked about once, whichever of the login
    /// and the friend list (at start, from the cache) brings it first.
    fn new_key_change(&self, before: &HashMap<String, Option<KeyChange>>) -> Option<String> {
        self.friends
            .iter()
            .find(|(k, f)| {
                f.key_change.is_some() && before.get(*k).cloned().flatten() != f.key_change
            })
            .map(|(k, _)| k.clone())
    }

    /// Takes the pending key changes from friend views (a login or a refresh).
    fn set_key_changes(&mut self, views: &[peerchat_client::FriendView]) {
        for v in views {
            if let Some(f) = self.friends.get_mut(&key(&v.userid)) {
                f.key_change = v.presented_fingerprint.as_ref().map(|p| KeyChange {
                    pinned: v.fingerprint.clone(),
                    presented: p.clone(),
                });
            }
        }
    }

    fn set_friends(&mut self, friends: &[peerchat_client::FriendView]) {
        let old = std::mem::take(&mut self.friends);
        for v in friends {
            let (userid, online) = (v.userid.clone(), v.online);
            let k = key(&userid);
            let prev = old.get(&k);
            self.friends.insert(
                k,
                Friend {
                    userid,
                    online,
                    connected: prev.is_some_and(|p| p.connected),
                    path: prev.and_then(|p| p.path),
                    unread: prev.map_or(0, |p| p.unread),
                    typing: prev.is_some_and(|p| p.typing),
                    key_change: prev.and_then(|p| p.key_change.clone()),
                    fingerprint: v.fingerprint.clone(),
                    verified: prev.is_some_and(|p| p.verified),
                },
            );
        }
    }

    fn set_requests(
        &mut self,
        incoming: impl IntoIterator<Item = String>,
        outgoing: impl IntoIterator<Item = String>,
    ) {
        self.incoming = incoming.into_iter().collect();
        self.outgoing = outgoing.into_iter().collect();
    }

    /// Applies a snapshot of friends and requests.
    pub fn apply_snapshot(&mut self, s: &FriendsSnapshot) -> Changes {
        let before = self.key_changes();
        self.set_friends(&s.friends);
        self.set_key_changes(&s.friends);
        let ask = self.new_key_change(&before);
        self.set_requests(
            s.incoming_requests.iter().map(|r| r.userid.clone()),
            s.outgoing_requests.iter().map(|r| r.userid.clone()),
        );
        let mut c = Changes {
            friends: true,
            requests: true,
            ask_key_change: ask,
            ..Changes::default()
        };
        self.check_verified(&mut c);
        c
    }

    /// Merges stored history into a chat: messages and completed files (the `<File>` lines
    /// come back after a log-out or a restart too); lines already shown are kept once.
    pub fn apply_history(
        &mut self,
        friend: &str,
        entries: &[HistoryEntry],
        files: &[FileEntry],
    ) -> Changes {
        let me = self.me.clone().unwrap_or_else(|| "me".to_owned());
        let them = self.display(friend);
        let chat = self.chat_mut(friend);
        for f in files {
            if chat.has_file(&f.transfer_id) {
                continue;
            }
            let incoming = f.direction == Direction::Incoming.as_str();
            // Incoming files may have been renamed ("name (1).ext"): show the real name.
            let shown = if incoming {
                f.path
                    .file_name()
                    .map_or_else(|| f.name.clone(), |n| n.to_string_lossy().into_owned())
            } else {
                f.name.clone()
            };
            chat.push(Line::File {
                id: f.transfer_id.clone(),
                sender: if incoming { them.clone() } else { me.clone() },
                name: shown,
                path: f.path.clone(),
                at_ms: f.at_unix_ms,
            });
        }
        chat.history_loaded = true;
        for e in entries {
            if chat.has_message(&e.message_id) {
                continue;
            }
            let outgoing = e.direction == "out";
            let acked = e.acked || chat.early_acks.remove(&e.message_id);
            chat.push(Line::Message {
                id: e.message_id.clone(),
                outgoing,
                text: e.text.clone(),
                at_ms: e.sent_at_unix_ms,
                acked,
            });
        }
        let mut c = Changes::default();
        c.chat(&key(friend));
        c
    }

    /// Our message was stored and queued.
    pub fn apply_sent(&mut self, friend: &str, id: MessageId, text: &str, at_ms: u64) -> Changes {
        let chat = self.chat_mut(friend);
        let id = id.to_hex();
        if !chat.has_message(&id) {
            let acked = chat.early_acks.remove(&id);
            chat.push(Line::Message {
                id,
                outgoing: true,
                text: text.to_owned(),
                at_ms,
                acked,
            });
        }
        let mut c = Changes::default();
        c.chat(&key(friend));
        c
    }

    /// A notice line in a chat.
    pub fn add_notice(&mut self, friend: &str, text: String, at_ms: u64) -> Changes {
        self.chat_mut(friend).push(Line::Notice { text, at_ms });
        let mut c = Changes::default();
        c.chat(&key(friend));
        c
    }

    /// An outgoing file is being hashed.
    pub fn file_preparing(&mut self, friend: &str, path: PathBuf) -> Changes {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.chat_mut(friend).transfers.push(Transfer {
            id: None,
            direction: Direction::Outgoing,
            name,
            size: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            bytes: 0,
            rate: 0,
            state: TransferState::Preparing,
            path: Some(path),
            progress_at_ms: 0,
        });
        let mut c = Changes::default();
        c.transfer(&key(friend));
        c
    }

    /// An outgoing file was hashed and offered (`Some(id)`) or could not be (`None`).
    pub fn file_queued(
        &mut self,
        friend: &str,
        path: &std::path::Path,
        id: Option<TransferId>,
        failure: Option<String>,
    ) -> Changes {
        let chat = self.chat_mut(friend);
        if let Some(t) = chat
            .transfers
            .iter_mut()
            .find(|t| t.id.is_none() && t.path.as_deref() == Some(path))
        {
            match (id, failure) {
                (Some(id), _) => {
                    // A TransferStarted for this id may have come first; keep that row.
                    if let Some(i) = chat.transfers.iter().position(|x| x.id == Some(id)) {
                        chat.transfers.remove(i);
                    }
                    if let Some(t) = chat
                        .transfers
                        .iter_mut()
                        .find(|t| t.id.is_none() && t.path.as_deref() == Some(path))
                    {
                        t.id = Some(id);
                        t.state = TransferState::Waiting;
                    }
                }
                (None, reason) => {
                    t.state = TransferState::Stopped(reason.unwrap_or_else(|| "failed".to_owned()))
                }
            }
        }
        let mut c = Changes::default();
        c.transfer(&key(friend));
        c
    }

    /// Hides a finished transfer row.
    pub fn dismiss(&mut self, id: TransferId) -> Changes {
        let mut c = Changes::default();
        for (k, chat) in &mut self.chats {
            let before = chat.transfers.len();
            chat.transfers.retain(|t| t.id != Some(id));
            if chat.transfers.len() != before {
                c.transfer(k);
            }
        }
        c
    }

    /// Where the chat of `friend` is: for a `<File>` line, its folder.
    pub fn file_line(&self, friend: &str, index: usize) -> Option<&Line> {
        self.chats
            .get(&key(friend))
            .and_then(|c| c.lines.get(index))
            .filter(|l| matches!(l, Line::File { .. }))
    }

    /// Applies an event of the core.
    pub fn apply(&mut self, event: &Event, now_ms: u64) -> Changes {
        let mut c = Changes::default();
        match event {
            Event::ServerStatus { online, reason } => {
                self.server = match (&self.server, online) {
                    (_, true) => ServerState::Online,
                    // These say more than "offline": keep them.
                    (s @ (ServerState::KeyChanged(_) | ServerState::Replaced), false) => s.clone(),
                    (_, false) => ServerState::Offline(*reason),
                };
                c.status = true;
                c.friends = true; // the presence shown depends on the server link
            }
            Event::LoggedIn {
                userid,
                friends,
                incoming_requests,
                outgoing_requests,
            } => {
                self.me = Some(userid.clone());
                self.server = ServerState::Online;
                let before = self.key_changes();
                self.set_friends(friends);
                self.set_key_changes(friends);
                c.ask_key_change = self.new_key_change(&before);
                self.set_requests(
                    incoming_requests.iter().map(|r| r.userid.clone()),
                    outgoing_requests.iter().map(|r| r.userid.clone()),
                );
                c.friends = true;
                c.requests = true;
                c.status = true;
                c.logged_in = true;
            }
            Event::LoggedOut => {
                self.me = None;
                c.logged_out = true;
                c.status = true;
            }
            Event::FriendRequestReceived { from } => {
                if !self.incoming.iter().any(|u| key(u) == key(from)) {
                    self.incoming.push(from.clone());
                }
                c.requests = true;
                c.notice = Some(format!("{from} wants to be your friend."));
                c.notify = Some(Notification {
                    title: "Peerchat".to_owned(),
                    body: format!("{from} wants to be your friend."),
                });
            }
            Event::FriendAdded { friend } => {
                let k = key(&friend.userid);
                let prev = self.friends.remove(&k);
                self.friends.insert(
                    k.clone(),
                    Friend {
                        userid: friend.userid.clone(),
                        online: friend.online,
                        connected: prev.as_ref().is_some_and(|p| p.connected),
                        path: prev.as_ref().and_then(|p| p.path),
                        unread: prev.as_ref().map_or(0, |p| p.unread),
                        typing: false,
                        verified: prev.as_ref().is_some_and(|p| p.verified),
                        key_change: prev.and_then(|p| p.key_change),
                        fingerprint: friend.fingerprint.clone(),
                    },
                );
                self.incoming.retain(|u| key(u) != k);
                self.outgoing.retain(|u| key(u) != k);
                c.friends = true;
                c.requests = true;
                c.notice = Some(format!("{} is now your friend.", friend.userid));
            }
            Event::FriendRequestSent { userid } => {
                if !self.outgoing.iter().any(|u| key(u) == key(userid)) {
                    self.outgoing.push(userid.clone());
                }
                c.requests = true;
            }
            Event::FriendRequestAccepted { userid } => {
                self.outgoing.retain(|u| key(u) != key(userid));
                c.requests = true;
                c.notice = Some(format!("{userid} accepted your friend request."));
            }
            Event::FriendRequestAnswered { userid, .. } => {
                self.incoming.retain(|u| key(u) != key(userid));
                c.requests = true;
            }
            Event::FriendRequestRefused { userid } => {
                self.outgoing.retain(|u| key(u) != key(userid));
                c.requests = true;
                c.notice = Some(format!("{userid} did not accept your friend request."));
            }
            Event::FriendRequestExpired { userid } => {
                self.outgoing.retain(|u| key(u) != key(userid));
                c.requests = true;
                c.notice = Some(format!("Your friend request to {userid} expired."));
            }
            Event::FriendRemoved { userid } => {
                self.friends.remove(&key(userid));
                c.friends = true;
                c.notice = Some(format!("{userid} is no longer your friend."));
            }
            Event::Presence { friend, online, .. } => {
                if let Some(f) = self.friends.get_mut(&key(friend)) {
                    f.online = *online;
                    if !online {
                        f.typing = false;
                    }
                    c.friends = true;
                }
            }
            Event::PeerConnected { friend, .. } | Event::PeerDisconnected { friend, .. } => {
                if let Event::PeerDisconnected { reason, .. } = event {
                    c.notice = wording::peer_closed_notice(friend, *reason);
                    c.notice_is_error = c.notice.is_some();
                }
                let up = matches!(event, Event::PeerConnected { .. });
                let path = match event {
                    Event::PeerConnected { path, .. } => Some(*path),
                    _ => None,
                };
                if let Some(f) = self.friends.get_mut(&key(friend)) {
                    f.connected = up;
                    f.path = path;
                    if !up {
                        f.typing = false;
                    }
                    c.friends = true;
                }
                if !up {
                    // The link is gone: nothing flows any more, whatever the last speed was
                    // (the core's TransferSuspended says the same, with the offsets).
                    let k = key(friend);
                    if let Some(chat) = self.chats.get_mut(&k) {
                        for t in &mut chat.transfers {
                            if t.state == TransferState::Running {
                                t.state = TransferState::Suspended;
                                t.rate = 0;
                                c.transfers.insert(k.clone());
                            }
                        }
                    }
                }
            }
            Event::MessageReceived {
                friend,
                message_id,
                text,
                sent_at_unix_ms,
            } => {
                let k = key(friend);
                let chat = self.chat_mut(friend);
                let id = message_id.to_hex();
                if !chat.has_message(&id) {
                    chat.push(Line::Message {
                        id,
                        outgoing: false,
                        text: text.clone(),
                        at_ms: *sent_at_unix_ms,
                        acked: false,
                    });
                    c.chat(&k);
                    if self.unseen(&k) {
                        let mut body: String = text.chars().take(NOTIFY_CHARS).collect();
                        if text.chars().count() > NOTIFY_CHARS {
                            body.push('…');
                        }
                        c.notify = Some(Notification {
                            title: self.display(friend),
                            body,
                        });
                    }
                    if self.selected.as_deref() != Some(k.as_str()) {
                        if let Some(f) = self.friends.get_mut(&k) {
                            f.unread += 1;
                        }
                    }
                }
                if let Some(f) = self.friends.get_mut(&k) {
                    f.typing = false;
                }
                c.friends = true;
            }
            Event::MessageAcked { friend, message_id } => {
                let chat = self.chat_mut(friend);
                let id = message_id.to_hex();
                let mut found = false;
                for l in &mut chat.lines {
                    if let Line::Message { id: i, acked, .. } = l {
                        if *i == id {
                            *acked = true;
                            found = true;
                        }
                    }
                }
                if !found {
                    chat.early_acks.insert(id);
                }
                c.chat(&key(friend));
            }
            Event::Typing { friend, active } => {
                if let Some(f) = self.friends.get_mut(&key(friend)) {
                    f.typing = *active;
                    c.friends = true;
                    c.chat(&key(friend));
                }
            }
            Event::FileOffered {
                friend,
                transfer_id,
                name,
                size,
            } => {
                let t =
                    self.chat_mut(friend)
                        .upsert(*transfer_id, Direction::Incoming, name, *size);
                t.state = TransferState::NeedsDecision;
                let k = key(friend);
                c.transfer(&k);
                if self.unseen(&k) {
                    c.notify = Some(Notification {
                        title: self.display(friend),
                        body: format!("wants to send you {name} ({})", super::format::bytes(*size)),
                    });
                }
                if self.selected.as_deref() != Some(k.as_str()) {
                    if let Some(f) = self.friends.get_mut(&k) {
                        f.unread += 1;
                        c.friends = true;
                    }
                }
                c.notice = Some(format!("{friend} wants to send you {name}."));
            }
            Event::TransferStarted {
                friend,
                transfer_id,
                direction,
                name,
                size,
                offset,
            } => {
                let t = self
                    .chat_mut(friend)
                    .upsert(*transfer_id, *direction, name, *size);
                t.state = TransferState::Running;
                t.bytes = *offset;
                t.size = *size;
                t.rate = 0;
                t.progress_at_ms = now_ms;
                c.transfer(&key(friend));
            }
            Event::TransferSuspended {
                friend,
                transfer_id,
                direction,
                bytes,
            } => {
                if let Some(t) = self.chat_mut(friend).transfer_mut(*transfer_id) {
                    t.state = TransferState::Suspended;
                    // The sender does not know what arrived (it says 0): keep what it sent.
                    if *direction == Direction::Incoming || *bytes > 0 {
                        t.bytes = *bytes;
                    }
                    t.rate = 0;
                    c.transfer(&key(friend));
                }
            }
            Event::TransferProgress {
                friend,
                transfer_id,
                bytes,
                size,
                rate_bytes_per_sec,
                ..
            } => {
                if let Some(t) = self.chat_mut(friend).transfer_mut(*transfer_id) {
                    // A report that was on its way when the transfer ended must not bring
                    // a speed back (a suspended one reports again only once it resumed).
                    if matches!(
                        t.state,
                        TransferState::Waiting | TransferState::Running | TransferState::Suspended
                    ) {
                        t.bytes = *bytes;
                        t.size = *size;
                        t.rate = *rate_bytes_per_sec;
                        t.progress_at_ms = now_ms;
                        t.state = TransferState::Running;
                        c.transfer(&key(friend));
                    }
                }
            }
            Event::TransferComplete {
                friend,
                transfer_id,
                direction,
                path,
                size,
            } => {
                let sender = match direction {
                    Direction::Incoming => self.display(friend),
                    Direction::Outgoing => self.me.clone().unwrap_or_else(|| "me".to_owned()),
                };
                let path = PathBuf::from(path);
                let chat = self.chat_mut(friend);
                let name = chat.transfer_mut(*transfer_id).map(|t| t.name.clone());
                let name = name.unwrap_or_else(|| {
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                // Incoming files may have been renamed ("name (1).ext"): show the real name.
                let shown = match direction {
                    Direction::Incoming => path
                        .file_name()
                        .map_or(name.clone(), |n| n.to_string_lossy().into_owned()),
                    Direction::Outgoing => name.clone(),
                };
                let t = chat.upsert(*transfer_id, *direction, &name, *size);
                t.state = TransferState::Complete;
                t.rate = 0;
                t.bytes = *size;
                t.path = Some(path.clone());
                if !chat.has_file(&transfer_id.to_hex()) {
                    chat.push(Line::File {
                        id: transfer_id.to_hex(),
                        sender,
                        name: shown,
                        path,
                        at_ms: now_ms,
                    });
                }
                c.chat(&key(friend));
                c.transfer(&key(friend));
            }
            Event::TransferCancelled {
                friend,
                transfer_id,
                reason,
                ..
            } => {
                if let Some(t) = self.chat_mut(friend).transfer_mut(*transfer_id) {
                    t.state = TransferState::Stopped(wording::cancel_words(*reason));
                    t.rate = 0;
                    c.transfer(&key(friend));
                }
            }
            Event::FriendKeyChanged {
                friend,
                pinned,
                presented,
            } => {
                let k = key(friend);
                if self.verified.remove(&k).is_some() {
                    c.verified = true;
                }
                if let Some(f) = self.friends.get_mut(&k) {
                    f.key_change = Some(KeyChange {
                        pinned: pinned.clone(),
                        presented: presented.clone(),
                    });
                    f.connected = false;
                    f.path = None;
                    c.ask_key_change = Some(k.clone());
                }
                c.friends = true;
                c.chat(&k);
                c.notice = Some(format!(
                    "{friend}'s identity key changed: messages to {friend} are held until you accept the new key."
                ));
                c.notice_is_error = true;
                c.notify = Some(Notification {
                    title: format!("{friend}'s identity key changed"),
                    body: format!(
                        "Messages to {friend} are held until you compare and accept the new key."
                    ),
                });
            }
            Event::FriendKeyTrusted {
                friend,
                fingerprint,
                how,
            } => {
                let k = key(friend);
                if let Some(f) = self.friends.get_mut(&k) {
                    f.key_change = None;
                    f.fingerprint = fingerprint.clone();
                }
                c.friends = true;
                c.chat(&k);
                c.notice = Some(match how {
                    peerchat_client::KeyDecision::Accepted => format!(
                        "{friend}'s new key {} is trusted; held messages are sent.",
                        short_fingerprint(fingerprint)
                    ),
                    peerchat_client::KeyDecision::Reverted => format!(
                        "{friend}'s key is the one you trusted again; held messages are sent."
                    ),
                });
            }
            Event::LoginRetry {
                reason,
                retry_in_ms,
                ..
            } => {
                let why = match reason {
                    peerchat_client::LoginRetryReason::Locked => {
                        "Login locked after failed attempts"
                    }
                    peerchat_client::LoginRetryReason::Unreachable => "Server unreachable",
                    peerchat_client::LoginRetryReason::ServerError => "Login failed (server error)",
                };
                c.notice = Some(format!(
                    "{why}, retrying in {} s…",
                    retry_in_ms.div_ceil(1000)
                ));
                c.notice_is_error = true;
            }
            Event::ServerKeyChanged {
                pinned, presented, ..
            } => {
                self.server = ServerState::KeyChanged(KeyChange {
                    pinned: pinned.clone(),
                    presented: presented.clone(),
                });
                c.status = true;
                c.friends = true;
                c.server_key_changed = true;
                c.notify = Some(Notification {
                    title: "The server's identity key changed".to_owned(),
                    body: "Peerchat does not connect to it until you check the new key.".to_owned(),
                });
            }
            Event::SessionReplaced => {
                self.server = ServerState::Replaced;
                for f in self.friends.values_mut() {
                    f.connected = false;
                    f.path = None;
                }
                c.status = true;
                c.friends = true;
                c.notice = Some(
                    "Your account logged in on another device; this one is disconnected. Log in again to use it here."
                        .to_owned(),
                );
                c.notice_is_error = true;
            }
            Event::LoginRefused { code } => {
                c.notice = Some(wording::login_refused(*code));
                c.notice_is_error = true;
            }
            Event::PeerRefused { .. } => {}
            Event::Error { message } => {
                c.notice = Some(message.clone());
                c.notice_is_error = true;
            }
        }
        self.check_verified(&mut c);
        c
    }
}

/// `SHA256:` and the first 12 characters of the fingerprint, for a status line (dialogs show
/// the whole fingerprint).
pub fn short_fingerprint(fp: &str) -> String {
    match fp.char_indices().nth(19) {
        Some((i, _)) => format!("{}…", &fp[..i]),
        None => fp.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchat_client::{FriendView, RequestView};
    use peerchat_proto::wire::FileCancelReason;

    fn fv(u: &str, online: bool) -> FriendView {
        FriendView {
            userid: u.into(),
            online,
            address: None,
            fingerprint: String::new(),
            presented_fingerprint: None,
            candidates: Vec::new(),
            path: None,
        }
    }

    #[test]
    fn a_key_change_asks_once_shows_both_fingerprints_and_ends_on_trust() {
        let mut m = Model::new();
        logged_in(&mut m);
        let changed = Event::FriendKeyChanged {
            friend: "Bob".into(),
            pinned: "SHA256:old".into(),
            presented: "SHA256:new".into(),
        };
        let c = m.apply(&changed, 0);
        assert_eq!(c.ask_key_change.as_deref(), Some("bob"));
        assert!(c.chats.contains("bob"), "the banner is redrawn");
        assert_eq!(
            m.key_change("BOB"),
            Some(&KeyChange {
                pinned: "SHA256:old".into(),
                presented: "SHA256:new".into()
            })
        );
        // A login snapshot that still lists the change keeps it and does not ask again.
        let mut bob = fv("Bob", true);
        bob.fingerprint = "SHA256:old".into();
        bob.presented_fingerprint = Some("SHA256:new".into());
        let login = Event::LoggedIn {
            userid: "alice".into(),
            friends: vec![bob],
            incoming_requests: vec![],
            outgoing_requests: vec![],
        };
        assert_eq!(m.apply(&login, 0).ask_key_change, None);
        assert!(m.key_change("bob").is_some());
        let c = m.apply(
            &Event::FriendKeyTrusted {
                friend: "Bob".into(),
                fingerprint: "SHA256:new".into(),
                how: peerchat_client::KeyDecision::Accepted,
            },
            0,
        );
        assert!(c.chats.contains("bob"));
        assert!(m.key_change("bob").is_none());
        // After a restart the first word of the change is the login snapshot: ask then.
        let mut fresh = Model::new();
        assert_eq!(
            fresh.apply(&login, 0).ask_key_change.as_deref(),
            Some("bob")
        );
        assert_eq!(
            short_fingerprint("SHA256:0123456789abcdefghij"),
            "SHA256:0123456789ab…"
        );
    }

    fn logged_in(m: &mut Model) {
        m.apply(
            &Event::LoggedIn {
                userid: "alice".into(),
                friends: vec![fv("Bob", false), fv("carol", true)],
                incoming_requests: vec![RequestView {
                    userid: "dave".into(),
                    created_at_unix_ms: 0,
                    expires_at_unix_ms: 0,
                }],
                outgoing_requests: vec![],
            },
            0,
        );
    }

    #[test]
    fn presence_and_sorting() {
        let mut m = Model::new();
        logged_in(&mut m);
        assert_eq!(
            m.friends_sorted()
                .iter()
                .map(|f| f.userid.as_str())
                .collect::<Vec<_>>(),
            ["carol", "Bob"]
        );
        let c = m.apply(
            &Event::Presence {
                friend: "bob".into(),
                online: true,
                address: None,
            },
            0,
        );
        assert!(c.friends);
        assert!(m.friends["bob"].online);
        assert_eq!(m.incoming, ["dave"]);
        m.apply(
            &Event::FriendAdded {
                friend: fv("dave", true),
            },
            0,
        );
        assert!(m.incoming.is_empty());
        assert!(m.friends["dave"].online);
    }

    #[test]
    fn the_header_and_the_list_say_how_a_friend_is_connected() {
        use peerchat_client::LinkPath;
        let mut m = Model::new();
        logged_in(&mut m);
        let carol = |m: &Model| m.friends["carol"].clone();
        assert_eq!(carol(&m).header_words(true), "● online");
        assert_eq!(carol(&m).path_words(), None);
        for (path, header, hint) in [
            (LinkPath::Direct, "● online · connected directly", "direct"),
            (
                LinkPath::Reversed,
                "● online · connected directly (reversed)",
                "reversed",
            ),
            (
                LinkPath::Punched,
                "● online · connected directly (hole-punched)",
                "punched",
            ),
            (
                LinkPath::Relayed,
                "● online · relayed, end-to-end encrypted",
                "relayed",
            ),
        ] {
            m.apply(
                &Event::PeerConnected {
                    friend: "carol".into(),
                    path,
                    attempt: None,
                },
                0,
            );
            assert_eq!(carol(&m).header_words(true), header);
            assert_eq!(carol(&m).path_words(), Some(hint));
        }
        // The server goes away: the (relayed) link is all we know of.
        assert_eq!(
            carol(&m).header_words(false),
            "● relayed, end-to-end encrypted"
        );
        m.apply(
            &Event::PeerDisconnected {
                friend: "carol".into(),
                reason: peerchat_client::PeerCloseReason::Lost,
            },
            0,
        );
        assert_eq!(carol(&m).path_words(), None);
        assert_eq!(carol(&m).header_words(true), "● online");
    }

    #[test]
    fn presence_while_the_server_is_down_counts_only_direct_links() {
        let mut m = Model::new();
        logged_in(&mut m);
        m.apply(
            &Event::PeerConnected {
                friend: "bob".into(),
                path: peerchat_client::LinkPath::Relayed,
                attempt: None,
            },
            0,
        );
        assert_eq!(
            m.friends["carol"].presence(m.server_online()),
            Presence::Online
        );
        assert_eq!(
            m.friends["bob"].presence(m.server_online()),
            Presence::Direct
        );
        m.apply(
            &Event::ServerStatus {
                online: false,
                reason: Some(OfflineReason::Unreachable),
            },
            0,
        );
        assert_eq!(
            m.friends["carol"].presence(m.server_online()),
            Presence::Unknown
        );
        assert!(!Presence::Unknown.is_green());
        assert_eq!(m.friends_sorted()[0].userid, "Bob");
    }

    #[test]
    fn unread_counts_only_for_hidden_chats() {
        let mut m = Model::new();
        logged_in(&mut m);
        m.select(Some("carol"));
        let msg = |f: &str, b: u8| Event::MessageReceived {
            friend: f.into(),
            message_id: MessageId([b; 16]),
            text: "hi".into(),
            sent_at_unix_ms: 1,
        };
        m.apply(&msg("bob", 1), 0);
        m.apply(&msg("bob", 2), 0);
        m.apply(&msg("bob", 2), 0); // duplicate: shown once
        m.apply(&msg("carol", 3), 0);
        assert_eq!(m.friends["bob"].unread, 2);
        assert_eq!(m.friends["carol"].unread, 0);
        assert_eq!(m.chats["bob"].lines.len(), 2);
        m.select(Some("Bob"));
        assert_eq!(m.friends["bob"].unread, 0);
    }

    #[test]
    fn ack_before_send_confirmation_still_ticks() {
        let mut m = Model::new();
        logged_in(&mut m);
        let id = MessageId([7; 16]);
        m.apply(
            &Event::MessageAcked {
                friend: "bob".into(),
                message_id: id,
            },
            0,
        );
        m.apply_sent("bob", id, "hello", 5);
        assert!(matches!(
            &m.chats["bob"].lines[0],
            Line::Message {
                acked: true,
                outgoing: true,
                ..
            }
        ));
        // History merged later does not duplicate it.
        let e = HistoryEntry {
            message_id: id.to_hex(),
            direction: "out".into(),
            text: "hello".into(),
            sent_at_unix_ms: 5,
            acked: true,
        };
        m.apply_history("bob", &[e], &[]);
        assert_eq!(m.chats["bob"].lines.len(), 1);
    }

    #[test]
    fn a_suspended_transfer_shows_suspended_and_resumes_running() {
        let mut m = Model::new();
        logged_in(&mut m);
        let id = TransferId([8; 16]);
        let started = |offset| Event::TransferStarted {
            friend: "bob".into(),
            transfer_id: id,
            direction: Direction::Incoming,
            name: "a.bin".into(),
            size: 100,
            offset,
        };
        m.apply(&started(0), 0);
        m.apply(
            &Event::TransferSuspended {
                friend: "bob".into(),
                transfer_id: id,
                direction: Direction::Incoming,
                bytes: 40,
            },
            0,
        );
        let t = &m.chats["bob"].transfers[0];
        assert_eq!((t.state.clone(), t.bytes), (TransferState::Suspended, 40));
        m.apply(&started(40), 0);
        assert_eq!(m.chats["bob"].transfers[0].state, TransferState::Running);
    }

    #[test]
    fn completed_file_adds_the_original_line() {
        let mut m = Model::new();
        logged_in(&mut m);
        let id = TransferId([9; 16]);
        m.apply(
            &Event::TransferStarted {
                friend: "bob".into(),
                transfer_id: id,
                direction: Direction::Incoming,
                name: "a.txt".into(),
                size: 3,
                offset: 0,
            },
            0,
        );
        m.apply(
            &Event::TransferProgress {
                friend: "bob".into(),
                transfer_id: id,
                direction: Direction::Incoming,
                bytes: 1,
                size: 3,
                rate_bytes_per_sec: 10,
            },
            0,
        );
        assert_eq!(m.chats["bob"].transfers[0].bytes, 1);
        m.apply(
            &Event::TransferComplete {
                friend: "bob".into(),
                transfer_id: id,
                direction: Direction::Incoming,
                path: "/d/bob/a (1).txt".into(),
                size: 3,
            },
            7,
        );
        let chat = &m.chats["bob"];
        assert_eq!(chat.transfers[0].state, TransferState::Complete);
        assert!(
            matches!(&chat.lines[0], Line::File { sender, name, .. } if sender == "Bob" && name == "a (1).txt")
        );
        assert!(m.file_line("bob", 0).is_some());
        m.dismiss(id);
        assert!(m.chats["bob"].transfers.is_empty());
    }

    #[test]
    fn preparing_row_becomes_the_transfer() {
        let mut m = Model::new();
        logged_in(&mut m);
        let p = PathBuf::from("/nonexistent/x.bin");
        m.file_preparing("bob", p.clone());
        assert_eq!(m.chats["bob"].transfers[0].state, TransferState::Preparing);
        let id = TransferId([1; 16]);
        m.file_queued("bob", &p, Some(id), None);
        assert_eq!(m.chats["bob"].transfers[0].id, Some(id));
        m.apply(
            &Event::TransferCancelled {
                friend: "bob".into(),
                transfer_id: id,
                direction: Direction::Outgoing,
                reason: FileCancelReason::Declined,
                message: String::new(),
            },
            0,
        );
        assert_eq!(
            m.chats["bob"].transfers[0].state,
            TransferState::Stopped("declined".into())
        );
    }

    #[test]
    fn file_lines_come_back_from_stored_history_once() {
        // Issue #15 item 1: after a log-out/in or a restart the chat is rebuilt from the
        // store, and the `<File>` lines must be part of it, in time order with the messages.
        let mut m = Model::new();
        logged_in(&mut m);
        let msg = |id: &str, at: u64| HistoryEntry {
            message_id: id.into(),
            direction: "in".into(),
            text: "hi".into(),
            sent_at_unix_ms: at,
            acked: false,
        };
        let file = FileEntry {
            transfer_id: TransferId([4; 16]).to_hex(),
            direction: "in".into(),
            name: "a.txt".into(),
            path: PathBuf::from("/dl/Bob/a (1).txt"),
            size: 3,
            at_unix_ms: 20,
        };
        let sent = FileEntry {
            transfer_id: TransferId([5; 16]).to_hex(),
            direction: "out".into(),
            name: "b.png".into(),
            path: PathBuf::from("/home/a/b.png"),
            size: 3,
            at_unix_ms: 40,
        };
        m.apply_history(
            "bob",
            &[msg("01", 10), msg("02", 30)],
            &[file.clone(), sent.clone()],
        );
        let kinds: Vec<String> = m.chats["bob"]
            .lines
            .iter()
            .map(|l| match l {
                Line::Message { id, .. } => id.clone(),
                Line::File { sender, name, .. } => format!("{sender}:{name}"),
                Line::Notice { text, .. } => text.clone(),
            })
            .collect();
        assert_eq!(kinds, ["01", "Bob:a (1).txt", "02", "alice:b.png"]);
        // Loading again, or the live completion of the same transfer, adds nothing.
        m.apply_history("bob", &[msg("01", 10)], &[file]);
        m.apply(
            &Event::TransferComplete {
                friend: "bob".into(),
                transfer_id: TransferId([5; 16]),
                direction: Direction::Outgoing,
                path: "/home/a/b.png".into(),
                size: 3,
            },
            99,
        );
        assert_eq!(m.chats["bob"].lines.len(), 4);
    }

    #[test]
    fn the_list_keeps_its_order_while_the_pointer_is_over_it() {
        // Issue #15 item 10: carol comes online while the user aims at Bob.
        let mut m = Model::new();
        logged_in(&mut m);
        let order = |m: &Model| -> Vec<String> {
            m.friends_in_list_order()
                .iter()
                .map(|f| f.userid.clone())
                .collect()
        };
        assert_eq!(order(&m), ["carol", "Bob"]);
        m.freeze_list(Some(vec!["carol".into(), "bob".into()]));
        m.apply(
            &Event::Presence {
                friend: "Bob".into(),
                online: true,
                address: None,
            },
            0,
        );
        m.apply(
            &Event::Presence {
                friend: "carol".into(),
                online: false,
                address: None,
            },
            0,
        );
        assert_eq!(order(&m), ["carol", "Bob"], "frozen while hovered");
        m.apply(
            &Event::FriendAdded {
                friend: fv("Abe", true),
            },
            0,
        );
        assert_eq!(order(&m), ["carol", "Bob", "Abe"], "new friends at the end");
        let c = m.freeze_list(None);
        assert!(c.friends, "leaving the list redraws it");
        assert_eq!(order(&m), ["Abe", "Bob", "carol"]);
    }

    #[test]
    fn unread_messages_and_files_count_in_the_title() {
        // Issue #15 item 7: the title carries the unread count; an offered file counts.
        let mut m = Model::new();
        logged_in(&mut m);
        assert_eq!(m.window_title(), "Peerchat — alice");
        m.apply(
            &Event::FileOffered {
                friend: "bob".into(),
                transfer_id: TransferId([3; 16]),
                name: "x.bin".into(),
                size: 1,
            },
            0,
        );
        m.apply(
            &Event::MessageReceived {
                friend: "carol".into(),
                message_id: MessageId([1; 16]),
                text: "hi".into(),
                sent_at_unix_ms: 0,
            },
            0,
        );
        assert_eq!(m.total_unread(), 2);
        assert_eq!(m.window_title(), "(2) Peerchat — alice");
        m.select(Some("Bob"));
        assert_eq!(m.window_title(), "(1) Peerchat — alice");
    }

    #[test]
    fn keyboard_moves_through_the_list_as_shown() {
        let mut m = Model::new();
        logged_in(&mut m); // list: carol (online), Bob
        assert_eq!(
            m.neighbour(1).as_deref(),
            Some("carol"),
            "nothing selected: first"
        );
        m.select(Some("carol"));
        assert_eq!(m.neighbour(1).as_deref(), Some("bob"));
        assert_eq!(
            m.neighbour(-1).as_deref(),
            Some("carol"),
            "stays at the top"
        );
        m.select(Some("bob"));
        assert_eq!(
            m.neighbour(5).as_deref(),
            Some("bob"),
            "stays at the bottom"
        );
        assert_eq!(m.nth_in_list(0).as_deref(), Some("carol"));
        assert_eq!(m.nth_in_list(2), None);
    }

    #[test]
    fn notifications_for_what_the_user_does_not_see() {
        // Issue #15 item 7: a message in another chat, or any chat while the window is in
        // the background, and an offered file, are notified; the chat in front is not.
        let mut m = Model::new();
        logged_in(&mut m);
        m.select(Some("bob"));
        let msg = |n: u8, friend: &str| Event::MessageReceived {
            friend: friend.into(),
            message_id: MessageId([n; 16]),
            text: "x".repeat(200),
            sent_at_unix_ms: 0,
        };
        assert_eq!(m.apply(&msg(1, "bob"), 0).notify, None, "shown chat");
        let n = m.apply(&msg(2, "carol"), 0).notify;
        assert_eq!(n.as_ref().map(|n| n.title.as_str()), Some("carol"));
        assert_eq!(n.map(|n| n.body.chars().count()), Some(NOTIFY_CHARS + 1));
        m.window_active = false;
        assert!(m.apply(&msg(3, "bob"), 0).notify.is_some(), "window behind");
        assert_eq!(
            m.friends["bob"].unread, 0,
            "but the shown chat has no unread"
        );
        let n = m.apply(
            &Event::FileOffered {
                friend: "bob".into(),
                transfer_id: TransferId([3; 16]),
                name: "x.bin".into(),
                size: 1500,
            },
            0,
        );
        assert_eq!(
            n.notify.map(|n| n.body),
            Some("wants to send you x.bin (1.5 KB)".to_owned())
        );
    }

    #[test]
    fn a_changed_server_key_is_never_shown_as_unreachable() {
        // Issue #15 item 5: a typed event, no matching on message text.
        let mut m = Model::new();
        logged_in(&mut m);
        let c = m.apply(
            &Event::ServerKeyChanged {
                server: "s:1".into(),
                pinned: "SHA256:old".into(),
                presented: "SHA256:new".into(),
            },
            0,
        );
        assert!(c.server_key_changed && c.notify.is_some());
        m.apply(
            &Event::ServerStatus {
                online: false,
                reason: Some(OfflineReason::KeyChanged),
            },
            0,
        );
        assert!(matches!(&m.server, ServerState::KeyChanged(k) if k.presented == "SHA256:new"));
        m.apply(
            &Event::ServerStatus {
                online: true,
                reason: None,
            },
            0,
        );
        assert_eq!(m.server, ServerState::Online);
    }

    #[test]
    fn a_replaced_session_drops_the_links_and_says_so() {
        let mut m = Model::new();
        logged_in(&mut m);
        m.apply(
            &Event::PeerConnected {
                friend: "bob".into(),
                path: peerchat_client::LinkPath::Direct,
                attempt: None,
            },
            0,
        );
        let c = m.apply(&Event::SessionReplaced, 0);
        assert!(c.notice.is_some_and(|n| n.contains("another device")));
        assert_eq!(m.server, ServerState::Replaced);
        assert!(!m.friends["bob"].connected);
        assert_eq!(
            m.friends["bob"].presence(m.server_online()),
            Presence::Unknown
        );
    }

    fn with_fingerprint(u: &str, fp: &str) -> FriendView {
        FriendView {
            fingerprint: fp.into(),
            ..fv(u, true)
        }
    }

    fn log_in_with(m: &mut Model, friends: Vec<FriendView>) -> Changes {
        m.apply(
            &Event::LoggedIn {
                userid: "alice".into(),
                friends,
                incoming_requests: vec![],
                outgoing_requests: vec![],
            },
            0,
        )
    }

    #[test]
    fn verified_is_the_key_the_user_compared_and_survives_a_restart() {
        let mut m = Model::new();
        log_in_with(&mut m, vec![with_fingerprint("Bob", "SHA256:one")]);
        assert!(!m.friends["bob"].verified);
        let c = m
            .set_verified("bob", true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.verified && c.friends, "saved and redrawn");
        assert!(m.friends["bob"].verified);
        assert_eq!(
            m.verified_marks().get("bob").map(String::as_str),
            Some("SHA256:one")
        );
        assert!(m.set_verified("nobody", true).is_err());

        // A restart: the saved marks come back before the friends do.
        let saved = m.verified_marks().clone();
        let mut again = Model::new();
        again.load_verified(saved);
        log_in_with(&mut again, vec![with_fingerprint("bob", "SHA256:one")]);
        assert!(again.friends["bob"].verified);
        // Taking the mark away.
        let c = again
            .set_verified("Bob", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.verified && !again.friends["bob"].verified);
        assert!(again.verified_marks().is_empty());
    }

    #[test]
    fn a_key_change_never_keeps_verified() {
        let mut m = Model::new();
        log_in_with(&mut m, vec![with_fingerprint("bob", "SHA256:one")]);
        let _ = m.set_verified("bob", true);
        let c = m.apply(
            &Event::FriendKeyChanged {
                friend: "bob".into(),
                pinned: "SHA256:one".into(),
                presented: "SHA256:two".into(),
            },
            0,
        );
        assert!(c.verified, "the dropped mark is saved");
        assert!(!m.friends["bob"].verified);
        assert!(m.verified_marks().is_empty());
        assert!(
            m.set_verified("bob", true).is_err(),
            "no mark while the change is pending"
        );
        // Accepting the new key does not make it verified: that takes a new comparison.
        m.apply(
            &Event::FriendKeyTrusted {
                friend: "bob".into(),
                fingerprint: "SHA256:two".into(),
                how: peerchat_client::KeyDecision::Accepted,
            },
            0,
        );
        assert!(!m.friends["bob"].verified);
        assert_eq!(m.friends["bob"].fingerprint, "SHA256:two");
        assert!(m.set_verified("bob", true).is_ok());
        assert!(m.friends["bob"].verified);

        // A mark saved for an older key (the pin moved while the app was closed) is dropped
        // at the next login.
        let mut later = Model::new();
        later.load_verified([("bob".to_owned(), "SHA256:one".to_owned())].into());
        let c = log_in_with(&mut later, vec![with_fingerprint("bob", "SHA256:two")]);
        assert!(c.verified);
        assert!(!later.friends["bob"].verified);
        assert!(later.verified_marks().is_empty());
        // A pending change at login: not verified either.
        let mut pending = Model::new();
        pending.load_verified([("bob".to_owned(), "SHA256:two".to_owned())].into());
        log_in_with(
            &mut pending,
            vec![FriendView {
                presented_fingerprint: Some("SHA256:three".into()),
                ..with_fingerprint("bob", "SHA256:two")
            }],
        );
        assert!(!pending.friends["bob"].verified);
    }

    #[test]
    fn a_stopped_or_suspended_transfer_shows_no_speed() {
        let mut m = Model::new();
        logged_in(&mut m);
        let id = TransferId([9; 16]);
        let out = |m: &mut Model, e: Event, at: u64| {
            m.apply(&e, at);
            m.chats["bob"].transfers[0].clone()
        };
        let progress = |bytes| Event::TransferProgress {
            friend: "bob".into(),
            transfer_id: id,
            direction: Direction::Outgoing,
            bytes,
            size: 10_000_000,
            rate_bytes_per_sec: 1_000_000,
        };
        out(
            &mut m,
            Event::TransferStarted {
                friend: "bob".into(),
                transfer_id: id,
                direction: Direction::Outgoing,
                name: "big.iso".into(),
                size: 10_000_000,
                offset: 0,
            },
            1_000,
        );
        let t = out(&mut m, progress(4_000_000), 2_000);
        assert_eq!(t.speed(2_500), Some((1_000_000, Some(6))));
        assert_eq!(
            t.running_words(2_500, false),
            "4.0 MB of 10 MB · 1.0 MB/s · 6 s left"
        );
        // No report for a while (the receiver died without a word): no old speed.
        assert_eq!(t.speed(2_000 + STALLED_AFTER_MS + 1), None);
        assert!(t
            .running_words(2_000 + STALLED_AFTER_MS + 1, true)
            .contains("stalled"));

        // Suspended: the sender's event says 0 bytes; the row keeps what was sent.
        let t = out(
            &mut m,
            Event::TransferSuspended {
                friend: "bob".into(),
                transfer_id: id,
                direction: Direction::Outgoing,
                bytes: 0,
            },
            3_000,
        );
        assert_eq!(
            (t.state.clone(), t.bytes, t.rate),
            (TransferState::Suspended, 4_000_000, 0)
        );
        assert_eq!(t.speed(3_000), None);
        // Resumed, then the link drops without a TransferSuspended yet.
        out(&mut m, progress(5_000_000), 4_000);
        let t = out(
            &mut m,
            Event::PeerDisconnected {
                friend: "bob".into(),
                reason: peerchat_client::PeerCloseReason::Lost,
            },
            4_100,
        );
        assert_eq!(t.state, TransferState::Suspended);
        assert_eq!(t.speed(4_100), None);
        // Cancelled: a report that was still on its way brings no speed back.
        out(&mut m, progress(6_000_000), 5_000);
        let t = out(
            &mut m,
            Event::TransferCancelled {
                friend: "bob".into(),
                transfer_id: id,
                direction: Direction::Outgoing,
                reason: FileCancelReason::Cancelled,
                message: String::new(),
            },
            5_100,
        );
        let late = out(&mut m, progress(7_000_000), 5_200);
        assert_eq!(late, t);
        assert_eq!(t.state, TransferState::Stopped("cancelled".into()));
        assert_eq!((t.rate, t.speed(5_200)), (0, None));
    }

    #[test]
    fn a_pending_key_change_is_asked_at_start_whichever_comes_first() {
        let pending = FriendView {
            presented_fingerprint: Some("SHA256:new".into()),
            ..with_fingerprint("carol", "SHA256:old")
        };
        let snapshot = FriendsSnapshot {
            friends: vec![pending.clone()],
            incoming_requests: vec![],
            outgoing_requests: vec![],
        };
        // The cached friend list first (a remembered account), then the login.
        let mut m = Model::new();
        assert_eq!(
            m.apply_snapshot(&snapshot).ask_key_change.as_deref(),
            Some("carol")
        );
        assert_eq!(
            log_in_with(&mut m, vec![pending.clone()]).ask_key_change,
            None
        );
        assert_eq!(
            m.apply_snapshot(&snapshot).ask_key_change,
            None,
            "asked once"
        );
        // The login first.
        let mut m = Model::new();
        assert_eq!(
            log_in_with(&mut m, vec![pending]).ask_key_change.as_deref(),
            Some("carol")
        );
        assert_eq!(m.apply_snapshot(&snapshot).ask_key_change, None);
    }

    // ----- typed reasons in words (issue #13 item 4) -------------------------------------

    #[test]
    fn each_offline_reason_has_its_own_status_words() {
        use peerchat_proto::wire::{CloseReason, ErrorCode};
        let cases = [
            (
                OfflineReason::Unreachable,
                "● Server unreachable — direct chats still work. Retrying…",
            ),
            (
                OfflineReason::Lost,
                "● Connection to the server lost — direct chats still work. Retrying…",
            ),
            (
                OfflineReason::Silent,
                "● The server stopped answering — direct chats still work. Retrying…",
            ),
            (
                OfflineReason::ServerClosed(CloseReason::ServerShutdown),
                "● The server is shutting down — direct chats still work. Retrying…",
            ),
            (
                OfflineReason::ServerClosed(CloseReason::TooManyConnections),
                "● The server closed the connection (too_many_connections) — direct chats still work. Retrying…",
            ),
            (
                OfflineReason::ProtocolError,
                "● The server sent something this app cannot read — direct chats still work. Retrying…",
            ),
            (OfflineReason::PinFile, "● The list of known servers cannot be read — not connecting. Direct chats still work."),
            (OfflineReason::LoggedOut, "● Logged out."),
        ];
        for (reason, words) in cases {
            let mut m = Model::new();
            logged_in(&mut m);
            let c = m.apply(
                &Event::ServerStatus {
                    online: false,
                    reason: Some(reason),
                },
                0,
            );
            assert!(c.status);
            assert_eq!(m.server, ServerState::Offline(Some(reason)));
            let ServerState::Offline(r) = m.server else {
                unreachable!()
            };
            assert_eq!(wording::offline_status(r), words, "{reason:?}");
        }
        // A refusal names the code and sends the user to the password.
        let refused = wording::offline_status(Some(OfflineReason::Refused(ErrorCode::Internal)));
        assert!(
            refused.contains("(internal)") && refused.contains("password"),
            "{refused}"
        );
        assert_eq!(
            wording::offline_status(None),
            wording::offline_status(Some(OfflineReason::Unreachable))
        );
    }

    #[test]
    fn a_refused_automatic_login_is_an_error_naming_the_password() {
        use peerchat_proto::wire::ErrorCode;
        let mut m = Model::new();
        logged_in(&mut m);
        let c = m.apply(
            &Event::LoginRefused {
                code: ErrorCode::BadCredentials,
            },
            0,
        );
        assert!(c.notice_is_error);
        let n = c.notice.unwrap_or_default();
        assert!(
            n.starts_with("Please log in with your password") && n.contains("this device's key"),
            "{n}"
        );
        let other = wording::login_refused(ErrorCode::UserNotFound);
        assert!(other.contains("(user_not_found)"), "{other}");
        // A retried refusal keeps its own words, by reason.
        let c = m.apply(
            &Event::LoginRetry {
                reason: peerchat_client::LoginRetryReason::Locked,
                code: Some(ErrorCode::RateLimited),
                retry_in_ms: 2_500,
                attempt: 1,
            },
            0,
        );
        assert_eq!(
            c.notice.as_deref(),
            Some("Login locked after failed attempts, retrying in 3 s…")
        );
    }

    #[test]
    fn only_peer_closes_worth_acting_on_make_a_notice() {
        use peerchat_client::PeerCloseReason as P;
        use peerchat_proto::wire::CloseReason as C;
        let notice = |reason: P| {
            let mut m = Model::new();
            logged_in(&mut m);
            let c = m.apply(
                &Event::PeerDisconnected {
                    friend: "Bob".into(),
                    reason,
                },
                0,
            );
            assert_eq!(c.notice_is_error, c.notice.is_some());
            c.notice
        };
        for quiet in [
            P::Lost,
            P::IoError,
            P::IdleTimeout,
            P::Replaced,
            P::LoggedOut,
            P::NotAFriend,
            P::Friend(C::Normal),
            P::Friend(C::IdleTimeout),
            P::Friend(C::DuplicateConnection),
            P::Local(C::Unspecified),
        ] {
            assert_eq!(notice(quiet), None, "{quiet:?}");
        }
        assert_eq!(
            notice(P::Friend(C::NotAFriend)).as_deref(),
            Some(
                "Bob's app refused the connection: it does not know you as a friend (or your key)."
            )
        );
        assert_eq!(
            notice(P::Friend(C::ProtocolError)).as_deref(),
            Some(
                "Bob's app closed the connection (protocol_error); messages wait for the next one."
            )
        );
        assert_eq!(
            notice(P::Local(C::SlowConsumer)).as_deref(),
            Some("The connection to Bob was closed: their app does not read what we send.")
        );
        assert_eq!(
            notice(P::Local(C::RateLimited)).as_deref(),
            Some("The connection to Bob was closed: their app sent too much too fast.")
        );
        assert_eq!(
            notice(P::Local(C::MalformedFrame)).as_deref(),
            Some(
                "The connection to Bob was closed: their app broke the protocol (malformed_frame)."
            )
        );
    }

    #[test]
    fn each_cancel_reason_reads_as_words() {
        let cases = [
            (FileCancelReason::Cancelled, "cancelled"),
            (FileCancelReason::Unspecified, "cancelled"),
            (FileCancelReason::Declined, "declined"),
            (
                FileCancelReason::HashMismatch,
                "failed: the file arrived damaged",
            ),
            (FileCancelReason::IoError, "failed: disk error"),
            (FileCancelReason::Invalid, "failed"),
            (FileCancelReason::UnknownTransfer, "failed"),
            (
                FileCancelReason::TooManyOffers,
                "refused: too many unfinished files at once",
            ),
            (
                FileCancelReason::TooLarge,
                "refused: too large for the free disk space",
            ),
            (FileCancelReason::NoData, "stopped: no data arrived"),
        ];
        for (reason, words) in cases {
            let mut m = Model::new();
            logged_in(&mut m);
            let p = PathBuf::from("/nonexistent/x.bin");
            let id = TransferId([3; 16]);
            m.file_preparing("bob", p.clone());
            m.file_queued("bob", &p, Some(id), None);
            m.apply(
                &Event::TransferCancelled {
                    friend: "bob".into(),
                    transfer_id: id,
                    direction: Direction::Outgoing,
                    reason,
                    message: "R51".into(),
                },
                0,
            );
            assert_eq!(
                m.chats["bob"].transfers[0].state,
                TransferState::Stopped(words.into()),
                "{reason:?}"
            );
        }
        assert_eq!(
            wording::cancel_words(FileCancelReason::IoError),
            "failed: disk error"
        );
    }

    #[test]
    fn request_events_keep_the_request_lists() {
        let mut m = Model::new();
        logged_in(&mut m);
        let c = m.apply(
            &Event::FriendRequestSent {
                userid: "erin".into(),
            },
            0,
        );
        assert!(c.requests);
        m.apply(
            &Event::FriendRequestSent {
                userid: "Erin".into(),
            },
            0,
        );
        assert_eq!(m.outgoing, vec!["erin".to_owned()], "listed once");
        let c = m.apply(
            &Event::FriendRequestAccepted {
                userid: "erin".into(),
            },
            0,
        );
        assert!(m.outgoing.is_empty());
        assert_eq!(
            c.notice.as_deref(),
            Some("erin accepted your friend request.")
        );
        assert_eq!(m.incoming, vec!["dave".to_owned()]);
        let c = m.apply(
            &Event::FriendRequestAnswered {
                userid: "Dave".into(),
                answer: peerchat_client::RequestAnswer::Refused,
            },
            0,
        );
        assert!(c.requests && m.incoming.is_empty());
    }
}
