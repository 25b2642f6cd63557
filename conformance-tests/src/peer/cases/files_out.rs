//! Table S (SPEC.md §8.5.5): the client sending a file to the friend.

use bytes::Bytes;
use peerchat_proto::wire::{self, peer_message::Body, CloseReason, FileCancelReason as R};
use serde_json::Value;
use sha2::Digest as _;

use super::{expect_cancel, new_id, still_open};
use crate::case::{Case, CaseResult};
use crate::ctx::Ctx;
use crate::peer::link::FriendLink;
use crate::peer::pair::{Pair, PairOptions, ANSWER, QUIET};
use crate::peer::sut::event;
use crate::{fail, peer_case};

/// The Table S cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("peer.s33.send-whole-file", "8.3", "a file the user sends is offered with its name, size and SHA-256; FileAccept{0} gets every byte in order; FileComplete ends it", peer_case!(send_whole)).covers(&["FileOffer", "FileChunk"]).rows(&["S11", "S37"]),
        Case::must("peer.s3.accept-from-offset", "8.3", "FileAccept{offset} makes the client send from that offset", peer_case!(accept_offset)),
        Case::must("peer.s4.accept-at-size", "8.3", "FileAccept{size} gets no chunk; FileComplete ends the transfer", peer_case!(accept_at_size)),
        Case::must("peer.s5.accept-past-size", "8.3", "FileAccept with an offset past the size is answered FileCancel(INVALID)", peer_case!(accept_past_size)),
        Case::must("peer.s2.accept-unknown", "8.3", "FileAccept for a transfer never offered is answered FileCancel(UNKNOWN_TRANSFER); the link stays open", peer_case!(accept_unknown)).covers(&["FILE_CANCEL_REASON_UNKNOWN_TRANSFER"]),
        Case::must("peer.s2.accept-short-id", "8.3", "FileAccept whose transfer_id is not 16 bytes is answered FileCancel(UNKNOWN_TRANSFER); the link stays open", peer_case!(accept_short_id)),
        Case::must("peer.s23.declined", "8.3", "the friend's FileCancel(DECLINED) ends the offer", peer_case!(declined)),
        Case::must("peer.s22.hash-mismatch", "8.3", "the friend's FileCancel(HASH_MISMATCH) ends the transfer as failed", peer_case!(hash_mismatch)),
        Case::must("peer.s30.reoffer-on-next-link", "8.3", "an offer whose link dropped is offered again, identically, on the next link", peer_case!(reoffer)).rows(&["S38"]),
        Case::must("peer.s32.cancel-while-suspended", "8.3", "a transfer the user cancels while no link is open is cancelled on the next link with FileCancel(CANCELLED), not re-offered", peer_case!(cancel_suspended)).rows(&["S35"]),
        Case::must("peer.s34.user-cancels", "8.3", "the user's cancel of an offered transfer sends FileCancel(CANCELLED)", peer_case!(user_cancels)),
        Case::must("peer.s31.source-gone-cancels", "8.3", "a suspended transfer whose source file is gone is cancelled with FileCancel(IO_ERROR) on the next link instead of re-offered", peer_case!(source_gone)).covers(&["FILE_CANCEL_REASON_IO_ERROR"]),
        Case::must("peer.s36.read-fails", "8.3", "a source file that got shorter after the offer cannot be read to its size: FileCancel(IO_ERROR)", peer_case!(read_fails)).covers(&["FILE_CANCEL_REASON_IO_ERROR"]),
        Case::must("peer.s1.accept-in-discard-set", "8.3", "a FileAccept crossing the friend's own FileCancel on the same link is discarded (the id is in the link's discard set), not answered UNKNOWN_TRANSFER", peer_case!(accept_in_discard_set)),
        Case::must("peer.s6.second-accept-invalid", "8.3", "a second FileAccept for a transfer already sending is answered FileCancel(INVALID) and ends it", peer_case!(second_accept)),
        Case::must("peer.s7.accept-after-complete", "8.3", "on a later link, a FileCancel for a finished transfer is ignored (S21) and a FileAccept for it is answered FileCancel(INVALID), or UNKNOWN_TRANSFER if it was forgotten (C-60)", peer_case!(accept_after_complete)).rows(&["S21"]),
        Case::must("peer.s10.complete-and-cancel-in-discard-set", "8.3", "after the friend declined, its FileComplete (S10) and FileCancel (S20) for that id on the same link are not answered; the link stays open", peer_case!(frames_in_discard_set)).rows(&["S20"]),
        Case::must("peer.s39.unfriend-ends-outgoing", "8.3", "when the friendship ends, the client's unfinished transfer to the friend ends", peer_case!(unfriend_ends_outgoing)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.s40.offers-in-flight-capped", "7.9", "files picked beyond MAX_OFFERS_IN_FLIGHT unfinished transfers to one friend are held back and offered when an earlier one ends", peer_case!(offers_capped)).timeout_secs(60),
    ]
}

