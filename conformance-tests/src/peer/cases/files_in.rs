//! Table R (SPEC.md §8.5.4): the client receiving a file from the friend.

use bytes::Bytes;
use peerchat_proto::limits::MAX_FILE_CHUNK;
use peerchat_proto::wire::{self, peer_message::Body, CloseReason, FileCancelReason as R};
use serde_json::Value;

use super::{expect_cancel, new_id, still_open, OfferedFile};
use crate::case::{Case, CaseResult};
use crate::ctx::Ctx;
use crate::peer::link::FriendLink;
use crate::peer::pair::{Pair, PairOptions, ANSWER, QUIET};
use crate::peer::sut::event;
use crate::{fail, peer_case};

const AUTO: PairOptions = PairOptions {
    auto_accept: 1 << 20,
    short_idle: false,
    blake3: false,
    twin: false,
};
const ASK: PairOptions = PairOptions {
    auto_accept: 0,
    short_idle: false,
    blake3: false,
    twin: false,
};

/// The Table R cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("peer.r40.receive-whole-file", "8.3", "an accepted offer gets FileAccept{0}; chunks in order; FileComplete after the hash matched; the file is saved", peer_case!(receive_whole)).covers(&["FileOffer", "FileAccept", "FileChunk", "FileComplete"]).rows(&["R27", "R50", "R51", "L26"]),
        Case::must("peer.r5.offer-asks-the-user", "8.3", "a valid offer above the auto-accept size is shown to the user and not answered", peer_case!(offer_asks)),
        Case::must("peer.r42.decline", "8.3", "the user's decline is sent as FileCancel(DECLINED)", peer_case!(decline)).covers(&["FILE_CANCEL_REASON_DECLINED"]),
        Case::must("peer.r2.offer-short-id", "8.3", "an offer whose transfer_id is not 16 bytes is answered FileCancel(INVALID); the link stays open", peer_case!(offer_short_id)).covers(&["FILE_CANCEL_REASON_INVALID"]),
        Case::must("peer.r2.offer-empty-name", "8.3", "an offer with an empty name is answered FileCancel(INVALID); the link stays open", peer_case!(offer_empty_name)).covers(&["FILE_CANCEL_REASON_INVALID"]),
        Case::must("peer.r2.offer-long-name", "8.3", "an offer whose name is longer than MAX_FILE_NAME bytes is answered FileCancel(INVALID); the link stays open", peer_case!(offer_long_name)),
        Case::must("peer.r2.offer-bad-sha256", "8.3", "an offer whose sha256 is not 32 bytes is answered FileCancel(INVALID); the link stays open", peer_case!(offer_bad_sha)),
        Case::must("peer.r6.reoffer-differs", "8.3", "a re-offer differing from the first offer is answered FileCancel(INVALID) and ends the transfer", peer_case!(reoffer_differs)),
        Case::must("peer.r8.reoffer-identical-pending", "8.3", "an identical re-offer while the user decides is not answered and not asked again", peer_case!(reoffer_pending)),
        Case::must("peer.r13.reoffer-done", "8.3", "an identical re-offer of a finished transfer, on a later link, is answered FileComplete", peer_case!(reoffer_done)),
        Case::must("peer.r9.resume-from-part", "8.3", "after a dropped link the identical re-offer is answered FileAccept{bytes held} and the transfer finishes", peer_case!(resume)).covers(&["FileAccept"]).rows(&["R53"]),
        Case::must("peer.r21.chunk-unknown-id", "8.3", "a chunk for an unknown transfer is answered FileCancel(INVALID) once; the link stays open", peer_case!(chunk_unknown)).rows(&["R20"]),
        Case::must("peer.r21.chunk-short-id", "8.3", "a chunk whose transfer_id is not 16 bytes is answered FileCancel(INVALID); the link stays open", peer_case!(chunk_short_id)),
        Case::must("peer.r22.chunk-before-accept", "8.3", "a chunk for an offer the user has not accepted is answered FileCancel(INVALID) and ends it", peer_case!(chunk_pending)),
        Case::must("peer.r23.chunk-on-new-link-before-reoffer", "8.3", "after the link dropped, a chunk on a new link before the re-offer is answered FileCancel(INVALID) and ends the transfer", peer_case!(chunk_suspended)),
        Case::must("peer.r24.chunk-offset-gap", "8.3", "a chunk whose offset is not the bytes held is answered FileCancel(INVALID) and ends the transfer", peer_case!(chunk_gap)),
        Case::must("peer.r25.chunk-empty-data", "8.3", "a chunk with no data is answered FileCancel(INVALID) and ends the transfer; the link stays open", peer_case!(chunk_empty)),
        Case::must("peer.r26.chunk-past-size", "8.3", "a chunk reaching beyond the offered size is answered FileCancel(INVALID)", peer_case!(chunk_past_size)),
        Case::must("peer.r52.hash-mismatch", "8.3", "a complete file whose SHA-256 differs is answered FileCancel(HASH_MISMATCH) and not saved", peer_case!(hash_mismatch)).covers(&["FILE_CANCEL_REASON_HASH_MISMATCH"]),
        Case::must("peer.r31.cancel-unknown-ignored", "8.3", "a FileCancel for an unknown transfer (or with a bad id) is ignored; the link stays open", peer_case!(cancel_unknown)).rows(&["S12"]),
        Case::must("peer.r32.cancel-while-pending", "8.3", "the friend's FileCancel withdraws an offer the user has not answered", peer_case!(cancel_pending)).covers(&["FILE_CANCEL_REASON_CANCELLED"]),
        Case::must("peer.r33.cancel-while-receiving", "8.3", "the friend's FileCancel ends a running transfer", peer_case!(cancel_receiving)),
        Case::must("peer.r41.accept-while-apart", "8.3", "an offer the user accepts while no link is open is answered FileAccept{0} when it is offered again, and finishes", peer_case!(accept_while_apart)),
        Case::must("peer.r54.unfriend-ends-transfers", "8.3", "when the friendship ends the link is closed with NOT_A_FRIEND (L50) and every unfinished transfer with the friend ends (R54)", peer_case!(unfriend_ends)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]).rows(&["L50"]),
        Case::must("peer.r4b.offer-too-large", "8.3", "an offer of 2^64-1 bytes is answered FileCancel(TOO_LARGE)", peer_case!(offer_too_large)).covers(&["FILE_CANCEL_REASON_TOO_LARGE"]),
        Case::must("peer.r3.invalid-reoffer-ends-pending", "8.3", "an invalid offer (empty name) naming a transfer the user is deciding on is answered FileCancel(INVALID) and ends it", peer_case!(invalid_reoffer_pending)),
        Case::must("peer.r10.reoffer-while-receiving", "8.3", "an identical re-offer on the link the transfer is being received on is answered FileCancel(INVALID) and ends it", peer_case!(reoffer_receiving)),
        Case::must("peer.r11.reoffer-on-second-link", "8.3", "an identical re-offer on a second link while receiving on the first is answered FileAccept{bytes held}, and the transfer finishes there", peer_case!(reoffer_second_link)),
        Case::must("peer.r14.reoffer-declined", "8.3", "an identical re-offer of a declined transfer (on a later link) is answered FileCancel(DECLINED)", peer_case!(reoffer_declined)),
        Case::must("peer.r14.reoffer-after-invalid", "8.3", "an identical re-offer of a transfer ended by FileCancel(INVALID) is answered with that reason", peer_case!(reoffer_after_invalid)),
        Case::must("peer.r14.reoffer-after-hash-mismatch", "8.3", "an identical re-offer of a transfer that failed its hash is answered FileCancel(HASH_MISMATCH)", peer_case!(reoffer_after_mismatch)),
        Case::must("peer.r4a.too-many-offers", "8.3", "an offer beyond MAX_OFFERS_IN_FLIGHT unfinished transfers from the friend is answered FileCancel(TOO_MANY_OFFERS)", peer_case!(too_many_offers)).covers(&["FILE_CANCEL_REASON_TOO_MANY_OFFERS"]).timeout_secs(60),
        Case::must("peer.r4.offer-reusing-own-outgoing-id", "8.3", "an offer naming the id of the client's own transfer to the friend is answered FileCancel(INVALID); the client's own transfer goes on", peer_case!(offer_own_id)),
        Case::must("peer.r7.differing-reoffer-after-done", "8.3", "a re-offer of a finished transfer that differs from the first offer is answered FileCancel(INVALID), not FileComplete", peer_case!(differing_reoffer_done)),
        Case::must("peer.r30.cancel-in-discard-set-ignored", "8.3", "a FileCancel for an id the client just answered with FileCancel (its discard set) is not answered; the link stays open", peer_case!(cancel_in_discard_set)),
        Case::must("peer.r43.user-cancels-receiving", "8.3", "the user's cancel of a running incoming transfer sends FileCancel(CANCELLED) and ends it", peer_case!(user_cancels_receiving)),
        Case::must("peer.r44.cancel-while-suspended-answers-reoffer", "8.3", "a transfer the user cancels while its link is down sends nothing then; its re-offer is answered FileCancel(CANCELLED)", peer_case!(cancel_suspended_reoffer)),
        Case::must("peer.r56.no-data-after-accept", "8.3", "an accepted offer with no FileChunk for OFFER_DATA_TIMEOUT (60 s) is ended with FileCancel(NO_DATA)", peer_case!(no_data)).covers(&["FILE_CANCEL_REASON_NO_DATA"]).timeout_secs(100),
        Case::must("peer.r1.reoffer-in-discard-set", "8.3", "a re-offer on the link where the transfer ended with a FileCancel is in that link's discard set: not answered", peer_case!(reoffer_discarded)),
    ]
}

