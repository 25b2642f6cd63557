//! SPEC.md §4: the Noise XX handshake, identity binding, channel kinds, versions, time-out;
//! and garbage sent before it (§3.1, §3.5).

use std::time::Duration;

use peerchat_proto::wire::{self, ChannelKind};
use rand::RngCore;
use rsa::pkcs8::EncodePublicKey;

use super::{expect_silent_close, raw_session, GRACE};
use crate::case::{Case, CaseResult, Verdict};
use crate::client::req;
use crate::ctx::Ctx;
use crate::ident;
use crate::raw::{HandshakeOptions, RawConn, RawRecv};
use crate::{check, fail};

/// The handshake cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::must("handshake.complete", "4.2", "A client completes the Noise XX handshake and the server proves a valid identity (and the pinned one, with --server-key).", |c| Box::pin(complete(c))),
        Case::must("handshake.server-payload", "4.3", "Message 2 carries a HandshakePayload that an independent implementation verifies: version >= 1, CLIENT_SERVER, valid RSA key, PSS signature over the Noise static key.", |c| Box::pin(server_payload(c))),
        Case::must("handshake.independent-transport", "3.2", "A session driven by an independent Noise implementation (snow, not the proto crate) gets Pong and Responses.", |c| Box::pin(independent_transport(c))),
        Case::must("handshake.garbage-record", "4.2", "A first record that is not a valid Noise message 1 (64 random bytes) is closed silently.", |c| Box::pin(garbage_record(c))),
        Case::must("handshake.garbage-http", "4.2", "An HTTP request instead of a handshake is closed silently within HANDSHAKE_TIMEOUT.", |c| Box::pin(garbage_http(c))).timeout_secs(60),
        Case::must("handshake.empty-record", "3.5", "A record with L = 0 during the handshake is closed silently.", |c| Box::pin(empty_record(c))),
        Case::must("handshake.msg1-payload", "4.2", "Message 1 with a non-empty payload is closed silently, without message 2.", |c| Box::pin(msg1_payload(c))),
        Case::must("handshake.bad-signature", "4.3", "Message 3 whose identity_sig was made by another key (V5) is closed silently.", |c| Box::pin(bad_signature(c))),
        Case::must("handshake.signature-replayed-for-another-static-key", "4.3", "After a complete handshake with a key, message 3 that repeats its identity_key and identity_sig over a different Noise static key (V5) is closed silently: a remembered binding covers exactly its three values.", |c| Box::pin(replayed_signature(c))),
        Case::must("handshake.garbage-signature", "4.3", "Message 3 whose identity_sig is random bytes (V5) is closed silently.", |c| Box::pin(garbage_signature(c))),
        Case::must("handshake.wrong-channel-kind", "4.4", "Message 3 with channel_kind PEER (V3) is closed silently; CLOSE_REASON_WRONG_CHANNEL_KIND is never sent.", |c| Box::pin(wrong_kind(c))).covers(&["CLOSE_REASON_WRONG_CHANNEL_KIND"]),
        Case::must("handshake.kind-unspecified", "4.4", "Message 3 with channel_kind UNSPECIFIED (0) is closed silently.", |c| Box::pin(kind_unspecified(c))),
        Case::must("handshake.version-zero", "4.5", "Message 3 with protocol_version 0 (V2) is closed silently; CLOSE_REASON_UNSUPPORTED_VERSION is never sent.", |c| Box::pin(version_zero(c))).covers(&["CLOSE_REASON_UNSUPPORTED_VERSION"]),
        Case::must("handshake.version-future", "4.5", "Message 3 with protocol_version 7 is accepted: the connection uses version 1.", |c| Box::pin(version_future(c))),
        Case::must("handshake.malformed-payload", "4.2", "Message 3 whose payload is not a HandshakePayload (V1) is closed silently.", |c| Box::pin(malformed_payload(c))),
        Case::must("handshake.bad-identity-key", "4.3", "Message 3 whose identity_key is not an RSA SubjectPublicKeyInfo (V4) is closed silently.", |c| Box::pin(bad_identity_key(c))),
        Case::must("handshake.identity-key-trailing-bytes", "4.3", "An identity_key with trailing bytes after the DER (V4) is closed silently.", |c| Box::pin(key_trailing_bytes(c))),
        Case::must("handshake.identity-key-1024-bits", "4.3", "A 1024-bit RSA identity key (below RSA_MIN_BITS) is closed silently.", |c| Box::pin(key_1024(c))).timeout_secs(60),
        Case::must("handshake.identity-key-exponent-3", "4.3", "An RSA identity key with public exponent 3 is closed silently.", |c| Box::pin(key_exp3(c))).timeout_secs(60),
        Case::must("handshake.tampered-msg3", "4.2", "Message 3 with a flipped ciphertext bit (Noise failure) is closed silently.", |c| Box::pin(tampered_msg3(c))),
        Case::must("handshake.stall-silent", "4.2", "A client that connects and sends nothing is closed within HANDSHAKE_TIMEOUT (+ grace).", |c| Box::pin(stall_silent(c))).timeout_secs(60),
        Case::must("handshake.stall-after-msg1", "4.2", "A client that stops after message 1 is closed within HANDSHAKE_TIMEOUT (+ grace).", |c| Box::pin(stall_after_msg1(c))).timeout_secs(60),
        Case::must("handshake.stall-partial-record", "4.2", "A client that sends 1 byte of a record header and stalls is closed within HANDSHAKE_TIMEOUT (+ grace).", |c| Box::pin(stall_partial(c))).timeout_secs(60),
        Case::must("handshake.eof-during-handshake", "3.5", "A client that closes after message 1 does not disturb the server.", |c| Box::pin(eof_during(c))),
        Case::should("handshake.stalls-do-not-block", "4.2", "While 20 handshakes stall, a fresh client is served at once.", |c| Box::pin(stalls_do_not_block(c))).timeout_secs(60),
    ]
}

