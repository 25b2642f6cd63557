//! Table L (SPEC.md §8.5.1): admission, hello, Ping/Pong, framing errors, Close.

use std::time::Duration;

use peerchat_proto::limits::{HANDSHAKE_TIMEOUT, MAX_FRAME};
use peerchat_proto::wire::{self, peer_message::Body, CloseReason};

use super::{still_open, STEP};
use crate::case::{Case, CaseResult};
use crate::ctx::Ctx;
use crate::ident;
use crate::peer::link::FriendLink;
use crate::peer::pair::{Pair, PairOptions, ANSWER, QUIET};
use crate::verdict::Verdict;
use crate::{fail, peer_case};

/// The Table L cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("peer.l12.hello-answered", "7.2", "a friend's valid PeerHello is answered with the client's own, naming both in their registered spellings", peer_case!(hello_answered)).covers(&["PeerHello"]),
        Case::must("peer.l12.client-dials-and-speaks-first", "7.2", "a message sent with no link makes the client dial; as initiator it sends its PeerHello first, then the message", peer_case!(client_dials)).covers(&["PeerHello", "ChatMessage"]).rows(&["C21"]),
        Case::must("peer.l11.stranger-key", "7.2", "a handshake with a key that is no friend's is refused with Close NOT_A_FRIEND", peer_case!(stranger_key)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.l13.hello-names-no-friend", "7.2", "a PeerHello whose userid names no friend with the handshake key is refused with NOT_A_FRIEND", peer_case!(hello_unknown_userid)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.l13.hello-empty-userid", "7.2", "a PeerHello with an empty userid is refused with NOT_A_FRIEND", peer_case!(hello_empty_userid)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.l15.hello-wrong-to-userid", "7.2", "a PeerHello whose to_userid is not the client's userid is refused with NOT_A_FRIEND", peer_case!(hello_wrong_to)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.l14.initiator-gets-other-userid", "7.2", "as initiator, a PeerHello naming another user than the friend dialled is refused with NOT_A_FRIEND", peer_case!(initiator_other_userid)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.l16.close-as-first-frame", "3.7", "a Close as the first frame ends the link without an answer", peer_case!(close_first)),
        Case::must("peer.l17.chat-before-hello", "7.2", "a first frame that is not PeerHello is answered with Close PROTOCOL_ERROR", peer_case!(chat_before_hello)).covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must("peer.l20.hello-twice", "7.2", "a second PeerHello on an open link is answered with Close PROTOCOL_ERROR", peer_case!(hello_twice)).covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must("peer.l21.ping-pong", "3.6", "a Ping is answered with a Pong carrying its nonce", peer_case!(ping_pong)).covers(&["Ping", "Pong"]),
        Case::must("peer.l21b.ping-flood", "7.9", "Pings beyond PEER_PING_BURST in one burst are answered with Close RATE_LIMITED", peer_case!(ping_flood)).covers(&["CLOSE_REASON_RATE_LIMITED"]),
        Case::must("peer.l23.unmatched-pong-ignored", "3.6", "a Pong that answers no Ping is ignored; the link stays open", peer_case!(unmatched_pong)),
        Case::must("peer.l24.empty-message-ignored", "11.2", "a PeerMessage with no body (an unknown case) is ignored; the link stays open", peer_case!(empty_message)),
        Case::must("peer.l4.frame-too-large", "3.3", "a frame length over MAX_FRAME on an open link is answered with Close FRAME_TOO_LARGE", peer_case!(frame_too_large)).covers(&["CLOSE_REASON_FRAME_TOO_LARGE"]),
        Case::must("peer.l4.frame-too-large-before-hello", "3.3", "a frame length over MAX_FRAME before the hello is answered with Close FRAME_TOO_LARGE", peer_case!(frame_too_large_before_hello)).covers(&["CLOSE_REASON_FRAME_TOO_LARGE"]),
        Case::must("peer.l5.malformed-frame", "3.5", "a frame that does not decode as PeerMessage is answered with Close MALFORMED_FRAME", peer_case!(malformed_frame)).covers(&["CLOSE_REASON_MALFORMED_FRAME"]),
        Case::must("peer.l30.close-normal-then-redial", "7.4", "after the friend's Close NORMAL the client dials again when it has something to send", peer_case!(close_normal_redial)).covers(&["CLOSE_REASON_NORMAL"]),
        Case::should("peer.l33.not-a-friend-stops-dialling", "7.2", "after the friend's Close NOT_A_FRIEND the client does not dial it again while nothing changed", peer_case!(not_a_friend_no_redial)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.l52.duplicate-link-one-survives", "7.3", "a second link with the same friend: exactly one of the two is closed with DUPLICATE_CONNECTION", peer_case!(duplicate_link)).covers(&["CLOSE_REASON_DUPLICATE_CONNECTION"]),
        Case::must("peer.l1.empty-record", "3.5", "a record with length 0 is answered with Close PROTOCOL_ERROR", peer_case!(empty_record)).covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must("peer.l2.undecryptable-record", "3.2", "a record that fails to decrypt ends the link silently (no Close)", peer_case!(undecryptable_record)),
        Case::must("peer.l6.end-of-stream-drops-link", "3.7", "end-of-stream at a frame boundary without Close drops the link; the client dials again when it has something to send", peer_case!(eof_drops_link)),
        Case::must("peer.l7.frames-after-close-discarded", "3.7", "after the client's Close, the friend's frames are discarded (a chat is not shown)", peer_case!(frames_after_close)),
        Case::should("peer.l44.closing-drains-input", "3.7", "after its Close the client keeps reading and discarding for CLOSE_GRACE, so the friend's writes meet no reset", peer_case!(closing_drains)),
        Case::must("peer.l18.hello-deadline-from-connect", "7.2", "no PeerHello within HANDSHAKE_TIMEOUT of the TCP connect (not of the Noise handshake's end): Close PROTOCOL_ERROR", peer_case!(hello_deadline)).timeout_secs(40),
        Case::must("peer.l12.shared-key-responder", "7.2", "two friends share one key: a hello from either is answered with a PeerHello naming that friend", peer_case!(shared_key)).covers(&["PeerHello"]),
        Case::must("peer.l51.key-change-closes-link", "12.4", "when the server presents another key for the friend (FriendKeyChanged), the link authenticated with the old key is closed with NOT_A_FRIEND", peer_case!(key_change_closes)).covers(&["FriendKeyChanged", "CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.l10.dialled-key-mismatch", "7.2", "dialling the friend and reaching another key, the client abandons the handshake before message 3 (it never reveals itself)", peer_case!(dialled_key_mismatch)),
        Case::must("peer.l3.empty-record-ignored", "3.2", "records whose plaintext is empty carry no frame: the client takes them and keeps serving the link", peer_case!(empty_plaintext)),
        Case::must("peer.l21a.ping-burst-answered-last-nonce", "3.6", "Pings arriving together are answered in order, the last Pong carrying the last nonce (one queued Pong may answer several)", peer_case!(ping_burst)).covers(&["Pong"]),
        Case::must("peer.l51a.key-change-pending-admits-neither-key", "12.4", "while the friend's key change is pending, a link under the old key and one under the presented key are both refused with NOT_A_FRIEND", peer_case!(key_change_pending)).covers(&["CLOSE_REASON_NOT_A_FRIEND"]),
        Case::must("peer.l53.quit-closes-normal", "9.2", "when the user quits, the client closes its open link with Close NORMAL", peer_case!(quit_closes_normal)).covers(&["CLOSE_REASON_NORMAL"]),
        Case::must("peer.l31.close-idle-timeout-then-redial", "7.4", "after the friend's Close IDLE_TIMEOUT the client dials again when it has something to send", peer_case!(close_idle_redial)).covers(&["CLOSE_REASON_IDLE_TIMEOUT"]),
        Case::must("peer.l32.duplicate-closed-other-kept", "7.3", "after the friend's Close DUPLICATE_CONNECTION on one of two links the client carries on, on the other", peer_case!(duplicate_closed_other_kept)),
        Case::must("peer.l34.close-rate-limited-then-redial", "9.2", "after the friend's Close RATE_LIMITED the client dials again (after its back-off) when it has something to send", peer_case!(close_rate_limited_redial)).covers(&["CLOSE_REASON_RATE_LIMITED"]),
        Case::must("peer.l35.close-protocol-error-then-redial", "9.2", "after the friend's Close PROTOCOL_ERROR (or an unknown reason) the client logs it and dials again (after its back-off) when it has something to send", peer_case!(close_protocol_error_redial)),
    ]
}

async fn hello_answered(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    still_open(&mut link, "the hello exchange").await?;
    p.finish().await;
    Ok("hello answered with the client's own".into())
}

async fn client_dials(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    p.sut_says("first words").await?;
    let mut link = p.accept().await?;
    link.expect(
        "the ChatMessage",
        ANSWER,
        |b| matches!(b, Body::Chat(c) if c.text == "first words"),
    )
    .await?;
    p.finish().await;
    Ok("dialled, hello first, then the message".into())
}

async fn refused(link: &mut FriendLink, want: CloseReason, row: &str) -> CaseResult {
    match link.expect_close(STEP).await? {
        Some(r) if r == want => Ok(format!("{row}: Close {}", want.as_str_name())),
        Some(r) => fail!(
            "{row}: closed with {}, expected {}",
            r.as_str_name(),
            want.as_str_name()
        ),
        None => fail!("{row}: dropped without Close {}", want.as_str_name()),
    }
}

async fn stranger_key(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let Some(stranger) = ident::key_other_than(&[p.friend.key, p.sut_user.key]) else {
        crate::skip!("no third test key");
    };
    let mut link = FriendLink::dial_raw(p.sut_addr, &ident::key(stranger).local).await?;
    let _ = link.send(p.hello()).await;
    let r = refused(&mut link, CloseReason::NotAFriend, "L11").await;
    p.finish().await;
    r
}

async fn hello_with(ctx: Ctx, userid: Option<&str>, to: Option<&str>, row: &str) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial_raw().await?;
    link.send(Body::Hello(wire::PeerHello {
        userid: userid.map_or_else(|| p.friend.userid.clone(), str::to_owned),
        to_userid: to.map_or_else(|| p.sut_user.userid.clone(), str::to_owned),
        // A version-1 friend: no optional features (SPEC.md §7.2 rule 9).
        features: Vec::new(),
    }))
    .await?;
    let r = refused(&mut link, CloseReason::NotAFriend, row).await;
    p.finish().await;
    r
}