fn accept_at(f: &OfferedFile, offset: u64) -> impl Fn(&Body) -> bool + '_ {
    move |b| matches!(b, Body::FileAccept(a) if a.transfer_id.as_ref() == f.id && a.offset == offset)
}

fn cancelled(f: &OfferedFile) -> impl Fn(&Value) -> bool + '_ {
    let hex = f.hex();
    move |v| v["event"] == "transfer_cancelled" && v["transfer_id"] == hex.as_str()
}

/// Sends the rest of `f` from `from` and waits for the client's FileComplete (R51).
async fn finish_file(
    link: &mut FriendLink,
    f: &OfferedFile,
    from: usize,
) -> Result<(), crate::Verdict> {
    send_all(link, f, from).await?;
    link.expect(
        "FileComplete (R51)",
        ANSWER,
        |b| matches!(b, Body::FileComplete(c) if c.transfer_id.as_ref() == f.id),
    )
    .await
    .map(|_| ())
}

async fn send_all(
    link: &mut FriendLink,
    f: &OfferedFile,
    from: usize,
) -> Result<(), crate::Verdict> {
    let mut at = from;
    while at < f.data.len() {
        let end = (at + MAX_FILE_CHUNK).min(f.data.len());
        link.send(f.chunk(at, end)).await?;
        at = end;
    }
    Ok(())
}

