//! SPEC.md §3.2.1: the AES-256-GCM switch after the hellos (feature `aes-gcm`), and that a
//! friend without the feature keeps ChaChaPoly. The friend here speaks through a raw
//! [`Channel`] (not a `FriendLink`) because it must switch its own reader and writer at the
//! exact record the rule names.

use peerchat_proto::message::{FEATURE_AES_GCM, FEATURE_FILE_BLAKE3};
use peerchat_proto::transport::CipherKind;
use peerchat_proto::wire::{self, peer_message::Body, CloseReason};
use peerchat_proto::{Channel, Role};
use tokio::net::TcpStream;

use crate::case::{Case, CaseResult};
use crate::ctx::Ctx;
use crate::ident;
use crate::peer::pair::{Pair, PairOptions, ANSWER};
use crate::verdict::Verdict;
use crate::{fail, peer_case, skip};

/// The cipher cases.
pub fn cases() -> Vec<Case> {
    vec![
        Case::should("peer.l12.aes-gcm-friend-dials", "3.2.1", "both hellos name aes-gcm (friend dials): after the hellos both directions are AES-256-GCM; a Ping is answered", peer_case!(friend_dials)).covers(&["PeerHello"]),
        Case::should("peer.l12.aes-gcm-client-dials", "3.2.1", "both hellos name aes-gcm (client dials): the client's message after the hellos is AES-256-GCM, and it reads AES-256-GCM", peer_case!(client_dials)).covers(&["PeerHello", "ChatMessage"]),
        Case::should("peer.l12.aes-gcm-hello-ends-record", "3.2.1", "with aes-gcm in both hellos, a frame in the record of the friend's hello is answered with Close PROTOCOL_ERROR", peer_case!(hello_not_at_record_end)).covers(&["CLOSE_REASON_PROTOCOL_ERROR"]),
        Case::must("peer.l12.v1-friend-keeps-chachapoly", "3.2.1", "a friend naming no aes-gcm (a version-1 client) gets ChaChaPoly records after the hellos", peer_case!(v1_friend)).covers(&["PeerHello"]),
    ]
}

fn hello(p: &Pair, features: &[&str]) -> wire::PeerMessage {
    wire::PeerMessage {
        body: Some(Body::Hello(wire::PeerHello {
            userid: p.friend.userid.clone(),
            to_userid: p.sut_user.userid.clone(),
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        })),
    }
}

async fn dial(p: &Pair) -> Result<Channel<TcpStream>, Verdict> {
    Channel::connect(
        p.sut_addr,
        &ident::key(p.friend.key).local,
        wire::ChannelKind::Peer,
    )
    .await
    .map_err(|e| Verdict::Fail(format!("cannot open a peer channel to the client: {e}")))
}

async fn accept(p: &Pair) -> Result<Channel<TcpStream>, Verdict> {
    let (stream, _) = tokio::time::timeout(ANSWER, p.listener.accept())
        .await
        .map_err(|_| Verdict::Fail("the client did not dial the friend".into()))?
        .map_err(|e| Verdict::Fail(format!("accept failed: {e}")))?;
    let _ = stream.set_nodelay(true);
    Channel::handshake(
        stream,
        &ident::key(p.friend.key).local,
        Role::Responder,
        wire::ChannelKind::Peer,
        peerchat_proto::limits::HANDSHAKE_TIMEOUT,
    )
    .await
    .map_err(|e| Verdict::Fail(format!("handshake with the dialling client failed: {e}")))
}

async fn send(chan: &mut Channel<TcpStream>, m: &wire::PeerMessage) -> Result<(), Verdict> {
    chan.send(m)
        .await
        .map_err(|e| Verdict::Fail(format!("cannot send to the client: {e}")))
}

/// The next frame that is not a Ping (Pings are answered), decrypted with the cipher the
/// reader has now: a decryption failure means the client used the other one.
async fn next(chan: &mut Channel<TcpStream>, what: &str) -> Result<Body, Verdict> {
    loop {
        let cipher = chan.reader.cipher();
        let m = match tokio::time::timeout(ANSWER, chan.recv::<wire::PeerMessage>()).await {
            Err(_) => fail!("no {what} within {ANSWER:?}"),
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => fail!("the client closed the connection instead of sending {what}"),
            Ok(Err(e)) => fail!("waiting for {what} under {cipher:?}: {e}"),
        };
        match m.body {
            Some(Body::Ping(p)) => send(chan, &pong(p.nonce)).await?,
            Some(b) => return Ok(b),
            None => {}
        }
    }
}

fn pong(nonce: u64) -> wire::PeerMessage {
    wire::PeerMessage {
        body: Some(Body::Pong(wire::Pong { nonce })),
    }
}