async fn complete(ctx: Ctx) -> CaseResult {
    let c = ctx.connect(ident::random_key()).await?;
    let fp = c.server_key.fingerprint();
    match ctx.cfg.server_key {
        Some(pinned) => Ok(format!("server proved the pinned key {pinned}")),
        None => Ok(format!("server proved {fp}")),
    }
}

async fn server_payload(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let (_hs, hello) = conn
        .start_handshake(&HandshakeOptions::valid(ident::random_key()))
        .await
        .map_err(Verdict::Fail)?;
    let key = hello
        .verified
        .map_err(|e| Verdict::Fail(format!("server payload fails verification: {e}")))?;
    check!(
        hello.payload.protocol_version >= 1,
        "protocol_version {}",
        hello.payload.protocol_version
    );
    if let Some(pinned) = ctx.cfg.server_key {
        check!(
            key.fingerprint() == pinned,
            "server key {} is not the pinned {pinned}",
            key.fingerprint()
        );
    }
    Ok(format!(
        "version {}, key {}, signature verified",
        hello.payload.protocol_version,
        key.fingerprint()
    ))
}

async fn independent_transport(ctx: Ctx) -> CaseResult {
    let mut s = raw_session(&ctx).await?;
    s.send_msg(&wire::ClientMessage {
        request_id: 0,
        body: Some(req::ping(4242)),
    })
    .await
    .map_err(Verdict::Fail)?;
    s.send_msg(&wire::ClientMessage {
        request_id: 9,
        body: Some(req::find("nobody")),
    })
    .await
    .map_err(Verdict::Fail)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut pong = false;
    loop {
        match s.recv(deadline).await {
            RawRecv::Msg(wire::ServerMessage {
                body: Some(wire::server_message::Body::Pong(p)),
            }) if p.nonce == 4242 => pong = true,
            RawRecv::Msg(wire::ServerMessage {
                body: Some(wire::server_message::Body::Response(r)),
            }) => {
                check!(
                    pong,
                    "the Response arrived before the Pong of the Ping sent first"
                );
                check!(
                    r.request_id == 9,
                    "Response for request_id {} instead of 9",
                    r.request_id
                );
                return Ok("Pong then Response over a snow-driven session".into());
            }
            RawRecv::Msg(_) => {}
            other => fail!("expected Pong and Response, got {other:?}"),
        }
    }
}