struct Source {
    path: std::path::PathBuf,
    data: Vec<u8>,
}

fn source(p: &Pair, len: usize) -> Result<Source, crate::Verdict> {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let path = p.dir.0.join(format!("out-{}.bin", crate::ident::alnum(6)));
    std::fs::write(&path, &data)
        .map_err(|e| crate::Verdict::Fail(format!("cannot write {}: {e}", path.display())))?;
    Ok(Source { path, data })
}

/// The client's offer of `src` on `link`; returns its id.
async fn offer(p: &mut Pair, link: &mut FriendLink, src: &Source) -> Result<Bytes, crate::Verdict> {
    p.sut
        .say(&format!("/send {} {}", p.friend.userid, src.path.display()))
        .await?;
    let b = link
        .expect("FileOffer", ANSWER, |b| matches!(b, Body::FileOffer(_)))
        .await?;
    let Body::FileOffer(o) = b else {
        fail!("not an offer")
    };
    let name = src
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if o.name != name
        || o.size != src.data.len() as u64
        || o.sha256.as_ref() != sha2::Sha256::digest(&src.data).as_slice()
        || o.transfer_id.len() != 16
    {
        fail!("S33: the offer says name {:?} size {} (expected {name:?}, {}), or its sha256 / id is wrong", o.name, o.size, src.data.len());
    }
    Ok(o.transfer_id)
}

fn accept(id: &Bytes, offset: u64) -> Body {
    Body::FileAccept(wire::FileAccept {
        transfer_id: id.clone(),
        offset,
    })
}

/// Reads chunks until `size`; returns the bytes from `from`.
async fn receive(
    link: &mut FriendLink,
    id: &Bytes,
    from: u64,
    size: u64,
) -> Result<Vec<u8>, crate::Verdict> {
    let mut got = Vec::new();
    let mut at = from;
    while at < size {
        let b = link
            .expect("a FileChunk", ANSWER, |b| matches!(b, Body::FileChunk(_)))
            .await?;
        let Body::FileChunk(c) = b else { continue };
        if c.transfer_id != *id || c.offset != at || c.data.is_empty() {
            fail!(
                "S3: chunk at offset {} of {} bytes (expected offset {at})",
                c.offset,
                c.data.len()
            );
        }
        at += c.data.len() as u64;
        got.extend_from_slice(&c.data);
    }
    Ok(got)
}

fn ended(id: &Bytes) -> impl Fn(&Value) -> bool {
    let hex = super::hex_id(id);
    move |v| {
        (v["event"] == "transfer_cancelled" || v["event"] == "transfer_complete")
            && v["transfer_id"] == hex.as_str()
    }
}

async fn send_whole(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 600_000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(accept(&id, 0)).await?;
    let got = receive(&mut link, &id, 0, src.data.len() as u64).await?;
    if got != src.data {
        fail!("S3: the bytes received differ from the file");
    }
    link.send(Body::FileComplete(wire::FileComplete {
        transfer_id: id.clone(),
    }))
    .await?;
    let ev = p
        .sut
        .wait_event("transfer_complete", ANSWER, ended(&id))
        .await?;
    p.finish().await;
    if ev["event"] != "transfer_complete" {
        fail!("S11: FileComplete ended the transfer as {}", ev["event"]);
    }
    Ok("offered, sent, completed".into())
}

async fn accept_offset(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 300_000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(accept(&id, 123_457)).await?;
    let got = receive(&mut link, &id, 123_457, src.data.len() as u64).await?;
    p.finish().await;
    if got != src.data[123_457..] {
        fail!("S3: the bytes from the offset differ from the file");
    }
    Ok("sent from the offset".into())
}

