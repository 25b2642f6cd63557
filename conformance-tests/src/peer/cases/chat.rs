//! Table C (SPEC.md §8.5.2): chat, acknowledgements, typing.

use bytes::Bytes;
use peerchat_proto::limits::MAX_CHAT_TEXT;
use peerchat_proto::wire::{self, peer_message::Body, CloseReason};
use prost::Message as _;

use super::{new_id, still_open, STEP};
use crate::case::{Case, CaseResult};
use crate::ctx::Ctx;
use crate::peer::pair::{Pair, PairOptions, ANSWER, QUIET};
use crate::peer::sut::event;
use crate::{fail, peer_case};

/// The Table C cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("peer.c1.chat-acked-and-shown", "8.1", "a valid new ChatMessage is shown and acknowledged with its id", peer_case!(chat_acked)).covers(&["ChatMessage", "MessageAck"]).rows(&["L25"]),
        Case::must("peer.c2.duplicate-acked-not-shown", "8.1", "a ChatMessage whose id was already received is acknowledged again but not shown twice", peer_case!(duplicate)).covers(&["MessageAck"]),
        Case::must("peer.c3.short-message-id", "8.1", "a ChatMessage whose id is not 16 bytes is answered with Close PROTOCOL_ERROR", peer_case!(short_id)).covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must("peer.c4.empty-text", "8.1", "a ChatMessage with empty text is answered with Close PROTOCOL_ERROR", peer_case!(empty_text)).covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must("peer.c5.text-too-long", "8.1", "a ChatMessage longer than MAX_CHAT_TEXT bytes is answered with Close PROTOCOL_ERROR", peer_case!(long_text)).covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must("peer.c6.text-not-utf8", "2", "a ChatMessage whose text is not UTF-8 is answered with Close MALFORMED_FRAME", peer_case!(bad_utf8)).covers(&["CLOSE_REASON_MALFORMED_FRAME"]),
        Case::must("peer.c8.ack-delivers", "8.1", "the friend's MessageAck marks the client's message delivered", peer_case!(ack_delivers)).covers(&["MessageAck"]),
        Case::should("peer.c21.message-id-time-ordered", "8.1", "the client's message ids are time-ordered: bytes 0-5 are its sent_at_unix_ms, big-endian", peer_case!(time_ordered_id)).covers(&["ChatMessage"]),
        Case::must("peer.c9.unknown-ack-ignored", "8.1", "a MessageAck matching nothing is ignored; the link stays open", peer_case!(unknown_ack)),
        Case::must("peer.c10.short-ack-ignored", "8.1", "a MessageAck whose id is not 16 bytes is ignored; the link stays open", peer_case!(short_ack)),
        Case::must("peer.c11.typing-shown-and-hidden", "8.2", "Typing{true} shows the indicator, Typing{false} hides it", peer_case!(typing)).covers(&["Typing"]).rows(&["C12"]),
        Case::must("peer.c13.typing-hidden-by-message-and-close", "8.2", "the typing indicator is hidden by a ChatMessage from the friend and when the link closes", peer_case!(typing_hidden)),
        Case::must("peer.c24.user-typing-sent", "8.2", "the user typing sends Typing{true} on the open link, and stopping sends Typing{false}", peer_case!(user_typing)).covers(&["Typing"]),
        Case::must("peer.c20.outbox-in-order", "8.1", "messages written while no link was open are sent in order once the link is open, and re-sent on the next link until acknowledged", peer_case!(outbox_order)).rows(&["C21", "C22"]),
    ]
}

fn chat(id: [u8; 16], text: &str) -> Body {
    Body::Chat(wire::ChatMessage {
        message_id: Bytes::copy_from_slice(&id),
        sent_at_unix_ms: 1_700_000_000_000,
        text: text.into(),
    })
}

fn is_ack(id: [u8; 16]) -> impl Fn(&Body) -> bool {
    move |b| matches!(b, Body::Ack(a) if a.message_id.as_ref() == id)
}

async fn chat_acked(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let id = new_id();
    link.send(chat(id, "hello client")).await?;
    link.expect("MessageAck", ANSWER, is_ack(id)).await?;
    let friend = p.friend.userid.clone();
    p.sut
        .wait_event("message_received", ANSWER, |v| {
            v["event"] == "message_received"
                && v["text"] == "hello client"
                && v["friend"] == friend.as_str()
        })
        .await?;
    p.finish().await;
    Ok("acknowledged and shown".into())
}