async fn offered(p: &mut Pair, f: &OfferedFile) -> Result<Value, crate::Verdict> {
    let hex = f.hex();
    p.sut
        .wait_event("file_offered", ANSWER, |v| {
            v["event"] == "file_offered" && v["transfer_id"] == hex.as_str()
        })
        .await
}

async fn receive_whole(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(MAX_FILE_CHUNK * 2 + 1000);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0} (R40)", ANSWER, accept_at(&f, 0))
        .await?;
    finish_file(&mut link, &f, 0).await?;
    let hex = f.hex();
    let done = p
        .sut
        .wait_event("transfer_complete", ANSWER, |v| {
            v["event"] == "transfer_complete" && v["transfer_id"] == hex.as_str()
        })
        .await?;
    let path = done["path"].as_str().unwrap_or_default().to_string();
    let saved = std::fs::read(&path).unwrap_or_default();
    p.finish().await;
    if saved != f.data {
        fail!("R51: the saved file {path} differs from what was sent");
    }
    Ok("received, verified and saved".into())
}

async fn offer_asks(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(1000);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    link.expect_quiet(QUIET, |b| {
        matches!(b, Body::FileAccept(_) | Body::FileCancel(_))
    })
    .await?;
    p.finish().await;
    Ok("asked, not answered".into())
}

async fn decline(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(1000);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    p.sut.say(&format!("/decline-file {}", f.hex())).await?;
    expect_cancel(&mut link, &f.id, R::Declined, "R42").await?;
    p.finish().await;
    Ok("FileCancel(DECLINED)".into())
}

async fn invalid_offer(ctx: Ctx, offer: wire::FileOffer, row: &str) -> CaseResult {
    let p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let id = offer.transfer_id.clone();
    link.send(Body::FileOffer(offer)).await?;
    expect_cancel(&mut link, &id, R::Invalid, row).await?;
    still_open(&mut link, "an invalid FileOffer").await?;
    p.finish().await;
    Ok("FileCancel(INVALID); link kept".into())
}

fn offer_of(f: &OfferedFile) -> wire::FileOffer {
    wire::FileOffer {
        transfer_id: f.tid(),
        name: f.name.clone(),
        size: f.data.len() as u64,
        sha256: f.sha256(),
    }
}