async fn hello_unknown_userid(ctx: Ctx) -> CaseResult {
    let other = ident::userid();
    hello_with(ctx, Some(&other), None, "L13").await
}

async fn hello_empty_userid(ctx: Ctx) -> CaseResult {
    hello_with(ctx, Some(""), None, "L13").await
}

async fn hello_wrong_to(ctx: Ctx) -> CaseResult {
    let other = ident::userid();
    hello_with(ctx, None, Some(&other), "L15").await
}

async fn initiator_other_userid(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    p.sut_says("are you there").await?;
    let mut link = p.accept_raw().await?;
    p.expect_hello(&mut link).await?;
    link.send(Body::Hello(wire::PeerHello {
        userid: ident::userid(),
        to_userid: p.sut_user.userid.clone(),
        // A version-1 friend: no optional features (SPEC.md §7.2 rule 9).
        features: Vec::new(),
    }))
    .await?;
    let r = refused(&mut link, CloseReason::NotAFriend, "L14").await;
    p.finish().await;
    r
}

async fn close_first(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial_raw().await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: "bye".into(),
    }))
    .await?;
    let r = match link.expect_close(STEP).await? {
        None => Ok("L16: closed without an answer".into()),
        Some(r) => fail!(
            "L16: answered a first-frame Close with Close {}",
            r.as_str_name()
        ),
    };
    p.finish().await;
    r
}

