//! The protocol layer alone, in memory: what one core can push through the protocol crate's
//! handshake and its sealer/opener with no sockets, disk or client logic. These figures are
//! the ceilings the socket scenarios are compared against in docs/PERFORMANCE.md.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Buf as _, BytesMut};
use peerchat_proto::handshake::Handshake;
use peerchat_proto::limits::MAX_FILE_CHUNK;
use peerchat_proto::transport::Transport;
use peerchat_proto::wire::{self, peer_message, ChannelKind};
use peerchat_proto::{LocalIdentity, Role};
use prost::Message as _;

/// One complete handshake between two in-memory ends; returns both transports.
///
/// # Errors
/// Handshake errors (none expected with the fixed test keys).
pub fn handshake(a: &LocalIdentity, b: &LocalIdentity) -> anyhow::Result<(Transport, Transport)> {
    let mut i = Handshake::new(a, Role::Initiator, ChannelKind::Peer)?;
    let mut r = Handshake::new(b, Role::Responder, ChannelKind::Peer)?;
    while !(i.is_finished() && r.is_finished()) {
        if i.is_my_turn() {
            let m = i.write_message()?;
            r.read_message(&m)?;
        } else if r.is_my_turn() {
            let m = r.write_message()?;
            i.read_message(&m)?;
        } else {
            bail!("handshake stalled");
        }
    }
    Ok((i.finish()?.0, r.finish()?.0))
}

/// Encodes, seals, opens and decodes `total` bytes of FileChunk frames of MAX_FILE_CHUNK
/// bytes on this thread; returns the time taken.
///
/// # Errors
/// A protocol error (none expected).
pub fn file_chunks(a: &LocalIdentity, b: &LocalIdentity, total: u64) -> anyhow::Result<Duration> {
    let (mut tx, mut rx) = handshake(a, b)?;
    let data = bytes::Bytes::from(vec![0x5a; MAX_FILE_CHUNK]);
    let mut wire_bytes = BytesMut::with_capacity(MAX_FILE_CHUNK + 4096);
    let mut received = 0u64;
    let t0 = Instant::now();
    let mut offset = 0u64;
    while offset < total {
        let msg = wire::PeerMessage {
            body: Some(peer_message::Body::FileChunk(wire::FileChunk {
                transfer_id: bytes::Bytes::from_static(&[1; 16]),
                offset,
                data: data.clone(),
            })),
        };
        tx.sealer.queue_message(&msg)?;
        tx.sealer.flush(&mut wire_bytes)?;
        while wire_bytes.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([wire_bytes[0], wire_bytes[1]]));
            wire_bytes.advance(2);
            let record = wire_bytes.split_to(len);
            rx.opener.open_record(&record)?;
        }
        while let Some(frame) = rx.opener.next_frame()? {
            let m = wire::PeerMessage::decode(frame)?;
            match m.body.context("empty frame")? {
                peer_message::Body::FileChunk(c) => received += c.data.len() as u64,
                _ => bail!("unexpected frame"),
            }
        }
        offset += MAX_FILE_CHUNK as u64;
    }
    let elapsed = t0.elapsed();
    if received != offset {
        bail!("received {received} of {offset} bytes");
    }
    Ok(elapsed)
}

/// Average time of one RSA-PSS-SHA256 verification of a Noise static-key signature: as the
/// protocol crate does it ([`peerchat_proto::IdentityKey::verify_static_key`], the `rsa`
/// crate), and with ring on the same key and signature.
///
/// # Errors
/// A signature fails to verify (a defect) or the key cannot be converted.
pub fn rsa_verify(local: &LocalIdentity, count: u32) -> anyhow::Result<(Duration, Duration)> {
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    use rsa::pkcs8::DecodePublicKey as _;
    let key = local.public_key();
    let static_key = local.static_public();
    let sig = local.payload(ChannelKind::Peer).identity_sig;
    let t0 = Instant::now();
    for _ in 0..count {
        key.verify_static_key(static_key, &sig)?;
    }
    let ours = t0.elapsed() / count.max(1);

    let pkcs1 = rsa::RsaPublicKey::from_public_key_der(&key.to_der())?
        .to_pkcs1_der()?
        .into_vec();
    let ring_key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PSS_2048_8192_SHA256, pkcs1);
    let msg = peerchat_proto::identity::signed_bytes(static_key);
    let t0 = Instant::now();
    for _ in 0..count {
        ring_key
            .verify(&msg, &sig)
            .map_err(|_| anyhow::anyhow!("ring rejects the signature"))?;
    }
    Ok((ours, t0.elapsed() / count.max(1)))
}
