//! SPEC.md §3 (records, transport, frames, framing errors, Ping/Pong, Close) and the protobuf
//! conventions of §2 and §11.2.

use std::time::Duration;

use peerchat_proto::limits::MAX_FRAME;
use peerchat_proto::wire::{self, client_message::Body, response, server_message, CloseReason};
use prost::Message as _;
use rand::RngCore;
use tokio::time::Instant;

use super::{expect_close_reason, expect_silent_close, raw_session, GRACE};
use crate::case::{Case, CaseResult, Verdict};
use crate::client::{describe, req};
use crate::ctx::Ctx;
use crate::ident;
use crate::raw::{RawRecv, RawSession};
use crate::{check, fail, want_err};

/// The framing cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must(
            "framing.batched-frames",
            "3.3",
            "Three requests batched in one record get three Responses, in order.",
            |c| Box::pin(batched(c)),
        ),
        Case::must(
            "framing.byte-records",
            "3.3",
            "A frame split into 1-byte records is reassembled.",
            |c| Box::pin(byte_records(c)),
        ),
        Case::must(
            "framing.frame-spans-records",
            "3.3",
            "A 100 000-byte frame spanning two records is reassembled and answered.",
            |c| Box::pin(spans_records(c)),
        ),
        Case::must(
            "framing.max-frame",
            "3.3",
            "A frame of exactly MAX_FRAME bytes is accepted and answered.",
            |c| Box::pin(max_frame(c)),
        ),
        Case::must(
            "framing.empty-transport-record",
            "3.2",
            "A transport record with 0 plaintext bytes is ignored; the connection continues.",
            |c| Box::pin(empty_transport_record(c)),
        ),
        Case::must(
            "framing.empty-record",
            "3.5",
            "A record with L = 0 after the handshake is answered Close PROTOCOL_ERROR.",
            |c| Box::pin(empty_record(c)),
        )
        .covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must(
            "framing.oversized-prefix",
            "3.3",
            "A frame length prefix of MAX_FRAME + 1 (no body sent) is answered Close FRAME_TOO_LARGE at once.",
            |c| Box::pin(oversized_prefix(c)),
        )
        .covers(&["CLOSE_REASON_FRAME_TOO_LARGE"]),
        Case::must(
            "framing.huge-prefix",
            "3.5",
            "A frame length prefix of 2^32 - 1 followed by data closes the connection (Close FRAME_TOO_LARGE if any).",
            |c| Box::pin(huge_prefix(c)),
        )
        .covers(&["CLOSE_REASON_FRAME_TOO_LARGE"]),
        Case::must(
            "framing.truncated-record",
            "3.5",
            "End-of-stream inside a record drops the connection; the server keeps serving.",
            |c| Box::pin(truncated_record(c)),
        ),
        Case::must(
            "framing.truncated-frame",
            "3.5",
            "End-of-stream inside a frame drops the connection; the server keeps serving.",
            |c| Box::pin(truncated_frame(c)),
        ),
        Case::must(
            "framing.decrypt-failure",
            "3.5",
            "A transport record that does not decrypt is closed silently (no Close frame).",
            |c| Box::pin(decrypt_failure(c)),
        ),
        Case::must(
            "framing.replayed-record",
            "3.2",
            "A replayed transport record (stale nonce) fails decryption and is closed silently.",
            |c| Box::pin(replayed_record(c)),
        ),
        Case::must(
            "framing.malformed-protobuf",
            "3.5",
            "A frame that is not a ClientMessage is answered Close MALFORMED_FRAME.",
            |c| Box::pin(malformed(c)),
        )
        .covers(&["CLOSE_REASON_MALFORMED_FRAME"]),
        Case::must(
            "framing.invalid-utf8",
            "2",
            "A string field with invalid UTF-8 makes the frame undecodable: Close MALFORMED_FRAME.",
            |c| Box::pin(invalid_utf8(c)),
        )
        .covers(&["CLOSE_REASON_MALFORMED_FRAME"]),
        Case::must(
            "framing.unknown-fields",
            "11.2",
            "Unknown fields in a ClientMessage and in a request are ignored.",
            |c| Box::pin(unknown_fields(c)),
        ),
        Case::must(
            "framing.noncanonical-encoding",
            "2",
            "Fields out of order and a repeated request_id (last wins) are accepted.",
            |c| Box::pin(noncanonical(c)),
        ),
        Case::must(
            "framing.zero-length-frame",
            "3.3",
            "A frame with N = 0 (empty ClientMessage) is answered UNSUPPORTED_REQUEST with request_id 0; the connection stays.",
            |c| Box::pin(zero_length_frame(c)),
        )
        .covers(&["ERROR_CODE_UNSUPPORTED_REQUEST"]),
        Case::must(
            "framing.ping-pong",
            "3.6",
            "Ping before login is answered with a Pong carrying the same nonce.",
            |c| Box::pin(ping_pong(c)),
        ),
        Case::must(
            "framing.ping-pong-logged-in",
            "3.6",
            "Ping while logged in is answered with a Pong carrying the same nonce.",
            |c| Box::pin(ping_pong_logged_in(c)),
        ),
        Case::must(
            "framing.ping-no-response",
            "3.6",
            "A Ping with a non-zero request_id gets a Pong and never a Response.",
            |c| Box::pin(ping_no_response(c)),
        ),
        Case::must(
            "framing.pong-ignored",
            "3.6",
            "An unsolicited Pong is ignored; the connection stays usable.",
            |c| Box::pin(pong_ignored(c)),
        ),
        Case::must(
            "framing.client-close",
            "3.7",
            "After a client's Close the server closes the TCP connection and sends nothing (not even a Close).",
            |c| Box::pin(client_close(c)),
        )
        .covers(&["CLOSE_REASON_NORMAL"]),
        Case::must(
            "framing.frames-after-close-ignored",
            "3.7",
            "A request batched after the client's Close is not answered.",
            |c| Box::pin(after_close(c)),
        ),
    ]
}