async fn accept_at_size(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(accept(&id, 5000)).await?;
    link.expect_quiet(QUIET, |b| {
        matches!(b, Body::FileChunk(_) | Body::FileCancel(_))
    })
    .await?;
    link.send(Body::FileComplete(wire::FileComplete {
        transfer_id: id.clone(),
    }))
    .await?;
    let ev = p
        .sut
        .wait_event("transfer_complete", ANSWER, ended(&id))
        .await?;
    p.finish().await;
    if ev["event"] != "transfer_complete" {
        fail!("S4: ended as {}", ev["event"]);
    }
    Ok("no chunk; completed".into())
}

async fn accept_past_size(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(accept(&id, 5001)).await?;
    expect_cancel(&mut link, &id, R::Invalid, "S5").await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, ended(&id))
        .await?;
    p.finish().await;
    Ok("FileCancel(INVALID)".into())
}

async fn accept_unknown(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let id = Bytes::copy_from_slice(&new_id());
    link.send(accept(&id, 0)).await?;
    expect_cancel(&mut link, &id, R::UnknownTransfer, "S2").await?;
    still_open(&mut link, "a FileAccept for an unknown transfer").await?;
    p.finish().await;
    Ok("FileCancel(UNKNOWN_TRANSFER)".into())
}

async fn accept_short_id(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let id = Bytes::from_static(&[3; 5]);
    link.send(accept(&id, 0)).await?;
    expect_cancel(&mut link, &id, R::UnknownTransfer, "S2 (5-byte id)").await?;
    still_open(&mut link, "a FileAccept with a bad id").await?;
    p.finish().await;
    Ok("FileCancel(UNKNOWN_TRANSFER)".into())
}

async fn cancelled_by_friend(ctx: Ctx, reason: R, want: &str, row: &str) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: id.clone(),
        reason: reason as i32,
        message: String::new(),
    }))
    .await?;
    let ev = p
        .sut
        .wait_event("transfer_cancelled", ANSWER, ended(&id))
        .await?;
    still_open(&mut link, "FileCancel").await?;
    p.finish().await;
    if ev["event"] != "transfer_cancelled" || ev["reason"] != want {
        fail!(
            "{row}: ended as {} {}, expected transfer_cancelled {want}",
            ev["event"],
            ev["reason"]
        );
    }
    Ok(format!("ended: {want}"))
}

async fn declined(ctx: Ctx) -> CaseResult {
    cancelled_by_friend(ctx, R::Declined, "declined", "S23").await
}

async fn hash_mismatch(ctx: Ctx) -> CaseResult {
    cancelled_by_friend(ctx, R::HashMismatch, "hash_mismatch", "S22").await
}

async fn reoffer(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    let mut again = p.dial().await?;
    let b = again
        .expect("the re-offer (S30)", ANSWER, |b| {
            matches!(b, Body::FileOffer(_))
        })
        .await?;
    let Body::FileOffer(o) = b else {
        fail!("not an offer")
    };
    if o.transfer_id != id || o.size != 5000 {
        fail!("S30: the re-offer differs from the first offer");
    }
    again.send(accept(&id, 0)).await?;
    receive(&mut again, &id, 0, 5000).await?;
    p.finish().await;
    Ok("re-offered identically".into())
}

async fn cancel_suspended(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    p.sut
        .say(&format!("/cancel {}", super::hex_id(&id)))
        .await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, ended(&id))
        .await?;
    // Whether the client also dials to deliver the cancel does not matter: the friend dials.
    let mut again = p.dial().await?;
    let b = again
        .expect(
            "FileCancel(CANCELLED) instead of a re-offer (S32)",
            ANSWER,
            |b| matches!(b, Body::FileCancel(_) | Body::FileOffer(_)),
        )
        .await?;
    p.finish().await;
    match b {
        Body::FileCancel(c) if c.transfer_id == id && c.reason == R::Cancelled as i32 => {
            Ok("cancel delivered on the next link".into())
        }
        Body::FileOffer(_) => fail!("S32: the cancelled transfer was offered again"),
        _ => fail!("S32: a FileCancel for another transfer or reason"),
    }
}

