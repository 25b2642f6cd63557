//! The four scenarios of issue 7, the cluster scenario of issue 12 and the end-to-end CLI
//! rounds of issue 14, one file each.

pub mod auth_rate;
pub mod chat;
pub mod cli_rounds;
pub mod cluster;
pub mod file_transfer;
pub mod server_scale;