fn pong_or_response(m: &wire::ServerMessage) -> Option<String> {
    match &m.body {
        Some(server_message::Body::Pong(p)) => Some(format!("pong {}", p.nonce)),
        Some(server_message::Body::Response(r)) => Some(format!("response {}", r.request_id)),
        _ => None,
    }
}

/// Waits for a Response to `id` on a raw session.
async fn raw_response(
    s: &mut RawSession,
    id: u64,
    timeout: Duration,
) -> Result<response::Result, Verdict> {
    let deadline = Instant::now() + timeout;
    loop {
        match s.recv(deadline).await {
            RawRecv::Msg(wire::ServerMessage {
                body: Some(server_message::Body::Response(r)),
            }) if r.request_id == id => {
                return r
                    .result
                    .ok_or_else(|| Verdict::Fail("Response without a result".into()))
            }
            RawRecv::Msg(_) => {}
            other => fail!("no Response to request {id}: {other:?}"),
        }
    }
}

/// Waits for a Pong with `nonce` on a raw session.
async fn raw_pong(s: &mut RawSession, nonce: u64) -> Result<(), Verdict> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.recv(deadline).await {
            RawRecv::Msg(wire::ServerMessage {
                body: Some(server_message::Body::Pong(p)),
            }) if p.nonce == nonce => return Ok(()),
            RawRecv::Msg(_) => {}
            other => fail!("no Pong {nonce}: {other:?}"),
        }
    }
}

fn ping_msg(nonce: u64) -> wire::ClientMessage {
    wire::ClientMessage {
        request_id: 0,
        body: Some(req::ping(nonce)),
    }
}

fn frame(msg: &[u8]) -> Vec<u8> {
    let mut f = (msg.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(msg);
    f
}

async fn batched(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    for id in 1..=3u64 {
        c.queue(&wire::ClientMessage {
            request_id: id,
            body: Some(req::find("nobody")),
        })?;
    }
    c.flush().await?;
    let mut seqs = Vec::new();
    for id in 1..=3u64 {
        let (seq, r) = c.wait_response(id).await?;
        want_err!(r, NotLoggedIn, format!("batched request {id}"));
        seqs.push(seq);
    }
    check!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "Responses arrived out of order: {seqs:?}"
    );
    Ok("3 batched requests answered in order".into())
}

async fn byte_records(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    let f = frame(
        &wire::ClientMessage {
            request_id: 3,
            body: Some(req::find("nobody")),
        }
        .encode_to_vec(),
    );
    for b in &f {
        s.send_plain(std::slice::from_ref(b))
            .await
            .map_err(Verdict::Fail)?;
    }
    let r = raw_response(&mut s, 3, Duration::from_secs(10)).await?;
    want_err!(r, NotLoggedIn, "request sent in 1-byte records");
    Ok(format!(
        "{}-byte frame in {} records answered",
        f.len(),
        f.len()
    ))
}

async fn spans_records(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    let userid = "a".repeat(100_000);
    s.send_msg(&wire::ClientMessage {
        request_id: 4,
        body: Some(req::find(&userid)),
    })
    .await
    .map_err(Verdict::Fail)?;
    let r = raw_response(&mut s, 4, Duration::from_secs(10)).await?;
    want_err!(r, NotLoggedIn, "100 000-byte request");
    Ok("frame spanning two records answered".into())
}