async fn user_cancels(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    p.sut
        .say(&format!("/cancel {}", super::hex_id(&id)))
        .await?;
    expect_cancel(&mut link, &id, R::Cancelled, "S34").await?;
    p.finish().await;
    Ok("FileCancel(CANCELLED)".into())
}

async fn source_gone(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    std::fs::remove_file(&src.path)
        .map_err(|e| crate::Verdict::Fail(format!("cannot remove the source: {e}")))?;
    let mut again = p.dial().await?;
    let b = again
        .expect("FileCancel(IO_ERROR) or a re-offer (S31)", ANSWER, |b| {
            matches!(b, Body::FileOffer(o) if o.transfer_id == id)
                || matches!(b, Body::FileCancel(c) if c.transfer_id == id)
        })
        .await?;
    p.finish().await;
    match b {
        Body::FileCancel(c) if c.reason == R::IoError as i32 => {
            Ok("FileCancel(IO_ERROR) instead of the offer".into())
        }
        Body::FileCancel(c) => fail!(
            "S31: FileCancel({}) instead of IO_ERROR",
            crate::peer::link::cancel_name(c.reason)
        ),
        _ => fail!("S31: the transfer was re-offered although its source file is gone"),
    }
}

async fn read_fails(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 300_000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    // The file shrinks between the offer and the accept: the sender reaches its end early.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&src.path)
        .and_then(|f| f.set_len(1000))
        .map_err(|e| crate::Verdict::Fail(format!("cannot truncate the source: {e}")))?;
    link.send(accept(&id, 0)).await?;
    expect_cancel(&mut link, &id, R::IoError, "S36").await?;
    p.finish().await;
    Ok("FileCancel(IO_ERROR)".into())
}

async fn offers_capped(ctx: Ctx) -> CaseResult {
    let cap = peerchat_proto::limits::MAX_OFFERS_IN_FLIGHT;
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    for _ in 0..=cap {
        let src = source(&p, 100)?;
        p.sut
            .say(&format!("/send {} {}", p.friend.userid, src.path.display()))
            .await?;
    }
    let mut ids = Vec::new();
    for i in 0..cap {
        let b = link
            .expect(&format!("FileOffer {} of {cap}", i + 1), ANSWER, |b| {
                matches!(b, Body::FileOffer(_))
            })
            .await?;
        if let Body::FileOffer(o) = b {
            ids.push(o.transfer_id);
        }
    }
    link.expect_quiet(QUIET, |b| matches!(b, Body::FileOffer(_)))
        .await
        .map_err(|e| match e {
            crate::Verdict::Fail(m) => crate::Verdict::Fail(format!(
                "S40: more than MAX_OFFERS_IN_FLIGHT ({cap}) offers unfinished at once: {m}"
            )),
            other => other,
        })?;
    // One ends (the friend declines it): the held-back file is offered.
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: ids[0].clone(),
        reason: R::Declined as i32,
        message: String::new(),
    }))
    .await?;
    let b = link
        .expect("the held-back FileOffer (S40)", ANSWER, |b| {
            matches!(b, Body::FileOffer(_))
        })
        .await?;
    p.finish().await;
    if let Body::FileOffer(o) = b {
        if ids.contains(&o.transfer_id) {
            fail!("S40: an offer already made came again instead of the held-back one");
        }
    }
    Ok(format!("{cap} offered, the next one after one ended"))
}

/// The client offers a file; the friend declines it on `link` (the id enters the link's
/// discard set on both sides, §8.5.3).
async fn declined_offer(p: &mut Pair, link: &mut FriendLink) -> Result<Bytes, crate::Verdict> {
    let src = source(p, 5000)?;
    let id = offer(p, link, &src).await?;
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: id.clone(),
        reason: R::Declined as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, ended(&id))
        .await?;
    Ok(id)
}

async fn accept_in_discard_set(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let id = declined_offer(&mut p, &mut link).await?;
    link.send(accept(&id, 0)).await?;
    let r = link
        .expect_quiet(QUIET, |b| {
            matches!(b, Body::FileCancel(_) | Body::FileChunk(_))
        })
        .await
        .map_err(|e| match e {
            crate::Verdict::Fail(m) => crate::Verdict::Fail(format!(
                "S1: a FileAccept for an id in the link's discard set was answered: {m}"
            )),
            other => other,
        });
    p.finish().await;
    r?;
    Ok("discarded".into())
}

