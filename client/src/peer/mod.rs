//! Direct connections between friends (SPEC.md §7): the listener that accepts them, the
//! dialler, the per-connection session task, the PeerHello rules and the
//! one-connection-per-pair registry.

pub mod budget;
pub mod hello;
pub mod idle;
pub mod listener;
pub mod redial;
pub mod registry;
pub mod relay;
pub mod session;
pub mod traversal;

pub use registry::ConnId;
pub use session::{PeerEvent, PeerLink};