async fn chat_before_hello(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial_raw().await?;
    link.send(Body::Chat(wire::ChatMessage {
        message_id: super::new_id().to_vec().into(),
        sent_at_unix_ms: 1,
        text: "no hello".into(),
    }))
    .await?;
    let r = refused(&mut link, CloseReason::ProtocolError, "L17").await;
    p.finish().await;
    r
}

async fn hello_twice(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(p.hello()).await?;
    let r = refused(&mut link, CloseReason::ProtocolError, "L20").await;
    p.finish().await;
    r
}

async fn ping_pong(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    still_open(&mut link, "a Ping").await?;
    p.finish().await;
    Ok("Pong echoes the nonce".into())
}

async fn ping_flood(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let n = peerchat_proto::limits::PEER_PING_BURST as u64 * 3;
    for i in 0..n {
        if link
            .send(Body::Ping(wire::Ping { nonce: i + 1 }))
            .await
            .is_err()
        {
            break;
        }
    }
    let r = refused(&mut link, CloseReason::RateLimited, "L21b").await;
    p.finish().await;
    r
}

async fn unmatched_pong(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(Body::Pong(wire::Pong { nonce: 77 })).await?;
    still_open(&mut link, "a Pong matching no Ping").await?;
    p.finish().await;
    Ok("ignored".into())
}

