//! The sender's side of exactly-once, in-order chat delivery (SPEC.md §8.1), without I/O.
//!
//! Every message the user writes enters the outbox of its friend and stays there until the
//! friend acknowledges it. Whenever a connection to the friend becomes the active one, the
//! whole outbox is sent again in its original order; together with the receiver dropping
//! ids it already stored ([`super::inbox`]), each message is shown exactly once, in order,
//! whatever connections dropped in between. The database row for each entry is what makes
//! the outbox survive a restart; this struct is its in-memory mirror.

use std::collections::{HashMap, VecDeque};

use peerchat_proto::message::ChatFrame;

use crate::ids::MessageId;

/// Unacknowledged messages to every friend.
#[derive(Debug, Default)]
pub struct Outbox {
    queues: HashMap<String, FriendQueue>,
}

#[derive(Debug, Default)]
struct FriendQueue {
    pending: VecDeque<ChatFrame>,
    connected: bool,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a message loaded from the database (in order) at start-up.
    pub fn restore(&mut self, friend: &str, frame: ChatFrame) {
        self.queues
            .entry(friend.to_owned())
            .or_default()
            .pending
            .push_back(frame);
    }

    /// Queues a new message. Returns it if it should be sent now (a connection is up);
    /// otherwise it waits for [`Outbox::on_connected`].
    pub fn enqueue(&mut self, friend: &str, frame: ChatFrame) -> Option<ChatFrame> {
        let q = self.queues.entry(friend.to_owned()).or_default();
        q.pending.push_back(frame.clone());
        q.connected.then_some(frame)
    }

    /// A connection to `friend` became the active one: everything unacknowledged, in order,
    /// to send on it.
    pub fn on_connected(&mut self, friend: &str) -> Vec<ChatFrame> {
        let q = self.queues.entry(friend.to_owned()).or_default();
        q.connected = true;
        q.pending.iter().cloned().collect()
    }

    /// The active connection to `friend` is gone.
    pub fn on_disconnected(&mut self, friend: &str) {
        if let Some(q) = self.queues.get_mut(friend) {
            q.connected = false;
        }
    }

    /// `friend` acknowledged `id`. True if it was pending (the first ack); later acks of
    /// the same id (after a resend) return false.
    pub fn on_ack(&mut self, friend: &str, id: MessageId) -> bool {
        let Some(q) = self.queues.get_mut(friend) else {
            return false;
        };
        match q.pending.iter().position(|m| m.id == id.0) {
            Some(i) => {
                q.pending.remove(i);
                true
            }
            None => false,
        }
    }

    /// Number of unacknowledged messages to `friend`.
    pub fn pending(&self, friend: &str) -> usize {
        self.queues.get(friend).map_or(0, |q| q.pending.len())
    }

    /// Friends with unacknowledged messages.
    pub fn friends_with_pending(&self) -> Vec<String> {
        self.queues
            .iter()
            .filter(|(_, q)| !q.pending.is_empty())
            .map(|(f, _)| f.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::inbox::{Inbox, InboxAction};

    fn msg(n: u8) -> ChatFrame {
        ChatFrame {
            id: [n; 16],
            sent_at_unix_ms: u64::from(n),
            text: format!("m{n}"),
        }
    }

    #[test]
    fn offline_messages_wait_and_go_out_in_order_on_connect() {
        let mut o = Outbox::new();
        assert_eq!(o.enqueue("bob", msg(1)), None);
        assert_eq!(o.enqueue("bob", msg(2)), None);
        assert_eq!(o.on_connected("bob"), vec![msg(1), msg(2)]);
        assert_eq!(
            o.enqueue("bob", msg(3)),
            Some(msg(3)),
            "sent at once while connected"
        );
        assert!(o.on_ack("bob", MessageId([1; 16])));
        assert!(
            !o.on_ack("bob", MessageId([1; 16])),
            "second ack is not news"
        );
        assert!(
            !o.on_ack("carol", MessageId([2; 16])),
            "ack from someone else"
        );
        assert_eq!(o.pending("bob"), 2);
    }

    #[test]
    fn reconnect_resends_everything_unacked() {
        let mut o = Outbox::new();
        o.on_connected("bob");
        o.enqueue("bob", msg(1));
        o.enqueue("bob", msg(2));
        o.on_disconnected("bob");
        assert_eq!(o.enqueue("bob", msg(3)), None);
        assert!(
            o.on_ack("bob", MessageId([1; 16])),
            "a late ack still counts"
        );
        assert_eq!(o.on_connected("bob"), vec![msg(2), msg(3)]);
        assert_eq!(o.friends_with_pending(), vec!["bob".to_owned()]);
    }

    /// Simulates lossy connections between an outbox and an inbox: whatever is lost, each
    /// message is stored exactly once and in the order written.
    #[test]
    fn exactly_once_in_order_across_drops() {
        let mut out = Outbox::new();
        let mut inbox = Inbox::default();
        let mut stored = Vec::new();
        for n in 1..=5 {
            out.enqueue("bob", msg(n));
        }
        // Connection 1 delivers m1..m3, but only the ack of m1 comes back before it drops.
        let sent = out.on_connected("bob");
        for (i, m) in sent.iter().take(3).enumerate() {
            let InboxAction { store, ack } = inbox.on_chat("alice", MessageId(m.id));
            if store {
                stored.push(m.id[0]);
            }
            if i == 0 {
                out.on_ack("bob", ack);
            }
        }
        out.on_disconnected("bob");
        out.enqueue("bob", msg(6));
        // Connection 2 delivers everything and all acks arrive.
        for m in out.on_connected("bob") {
            let InboxAction { store, ack } = inbox.on_chat("alice", MessageId(m.id));
            if store {
                stored.push(m.id[0]);
            }
            out.on_ack("bob", ack);
        }
        assert_eq!(stored, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(out.pending("bob"), 0);
    }
}
