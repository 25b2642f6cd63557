//! sea-orm entities, one file per table (created by [`super::migration`]).

pub mod account;
pub mod friend_request;
pub mod friendship;
pub mod notice;