async fn empty_message(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send_msg(&wire::PeerMessage { body: None }).await?;
    // Field 99, varint 1: a case from a later version.
    link.send_raw_frame(&[0x98, 0x06, 0x01]).await?;
    still_open(&mut link, "a PeerMessage with no known body").await?;
    p.finish().await;
    Ok("ignored".into())
}

async fn frame_too_large(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let len = u32::try_from(MAX_FRAME + 1).unwrap_or(u32::MAX);
    link.send_raw(&len.to_be_bytes()).await?;
    let r = refused(&mut link, CloseReason::FrameTooLarge, "L4").await;
    p.finish().await;
    r
}

async fn frame_too_large_before_hello(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial_raw().await?;
    let len = u32::try_from(MAX_FRAME + 1).unwrap_or(u32::MAX);
    link.send_raw(&len.to_be_bytes()).await?;
    let r = refused(
        &mut link,
        CloseReason::FrameTooLarge,
        "L4 in AWAITING_HELLO",
    )
    .await;
    p.finish().await;
    r
}

async fn malformed_frame(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    // Field 2 (chat), length-delimited, claiming 50 bytes that are not there.
    link.send_raw_frame(&[0x12, 0x32, 0x01]).await?;
    let r = refused(&mut link, CloseReason::MalformedFrame, "L5").await;
    p.finish().await;
    r
}

async fn close_normal_redial(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::Normal as i32,
        message: "see you".into(),
    }))
    .await?;
    p.sut
        .wait_event(
            "peer_disconnected",
            ANSWER,
            crate::peer::sut::event("peer_disconnected"),
        )
        .await?;
    p.sut_says("after the close").await?;
    let mut again = p.accept().await?;
    again
        .expect(
            "the ChatMessage",
            ANSWER,
            |b| matches!(b, Body::Chat(c) if c.text == "after the close"),
        )
        .await?;
    p.finish().await;
    Ok("dialled again when needed".into())
}

async fn not_a_friend_no_redial(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(Body::Close(wire::Close {
        reason: CloseReason::NotAFriend as i32,
        message: "not your friend".into(),
    }))
    .await?;
    p.sut
        .wait_event(
            "peer_disconnected",
            ANSWER,
            crate::peer::sut::event("peer_disconnected"),
        )
        .await?;
    p.sut_says("may I?").await?;
    let dialled = tokio::time::timeout(QUIET * 3, p.listener.accept()).await;
    p.finish().await;
    match dialled {
        Ok(Ok(_)) => fail!("L33: the client dialled a friend that had closed with NOT_A_FRIEND, nothing having changed"),
        _ => Ok("no redial".into()),
    }
}

async fn duplicate_link(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut first = p.dial().await?;
    let mut second = p.dial().await?;
    // The friend did not initiate both with different users: both were initiated by the
    // friend, so the newer one wins (L52): the client closes the first.
    let closed_first = first.expect_close(STEP).await;
    let r = match closed_first {
        Ok(Some(CloseReason::DuplicateConnection)) => {
            still_open(&mut second, "the duplicate was resolved").await?;
            Ok("the older link closed with DUPLICATE_CONNECTION".into())
        }
        Ok(Some(r)) => fail!("L52: the older link was closed with {}", r.as_str_name()),
        Ok(None) => fail!("L52: the older link was dropped without Close"),
        Err(e) => Err(e),
    };
    p.finish().await;
    r
}

async fn empty_record(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    // The record header only: length 0 (SPEC.md §3.1).
    link.send_tcp(&[0, 0]).await?;
    let r = refused(&mut link, CloseReason::ProtocolError, "L1").await;
    p.finish().await;
    r
}