async fn max_frame(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    // Find{userid} whose ClientMessage encoding is exactly MAX_FRAME bytes.
    let mut n = MAX_FRAME - 16;
    let msg = loop {
        let m = wire::ClientMessage {
            request_id: 5,
            body: Some(req::find(&"a".repeat(n))),
        };
        let len = m.encoded_len();
        if len == MAX_FRAME {
            break m;
        }
        if len > MAX_FRAME {
            n -= len - MAX_FRAME;
        } else {
            n += MAX_FRAME - len;
        }
    };
    s.send_msg(&msg).await.map_err(Verdict::Fail)?;
    let r = raw_response(&mut s, 5, Duration::from_secs(15)).await?;
    want_err!(r, NotLoggedIn, "MAX_FRAME-byte request");
    Ok("a frame of exactly MAX_FRAME bytes was answered".into())
}

async fn empty_transport_record(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    s.send_plain(&[]).await.map_err(Verdict::Fail)?;
    s.send_msg(&ping_msg(6)).await.map_err(Verdict::Fail)?;
    raw_pong(&mut s, 6).await?;
    Ok("empty transport record ignored".into())
}

async fn empty_record(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    s.conn.write(&[0, 0]).await.map_err(Verdict::Fail)?;
    let r = expect_close_reason(&mut s, GRACE, CloseReason::ProtocolError, true).await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn oversized_prefix(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    s.send_plain(&((MAX_FRAME as u32) + 1).to_be_bytes())
        .await
        .map_err(Verdict::Fail)?;
    let r = expect_close_reason(&mut s, GRACE, CloseReason::FrameTooLarge, true).await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn huge_prefix(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    let mut p = u32::MAX.to_be_bytes().to_vec();
    p.extend_from_slice(&[0x41; 1000]);
    s.send_plain(&p).await.map_err(Verdict::Fail)?;
    let r = expect_close_reason(&mut s, GRACE, CloseReason::FrameTooLarge, false).await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn truncated_record(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    s.conn
        .write(&[0x00, 0x64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        .await
        .map_err(Verdict::Fail)?;
    s.shutdown_write().await;
    let (_, end) = s.wait_close(GRACE).await;
    check!(
        end != crate::raw::RawEnd::StillOpen,
        "the server kept the connection open after end-of-stream inside a record"
    );
    ctx.server_still_serves().await?;
    Ok(format!("connection dropped ({end:?}); server still serves"))
}

async fn truncated_frame(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    let f = frame(
        &wire::ClientMessage {
            request_id: 1,
            body: Some(req::find("someone")),
        }
        .encode_to_vec(),
    );
    s.send_plain(&f[..f.len() - 3])
        .await
        .map_err(Verdict::Fail)?;
    s.shutdown_write().await;
    let (_, end) = s.wait_close(GRACE).await;
    check!(
        end != crate::raw::RawEnd::StillOpen,
        "the server kept the connection open after end-of-stream inside a frame"
    );
    ctx.server_still_serves().await?;
    Ok(format!("connection dropped ({end:?}); server still serves"))
}

async fn decrypt_failure(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    let mut junk = [0u8; 40];
    rand::thread_rng().fill_bytes(&mut junk);
    s.conn.write_record(&junk).await.map_err(Verdict::Fail)?;
    let r = expect_silent_close(&mut s.conn, GRACE, "an undecryptable record").await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn replayed_record(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    let rec = s
        .seal(&frame(&ping_msg(8).encode_to_vec()))
        .map_err(Verdict::Fail)?;
    s.conn.write(&rec).await.map_err(Verdict::Fail)?;
    raw_pong(&mut s, 8).await?;
    s.conn.write(&rec).await.map_err(Verdict::Fail)?;
    let r = expect_silent_close(&mut s.conn, GRACE, "a replayed record").await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn malformed(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    s.send_frame(&[0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .map_err(Verdict::Fail)?;
    let r = expect_close_reason(&mut s, GRACE, CloseReason::MalformedFrame, true).await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn invalid_utf8(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    // ClientMessage{request_id: 1, find: Find{userid: ff fe}}
    s.send_frame(&[0x08, 0x01, 0x3a, 0x04, 0x0a, 0x02, 0xff, 0xfe])
        .await
        .map_err(Verdict::Fail)?;
    let r = expect_close_reason(&mut s, GRACE, CloseReason::MalformedFrame, true).await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn unknown_fields(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    // ClientMessage{request_id: 2, find: Find{userid: "x", <field 9 = 1>}, <field 99 = 5>}
    let bytes = [
        0x08, 0x02, 0x3a, 0x05, 0x0a, 0x01, b'x', 0x48, 0x01, 0x98, 0x06, 0x05,
    ];
    s.send_frame(&bytes).await.map_err(Verdict::Fail)?;
    let r = raw_response(&mut s, 2, Duration::from_secs(10)).await?;
    want_err!(r, NotLoggedIn, "request with unknown fields");
    Ok("unknown fields ignored".into())
}

async fn noncanonical(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    // find first, then request_id 7, then request_id 8 (last one wins).
    let bytes = [0x3a, 0x03, 0x0a, 0x01, b'x', 0x08, 0x07, 0x08, 0x08];
    s.send_frame(&bytes).await.map_err(Verdict::Fail)?;
    let r = raw_response(&mut s, 8, Duration::from_secs(10)).await?;
    want_err!(r, NotLoggedIn, "non-canonical request");
    Ok("answered with request_id 8 (last occurrence wins)".into())
}

async fn zero_length_frame(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    s.send_frame(&[]).await.map_err(Verdict::Fail)?;
    let r = raw_response(&mut s, 0, Duration::from_secs(10)).await?;
    want_err!(r, UnsupportedRequest, "empty frame");
    s.send_msg(&ping_msg(9)).await.map_err(Verdict::Fail)?;
    raw_pong(&mut s, 9).await?;
    Ok("UNSUPPORTED_REQUEST with request_id 0; connection still usable".into())
}

async fn ping_pong(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    let nonce = rand::random::<u64>();
    c.send(&ping_msg(nonce)).await?;
    c.expect_pong(nonce, Duration::from_secs(10)).await?;
    Ok(format!("Pong {nonce}"))
}

async fn ping_pong_logged_in(ctx: Ctx) -> CaseResult {
    let (_, mut c) = ctx.online_user().await?;
    let nonce = rand::random::<u64>();
    c.send(&ping_msg(nonce)).await?;
    c.expect_pong(nonce, Duration::from_secs(10)).await?;
    Ok(format!("Pong {nonce}"))
}

async fn ping_no_response(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    c.send(&wire::ClientMessage {
        request_id: 5,
        body: Some(req::ping(55)),
    })
    .await?;
    c.send(&wire::ClientMessage {
        request_id: 6,
        body: Some(req::find("nobody")),
    })
    .await?;
    c.wait_response(6).await?;
    c.expect_pong(55, Duration::from_secs(5)).await?;
    if let Some(r) = c
        .backlog()
        .find_map(|r| pong_or_response(&r.msg).filter(|s| s == "response 5"))
    {
        fail!("the Ping got a {r}");
    }
    Ok("Pong, no Response".into())
}

async fn pong_ignored(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    c.send(&wire::ClientMessage {
        request_id: 0,
        body: Some(Body::Pong(wire::Pong { nonce: 12345 })),
    })
    .await?;
    let r = c.request(req::find("nobody")).await?;
    want_err!(r, NotLoggedIn, "request after an unsolicited Pong");
    if let Some(f) = c.backlog().next() {
        fail!("the unsolicited Pong was answered with {:?}", f.msg);
    }
    Ok("ignored".into())
}

fn close_msg() -> wire::ClientMessage {
    wire::ClientMessage {
        request_id: 0,
        body: Some(Body::Close(wire::Close {
            reason: CloseReason::Normal as i32,
            message: "conformance: bye".into(),
        })),
    }
}

async fn client_close(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    c.send(&close_msg()).await?;
    let closing = c.expect_close(GRACE).await?;
    check!(
        closing.close.is_none(),
        "the server answered the client's Close with {closing}"
    );
    if let Some(r) = c.backlog().next() {
        fail!("the server sent {:?} after the client's Close", r.msg);
    }
    Ok(format!("server closed: {closing}"))
}

async fn after_close(ctx: Ctx) -> CaseResult {
    let mut c = ctx.connect(ident::random_key()).await?;
    c.queue(&close_msg())?;
    c.queue(&wire::ClientMessage {
        request_id: 1,
        body: Some(req::find("nobody")),
    })?;
    c.flush().await?;
    let closing = c.expect_close(GRACE).await?;
    if let Some(r) = c
        .backlog()
        .find(|r| matches!(r.msg.body, Some(server_message::Body::Response(_))))
    {
        fail!(
            "the request after Close was answered: {:?}",
            r.msg.body.as_ref().map(|_| describe_resp(&r.msg))
        );
    }
    Ok(format!("not answered; {closing}"))
}

fn describe_resp(m: &wire::ServerMessage) -> String {
    match &m.body {
        Some(server_message::Body::Response(wire::Response {
            result: Some(r), ..
        })) => describe(r),
        other => format!("{other:?}"),
    }
}