async fn duplicate(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let id = new_id();
    link.send(chat(id, "once")).await?;
    link.expect("MessageAck", ANSWER, is_ack(id)).await?;
    p.sut
        .wait_event("message_received", ANSWER, event("message_received"))
        .await?;
    link.send(chat(id, "once")).await?;
    link.expect(
        "a second MessageAck for the duplicate (C2)",
        ANSWER,
        is_ack(id),
    )
    .await?;
    let again = p.sut.find_within(QUIET, event("message_received")).await;
    p.finish().await;
    if again.is_some() {
        fail!("C2: the duplicate was shown again");
    }
    Ok("acknowledged again, shown once".into())
}

async fn closes_with(ctx: Ctx, frame: Vec<u8>, want: CloseReason, row: &str) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send_raw_frame(&frame).await?;
    let r = link.expect_close(STEP).await;
    p.finish().await;
    match r? {
        Some(r) if r == want => Ok(format!("{row}: Close {}", want.as_str_name())),
        Some(r) => fail!(
            "{row}: closed with {}, expected {}",
            r.as_str_name(),
            want.as_str_name()
        ),
        None => fail!("{row}: dropped without Close {}", want.as_str_name()),
    }
}

fn encoded(b: Body) -> Vec<u8> {
    wire::PeerMessage { body: Some(b) }.encode_to_vec()
}

async fn short_id(ctx: Ctx) -> CaseResult {
    let f = encoded(Body::Chat(wire::ChatMessage {
        message_id: Bytes::from_static(&[1; 15]),
        sent_at_unix_ms: 1,
        text: "x".into(),
    }));
    closes_with(ctx, f, CloseReason::ProtocolError, "C3").await
}

async fn empty_text(ctx: Ctx) -> CaseResult {
    closes_with(
        ctx,
        encoded(chat(new_id(), "")),
        CloseReason::ProtocolError,
        "C4",
    )
    .await
}

async fn long_text(ctx: Ctx) -> CaseResult {
    let text = "x".repeat(MAX_CHAT_TEXT + 1);
    closes_with(
        ctx,
        encoded(chat(new_id(), &text)),
        CloseReason::ProtocolError,
        "C5",
    )
    .await
}

async fn bad_utf8(ctx: Ctx) -> CaseResult {
    // ChatMessage{message_id: 16 bytes, text: 0xff 0xfe} inside PeerMessage field 2.
    let mut inner = vec![0x0a, 16];
    inner.extend_from_slice(&new_id());
    inner.extend_from_slice(&[0x1a, 2, 0xff, 0xfe]);
    let mut frame = vec![0x12, inner.len() as u8];
    frame.extend_from_slice(&inner);
    // Which field is `text`? Use the real encoding to find out, then corrupt it.
    let real = encoded(chat([7; 16], "ab"));
    let pos = real.windows(2).position(|w| w == b"ab");
    let frame = match pos {
        Some(i) => {
            let mut f = real.clone();
            f[i] = 0xff;
            f[i + 1] = 0xfe;
            f
        }
        None => frame,
    };
    closes_with(ctx, frame, CloseReason::MalformedFrame, "C6").await
}

async fn ack_delivers(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    p.sut_says("please ack").await?;
    let b = link
        .expect(
            "the ChatMessage",
            ANSWER,
            |b| matches!(b, Body::Chat(c) if c.text == "please ack"),
        )
        .await?;
    let Body::Chat(c) = b else {
        fail!("not a chat")
    };
    link.send(Body::Ack(wire::MessageAck {
        message_id: c.message_id.clone(),
    }))
    .await?;
    let want = super::hex_id(&c.message_id);
    p.sut
        .wait_event("message_acked", ANSWER, |v| {
            v["event"] == "message_acked" && v["message_id"] == want.as_str()
        })
        .await?;
    p.finish().await;
    Ok("delivered".into())
}

/// §8.1 r1 (SHOULD): two messages' ids each carry their `sent_at_unix_ms` in bytes 0–5,
/// so the second sorts after the first when it was written a millisecond later or more.
async fn time_ordered_id(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let mut ids = Vec::new();
    for text in ["first of two", "second of two"] {
        p.sut_says(text).await?;
        let b = link
            .expect(
                "the ChatMessage",
                ANSWER,
                |b| matches!(b, Body::Chat(c) if c.text == text),
            )
            .await?;
        let Body::Chat(c) = b else {
            fail!("not a chat")
        };
        let Ok(id) = <[u8; 16]>::try_from(c.message_id.as_ref()) else {
            fail!("message_id of {} bytes", c.message_id.len())
        };
        let mut head = [0u8; 8];
        head[2..].copy_from_slice(&id[..6]);
        if u64::from_be_bytes(head) != c.sent_at_unix_ms & 0xffff_ffff_ffff {
            fail!(
                "bytes 0-5 of {} are not sent_at_unix_ms {}",
                super::hex_id(&c.message_id),
                c.sent_at_unix_ms
            )
        }
        ids.push(id);
    }
    if ids[0] == ids[1] {
        fail!("two messages with one id")
    }
    p.finish().await;
    Ok("bytes 0-5 carry sent_at_unix_ms".into())
}