async fn undecryptable_record(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    // A 32-byte record of zeros: its tag cannot verify.
    let mut rec = vec![0u8, 32];
    rec.extend_from_slice(&[0u8; 32]);
    link.send_tcp(&rec).await?;
    let r = match link.expect_close(STEP).await? {
        None => Ok("L2: dropped without a Close".into()),
        Some(r) => fail!(
            "L2: answered a record that does not decrypt with Close {} (its sender cannot be trusted to read it)",
            r.as_str_name()
        ),
    };
    p.finish().await;
    r
}

async fn eof_drops_link(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.shutdown_write().await?;
    p.sut
        .wait_event(
            "peer_disconnected (L6)",
            ANSWER,
            crate::peer::sut::event("peer_disconnected"),
        )
        .await?;
    p.sut_says("after the end-of-stream").await?;
    let mut again = p.accept().await?;
    again
        .expect(
            "the ChatMessage on a new link",
            ANSWER,
            |b| matches!(b, Body::Chat(c) if c.text == "after the end-of-stream"),
        )
        .await?;
    p.finish().await;
    Ok("dropped; dialled again when needed".into())
}

fn chat(text: &str) -> Body {
    Body::Chat(wire::ChatMessage {
        message_id: super::new_id().to_vec().into(),
        sent_at_unix_ms: 1,
        text: text.into(),
    })
}

async fn frames_after_close(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    // L20 makes the client close; the chat right behind the second hello reaches a CLOSING
    // link and must be discarded, never processed (L7).
    link.send(p.hello()).await?;
    let _ = link.send(chat("after your close")).await;
    let r = refused(&mut link, CloseReason::ProtocolError, "L20").await?;
    let shown = p
        .sut
        .wait_event("message_received", QUIET, |v| {
            v["event"] == "message_received" && v["text"] == "after your close"
        })
        .await;
    p.finish().await;
    if shown.is_ok() {
        fail!("L7: a chat that arrived after the client's Close was processed and shown");
    }
    Ok(format!("{r}; the chat behind it was discarded"))
}