async fn offer_short_id(ctx: Ctx) -> CaseResult {
    let f = OfferedFile::random(10);
    let o = wire::FileOffer {
        transfer_id: Bytes::from_static(&[9; 15]),
        ..offer_of(&f)
    };
    invalid_offer(ctx, o, "R2 (transfer_id of 15 bytes)").await
}

async fn offer_empty_name(ctx: Ctx) -> CaseResult {
    let f = OfferedFile::random(10);
    let o = wire::FileOffer {
        name: String::new(),
        ..offer_of(&f)
    };
    invalid_offer(ctx, o, "R2 (empty name)").await
}

async fn offer_long_name(ctx: Ctx) -> CaseResult {
    let f = OfferedFile::random(10);
    let o = wire::FileOffer {
        name: "n".repeat(peerchat_proto::limits::MAX_FILE_NAME + 1),
        ..offer_of(&f)
    };
    invalid_offer(ctx, o, "R2 (name too long)").await
}

async fn offer_bad_sha(ctx: Ctx) -> CaseResult {
    let f = OfferedFile::random(10);
    let o = wire::FileOffer {
        sha256: Bytes::from_static(&[1; 31]),
        ..offer_of(&f)
    };
    invalid_offer(ctx, o, "R2 (sha256 of 31 bytes)").await
}

async fn reoffer_differs(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(1000);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    let o = wire::FileOffer {
        size: 999,
        ..offer_of(&f)
    };
    link.send(Body::FileOffer(o)).await?;
    expect_cancel(&mut link, &f.id, R::Invalid, "R6").await?;
    let ended = p
        .sut
        .wait_event(
            "transfer_cancelled (R6 ends the transfer)",
            ANSWER,
            cancelled(&f),
        )
        .await;
    p.finish().await;
    ended?;
    Ok("FileCancel(INVALID); transfer ended".into())
}

async fn reoffer_pending(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(1000);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    link.send(f.offer()).await?;
    link.expect_quiet(QUIET, |b| {
        matches!(b, Body::FileAccept(_) | Body::FileCancel(_))
    })
    .await?;
    let again = p.sut.find_within(QUIET, event("file_offered")).await;
    p.finish().await;
    if again.is_some() {
        fail!("R8: the user was asked again");
    }
    Ok("no answer, not asked again".into())
}

async fn reoffer_done(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(5000);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    send_all(&mut link, &f, 0).await?;
    link.expect("FileComplete", ANSWER, |b| {
        matches!(b, Body::FileComplete(_))
    })
    .await?;
    // On a new link: on this one the id is in the discard set now (§8.5.3, completion
    // included), so a re-offer here is R1, not R13.
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    let mut link = p.dial().await?;
    link.send(f.offer()).await?;
    let r = link
        .expect(
            "FileComplete again (R13)",
            ANSWER,
            |b| matches!(b, Body::FileComplete(c) if c.transfer_id.as_ref() == f.id),
        )
        .await;
    p.finish().await;
    r?;
    Ok("FileComplete".into())
}

async fn resume(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(MAX_FILE_CHUNK * 3);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    link.send(f.chunk(0, MAX_FILE_CHUNK)).await?;
    // The chunk was processed once a later Ping is answered (frames are handled in order).
    still_open(&mut link, "a chunk").await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    let mut again = p.dial().await?;
    again.send(f.offer()).await?;
    again
        .expect(
            &format!("FileAccept{{{MAX_FILE_CHUNK}}} (R9)"),
            ANSWER,
            accept_at(&f, MAX_FILE_CHUNK as u64),
        )
        .await?;
    finish_file(&mut again, &f, MAX_FILE_CHUNK).await?;
    p.finish().await;
    Ok("resumed from the bytes held".into())
}

async fn chunk_unknown(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(100);
    link.send(f.chunk(0, 50)).await?;
    expect_cancel(&mut link, &f.id, R::Invalid, "R21").await?;
    link.send(f.chunk(50, 100)).await?;
    link.expect_quiet(QUIET, |b| matches!(b, Body::FileCancel(_)))
        .await?;
    still_open(&mut link, "chunks for an unknown transfer").await?;
    p.finish().await;
    Ok("answered once; link kept".into())
}

async fn chunk_short_id(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let id = Bytes::from_static(&[5; 3]);
    link.send(Body::FileChunk(wire::FileChunk {
        transfer_id: id.clone(),
        offset: 0,
        data: Bytes::from_static(b"abc"),
    }))
    .await?;
    expect_cancel(&mut link, &id, R::Invalid, "R21 (3-byte id)").await?;
    still_open(&mut link, "a chunk with a bad id").await?;
    p.finish().await;
    Ok("FileCancel(INVALID); link kept".into())
}