/// Expects the client's hello; returns whether it names `aes-gcm`.
async fn client_hello(chan: &mut Channel<TcpStream>) -> Result<bool, Verdict> {
    match next(chan, "the client's PeerHello").await? {
        Body::Hello(h) => Ok(h.features.iter().any(|f| f == FEATURE_AES_GCM)),
        other => fail!("expected the client's PeerHello, got {other:?}"),
    }
}

fn switch(chan: &mut Channel<TcpStream>) -> Result<(), Verdict> {
    chan.writer
        .switch_to_aes_gcm()
        .and_then(|()| chan.reader.switch_to_aes_gcm())
        .map_err(|e| Verdict::Fail(format!("the suite cannot switch: {e}")))
}

/// A Ping with a fresh nonce must come back as its Pong, read with the current cipher.
async fn ping_pong(chan: &mut Channel<TcpStream>, after: &str) -> Result<(), Verdict> {
    let nonce = rand::random::<u64>() | 1;
    send(
        chan,
        &wire::PeerMessage {
            body: Some(Body::Ping(wire::Ping { nonce })),
        },
    )
    .await?;
    loop {
        match next(chan, "the Pong").await {
            Ok(Body::Pong(p)) if p.nonce == nonce => return Ok(()),
            Ok(_) => {}
            Err(Verdict::Fail(e)) => fail!("{after}: {e}"),
            Err(e) => return Err(e),
        }
    }
}

const NO_AES: &str = "the client does not name aes-gcm (no AES hardware, or switched off); \
                      SPEC.md §3.2.1 rule 1 allows that, so the switch cannot be tested";

async fn friend_dials(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut chan = dial(&p).await?;
    send(
        &mut chan,
        &hello(&p, &[FEATURE_FILE_BLAKE3, FEATURE_AES_GCM]),
    )
    .await?;
    if !client_hello(&mut chan).await? {
        // Only the friend named it: both directions must stay ChaChaPoly and work.
        let kept = ping_pong(&mut chan, "aes-gcm named by the friend only (ChaChaPoly)").await;
        p.finish().await;
        kept?;
        skip!("{NO_AES}; the link stayed ChaChaPoly and answered a Ping");
    }
    switch(&mut chan)?;
    ping_pong(&mut chan, "after the switch (AES-256-GCM both ways)").await?;
    p.finish().await;
    Ok("the Ping and the Pong after the hellos were AES-256-GCM records".into())
}

async fn client_dials(ctx: Ctx) -> CaseResult {
    let mut p = Pair::start(&ctx, PairOptions::default()).await?;
    p.sut_says("over aes").await?;
    let mut chan = accept(&p).await?;
    if !client_hello(&mut chan).await? {
        p.finish().await;
        skip!("{NO_AES}");
    }
    send(&mut chan, &hello(&p, &[FEATURE_AES_GCM])).await?;
    switch(&mut chan)?;
    loop {
        match next(&mut chan, "the ChatMessage under AES-256-GCM").await? {
            Body::Chat(c) if c.text == "over aes" => break,
            _ => {}
        }
    }
    ping_pong(&mut chan, "after the ChatMessage").await?;
    p.finish().await;
    Ok("as initiator the client switched after the friend's hello, both ways".into())
}

async fn hello_not_at_record_end(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut chan = dial(&p).await?;
    // The hello and a Ping in one record: the hello does not end its record.
    let queued = chan
        .writer
        .queue(&hello(&p, &[FEATURE_AES_GCM]))
        .and_then(|()| chan.writer.queue(&pong(1)));
    if let Err(e) = queued {
        fail!("cannot queue: {e}");
    }
    if let Err(e) = chan.writer.flush().await {
        fail!("cannot send: {e}");
    }
    if !client_hello(&mut chan).await? {
        p.finish().await;
        skip!("{NO_AES}");
    }
    // The client switched its sending side right after its hello; its Close is AES-256-GCM.
    if chan.reader.switch_to_aes_gcm().is_err() {
        fail!("the suite cannot switch its reader");
    }
    let got = next(&mut chan, "Close PROTOCOL_ERROR").await;
    p.finish().await;
    match got? {
        Body::Close(c) if c.reason == CloseReason::ProtocolError as i32 => {
            Ok("Close PROTOCOL_ERROR, sent with AES-256-GCM".into())
        }
        other => fail!("expected Close PROTOCOL_ERROR, got {other:?}"),
    }
}

async fn v1_friend(ctx: Ctx) -> CaseResult {
    let p = Pair::start(&ctx, PairOptions::default()).await?;
    let mut chan = dial(&p).await?;
    send(&mut chan, &hello(&p, &[FEATURE_FILE_BLAKE3, "x-future"])).await?;
    client_hello(&mut chan).await?;
    if chan.reader.cipher() != CipherKind::ChaChaPoly {
        fail!("the suite switched by mistake");
    }
    ping_pong(
        &mut chan,
        "after hellos without aes-gcm (ChaChaPoly both ways)",
    )
    .await?;
    p.finish().await;
    Ok("without aes-gcm in the friend's hello the link stayed ChaChaPoly".into())
}
