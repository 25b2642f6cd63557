//! The four scenarios of issue 7 and the cluster scenario of issue 12, one file each.

pub mod auth_rate;
pub mod chat;
pub mod cluster;
pub mod file_transfer;
pub mod server_scale;