/// Offer, FileAccept{0}, `held` bytes sent and processed.
async fn receiving(
    p: &mut Pair,
    f: &OfferedFile,
    held: usize,
) -> Result<FriendLink, crate::Verdict> {
    let mut link = p.dial().await?;
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(f, 0))
        .await?;
    if held > 0 {
        link.send(f.chunk(0, held)).await?;
    }
    still_open(&mut link, "the first chunk").await?;
    Ok(link)
}

async fn bad_chunk(ctx: Ctx, chunk: impl Fn(&OfferedFile) -> Body, row: &str) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let f = OfferedFile::random(4000);
    let mut link = receiving(&mut p, &f, 1000).await?;
    link.send(chunk(&f)).await?;
    expect_cancel(&mut link, &f.id, R::Invalid, row).await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, cancelled(&f))
        .await?;
    still_open(&mut link, "an invalid chunk").await?;
    p.finish().await;
    Ok("FileCancel(INVALID); transfer ended; link kept".into())
}

async fn chunk_gap(ctx: Ctx) -> CaseResult {
    bad_chunk(ctx, |f| f.chunk(1500, 2000), "R24").await
}

async fn chunk_empty(ctx: Ctx) -> CaseResult {
    bad_chunk(ctx, |f| f.chunk(1000, 1000), "R25").await
}

async fn chunk_past_size(ctx: Ctx) -> CaseResult {
    bad_chunk(
        ctx,
        |f| {
            Body::FileChunk(wire::FileChunk {
                transfer_id: f.tid(),
                offset: 1000,
                data: Bytes::from(vec![1u8; 3001]),
            })
        },
        "R26",
    )
    .await
}

async fn chunk_pending(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(100);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    link.send(f.chunk(0, 100)).await?;
    expect_cancel(&mut link, &f.id, R::Invalid, "R22").await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, cancelled(&f))
        .await?;
    p.finish().await;
    Ok("FileCancel(INVALID); offer withdrawn".into())
}

async fn chunk_suspended(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let f = OfferedFile::random(4000);
    let mut link = receiving(&mut p, &f, 1000).await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    let mut again = p.dial().await?;
    again.send(f.chunk(1000, 2000)).await?;
    expect_cancel(&mut again, &f.id, R::Invalid, "R23").await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, cancelled(&f))
        .await?;
    p.finish().await;
    Ok("FileCancel(INVALID); transfer ended".into())
}

async fn hash_mismatch(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let mut f = OfferedFile::random(3000);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    f.data[10] ^= 0xff;
    send_all(&mut link, &f, 0).await?;
    expect_cancel(&mut link, &f.id, R::HashMismatch, "R52").await?;
    let ev = p
        .sut
        .wait_event("transfer_cancelled", ANSWER, cancelled(&f))
        .await?;
    p.finish().await;
    if ev["reason"] != "hash_mismatch" {
        fail!(
            "R52: the client reports {} instead of hash_mismatch",
            ev["reason"]
        );
    }
    Ok("FileCancel(HASH_MISMATCH)".into())
}

async fn cancel_unknown(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: Bytes::copy_from_slice(&new_id()),
        reason: R::Cancelled as i32,
        message: String::new(),
    }))
    .await?;
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: Bytes::from_static(&[1]),
        reason: R::Cancelled as i32,
        message: String::new(),
    }))
    .await?;
    link.send(Body::FileComplete(wire::FileComplete {
        transfer_id: Bytes::from_static(&[2; 4]),
    }))
    .await?;
    link.expect_quiet(QUIET, |b| matches!(b, Body::FileCancel(_)))
        .await?;
    still_open(
        &mut link,
        "FileCancel / FileComplete for unknown or bad ids",
    )
    .await?;
    p.finish().await;
    Ok("ignored".into())
}

async fn cancel_pending(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(100);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: f.tid(),
        reason: R::Cancelled as i32,
        message: "changed my mind".into(),
    }))
    .await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, cancelled(&f))
        .await?;
    p.finish().await;
    Ok("withdrawn".into())
}

async fn cancel_receiving(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let f = OfferedFile::random(4000);
    let mut link = receiving(&mut p, &f, 1000).await?;
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: f.tid(),
        reason: R::Cancelled as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, cancelled(&f))
        .await?;
    still_open(&mut link, "FileCancel").await?;
    p.finish().await;
    Ok("ended".into())
}

