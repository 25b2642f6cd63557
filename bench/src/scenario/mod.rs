//! The four scenarios of issue 7, one file each.

pub mod auth_rate;
pub mod chat;
pub mod file_transfer;
pub mod server_scale;
