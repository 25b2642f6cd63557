//! The sender's side of exactly-once, in-order chat delivery (SPEC.md §8.1), without I/O.
//!
//! Every message the user writes enters the outbox of its friend and stays there until the
//! friend acknowledges it. Whenever a connection to the friend becomes the active one, the
//! whole outbox is sent again in its original order; together with the receiver dropping
//! ids it already stored ([`super::inbox`]), each message is shown exactly once, in order,
//! whatever connections dropped in between. The database row for each entry is what makes
//! the outbox survive a restart; this struct is its in-memory mirror.
//!
//! A connection carries at most [`OUTBOX_WINDOW`] bytes of unacknowledged text at a time
//! (SPEC.md §7.9 rule 2): a long outbox goes out as acknowledgements come back, so our own
//! burst never fills the connection's send budget.

use std::collections::VecDeque;

use peerchat_proto::limits::OUTBOX_WINDOW;
use peerchat_proto::message::ChatFrame;

use crate::fast_hash::FastMap;
use crate::ids::MessageId;

/// Unacknowledged messages to every friend.
#[derive(Debug)]
pub struct Outbox {
    queues: FastMap<String, FriendQueue>,
    window: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::with_window(OUTBOX_WINDOW)
    }
}

#[derive(Debug, Default)]
struct FriendQueue {
    pending: VecDeque<ChatFrame>,
    connected: bool,
    /// The first `in_flight` pending messages were sent on the current connection.
    in_flight: usize,
    /// Their text bytes, kept as they change: summing them on every acknowledgement made
    /// a long outbox quadratic (about 10,000 small messages fill the window).
    in_flight_bytes: usize,
}

impl FriendQueue {
    /// Queues `frame` last; returns it to send now if the friend is connected and the
    /// window has room.
    fn push(&mut self, frame: ChatFrame, window: usize) -> Option<ChatFrame> {
        self.pending.push_back(frame);
        if !self.connected {
            return None;
        }
        self.fill(window).pop()
    }

    /// The messages that fit the window now (at least one when nothing is in flight), marked
    /// as sent.
    fn fill(&mut self, window: usize) -> Vec<ChatFrame> {
        let mut out = Vec::new();
        while let Some(next) = self.pending.get(self.in_flight) {
            if self.in_flight > 0 && self.in_flight_bytes + next.text.len() > window {
                break;
            }
            self.in_flight_bytes += next.text.len();
            self.in_flight += 1;
            out.push(next.clone());
        }
        out
    }
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// An outbox with at most `window` bytes of text unacknowledged per connection.
    pub fn with_window(window: usize) -> Self {
        Self {
            queues: FastMap::default(),
            window,
        }
    }

    /// Restores a message loaded from the database (in order) at start-up.
    pub fn restore(&mut self, friend: &str, frame: ChatFrame) {
        self.queues
            .entry(friend.to_owned())
            .or_default()
            .pending
            .push_back(frame);
    }

    /// Queues a new message. Returns it if it should be sent now (a connection is up and the
    /// window has room); otherwise it waits for [`Outbox::on_connected`] or
    /// [`Outbox::next_to_send`].
    pub fn enqueue(&mut self, friend: &str, frame: ChatFrame) -> Option<ChatFrame> {
        let window = self.window;
        // Found by `&str` first: `entry` would allocate the friend's name for every
        // message sent (issue #14).
        if let Some(q) = self.queues.get_mut(friend) {
            return q.push(frame, window);
        }
        self.queues
            .entry(friend.to_owned())
            .or_default()
            .push(frame, window)
    }

    /// A connection to `friend` became the active one: the unacknowledged messages, in
    /// order, to send on it, as many as the window holds.
    pub fn on_connected(&mut self, friend: &str) -> Vec<ChatFrame> {
        let window = self.window;
        let q = self.queues.entry(friend.to_owned()).or_default();
        q.connected = true;
        q.in_flight = 0;
        q.in_flight_bytes = 0;
        q.fill(window)
    }