async fn offer_too_large(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(10);
    let o = wire::FileOffer {
        size: u64::MAX,
        ..offer_of(&f)
    };
    link.send(Body::FileOffer(o)).await?;
    expect_cancel(&mut link, &f.id, R::TooLarge, "R4b").await?;
    still_open(&mut link, "an offer too large").await?;
    p.finish().await;
    Ok("FileCancel(TOO_LARGE)".into())
}

async fn accept_while_apart(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(3000);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    p.sut.say(&format!("/accept-file {}", f.hex())).await?;
    let hex = f.hex();
    let v = p
        .sut
        .wait_event("the accept taken while apart (R41)", ANSWER, |v| {
            (v["event"] == "transfer_suspended" && v["transfer_id"] == hex.as_str())
                || v["event"] == "command_failed"
        })
        .await?;
    if v["event"] == "command_failed" {
        fail!(
            "R41: the client refused the accept while apart: {}",
            v["message"]
        );
    }
    let mut again = p.dial().await?;
    again.send(f.offer()).await?;
    again
        .expect("FileAccept{0} (R41, R9)", ANSWER, accept_at(&f, 0))
        .await?;
    finish_file(&mut again, &f, 0).await?;
    p.finish().await;
    Ok("accepted while apart; FileAccept{0} on the re-offer".into())
}

async fn unfriend_ends(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let f = OfferedFile::random(4000);
    let mut link = receiving(&mut p, &f, 1000).await?;
    let r = p
        .friend_conn
        .request(crate::client::req::unfriend(&p.sut_user.userid))
        .await?;
    crate::ok!(r, Unfriend, "Unfriend");
    link.expect_close_with(CloseReason::NotAFriend, ANSWER)
        .await?;
    let ev = p
        .sut
        .wait_event("transfer_cancelled (R54)", ANSWER, cancelled(&f))
        .await;
    p.finish().await;
    ev?;
    Ok("link closed NOT_A_FRIEND; transfer ended".into())
}

/// Ends `link` with Close NORMAL and opens the next one (ids of the old link's discard set are
/// answered again on the new one, §8.5.3).
async fn relink(p: &mut Pair, mut link: FriendLink) -> Result<FriendLink, crate::Verdict> {
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    p.dial().await
}

async fn invalid_reoffer_pending(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(1000);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    link.send(Body::FileOffer(wire::FileOffer {
        name: String::new(),
        ..offer_of(&f)
    }))
    .await?;
    expect_cancel(&mut link, &f.id, R::Invalid, "R3").await?;
    p.sut
        .wait_event("transfer_cancelled (R3)", ANSWER, cancelled(&f))
        .await?;
    still_open(&mut link, "an invalid re-offer").await?;
    p.finish().await;
    Ok("FileCancel(INVALID); the pending offer ended".into())
}

async fn reoffer_receiving(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(MAX_FILE_CHUNK * 3);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    link.send(f.chunk(0, MAX_FILE_CHUNK)).await?;
    still_open(&mut link, "a chunk").await?;
    link.send(f.offer()).await?;
    expect_cancel(&mut link, &f.id, R::Invalid, "R10").await?;
    p.sut
        .wait_event("transfer_cancelled (R10)", ANSWER, cancelled(&f))
        .await?;
    p.finish().await;
    Ok("FileCancel(INVALID); the transfer ended".into())
}

async fn reoffer_second_link(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, AUTO).await?;
    let mut first = p.dial().await?;
    let f = OfferedFile::random(MAX_FILE_CHUNK * 3);
    first.send(f.offer()).await?;
    first
        .expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    first.send(f.chunk(0, MAX_FILE_CHUNK)).await?;
    still_open(&mut first, "a chunk").await?;
    // A second link (the newer wins, L52): the transfer was RECEIVING on the first.
    let mut second = p.dial().await?;
    second.send(f.offer()).await?;
    second
        .expect(
            &format!("FileAccept{{{MAX_FILE_CHUNK}}} (R11)"),
            ANSWER,
            accept_at(&f, MAX_FILE_CHUNK as u64),
        )
        .await?;
    finish_file(&mut second, &f, MAX_FILE_CHUNK).await?;
    p.finish().await;
    Ok("resumed on the second link from the bytes held".into())
}

async fn reoffer_declined(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(1000);
    link.send(f.offer()).await?;
    offered(&mut p, &f).await?;
    p.sut.say(&format!("/decline-file {}", f.hex())).await?;
    expect_cancel(&mut link, &f.id, R::Declined, "R42").await?;
    let mut again = relink(&mut p, link).await?;
    again.send(f.offer()).await?;
    expect_cancel(&mut again, &f.id, R::Declined, "R14").await?;
    p.finish().await;
    Ok("FileCancel(DECLINED) again".into())
}

