//! The peer cases, one module per table of SPEC.md §8.5 (and §3.6 for the timers). Ids are
//! `peer.<row>.<detail>`, the row being the §8.5 row the case proves; never renumbered.

use std::time::Duration;

use bytes::Bytes;
use peerchat_proto::wire::{self, peer_message::Body};
use rand::Rng as _;
use sha2::Digest as _;

use super::link::FriendLink;
use crate::case::Case;
use crate::check;
use crate::verdict::Verdict;

pub mod chat;
pub mod cipher;
pub mod files_in;
pub mod files_out;
pub mod idle;
pub mod link;
pub mod streamed;

/// Every peer case, in report order.
pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(link::cases());
    v.extend(cipher::cases());
    v.extend(idle::cases());
    v.extend(chat::cases());
    v.extend(files_in::cases());
    v.extend(files_out::cases());
    v.extend(streamed::cases());
    v
}

/// Wrap an async case body as a registry function.
#[macro_export]
macro_rules! peer_case {
    ($f:path) => {
        |ctx| Box::pin($f(ctx))
    };
}

/// A fresh random 16-byte id.
pub fn new_id() -> [u8; 16] {
    rand::thread_rng().gen()
}

/// Proves the link is still open and served: a Ping is answered with its Pong.
///
/// # Errors
/// FAIL if the Pong does not come (the link was closed, or the client stopped serving it).
pub async fn still_open(link: &mut FriendLink, after: &str) -> Result<(), Verdict> {
    let nonce: u64 = rand::thread_rng().gen::<u64>() | 1;
    link.send(Body::Ping(wire::Ping { nonce }))
        .await
        .map_err(|e| Verdict::Fail(format!("after {after} the link is gone: {e:?}")))?;
    match link
        .expect(
            "Pong",
            super::pair::ANSWER,
            |b| matches!(b, Body::Pong(p) if p.nonce == nonce),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(Verdict::Fail(e)) => Err(Verdict::Fail(format!(
            "after {after} the link must stay open (SPEC.md §8.5: L26, C9, C10): {e}"
        ))),
        Err(e) => Err(e),
    }
}

/// A file the friend offers: content, its SHA-256 and a FileOffer for it.
pub struct OfferedFile {
    /// Transfer id.
    pub id: [u8; 16],
    /// Offered name.
    pub name: String,
    /// Content.
    pub data: Vec<u8>,
}

impl OfferedFile {
    /// `len` random bytes named like `peer-<random>.bin`.
    pub fn random(len: usize) -> Self {
        let mut data = vec![0u8; len];
        rand::thread_rng().fill(&mut data[..]);
        Self {
            id: new_id(),
            name: format!("peer-{}.bin", crate::ident::alnum(8)),
            data,
        }
    }

    /// The SHA-256 of the content.
    pub fn sha256(&self) -> Bytes {
        Bytes::copy_from_slice(&sha2::Sha256::digest(&self.data))
    }

    /// The transfer id as bytes.
    pub fn tid(&self) -> Bytes {
        Bytes::copy_from_slice(&self.id)
    }

    /// Its FileOffer.
    pub fn offer(&self) -> Body {
        Body::FileOffer(wire::FileOffer {
            transfer_id: self.tid(),
            name: self.name.clone(),
            size: self.data.len() as u64,
            sha256: self.sha256(),
        })
    }

    /// A FileChunk of `data[from..to]`.
    pub fn chunk(&self, from: usize, to: usize) -> Body {
        Body::FileChunk(wire::FileChunk {
            transfer_id: self.tid(),
            offset: from as u64,
            data: Bytes::copy_from_slice(&self.data[from..to]),
        })
    }

    /// The transfer id as the client prints it.
    pub fn hex(&self) -> String {
        hex_id(&self.id)
    }
}

/// Lower-case hex of an id (as the CLI prints transfer ids).
pub fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for `FileCancel` of transfer `id` with `reason`.
pub fn is_cancel(id: &[u8], reason: wire::FileCancelReason) -> impl Fn(&Body) -> bool + '_ {
    move |b| matches!(b, Body::FileCancel(c) if c.transfer_id.as_ref() == id && c.reason == reason as i32)
}

/// Expects `FileCancel(reason)` for `id`, naming the row.
///
/// # Errors
/// FAIL naming what came instead.
pub async fn expect_cancel(
    link: &mut FriendLink,
    id: &[u8],
    reason: wire::FileCancelReason,
    row: &str,
) -> Result<(), Verdict> {
    let what = format!("FileCancel({}) ({row})", reason.as_str_name());
    link.expect(&what, super::pair::ANSWER, is_cancel(id, reason))
        .await
        .map(|_| ())
}

/// Time the cases allow for one step of a client that is slow (debug build, loaded CI).
pub const STEP: Duration = Duration::from_secs(10);

/// Fails unless `cond`; a shorthand used by the cases.
///
/// # Errors
/// FAIL with `msg`.
pub fn require(cond: bool, msg: impl Into<String>) -> Result<(), Verdict> {
    check!(cond, "{}", msg.into());
    Ok(())
}