async fn second_accept(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 600_000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(accept(&id, 0)).await?;
    link.expect("a FileChunk", ANSWER, |b| matches!(b, Body::FileChunk(_)))
        .await?;
    link.send(accept(&id, 0)).await?;
    expect_cancel(&mut link, &id, R::Invalid, "S6").await?;
    let ev = p
        .sut
        .wait_event("transfer_cancelled (S6)", ANSWER, ended(&id))
        .await;
    p.finish().await;
    let ev = ev?;
    if ev["event"] != "transfer_cancelled" {
        fail!("S6: the transfer ended as {}", ev["event"]);
    }
    Ok("FileCancel(INVALID); ended".into())
}

async fn accept_after_complete(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    link.send(accept(&id, 0)).await?;
    receive(&mut link, &id, 0, 5000).await?;
    link.send(Body::FileComplete(wire::FileComplete {
        transfer_id: id.clone(),
    }))
    .await?;
    p.sut
        .wait_event("transfer_complete", ANSWER, ended(&id))
        .await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    let mut again = p.dial().await?;
    again
        .send(Body::FileCancel(wire::FileCancel {
            transfer_id: id.clone(),
            reason: R::Cancelled as i32,
            message: String::new(),
        }))
        .await?;
    let r = async {
        again
            .expect_quiet(QUIET, |b| matches!(b, Body::FileCancel(_)))
            .await
            .map_err(|e| match e {
                crate::Verdict::Fail(m) => {
                    crate::Verdict::Fail(format!("S21: a FileCancel was answered: {m}"))
                }
                other => other,
            })?;
        again.send(accept(&id, 0)).await?;
        let b = again
            .expect("FileCancel (S7)", ANSWER, |b| {
                matches!(b, Body::FileCancel(c) if c.transfer_id == id)
                    || matches!(b, Body::FileChunk(_))
            })
            .await?;
        match b {
            Body::FileCancel(c)
                if c.reason == R::Invalid as i32 || c.reason == R::UnknownTransfer as i32 =>
            {
                Ok(crate::peer::link::cancel_name(c.reason))
            }
            Body::FileCancel(c) => fail!(
                "S7: FileCancel({}) instead of INVALID (or UNKNOWN_TRANSFER)",
                crate::peer::link::cancel_name(c.reason)
            ),
            _ => fail!("S7: a finished transfer was sent again"),
        }
    }
    .await;
    let cancelled = p
        .sut
        .find_within(QUIET, |v| {
            v["event"] == "transfer_cancelled" && v["transfer_id"] == super::hex_id(&id).as_str()
        })
        .await;
    p.finish().await;
    let how = r?;
    if cancelled.is_some() {
        fail!("S21: a FileCancel after FileComplete changed the finished transfer");
    }
    Ok(format!("FileCancel ignored; FileAccept answered {how}"))
}

async fn frames_in_discard_set(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let id = declined_offer(&mut p, &mut link).await?;
    link.send(Body::FileComplete(wire::FileComplete {
        transfer_id: id.clone(),
    }))
    .await?;
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: id.clone(),
        reason: R::Cancelled as i32,
        message: String::new(),
    }))
    .await?;
    link.expect_quiet(QUIET, |b| matches!(b, Body::FileCancel(_)))
        .await?;
    still_open(&mut link, "FileComplete and FileCancel in the discard set").await?;
    p.finish().await;
    Ok("discarded".into())
}

async fn unfriend_ends_outgoing(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let src = source(&p, 5000)?;
    let id = offer(&mut p, &mut link, &src).await?;
    let r = p
        .friend_conn
        .request(crate::client::req::unfriend(&p.sut_user.userid))
        .await?;
    crate::ok!(r, Unfriend, "Unfriend");
    let ev = p
        .sut
        .wait_event("transfer_cancelled (S39)", ANSWER, |v| {
            v["event"] == "transfer_cancelled" && v["transfer_id"] == super::hex_id(&id).as_str()
        })
        .await;
    p.finish().await;
    ev?;
    Ok("the outgoing transfer ended".into())
}
