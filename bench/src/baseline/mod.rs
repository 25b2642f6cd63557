//! Baselines measured in the same run as the Peerchat figures: what the machine does without
//! Peerchat's protocol, encryption, database and client logic.

pub mod scp;
pub mod socat;
pub mod tcp_copy;
pub mod tcp_pingpong;
pub mod wormhole;
