//! Table L (SPEC.md §8.5.1): admission, hello, Ping/Pong, framing errors, Close.

use peerchat_proto::limits::MAX_FRAME;
use peerchat_proto::wire::{self, peer_message::Body, CloseReason};

use super::{still_open, STEP};
use crate::case::{Case, CaseResult};
use crate::ctx::Ctx;
use crate::ident;
use crate::peer::link::FriendLink;
use crate::peer::pair::{Pair, PairOptions, ANSWER, QUIET};
use crate::{fail, peer_case};

/// The Table L cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("peer.l12.hello-answered", "7.2", "a friend's valid PeerHello is answered with the client's own, naming both in their registered spellings", peer_case!(hello_answered)).covers(&["PeerHello"]),
        Case::must("peer.l12.client-dials-and-speaks-first", "7.2", "a message sent with no link makes the client dial; as initiator it sends its PeerHello first, then the message", peer_case!(client_dials)).covers(&["PeerHello", "ChatMessage"]),
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
    let stranger = ident::other_key(p.friend.key);
    let stranger = if stranger == p.sut_user.key {
        ident::other_key(stranger)
    } else {
        stranger
    };
    if stranger == p.friend.key || stranger == p.sut_user.key {
        crate::skip!("no third test key");
    }
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