async fn closing_drains(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(p.hello()).await?;
    refused(&mut link, CloseReason::ProtocolError, "L20").await?;
    // The friend has not read the Close yet when it writes (a crossing): these frames must
    // meet a reading peer for CLOSE_GRACE (L7, L44), not a socket closed with input unread,
    // which answers with a reset.
    let mut broke = None;
    for i in 0..8 {
        if let Err(e) = link
            .send(Body::Typing(wire::Typing { active: i % 2 == 0 }))
            .await
        {
            broke = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let _ = link.shutdown_write().await;
    p.finish().await;
    match broke {
        Some(Verdict::Fail(e)) | Some(Verdict::Skip(e)) => fail!(
            "L44: within CLOSE_GRACE of its Close the client's socket no longer read (a reset): {e}"
        ),
        None => Ok("frames after the Close were read and discarded".into()),
    }
}

async fn hello_deadline(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    // 60 % of the deadline passes before the Noise handshake even starts; the rest of it
    // (plus slack for a loaded machine) is all the client may wait for the hello.
    let before = HANDSHAKE_TIMEOUT * 6 / 10;
    let mut link =
        FriendLink::dial_late(p.sut_addr, &ident::key(p.friend.key).local, before).await?;
    let left = HANDSHAKE_TIMEOUT - before + Duration::from_secs(2);
    let r = match link.expect_close(left).await {
        Ok(Some(CloseReason::ProtocolError)) => Ok("Close PROTOCOL_ERROR within HANDSHAKE_TIMEOUT of the TCP connect".into()),
        Ok(Some(r)) => fail!("L18: closed with {}, expected PROTOCOL_ERROR", r.as_str_name()),
        Ok(None) => fail!("L18: dropped without Close PROTOCOL_ERROR"),
        Err(_) => fail!(
            "L18: no Close within HANDSHAKE_TIMEOUT ({HANDSHAKE_TIMEOUT:?}) of the TCP connect (+2 s): the client counts it from the end of the Noise handshake (audit D14)"
        ),
    };
    p.finish().await;
    r
}

async fn shared_key(ctx: Ctx) -> CaseResult {
    let opts = PairOptions {
        twin: true,
        ..PairOptions::default()
    };
    let p = Pair::start(&ctx, opts).await?;
    let Some(twin) = p.twin.clone() else {
        fail!("no twin friend")
    };
    let key = ident::key(p.friend.key);
    // Both friends, one after the other: whichever of them a client finds first by key, the
    // other one's hello is the test.
    let mut links = Vec::new();
    for who in [&twin, &p.friend] {
        let mut link = FriendLink::dial_raw(p.sut_addr, &key.local).await?;
        link.send(Body::Hello(wire::PeerHello {
            userid: who.userid.clone(),
            to_userid: p.sut_user.userid.clone(),
            features: Vec::new(),
        }))
        .await?;
        let b = link
            .expect("PeerHello", ANSWER, |b| matches!(b, Body::Hello(_)))
            .await
            .map_err(|e| match e {
                Verdict::Fail(m) => Verdict::Fail(format!(
                    "L12: a hello from {} (sharing its key with another friend) was not answered (audit D11): {m}",
                    who.userid
                )),
                other => other,
            })?;
        if let Body::Hello(h) = b {
            if h.to_userid != who.userid {
                fail!(
                    "L12: the client's hello names {} as the friend, expected {}",
                    h.to_userid,
                    who.userid
                );
            }
        }
        still_open(&mut link, "the hello exchange").await?;
        links.push(link);
    }
    p.finish().await;
    Ok("each friend sharing the key got its own link".into())
}

async fn key_change_closes(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let Some(new_key) = ident::key_other_than(&[p.friend.key, p.sut_user.key]) else {
        crate::skip!("no third test key");
    };
    // The friend logs in from another key: the server tells the client FriendKeyChanged.
    let (_c, _) = ctx.login_with(&p.friend, new_key, None).await?;
    let r = refused(&mut link, CloseReason::NotAFriend, "L51").await;
    p.finish().await;
    r
}

async fn dialled_key_mismatch(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let Some(stranger) = ident::key_other_than(&[p.friend.key, p.sut_user.key]) else {
        crate::skip!("no third test key");
    };
    p.sut_says("who is there?").await?;
    // The friend's listener answers with another key: message 2 proves the wrong identity.
    let r = FriendLink::accept_raw(&p.listener, &ident::key(stranger).local, ANSWER).await;
    p.finish().await;
    match r {
        Err(Verdict::Fail(e)) if e.contains("did not dial") => Err(Verdict::Fail(e)),
        Err(_) => Ok("handshake abandoned after message 2".into()),
        Ok(_) => {
            fail!("L10: the client completed the handshake with a key that is not the friend's")
        }
    }
}

/// The friend closes with `reason`; the client must dial again for its next message.
async fn closed_then_redial(ctx: Ctx, reason: CloseReason, row: &str) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(Body::Close(wire::Close {
        reason: reason as i32,
        message: String::new(),
    }))
    .await?;
    p.sut
        .wait_event(
            "peer_disconnected",
            ANSWER,
            crate::peer::sut::event("peer_disconnected"),
        )
        .await?;
    p.sut_says("after the close").await?;
    let mut again = p.accept().await.map_err(|e| match e {
        Verdict::Fail(m) => Verdict::Fail(format!("{row}: {m}")),
        other => other,
    })?;
    again
        .expect(
            "the ChatMessage",
            ANSWER,
            |b| matches!(b, Body::Chat(c) if c.text == "after the close"),
        )
        .await?;
    p.finish().await;
    Ok(format!("{row}: dialled again when needed"))
}

async fn close_idle_redial(ctx: Ctx) -> CaseResult {
    closed_then_redial(ctx, CloseReason::IdleTimeout, "L31").await
}

async fn duplicate_closed_other_kept(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut first = p.dial().await?;
    let mut second = p.dial().await?;
    // The client keeps the newer link (L52) and closes the first; if it has not yet, the
    // friend's own DUPLICATE_CONNECTION on the first must leave the second in use (L32).
    let _ = first
        .send(Body::Close(wire::Close {
            reason: CloseReason::DuplicateConnection as i32,
            message: String::new(),
        }))
        .await;
    still_open(&mut second, "a DUPLICATE_CONNECTION on the other link").await?;
    p.sut_says("on the survivor").await?;
    second
        .expect(
            "the ChatMessage on the remaining link (L32)",
            ANSWER,
            |b| matches!(b, Body::Chat(c) if c.text == "on the survivor"),
        )
        .await?;
    p.finish().await;
    Ok("carried on on the other link".into())
}

async fn close_rate_limited_redial(ctx: Ctx) -> CaseResult {
    closed_then_redial(ctx, CloseReason::RateLimited, "L34").await
}

async fn close_protocol_error_redial(ctx: Ctx) -> CaseResult {
    closed_then_redial(ctx, CloseReason::ProtocolError, "L35").await
}

async fn empty_plaintext(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    for _ in 0..3 {
        link.send_empty_record().await?;
    }
    still_open(&mut link, "records with an empty plaintext (L3)").await?;
    p.finish().await;
    Ok("taken; the link is served".into())
}

async fn ping_burst(ctx: Ctx) -> CaseResult {
    use bytes::BufMut as _;
    use prost::Message as _;
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    // Fewer than PEER_PING_BURST (L21b), all in one record so that they arrive together.
    let n = u64::from(peerchat_proto::limits::PEER_PING_BURST) - 2;
    let mut bytes = Vec::new();
    for nonce in 1..=n {
        let m = wire::PeerMessage {
            body: Some(Body::Ping(wire::Ping { nonce })),
        };
        bytes.put_u32(u32::try_from(m.encoded_len()).unwrap_or(u32::MAX));
        m.encode(&mut bytes)
            .map_err(|e| Verdict::Fail(format!("cannot encode a Ping: {e}")))?;
    }
    link.send_raw(&bytes).await?;
    let mut pongs = Vec::new();
    while pongs.last() != Some(&n) {
        let b = link
            .expect(
                &format!("a Pong ending with nonce {n} (L21, L21a)"),
                ANSWER,
                |b| matches!(b, Body::Pong(_)),
            )
            .await;
        match b {
            Ok(Body::Pong(pg)) => pongs.push(pg.nonce),
            Ok(_) => {}
            Err(e) => {
                p.finish().await;
                return Err(e);
            }
        }
    }
    p.finish().await;
    let ordered = pongs.windows(2).all(|w| w[0] < w[1]);
    if !ordered || pongs.iter().any(|x| *x == 0 || *x > n) || pongs.len() as u64 > n {
        fail!("L21a: Pongs {pongs:?} for Pings 1..={n}: out of order, unknown nonces or more Pongs than Pings");
    }
    Ok(format!(
        "{} Pongs for {n} Pings, the last with nonce {n}",
        pongs.len()
    ))
}

async fn key_change_pending(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let Some(new_key) = ident::key_other_than(&[p.friend.key, p.sut_user.key]) else {
        crate::skip!("no third test key");
    };
    // The friend logs in from another key: the client learns of it (FriendKeyChanged) and
    // the change is pending until its user decides (SPEC.md §12.4).
    let (_c, _) = ctx.login_with(&p.friend, new_key, None).await?;
    refused(&mut link, CloseReason::NotAFriend, "L51").await?;
    let mut r = Ok("neither key admitted".to_string());
    for (key, which) in [
        (p.friend.key, "the old (pinned) key"),
        (new_key, "the presented key"),
    ] {
        let mut l = FriendLink::dial_raw(p.sut_addr, &ident::key(key).local).await?;
        let _ = l.send(p.hello()).await;
        if let Err(e) = refused(&mut l, CloseReason::NotAFriend, "L51a").await {
            r = Err(match e {
                Verdict::Fail(m) => Verdict::Fail(format!("{m} (a link under {which})")),
                other => other,
            });
            break;
        }
    }
    p.finish().await;
    r
}

async fn quit_closes_normal(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    // Quit once the client itself counts the link as open (its hello goes out a moment
    // before its core admits the link; see docs/peer-conformance.md "Still open").
    p.sut
        .wait_event(
            "peer_connected",
            ANSWER,
            crate::peer::sut::event("peer_connected"),
        )
        .await?;
    p.sut.say("/quit").await?;
    let r = refused(&mut link, CloseReason::Normal, "L53").await;
    p.finish().await;
    r
}