async fn reoffer_after_invalid(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(MAX_FILE_CHUNK * 2);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    // A gap (R24) ends the transfer with INVALID.
    link.send(f.chunk(MAX_FILE_CHUNK, MAX_FILE_CHUNK * 2))
        .await?;
    expect_cancel(&mut link, &f.id, R::Invalid, "R24").await?;
    let mut again = relink(&mut p, link).await?;
    again.send(f.offer()).await?;
    let r = expect_cancel(
        &mut again,
        &f.id,
        R::Invalid,
        "R14: the reason that ended it",
    )
    .await;
    p.finish().await;
    r?;
    Ok("FileCancel(INVALID) again".into())
}

async fn reoffer_after_mismatch(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(5000);
    let lie = OfferedFile::random(5000);
    let offer = wire::FileOffer {
        sha256: lie.sha256(),
        ..offer_of(&f)
    };
    link.send(Body::FileOffer(offer.clone())).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    send_all(&mut link, &f, 0).await?;
    expect_cancel(&mut link, &f.id, R::HashMismatch, "R52").await?;
    let mut again = relink(&mut p, link).await?;
    again.send(Body::FileOffer(offer)).await?;
    let r = expect_cancel(
        &mut again,
        &f.id,
        R::HashMismatch,
        "R14: the reason that ended it",
    )
    .await;
    p.finish().await;
    r?;
    Ok("FileCancel(HASH_MISMATCH) again".into())
}

async fn too_many_offers(ctx: Ctx) -> CaseResult {
    let cap = peerchat_proto::limits::MAX_OFFERS_IN_FLIGHT;
    let mut p = Pair::start(&ctx, ASK).await?;
    let mut link = p.dial().await?;
    let files: Vec<OfferedFile> = (0..=cap).map(|_| OfferedFile::random(100)).collect();
    for f in &files[..cap] {
        link.send(f.offer()).await?;
    }
    // Every one of them is pending the user's decision (R5) before the next is sent.
    for f in &files[..cap] {
        offered(&mut p, f).await?;
    }
    let last = &files[cap];
    link.send(last.offer()).await?;
    expect_cancel(&mut link, &last.id, R::TooManyOffers, "R4a").await?;
    still_open(&mut link, "an offer over the cap").await?;
    p.finish().await;
    Ok(format!(
        "{cap} pending, the next FileCancel(TOO_MANY_OFFERS)"
    ))
}

async fn reoffer_discarded(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(MAX_FILE_CHUNK * 2);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    // A gap (R24): FileCancel(INVALID); the id enters this link's discard set (§8.5.3).
    link.send(f.chunk(MAX_FILE_CHUNK, MAX_FILE_CHUNK * 2))
        .await?;
    expect_cancel(&mut link, &f.id, R::Invalid, "R24").await?;
    link.send(f.offer()).await?;
    let r = link
        .expect_quiet(QUIET, |b| {
            matches!(b, Body::FileCancel(_) | Body::FileAccept(_))
        })
        .await
        .map_err(|e| match e {
            crate::Verdict::Fail(m) => crate::Verdict::Fail(format!(
                "R1: a re-offer of an id in the discard set was answered: {m}"
            )),
            other => other,
        });
    p.finish().await;
    r?;
    Ok("discarded".into())
}

async fn offer_own_id(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let path = p.dir.0.join("own.bin");
    let data = vec![7u8; 3000];
    std::fs::write(&path, &data)
        .map_err(|e| crate::Verdict::Fail(format!("cannot write {}: {e}", path.display())))?;
    p.sut
        .say(&format!("/send {} {}", p.friend.userid, path.display()))
        .await?;
    let b = link
        .expect("the client's FileOffer", ANSWER, |b| {
            matches!(b, Body::FileOffer(_))
        })
        .await?;
    let Body::FileOffer(own) = b else {
        fail!("not an offer")
    };
    // The friend offers a file of its own under the client's transfer id.
    let mine = OfferedFile::random(100);
    link.send(Body::FileOffer(wire::FileOffer {
        transfer_id: own.transfer_id.clone(),
        ..offer_of(&mine)
    }))
    .await?;
    let r = async {
        expect_cancel(&mut link, &own.transfer_id, R::Invalid, "R4").await?;
        link.send(Body::FileAccept(wire::FileAccept {
            transfer_id: own.transfer_id.clone(),
            offset: 0,
        }))
        .await?;
        link.expect(
            "a FileChunk of the client's own transfer (R4: not affected)",
            ANSWER,
            |b| matches!(b, Body::FileChunk(c) if c.transfer_id == own.transfer_id),
        )
        .await?;
        Ok::<_, crate::Verdict>(())
    }
    .await;
    p.finish().await;
    r?;
    Ok("FileCancel(INVALID); the own transfer went on".into())
}