    /// The active connection to `friend` is gone.
    pub fn on_disconnected(&mut self, friend: &str) {
        if let Some(q) = self.queues.get_mut(friend) {
            q.connected = false;
            q.in_flight = 0;
            q.in_flight_bytes = 0;
        }
    }

    /// `friend` acknowledged `id`. True if it was pending (the first ack); later acks of
    /// the same id (after a resend) return false. Call [`Outbox::next_to_send`] afterwards.
    pub fn on_ack(&mut self, friend: &str, id: MessageId) -> bool {
        let Some(q) = self.queues.get_mut(friend) else {
            return false;
        };
        match q.pending.iter().position(|m| m.id == id.0) {
            Some(i) => {
                if let Some(m) = q.pending.remove(i) {
                    if i < q.in_flight {
                        q.in_flight -= 1;
                        q.in_flight_bytes = q.in_flight_bytes.saturating_sub(m.text.len());
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Messages that now fit the window of the connected friend (after acknowledgements).
    pub fn next_to_send(&mut self, friend: &str) -> Vec<ChatFrame> {
        let window = self.window;
        match self.queues.get_mut(friend) {
            Some(q) if q.connected => q.fill(window),
            _ => Vec::new(),
        }
    }

    /// The friendship with `friend` ended: its entries are never sent (SPEC.md §8.5.2 C23).
    pub fn forget(&mut self, friend: &str) {
        self.queues.remove(friend);
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

    /// The window's byte count is kept as messages go out and acks come back (in or out of
    /// order, or after a reconnect), not re-summed: what fits is what the SPEC's window says.
    #[test]
    fn the_window_counts_the_bytes_in_flight_across_acks_and_reconnects() {
        let mut o = Outbox::with_window(6); // three 2-byte texts ("m1".."m9")
        o.on_connected("bob");
        for n in 1..=5 {
            o.enqueue("bob", msg(n));
        }
        assert!(o.on_ack("bob", MessageId([2; 16])), "out of order");
        assert_eq!(o.next_to_send("bob"), vec![msg(4)]);
        assert!(o.on_ack("bob", MessageId([1; 16])));
        assert_eq!(o.next_to_send("bob"), vec![msg(5)]);
        assert!(o.next_to_send("bob").is_empty(), "nothing left to send");
        o.on_disconnected("bob");
        o.enqueue("bob", msg(6));
        o.enqueue("bob", msg(7));
        // m3, m4, m5, m6, m7 pending: a new connection sends what fits 6 bytes.
        assert_eq!(o.on_connected("bob"), vec![msg(3), msg(4), msg(5)]);
        assert!(o.on_ack("bob", MessageId([3; 16])));
        assert!(o.on_ack("bob", MessageId([4; 16])));
        assert_eq!(o.next_to_send("bob"), vec![msg(6), msg(7)]);
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

    #[test]
    fn a_long_outbox_goes_out_as_acks_come_back() {
        let mut o = Outbox::with_window(4);
        for n in 1..=5 {
            o.enqueue("bob", msg(n)); // "mN": 2 bytes each
        }
        assert_eq!(o.on_connected("bob"), vec![msg(1), msg(2)], "4 bytes fit");
        assert_eq!(o.enqueue("bob", msg(6)), None, "the window is full");
        assert!(o.next_to_send("bob").is_empty());
        assert!(o.on_ack("bob", MessageId([1; 16])));
        assert_eq!(o.next_to_send("bob"), vec![msg(3)]);
        assert!(o.on_ack("bob", MessageId([2; 16])));
        assert!(o.on_ack("bob", MessageId([3; 16])));
        assert_eq!(o.next_to_send("bob"), vec![msg(4), msg(5)]);
        o.on_disconnected("bob");
        assert_eq!(
            o.on_connected("bob"),
            vec![msg(4), msg(5)],
            "a new connection starts the window again, in order"
        );
        let mut big = Outbox::with_window(1);
        big.enqueue("bob", msg(1));
        assert_eq!(
            big.on_connected("bob"),
            vec![msg(1)],
            "one message always goes, whatever its size"
        );
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
