//! Wire messages converted to domain types at the edge (SPEC.md §5–§8).
//!
//! Generated prost types let every field be absent; the domain types here hold only what the
//! spec says is valid, so a missing required field or an out-of-range value becomes a typed
//! [`WireError`] in one place and the rest of the code never re-checks it.

mod client;
mod common;
mod peer;
mod server;
mod traversal;

pub use client::{ClientFrame, Request};
pub use common::{Endpoint, FriendInfo, RequestError, Secret, WireError};
pub use peer::{
    ChatFrame, FileOfferFrame, InvalidFileFrame, PeerFeatures, PeerFrame, FEATURE_AES_GCM,
    FEATURE_FILE_BLAKE3,
};
pub use server::{LoginSnapshot, PendingRequest, PushEvent, ResponseBody, ServerFrame};
pub use traversal::{
    Announcement, Candidate, CandidateKind, ConnectMode, ConnectPeerOk, PeerConnectRequested,
    TraversalId,
};