async fn garbage_record(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let mut junk = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut junk);
    conn.write_record(&junk).await.map_err(Verdict::Fail)?;
    let r = expect_silent_close(
        &mut conn,
        ctx.cfg.handshake_timeout + GRACE,
        "64 random bytes as message 1",
    )
    .await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn garbage_http(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    conn.write(b"GET / HTTP/1.1\r\nHost: peerchat\r\n\r\n")
        .await
        .map_err(Verdict::Fail)?;
    let r = expect_silent_close(
        &mut conn,
        ctx.cfg.handshake_timeout + GRACE,
        "an HTTP request",
    )
    .await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn empty_record(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    conn.write(&[0, 0]).await.map_err(Verdict::Fail)?;
    let r = expect_silent_close(
        &mut conn,
        ctx.cfg.handshake_timeout + GRACE,
        "an empty record",
    )
    .await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn msg1_payload(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let mut opts = HandshakeOptions::valid(ident::random_key());
    opts.msg1_payload = b"sneaky".to_vec();
    match conn.start_handshake(&opts).await {
        Ok(_) => fail!("the server answered message 1 that carried a payload with message 2"),
        Err(e) if e.starts_with("no message 2") => {}
        Err(e) => fail!("unexpected failure: {e}"),
    }
    let r = expect_silent_close(&mut conn, GRACE, "message 1 with a payload").await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

/// Runs a handshake whose message 3 is built from `opts`, then sends a Ping through the
/// (supposedly rejected) session and expects a silent close.
async fn rejected_msg3(ctx: &Ctx, opts: HandshakeOptions, what: &str) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let (hs, _) = conn.start_handshake(&opts).await.map_err(Verdict::Fail)?;
    let mut s = conn
        .finish_handshake(hs, &opts)
        .await
        .map_err(Verdict::Fail)?;
    // If the server wrongly accepted the handshake this Ping gets a Pong, which fails below.
    let _ = s
        .send_msg(&wire::ClientMessage {
            request_id: 0,
            body: Some(req::ping(1)),
        })
        .await;
    let r = expect_silent_close(&mut s.conn, GRACE, what).await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn bad_signature(ctx: Ctx) -> CaseResult {
    let k = ident::random_key();
    let mut opts = HandshakeOptions::valid(k);
    let forger = ident::key(ident::other_key(k));
    opts.identity_sig = Some(forger.keypair.sign_static_key(&ident::key(k).static_public));
    rejected_msg3(&ctx, opts, "a signature by another key").await
}

/// SPEC.md §4.3 lets a server remember a binding it verified; this checks that such a memory
/// is keyed by the static key too. The first connection makes the server verify (and perhaps
/// remember) key `k` with its static key; the second sends `k`'s identity key and signature
/// with another key's static key, which the signature does not cover.
async fn replayed_signature(ctx: Ctx) -> CaseResult {
    let k = ident::random_key();
    ctx.connect(k).await?;
    let original = ident::key(k);
    let mut opts = HandshakeOptions::valid(ident::other_key(k));
    opts.identity_key = Some(original.keypair.public().to_der().to_vec());
    opts.identity_sig = Some(original.signature.clone());
    rejected_msg3(&ctx, opts, "a signature replayed over another static key").await
}

async fn garbage_signature(ctx: Ctx) -> CaseResult {
    let mut opts = HandshakeOptions::valid(ident::random_key());
    let mut sig = vec![0u8; 256];
    rand::thread_rng().fill_bytes(&mut sig);
    opts.identity_sig = Some(sig);
    rejected_msg3(&ctx, opts, "a random signature").await
}

async fn wrong_kind(ctx: Ctx) -> CaseResult {
    let mut opts = HandshakeOptions::valid(ident::random_key());
    opts.kind = ChannelKind::Peer as i32;
    rejected_msg3(&ctx, opts, "channel_kind PEER").await
}

async fn kind_unspecified(ctx: Ctx) -> CaseResult {
    let mut opts = HandshakeOptions::valid(ident::random_key());
    opts.kind = ChannelKind::Unspecified as i32;
    rejected_msg3(&ctx, opts, "channel_kind UNSPECIFIED").await
}

async fn version_zero(ctx: Ctx) -> CaseResult {
    let mut opts = HandshakeOptions::valid(ident::random_key());
    opts.version = 0;
    rejected_msg3(&ctx, opts, "protocol_version 0").await
}

async fn version_future(ctx: Ctx) -> CaseResult {
    let conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let mut opts = HandshakeOptions::valid(ident::random_key());
    opts.version = 7;
    let (mut s, _) = conn.handshake(&opts).await.map_err(Verdict::Fail)?;
    s.send_msg(&wire::ClientMessage {
        request_id: 0,
        body: Some(req::ping(77)),
    })
    .await
    .map_err(Verdict::Fail)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match s.recv(deadline).await {
            RawRecv::Msg(wire::ServerMessage {
                body: Some(wire::server_message::Body::Pong(p)),
            }) if p.nonce == 77 => return Ok("a version-7 client is served with version 1".into()),
            RawRecv::Msg(_) => {}
            other => fail!("a client announcing version 7 was not served: {other:?}"),
        }
    }
}

async fn malformed_payload(ctx: Ctx) -> CaseResult {
    let mut opts = HandshakeOptions::valid(ident::random_key());
    opts.payload = Some(vec![0xff; 40]);
    rejected_msg3(&ctx, opts, "an undecodable payload").await
}

async fn bad_identity_key(ctx: Ctx) -> CaseResult {
    let mut opts = HandshakeOptions::valid(ident::random_key());
    let mut junk = vec![0x30, 0x82, 0x01, 0x22];
    junk.extend(std::iter::repeat_n(0x42u8, 290));
    opts.identity_key = Some(junk);
    rejected_msg3(&ctx, opts, "a non-SPKI identity key").await
}

async fn key_trailing_bytes(ctx: Ctx) -> CaseResult {
    let k = ident::random_key();
    let mut opts = HandshakeOptions::valid(k);
    let mut der = ident::public(k).to_der().to_vec();
    der.push(0);
    opts.identity_key = Some(der);
    rejected_msg3(&ctx, opts, "an identity key with a trailing byte").await
}

/// A handshake proving an RSA key outside the allowed range, correctly signed by it.
async fn out_of_range_key(ctx: &Ctx, bits: usize, exp: u64, what: &str) -> CaseResult {
    let key = tokio::task::spawn_blocking(move || {
        let mut rng = rand::thread_rng();
        rsa::RsaPrivateKey::new_with_exp(&mut rng, bits, &rsa::BigUint::from(exp))
    })
    .await
    .map_err(|e| Verdict::Fail(format!("key generation task: {e}")))?
    .map_err(|e| Verdict::Fail(format!("could not generate the test key: {e}")))?;
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| Verdict::Fail(format!("encode test key: {e}")))?
        .as_bytes()
        .to_vec();
    let k = ident::random_key();
    let msg = peerchat_proto::identity::signed_bytes(&ident::key(k).static_public);
    let sig = {
        use rsa::signature::{RandomizedSigner, SignatureEncoding};
        let signer = rsa::pss::SigningKey::<sha2_for_rsa::Sha256>::new(key);
        signer.sign_with_rng(&mut rand::thread_rng(), &msg).to_vec()
    };
    let mut opts = HandshakeOptions::valid(k);
    opts.identity_key = Some(der);
    opts.identity_sig = Some(sig);
    rejected_msg3(ctx, opts, what).await
}

async fn key_1024(ctx: Ctx) -> CaseResult {
    out_of_range_key(&ctx, 1024, 65_537, "a 1024-bit identity key").await
}

async fn key_exp3(ctx: Ctx) -> CaseResult {
    out_of_range_key(&ctx, 2048, 3, "an identity key with exponent 3").await
}

async fn tampered_msg3(ctx: Ctx) -> CaseResult {
    let mut opts = HandshakeOptions::valid(ident::random_key());
    opts.tamper_msg3 = true;
    rejected_msg3(&ctx, opts, "a tampered message 3").await
}

async fn stall_silent(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let r = expect_silent_close(
        &mut conn,
        ctx.cfg.handshake_timeout + GRACE,
        "a silent client",
    )
    .await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn stall_after_msg1(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let (_hs, _) = conn
        .start_handshake(&HandshakeOptions::valid(ident::random_key()))
        .await
        .map_err(Verdict::Fail)?;
    let r = expect_silent_close(
        &mut conn,
        ctx.cfg.handshake_timeout + GRACE,
        "a client stalled after message 1",
    )
    .await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn stall_partial(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    conn.write(&[0]).await.map_err(Verdict::Fail)?;
    let r = expect_silent_close(
        &mut conn,
        ctx.cfg.handshake_timeout + GRACE,
        "a client stalled inside a record header",
    )
    .await?;
    ctx.server_still_serves().await?;
    Ok(r)
}

async fn eof_during(ctx: Ctx) -> CaseResult {
    let mut conn = RawConn::connect(&ctx.cfg, ctx.source())
        .await
        .map_err(Verdict::Fail)?;
    let (_hs, _) = conn
        .start_handshake(&HandshakeOptions::valid(ident::random_key()))
        .await
        .map_err(Verdict::Fail)?;
    drop(conn);
    ctx.server_still_serves().await?;
    Ok("server unaffected".into())
}

async fn stalls_do_not_block(ctx: Ctx) -> CaseResult {
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut c = RawConn::connect(&ctx.cfg, ctx.source())
            .await
            .map_err(Verdict::Fail)?;
        c.write(&[0]).await.map_err(Verdict::Fail)?;
        stalled.push(c);
    }
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(Duration::from_secs(5), ctx.server_still_serves()).await {
        Ok(r) => r?,
        Err(_) => fail!("with 20 stalled handshakes, a fresh client was not served within 5 s"),
    }
    drop(stalled);
    Ok(format!(
        "fresh client served in {:?} beside 20 stalled handshakes",
        started.elapsed()
    ))
}

/// The RSA crate's SHA-256 (the `sha2` it re-exports), so that no second digest crate is
/// needed.
mod sha2_for_rsa {
    pub use rsa::sha2::Sha256;
}
