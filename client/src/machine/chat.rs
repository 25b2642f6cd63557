//! SPEC.md §8.1–§8.2 and Table C (§8.5.2) in the machine: the outbox (written while the
//! message is sent, delivered only once written, C21 and C8; re-sent in order on every link
//! that reaches OPEN, C20), the inbox (stored durably before the ack, C1; acked again but
//! not shown for a known id, C2; no ack when storing fails, C7), acks (C8–C10) and typing
//! (C11–C13, C24).

use std::collections::HashSet;
use std::time::Instant;

use peerchat_proto::message::{ChatFrame, PeerFrame};

use super::{key, Action, ClientMachine, CommandError, LinkId, PersistOp};
use crate::chat::by_friend::ByFriend;
use crate::chat::inbox::Inbox;
use crate::chat::outbox::Outbox;
use crate::chat::typing::TypingTracker;
use crate::events::Event;
use crate::ids::MessageId;

/// Chat state of every friend.
#[derive(Debug, Default)]
pub(crate) struct Chat {
    outbox: Outbox,
    inbox: Inbox,
    /// Received messages waiting for their `StoreIncoming` result.
    storing: ByFriend<ChatFrame>,
    /// Our messages whose `AppendOutbox` result has not come back: maybe sent already, but
    /// not delivered until it does (§8.1 r2–r3); `true` once the friend's ack came first.
    unstored: ByFriend<bool>,
    typing: TypingTracker,
    typing_shown: HashSet<String>,
}

impl Chat {
    pub(crate) fn pending(&self, k: &str) -> usize {
        self.outbox.pending(k)
    }

    pub(crate) fn friends_with_pending(&self) -> Vec<String> {
        self.outbox.friends_with_pending()
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.typing.next_expiry()
    }

    pub(crate) fn forget(&mut self, k: &str) {
        self.outbox.forget(k);
        self.typing_shown.remove(k);
    }

    /// A message loaded from the durable outbox at start-up (in order).
    pub(crate) fn restore(&mut self, k: &str, frame: ChatFrame) {
        self.outbox.restore(k, frame);
    }
}

impl ClientMachine {
    /// Restores an unacknowledged message of an earlier run (in outbox order): it goes out
    /// on the next link with the friend (audit D6).
    pub fn restore_outbox(&mut self, friend: &str, frame: ChatFrame) {
        self.chat.restore(&key(friend), frame);
    }

    /// Records that a message id from `friend` is stored (from an earlier run).
    pub fn restore_inbox(&mut self, friend: &str, id: MessageId) {
        self.chat.inbox.remember(&key(friend), id);
    }

    pub(crate) fn send_message(
        &mut self,
        friend: &str,
        id: MessageId,
        text: String,
        sent_at_unix_ms: u64,
        now: Instant,
    ) -> Result<(), CommandError> {
        let k = key(friend);
        if !self.dir.is_friend(&k) {
            return Err(CommandError::NotAFriend(friend.to_owned()));
        }
        let frame = ChatFrame {
            id: id.0,
            sent_at_unix_ms,
            text,
        };
        // C21: into the outbox, and out at once if a link is open. The write goes first in
        // the queue, but the driver lets the `ChatMessage` pass its batch: the sync runs
        // while the message travels and the friend stores it (§8.1 r2). What waits for the
        // write is "delivered" (`on_ack`, `on_outbox_stored`).
        self.chat.unstored.insert(&k, id, false);
        self.push(Action::Persist(PersistOp::AppendOutbox {
            friend: k.clone(),
            frame: frame.clone(),
        }));
        self.chat.typing.stopped(&k);
        if !self.dir.may_link(&k) {
            // Held while a key change is pending (L51a): queued, sent after it ends.
            self.chat.outbox.restore(&k, frame);
            return Ok(());
        }
        match (self.chat.outbox.enqueue(&k, frame), self.links.active(&k)) {
            (Some(f), Some(link)) => self.send(link, PeerFrame::Chat(f)),
            _ => self.maybe_dial(&k, now),
        }
        Ok(())
    }

    /// The outbox entry of a message is written (`ok`) or could not be. Either way the message
    /// stays in the outbox of this run; an ack that came first is now reported (C8).
    pub(crate) fn on_outbox_stored(&mut self, k: &str, id: MessageId, ok: bool, _now: Instant) {
        let k = key(k);
        let Some(acked) = self.chat.unstored.remove(&k, id) else {
            return;
        };
        if !ok {
            // It may be on its way already, so it is neither withdrawn nor dropped: it is
            // delivered if this run lasts, and only a restart loses it.
            self.emit(Event::Error {
                message: format!(
                    "message {id} could not be stored in the history; it stays queued, but a restart loses it"
                ),
            });
        }
        if acked {
            self.delivered(&k, id);
        }
    }