async fn differing_reoffer_done(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(3000);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    finish_file(&mut link, &f, 0).await?;
    let mut again = relink(&mut p, link).await?;
    again
        .send(Body::FileOffer(wire::FileOffer {
            name: format!("other-{}", f.name),
            ..offer_of(&f)
        }))
        .await?;
    let r = again
        .expect("FileCancel(INVALID) (R7)", ANSWER, |b| {
            matches!(b, Body::FileCancel(c) if c.transfer_id.as_ref() == f.id)
                || matches!(b, Body::FileComplete(c) if c.transfer_id.as_ref() == f.id)
        })
        .await;
    p.finish().await;
    match r? {
        Body::FileCancel(c) if c.reason == R::Invalid as i32 => {
            Ok("FileCancel(INVALID); the outcome kept".into())
        }
        Body::FileCancel(c) => fail!(
            "R7: FileCancel({}) instead of INVALID",
            crate::peer::link::cancel_name(c.reason)
        ),
        _ => fail!("R7: a differing re-offer of a finished transfer was answered FileComplete (R13 is for identical ones only)"),
    }
}

async fn cancel_in_discard_set(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(100);
    link.send(f.chunk(0, 50)).await?;
    expect_cancel(&mut link, &f.id, R::Invalid, "R21").await?;
    link.send(Body::FileCancel(wire::FileCancel {
        transfer_id: f.tid(),
        reason: R::Invalid as i32,
        message: String::new(),
    }))
    .await?;
    link.expect_quiet(QUIET, |b| matches!(b, Body::FileCancel(_)))
        .await?;
    still_open(&mut link, "a FileCancel for an id in the discard set").await?;
    p.finish().await;
    Ok("discarded".into())
}

async fn user_cancels_receiving(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let f = OfferedFile::random(4000);
    let mut link = receiving(&mut p, &f, 1000).await?;
    p.sut.say(&format!("/cancel {}", f.hex())).await?;
    expect_cancel(&mut link, &f.id, R::Cancelled, "R43").await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, cancelled(&f))
        .await?;
    p.finish().await;
    Ok("FileCancel(CANCELLED)".into())
}

async fn cancel_suspended_reoffer(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let f = OfferedFile::random(4000);
    let mut link = receiving(&mut p, &f, 1000).await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event("peer_disconnected", ANSWER, event("peer_disconnected"))
        .await?;
    p.sut.say(&format!("/cancel {}", f.hex())).await?;
    p.sut
        .wait_event("transfer_cancelled", ANSWER, cancelled(&f))
        .await?;
    let mut again = p.dial().await?;
    again.send(f.offer()).await?;
    let r = expect_cancel(&mut again, &f.id, R::Cancelled, "R44, then R14").await;
    p.finish().await;
    r?;
    Ok("nothing while apart; FileCancel(CANCELLED) for the re-offer".into())
}

async fn no_data(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, AUTO).await?;
    let mut link = p.dial().await?;
    let f = OfferedFile::random(1000);
    link.send(f.offer()).await?;
    link.expect("FileAccept{0}", ANSWER, accept_at(&f, 0))
        .await?;
    let limit = peerchat_proto::limits::OFFER_DATA_TIMEOUT;
    let start = tokio::time::Instant::now();
    // The friend sends nothing more (its link answers the client's idle Pings, so the link
    // itself stays up).
    let r = link
        .expect(
            "FileCancel(NO_DATA) (R56)",
            limit + std::time::Duration::from_secs(20),
            super::is_cancel(&f.id, R::NoData),
        )
        .await;
    let took = start.elapsed();
    let ev = p
        .sut
        .wait_event("transfer_cancelled (R56)", ANSWER, cancelled(&f))
        .await;
    p.finish().await;
    r?;
    ev?;
    if took + std::time::Duration::from_secs(2) < limit {
        fail!("R56: FileCancel(NO_DATA) after {took:?}, before OFFER_DATA_TIMEOUT ({limit:?})");
    }
    Ok(format!("FileCancel(NO_DATA) after {took:?}"))
}
