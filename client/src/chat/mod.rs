//! Chat (SPEC.md §8.1, §8.2): the outbox that makes delivery exactly-once and in order, the
//! receiver's duplicate rule, and typing-indicator timing.

pub(crate) mod by_friend;
pub mod inbox;
pub mod outbox;
pub mod typing;