async fn unknown_ack(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(Body::Ack(wire::MessageAck {
        message_id: Bytes::copy_from_slice(&new_id()),
    }))
    .await?;
    still_open(&mut link, "a MessageAck matching nothing").await?;
    p.finish().await;
    Ok("ignored".into())
}

async fn short_ack(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(Body::Ack(wire::MessageAck {
        message_id: Bytes::from_static(&[1, 2, 3]),
    }))
    .await?;
    still_open(&mut link, "a MessageAck with a 3-byte id (C10)").await?;
    p.finish().await;
    Ok("ignored".into())
}

async fn typing(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    link.send(Body::Typing(wire::Typing { active: true }))
        .await?;
    p.sut
        .wait_event("typing active", ANSWER, |v| {
            v["event"] == "typing" && v["active"] == true
        })
        .await?;
    link.send(Body::Typing(wire::Typing { active: false }))
        .await?;
    p.sut
        .wait_event("typing inactive", ANSWER, |v| {
            v["event"] == "typing" && v["active"] == false
        })
        .await?;
    p.finish().await;
    Ok("shown, then hidden".into())
}

async fn outbox_order(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    for i in 1..=3 {
        p.sut_says(&format!("queued {i}")).await?;
    }
    let mut link = p.accept().await?;
    let mut got = Vec::new();
    while got.len() < 3 {
        let b = link
            .expect("a ChatMessage", ANSWER, |b| matches!(b, Body::Chat(_)))
            .await?;
        if let Body::Chat(c) = b {
            got.push(c.text);
        }
    }
    // Not acknowledged: the next link must carry them again (C22).
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
        .expect(
            "the unacknowledged message re-sent (C20, C22)",
            ANSWER,
            |b| matches!(b, Body::Chat(c) if c.text == "queued 1"),
        )
        .await?;
    drop(b);
    p.finish().await;
    let want: Vec<String> = (1..=3).map(|i| format!("queued {i}")).collect();
    if got != want {
        fail!("C20: outbox order {got:?}, expected {want:?}");
    }
    Ok("in order, re-sent until acknowledged".into())
}

async fn typing_hidden(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    for (n, end) in [
        (1u8, "a ChatMessage (C1, C13)"),
        (2, "the link closing (C13)"),
    ] {
        link.send(Body::Typing(wire::Typing { active: true }))
            .await?;
        p.sut
            .wait_event("typing active", ANSWER, |v| {
                v["event"] == "typing" && v["active"] == true
            })
            .await?;
        if n == 1 {
            link.send(chat([n; 16], "typed")).await?;
        } else {
            link.send(Body::Close(wire::Close {
                reason: CloseReason::Normal as i32,
                message: String::new(),
            }))
            .await?;
        }
        p.sut
            .wait_event(&format!("typing hidden by {end}"), ANSWER, |v| {
                v["event"] == "typing" && v["active"] == false
            })
            .await?;
    }
    p.finish().await;
    Ok("hidden by the message and by the close".into())
}

async fn user_typing(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut link = p.dial().await?;
    let friend = p.friend.userid.clone();
    // Typing is not queued (§8.2): wait until the client itself counts the link as open.
    // Its hello is sent a moment before its core admits the link, so a /typing typed in
    // between finds no link and rightly goes nowhere (the case failed that way once).
    p.sut
        .wait_event("peer_connected", ANSWER, event("peer_connected"))
        .await?;
    p.sut.say(&format!("/typing {friend} on")).await?;
    link.expect(
        "Typing{true} (C24)",
        ANSWER,
        |b| matches!(b, Body::Typing(t) if t.active),
    )
    .await?;
    p.sut.say(&format!("/typing {friend} off")).await?;
    link.expect(
        "Typing{false} (C24)",
        ANSWER,
        |b| matches!(b, Body::Typing(t) if !t.active),
    )
    .await?;
    p.finish().await;
    Ok("Typing{true}, then Typing{false}".into())
}