    /// C1–C2 (C3–C6 close the link at the frame layer, before the machine).
    pub(crate) fn on_chat(
        &mut self,
        link: LinkId,
        k: &str,
        frame: ChatFrame,
        _now: Instant,
        unix_ms: u64,
    ) {
        let id = MessageId(frame.id);
        if self.chat.inbox.contains(k, id) {
            self.send(link, PeerFrame::Ack { id: id.0 });
            return;
        }
        if self.chat.storing.contains(k, id) {
            // Being stored: its ack follows the store.
            return;
        }
        self.chat.storing.insert(k, id, frame.clone());
        self.push(Action::Persist(PersistOp::StoreIncoming {
            friend: k.to_owned(),
            frame,
            received_at_unix_ms: unix_ms,
        }));
    }

    pub(crate) fn on_incoming_stored(
        &mut self,
        k: &str,
        id: MessageId,
        fresh: Option<bool>,
        _now: Instant,
    ) {
        let k = key(k);
        let Some(frame) = self.chat.storing.remove(&k, id) else {
            return;
        };
        // C7: not stored, not acked; the friend re-sends it on its next link.
        let Some(fresh) = fresh else { return };
        self.chat.inbox.remember(&k, id);
        // An ack may go on any OPEN link with the friend.
        if let Some(link) = self.links.active(&k) {
            self.send(link, PeerFrame::Ack { id: id.0 });
        }
        if fresh {
            self.hide_typing(&k);
            self.emit(Event::MessageReceived {
                friend: self.dir.display(&k),
                message_id: id,
                text: frame.text,
                sent_at_unix_ms: frame.sent_at_unix_ms,
            });
        }
    }

    /// C8–C10. An ack that comes before the message's own outbox entry is written (the
    /// send did not wait for it, §8.1 r2) frees the window at once but is reported when the
    /// write is done: "delivered" means stored at both ends.
    pub(crate) fn on_ack(&mut self, k: &str, id: [u8; 16], _now: Instant) {
        let id = MessageId(id);
        if !self.chat.outbox.on_ack(k, id) {
            return;
        }
        match self.chat.unstored.get_mut(k, id) {
            Some(acked) => *acked = true,
            None => self.delivered(k, id),
        }
        if let Some(link) = self.links.active(k) {
            for f in self.chat.outbox.next_to_send(k) {
                self.send(link, PeerFrame::Chat(f));
            }
        }
    }

    /// The friend stored a message whose outbox entry is written too.
    fn delivered(&mut self, k: &str, id: MessageId) {
        self.push(Action::Persist(PersistOp::MarkDelivered {
            friend: k.to_owned(),
            id,
        }));
        self.emit(Event::MessageAcked {
            friend: self.dir.display(k),
            message_id: id,
        });
    }

    /// C11–C12.
    pub(crate) fn on_typing(&mut self, k: &str, active: bool, now: Instant) {
        if self.chat.typing.on_remote(k, active, now) || !active {
            if active {
                self.chat.typing_shown.insert(k.to_owned());
                self.emit(Event::Typing {
                    friend: self.dir.display(k),
                    active: true,
                });
            } else {
                self.hide_typing(k);
            }
        }
    }

    fn hide_typing(&mut self, k: &str) {
        self.chat.typing.hide(k);
        if self.chat.typing_shown.remove(k) {
            self.emit(Event::Typing {
                friend: self.dir.display(k),
                active: false,
            });
        }
    }

    /// C24: only on an OPEN link, never queued.
    pub(crate) fn set_typing(&mut self, friend: &str, active: bool, now: Instant) {
        let k = key(friend);
        let Some(link) = self.links.active(&k) else {
            return;
        };
        if active {
            if self.chat.typing.should_send_active(&k, now) {
                self.send(link, PeerFrame::Typing(true));
            }
        } else {
            self.chat.typing.stopped(&k);
            self.send(link, PeerFrame::Typing(false));
        }
    }

    /// C13: expired indicators.
    pub(crate) fn chat_timeout(&mut self, now: Instant) {
        let mut gone = self.chat.typing.expire(now);
        gone.sort();
        for k in gone {
            if self.chat.typing_shown.remove(&k) {
                self.emit(Event::Typing {
                    friend: self.dir.display(&k),
                    active: false,
                });
            }
        }
    }

    /// C20: a link reached OPEN.
    pub(crate) fn chat_link_open(&mut self, k: &str, link: LinkId) {
        for f in self.chat.outbox.on_connected(k) {
            self.send(link, PeerFrame::Chat(f));
        }
    }

    /// C13, C22: the active link closed.
    pub(crate) fn chat_link_closed(&mut self, k: &str) {
        self.chat.outbox.on_disconnected(k);
        self.hide_typing(k);
    }
}
