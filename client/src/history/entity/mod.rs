//! sea-orm entities of the local history database, one file per table.

pub mod message;
pub mod transfer;
