//! The Noise XX handshake with RSA identity binding, as a sans-IO state machine (SPEC.md §4).
//!
//! Feed received handshake records to [`Handshake::read_message`], send what
//! [`Handshake::write_message`] returns, and call [`Handshake::finish`] once
//! [`Handshake::is_finished`]. No sockets, no clocks: the caller owns the time-out.

use std::sync::Arc;

use prost::Message as _;

use crate::aes_gcm::{AesKeys, KEY_LEN};
use crate::error::HandshakeError;
use crate::identity::{IdentityKey, IdentityKeyPair};
use crate::limits::{MAX_RECORD, PROTOCOL_VERSION};
use crate::transport::Transport;
use crate::verified::VerifiedBindings;
use crate::wire::{ChannelKind, HandshakePayload};
use crate::x25519::{NoiseResolver, StaticKey};

/// The Noise protocol name (SPEC.md §4.1).
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// The Noise prologue: binds the handshake to Peerchat (SPEC.md §4.1).
pub const PROLOGUE: &[u8] = b"peerchat";

fn params() -> snow::params::NoiseParams {
    // The constant is a valid Noise name; parsing it cannot fail at run time.
    #[allow(clippy::expect_used)]
    NOISE_PARAMS.parse().expect("valid noise parameters")
}

/// A snow builder on Peerchat's resolver: ring for every primitive, X25519 included, and the
/// local static key's public half taken from `static_key` instead of derived again
/// (`crate::x25519`; X25519 was most of a handshake's CPU).
fn builder<'a>(static_key: Option<Arc<StaticKey>>) -> snow::Builder<'a> {
    snow::Builder::with_resolver(params(), Box::new(NoiseResolver::new(static_key)))
}

/// This process's identity as used in handshakes: the RSA key pair, one X25519 static key
/// generated at start-up, and the RSA signature over it, computed once.
#[derive(Clone)]
pub struct LocalIdentity {
    inner: Arc<LocalInner>,
}

struct LocalInner {
    keypair: IdentityKeyPair,
    static_private: Vec<u8>,
    static_public: Vec<u8>,
    /// The static key with its public half derived once, so that a handshake does not
    /// re-derive it (`None` only for a malformed test key; snow then reports the error).
    static_key: Option<Arc<StaticKey>>,
    signature: Vec<u8>,
    /// Remote identity bindings this process has verified (`crate::verified`): shared by all
    /// its handshakes, so a reconnecting client or friend is not verified again.
    verified: VerifiedBindings,
}

impl LocalIdentity {
    /// Generates a fresh X25519 static key and signs it with `keypair` (one RSA operation).
    ///
    /// # Errors
    /// [`HandshakeError::Noise`] if the X25519 key cannot be generated.
    pub fn new(keypair: IdentityKeyPair) -> Result<Self, HandshakeError> {
        let kp = builder(None).generate_keypair()?;
        let signature = keypair.sign_static_key(&kp.public);
        Ok(Self::from_parts(keypair, kp.private, kp.public, signature))
    }

    /// Builds an identity from fixed parts (test vectors).
    pub fn from_parts(
        keypair: IdentityKeyPair,
        static_private: Vec<u8>,
        static_public: Vec<u8>,
        signature: Vec<u8>,
    ) -> Self {
        Self {
            inner: Arc::new(LocalInner {
                keypair,
                static_key: StaticKey::derive(&static_private).map(Arc::new),
                static_private,
                static_public,
                signature,
                verified: VerifiedBindings::default(),
            }),
        }
    }

    /// The long-term public identity key.
    pub fn public_key(&self) -> &IdentityKey {
        self.inner.keypair.public()
    }

    /// The X25519 static public key this process uses.
    pub fn static_public(&self) -> &[u8] {
        &self.inner.static_public
    }

    /// The handshake payload this side sends for a connection of `kind`.
    pub fn payload(&self, kind: ChannelKind) -> HandshakePayload {
        HandshakePayload {
            identity_key: self.public_key().to_der(),
            identity_sig: self.inner.signature.clone().into(),
            protocol_version: PROTOCOL_VERSION,
            channel_kind: kind as i32,
        }
    }
}

impl std::fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalIdentity({})", self.public_key().fingerprint())
    }
}

/// What the handshake proved about the other side.
#[derive(Debug, Clone)]
pub struct RemoteIdentity {
    /// The remote's verified RSA identity key.
    pub identity_key: IdentityKey,
    /// The protocol version in use: the lower of both sides' versions.
    pub protocol_version: u32,
    /// The channel kind the remote announced. Equal to the local kind, except on the server's
    /// one port, where a responder expecting `ClientServer` also admits `Relay` (SPEC.md §4.4)
    /// and must branch on this value.
    pub channel_kind: ChannelKind,
}

/// Which side of the handshake this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opened the TCP connection; sends messages 1 and 3.
    Initiator,
    /// Accepted it; sends message 2.
    Responder,
}

/// Length of handshake message 1: one X25519 ephemeral key and an empty payload. Message 2
/// is always longer (it also carries the encrypted static key and payload), which is what
/// lets a peer initiator recognise a simultaneous open (SPEC.md §4.7).
pub const MESSAGE_1_LEN: usize = 32;

/// A handshake in progress.
pub struct Handshake {
    noise: snow::HandshakeState,
    role: Role,
    kind: ChannelKind,
    payload: Vec<u8>,
    remote: Option<RemoteIdentity>,
    /// Kept to rebuild the state as responder after a simultaneous open.
    local: LocalIdentity,
    /// Our message 1, the tie-breaker of a simultaneous open.
    sent_message_1: Option<Vec<u8>>,
    /// A simultaneous open was already resolved on this connection (it happens at most once).
    simultaneous: bool,
}

impl Handshake {
    /// Starts a handshake for `role` on a connection of `kind`.
    ///
    /// # Errors
    /// [`HandshakeError::Noise`] if Noise cannot be set up.
    pub fn new(
        local: &LocalIdentity,
        role: Role,
        kind: ChannelKind,
    ) -> Result<Self, HandshakeError> {
        Self::build(local, role, kind, None, None)
    }

    /// Like [`Handshake::new`] with a fixed ephemeral key and an exact payload: for test
    /// vectors only (a fixed ephemeral key destroys forward secrecy).
    ///
    /// # Errors
    /// As [`Handshake::new`].
    pub fn new_for_test_vectors(
        local: &LocalIdentity,
        role: Role,
        kind: ChannelKind,
        ephemeral_private: &[u8],
        payload: Vec<u8>,
    ) -> Result<Self, HandshakeError> {
        Self::build(local, role, kind, Some(ephemeral_private), Some(payload))
    }

    fn build(
        local: &LocalIdentity,
        role: Role,
        kind: ChannelKind,
        ephemeral: Option<&[u8]>,
        payload: Option<Vec<u8>>,
    ) -> Result<Self, HandshakeError> {
        let mut builder = builder(local.inner.static_key.clone())
            .local_private_key(&local.inner.static_private)
            .prologue(PROLOGUE);
        if let Some(e) = ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let noise = match role {
            Role::Initiator => builder.build_initiator()?,
            Role::Responder => builder.build_responder()?,
        };
        let payload = payload.unwrap_or_else(|| local.payload(kind).encode_to_vec());
        Ok(Self {
            noise,
            role,
            kind,
            payload,
            remote: None,
            local: local.clone(),
            sent_message_1: None,
            simultaneous: false,
        })
    }

    /// This side's role now. A peer initiator becomes the responder when it loses the
    /// tie-break of a simultaneous open (SPEC.md §4.7); the caller uses the final role for
    /// everything that depends on it (who sends PeerHello first, §7.2; who "initiated" the
    /// connection for duplicate resolution, §7.3).
    pub fn role(&self) -> Role {
        self.role
    }

    /// True if this handshake resolved a TCP simultaneous open (SPEC.md §4.7).
    pub fn was_simultaneous(&self) -> bool {
        self.simultaneous
    }

    /// True when it is this side's turn to send.
    pub fn is_my_turn(&self) -> bool {
        !self.noise.is_handshake_finished() && self.noise.is_my_turn()
    }

    /// True when all three messages have been exchanged.
    pub fn is_finished(&self) -> bool {
        self.noise.is_handshake_finished()
    }

    /// The remote identity, once its handshake message has been read and verified. An
    /// initiator checks it between messages 2 and 3 (SPEC.md §4.2 step 5), so that message 3,
    /// which reveals its own identity, never goes to an unexpected responder.
    pub fn remote(&self) -> Option<&RemoteIdentity> {
        self.remote.as_ref()
    }

    /// Produces this side's next handshake message (one record body).
    ///
    /// # Errors
    /// [`HandshakeError::OutOfOrder`] if it is not this side's turn; Noise errors.
    pub fn write_message(&mut self) -> Result<Vec<u8>, HandshakeError> {
        if !self.is_my_turn() {
            return Err(HandshakeError::OutOfOrder);
        }
        // Message 1 (initiator's first) carries no payload; messages 2 and 3 carry ours.
        let first = self.role == Role::Initiator && self.noise.get_remote_static().is_none();
        let payload: &[u8] = if first { &[] } else { &self.payload };
        // Sized to the message (two X25519 keys, two tags, the payload), not to MAX_RECORD: a
        // server doing thousands of handshakes should not fault in 64 KiB for each.
        let mut out = vec![0u8; (payload.len() + 128).min(MAX_RECORD)];
        let n = self.noise.write_message(payload, &mut out)?;
        out.truncate(n);
        if first {
            self.sent_message_1 = Some(out.clone());
        }
        Ok(out)
    }

    /// SPEC.md §4.7: on a peer channel, an initiator waiting for message 2 that receives a
    /// record of message 1's length is in a TCP simultaneous open: both sides dialled and
    /// both sent message 1. The side whose message 1 (its ephemeral key) is lower,
    /// compared as bytes, becomes the responder and answers the other's message 1; the
    /// higher side ignores the message 1 it received and keeps waiting for message 2.
    /// Returns `Ok(true)` when the record was consumed this way.
    fn resolve_simultaneous_open(&mut self, message: &[u8]) -> Result<bool, HandshakeError> {
        let waiting_for_message_2 =
            self.role == Role::Initiator && self.noise.get_remote_static().is_none();
        if self.kind != ChannelKind::Peer
            || !waiting_for_message_2
            || self.simultaneous
            || message.len() != MESSAGE_1_LEN
        {
            return Ok(false);
        }
        let Some(mine) = self.sent_message_1.as_deref() else {
            return Ok(false);
        };
        self.simultaneous = true;
        match mine.cmp(message) {
            std::cmp::Ordering::Equal => Err(HandshakeError::SimultaneousOpenTie),
            // We stay the initiator: their message 1 is dropped, their message 2 follows.
            std::cmp::Ordering::Greater => Ok(true),
            std::cmp::Ordering::Less => {
                let payload = std::mem::take(&mut self.payload);
                let mut fresh = Self::build(
                    &self.local.clone(),
                    Role::Responder,
                    self.kind,
                    None,
                    Some(payload),
                )?;
                fresh.simultaneous = true;
                *self = fresh;
                // Message 1 carries no payload: nothing to verify yet.
                let mut scratch = [0u8; MESSAGE_1_LEN];
                self.noise.read_message(message, &mut scratch)?;
                Ok(true)
            }
        }
    }

    /// Consumes the remote's next handshake message, verifying its identity payload.
    ///
    /// # Errors
    /// Any [`HandshakeError`]: the connection must then be closed without a Close frame.
    pub fn read_message(&mut self, message: &[u8]) -> Result<(), HandshakeError> {
        if self.is_my_turn() || self.is_finished() {
            return Err(HandshakeError::OutOfOrder);
        }
        if self.resolve_simultaneous_open(message)? {
            return Ok(());
        }
        // The payload is never longer than the message that carries it.
        let mut payload = vec![0u8; message.len()];
        let n = self.noise.read_message(message, &mut payload)?;
        let payload = &payload[..n];
        match self.noise.get_remote_static() {
            // Message 1: only an ephemeral key; the payload must be empty.
            None => {
                if !payload.is_empty() {
                    return Err(HandshakeError::UnexpectedPayload);
                }
            }
            Some(remote_static) => {
                let remote_static = remote_static.to_vec();
                self.remote = Some(verify_payload(
                    payload,
                    &remote_static,
                    self.kind,
                    &self.local.inner.verified,
                )?);
            }
        }
        Ok(())
    }

    /// Noise's Split() keys (initiator-to-responder, responder-to-initiator) and the final
    /// handshake hash: the inputs of the AES-GCM key schedule (SPEC.md §3.2.1), for the test
    /// vectors only (`tests/aes_gcm_vectors.rs`). Real code never sees raw keys.
    #[doc(hidden)]
    pub fn split_for_test_vectors(&mut self) -> ([u8; KEY_LEN], [u8; KEY_LEN], Vec<u8>) {
        let (k1, k2) = self.noise.dangerously_get_raw_split();
        (k1, k2, self.noise.get_handshake_hash().to_vec())
    }

    /// Turns the finished handshake into a transport and the verified remote identity.
    ///
    /// # Errors
    /// [`HandshakeError::OutOfOrder`] if not finished; [`HandshakeError::MissingRemoteStatic`].
    pub fn finish(self) -> Result<(Transport, RemoteIdentity), HandshakeError> {
        if !self.is_finished() {
            return Err(HandshakeError::OutOfOrder);
        }
        let remote = self.remote.ok_or(HandshakeError::MissingRemoteStatic)?;
        // The AES-256-GCM keys of the optional switch after the hellos (SPEC.md §3.2.1),
        // derived now: the Split() keys are gone once snow has built its transport state.
        let mut noise = self.noise;
        let (k1, k2) = noise.dangerously_get_raw_split();
        let aes = AesKeys::derive(&k1, &k2, noise.get_handshake_hash());
        let (send, recv) = if noise.is_initiator() {
            (aes.i2r, aes.r2i)
        } else {
            (aes.r2i, aes.i2r)
        };
        let transport = Transport::new(noise.into_stateless_transport_mode()?, send, recv);
        Ok((transport, remote))
    }
}

/// Decodes and checks a HandshakePayload received with `remote_static` (SPEC.md §4.2); checks
/// V4 and V5 through `verified`, which answers for a binding it has verified before.
fn verify_payload(
    payload: &[u8],
    remote_static: &[u8],
    expected: ChannelKind,
    verified: &VerifiedBindings,
) -> Result<RemoteIdentity, HandshakeError> {
    let p = HandshakePayload::decode(payload)?;
    if p.protocol_version == 0 {
        return Err(HandshakeError::UnsupportedVersion(0));
    }
    let got = ChannelKind::try_from(p.channel_kind).ok();
    if !kinds_compatible(expected, got) {
        return Err(HandshakeError::WrongChannelKind {
            expected,
            got: p.channel_kind,
        });
    }
    let channel_kind = got.unwrap_or(expected);
    let identity_key = verified.check(&p.identity_key, &p.identity_sig, remote_static)?;
    Ok(RemoteIdentity {
        identity_key,
        protocol_version: p.protocol_version.min(PROTOCOL_VERSION),
        channel_kind,
    })
}

/// Check V3 (SPEC.md §4.4): the kinds must match, except that the server's port serves both
/// client-server and relay connections. The server, as responder, cannot know the kind before
/// message 3, so it always says `ClientServer` in message 2; a relaying client accepts that,
/// and the server accepts `Relay` from the initiator.
fn kinds_compatible(expected: ChannelKind, got: Option<ChannelKind>) -> bool {
    matches!(
        (expected, got),
        (
            ChannelKind::ClientServer,
            Some(ChannelKind::ClientServer | ChannelKind::Relay)
        ) | (
            ChannelKind::Relay,
            Some(ChannelKind::ClientServer | ChannelKind::Relay)
        ) | (ChannelKind::Peer, Some(ChannelKind::Peer))
    )
}

/// Runs one peer handshake between `a` (initiator) and `b` to the end, in memory: what each
/// side ends with (for the tests of this crate).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn complete_in_memory(
    a: &LocalIdentity,
    b: &LocalIdentity,
) -> ((Transport, RemoteIdentity), (Transport, RemoteIdentity)) {
    let mut i = Handshake::new(a, Role::Initiator, ChannelKind::Peer).unwrap();
    let mut r = Handshake::new(b, Role::Responder, ChannelKind::Peer).unwrap();
    r.read_message(&i.write_message().unwrap()).unwrap();
    i.read_message(&r.write_message().unwrap()).unwrap();
    r.read_message(&i.write_message().unwrap()).unwrap();
    (i.finish().unwrap(), r.finish().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys;

    fn pair(
        kind_i: ChannelKind,
        kind_r: ChannelKind,
    ) -> (Handshake, Handshake, LocalIdentity, LocalIdentity) {
        let a = LocalIdentity::new(test_keys::identity(0)).unwrap();
        let b = LocalIdentity::new(test_keys::identity(1)).unwrap();
        let i = Handshake::new(&a, Role::Initiator, kind_i).unwrap();
        let r = Handshake::new(&b, Role::Responder, kind_r).unwrap();
        (i, r, a, b)
    }

    #[test]
    fn full_handshake_in_memory_then_transport() {
        let (mut i, mut r, a, b) = pair(ChannelKind::Peer, ChannelKind::Peer);
        let m1 = i.write_message().unwrap();
        r.read_message(&m1).unwrap();
        let m2 = r.write_message().unwrap();
        i.read_message(&m2).unwrap();
        let m3 = i.write_message().unwrap();
        r.read_message(&m3).unwrap();
        assert!(i.is_finished() && r.is_finished());
        let (mut ti, ri) = i.finish().unwrap();
        let (mut tr, rr) = r.finish().unwrap();
        assert_eq!(ri.identity_key, *b.public_key());
        assert_eq!(rr.identity_key, *a.public_key());
        assert_eq!(ri.protocol_version, 1);

        let mut wire = bytes::BytesMut::new();
        ti.sealer.seal_frame(b"hi there", &mut wire).unwrap();
        let mut codec = crate::record::RecordCodec;
        use tokio_util::codec::Decoder as _;
        while let Some(rec) = codec.decode(&mut wire).unwrap() {
            tr.opener.open_record(&rec).unwrap();
        }
        assert_eq!(&tr.opener.next_frame().unwrap().unwrap()[..], b"hi there");
    }

    #[test]
    fn a_reconnect_reuses_the_verified_binding_and_a_new_process_is_verified() {
        let a = LocalIdentity::new(test_keys::identity(0)).unwrap();
        let b = LocalIdentity::new(test_keys::identity(1)).unwrap();
        complete_in_memory(&a, &b);
        let ((_, seen_by_a), (_, seen_by_b)) = complete_in_memory(&a, &b);
        assert_eq!(seen_by_a.identity_key, *b.public_key());
        assert_eq!(seen_by_b.identity_key, *a.public_key());
        assert_eq!(a.inner.verified.len(), 1);
        assert_eq!(b.inner.verified.len(), 1);
        // The same identity in a new process signs a new static key: a new binding.
        let a2 = LocalIdentity::new(test_keys::identity(0)).unwrap();
        complete_in_memory(&a2, &b);
        assert_eq!(b.inner.verified.len(), 2);
    }

    #[test]
    fn wrong_channel_kind_is_rejected() {
        let (mut i, mut r, _, _) = pair(ChannelKind::ClientServer, ChannelKind::Peer);
        let m1 = i.write_message().unwrap();
        r.read_message(&m1).unwrap();
        let m2 = r.write_message().unwrap();
        assert!(matches!(
            i.read_message(&m2),
            Err(HandshakeError::WrongChannelKind { .. })
        ));
    }

    #[test]
    fn signature_by_another_key_is_rejected() {
        // Responder claims identity 1's key but signs with identity 2.
        let kp1 = test_keys::identity(1);
        let kp2 = test_keys::identity(2);
        let st = snow::Builder::new(params()).generate_keypair().unwrap();
        let forged_sig = kp2.sign_static_key(&st.public);
        let liar = LocalIdentity::from_parts(kp1, st.private, st.public, forged_sig);
        let a = LocalIdentity::new(test_keys::identity(0)).unwrap();
        let mut i = Handshake::new(&a, Role::Initiator, ChannelKind::Peer).unwrap();
        let mut r = Handshake::new(&liar, Role::Responder, ChannelKind::Peer).unwrap();
        r.read_message(&i.write_message().unwrap()).unwrap();
        let err = i.read_message(&r.write_message().unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Identity(crate::identity::IdentityError::BadSignature)
            ),
            "{err}"
        );
    }

    #[test]
    fn tampered_handshake_message_is_rejected() {
        let (mut i, mut r, _, _) = pair(ChannelKind::Peer, ChannelKind::Peer);
        r.read_message(&i.write_message().unwrap()).unwrap();
        let mut m2 = r.write_message().unwrap();
        let last = m2.len() - 1;
        m2[last] ^= 1;
        assert!(matches!(i.read_message(&m2), Err(HandshakeError::Noise(_))));
    }

    #[test]
    fn payload_in_message_one_is_rejected() {
        let (_, mut r, a, _) = pair(ChannelKind::Peer, ChannelKind::Peer);
        let mut noise = snow::Builder::new(params())
            .local_private_key(&a.inner.static_private)
            .prologue(PROLOGUE)
            .build_initiator()
            .unwrap();
        let mut m1 = vec![0u8; 1000];
        let n = noise.write_message(b"sneaky", &mut m1).unwrap();
        assert!(matches!(
            r.read_message(&m1[..n]),
            Err(HandshakeError::UnexpectedPayload)
        ));
    }

    #[test]
    fn out_of_turn_calls_are_errors_not_panics() {
        let (mut i, mut r, _, _) = pair(ChannelKind::Peer, ChannelKind::Peer);
        assert!(matches!(r.write_message(), Err(HandshakeError::OutOfOrder)));
        assert!(matches!(
            i.read_message(b"x"),
            Err(HandshakeError::OutOfOrder)
        ));
        assert!(r.read_message(b"garbage").is_err());
    }

    /// Both sides dialled (TCP simultaneous open) and both sent message 1 (SPEC.md §4.7).
    fn simultaneous(a: &LocalIdentity, b: &LocalIdentity) -> (Handshake, Handshake) {
        let mut x = Handshake::new(a, Role::Initiator, ChannelKind::Peer).unwrap();
        let mut y = Handshake::new(b, Role::Initiator, ChannelKind::Peer).unwrap();
        let mx = x.write_message().unwrap();
        let my = y.write_message().unwrap();
        assert_eq!(mx.len(), MESSAGE_1_LEN);
        x.read_message(&my).unwrap();
        y.read_message(&mx).unwrap();
        (x, y)
    }

    #[test]
    fn simultaneous_open_resolves_to_one_initiator_and_completes() {
        let a = LocalIdentity::new(test_keys::identity(0)).unwrap();
        let b = LocalIdentity::new(test_keys::identity(1)).unwrap();
        // Fresh ephemerals each round: both orders of the tie-break get exercised.
        for _ in 0..8 {
            let (mut x, mut y) = simultaneous(&a, &b);
            assert_ne!(x.role(), y.role(), "exactly one side becomes the responder");
            assert!(x.was_simultaneous() && y.was_simultaneous());
            let (i, r) = if x.role() == Role::Initiator {
                (&mut x, &mut y)
            } else {
                (&mut y, &mut x)
            };
            assert!(r.is_my_turn() && !i.is_my_turn());
            let m2 = r.write_message().unwrap();
            i.read_message(&m2).unwrap();
            let m3 = i.write_message().unwrap();
            r.read_message(&m3).unwrap();
            let x_is_a = x.role() == Role::Initiator;
            let (_, rx) = x.finish().unwrap();
            let (_, ry) = y.finish().unwrap();
            assert_eq!(rx.identity_key, *b.public_key());
            assert_eq!(ry.identity_key, *a.public_key());
            let _ = x_is_a;
        }
    }

    #[test]
    fn a_second_message_1_or_one_on_a_server_channel_is_an_error() {
        let a = LocalIdentity::new(test_keys::identity(0)).unwrap();
        let b = LocalIdentity::new(test_keys::identity(1)).unwrap();
        // Server channels never resolve simultaneous opens: message 1 where message 2 is
        // expected fails in Noise.
        let mut x = Handshake::new(&a, Role::Initiator, ChannelKind::ClientServer).unwrap();
        let mut y = Handshake::new(&b, Role::Initiator, ChannelKind::ClientServer).unwrap();
        x.write_message().unwrap();
        let my = y.write_message().unwrap();
        assert!(x.read_message(&my).is_err());
        // A peer initiator that stayed initiator does not accept a second message 1.
        let (mut x, mut y) = simultaneous(&a, &b);
        let stayed = if x.role() == Role::Initiator {
            &mut x
        } else {
            &mut y
        };
        let mut other = Handshake::new(&b, Role::Initiator, ChannelKind::Peer).unwrap();
        let again = other.write_message().unwrap();
        assert!(stayed.read_message(&again).is_err());
    }

    #[test]
    fn identical_message_1_is_refused() {
        let a = LocalIdentity::new(test_keys::identity(0)).unwrap();
        let mut x = Handshake::new(&a, Role::Initiator, ChannelKind::Peer).unwrap();
        let m1 = x.write_message().unwrap();
        assert!(matches!(
            x.read_message(&m1),
            Err(HandshakeError::SimultaneousOpenTie)
        ));
    }

    #[test]
    fn the_server_port_admits_relay_connections_and_says_which() {
        let (mut i, mut r, _, _) = pair(ChannelKind::Relay, ChannelKind::ClientServer);
        r.read_message(&i.write_message().unwrap()).unwrap();
        i.read_message(&r.write_message().unwrap()).unwrap();
        r.read_message(&i.write_message().unwrap()).unwrap();
        let (_, seen_by_client) = i.finish().unwrap();
        let (_, seen_by_server) = r.finish().unwrap();
        assert_eq!(seen_by_client.channel_kind, ChannelKind::ClientServer);
        assert_eq!(seen_by_server.channel_kind, ChannelKind::Relay);
        // A peer port never admits a relay or server connection.
        assert!(!kinds_compatible(
            ChannelKind::Peer,
            Some(ChannelKind::Relay)
        ));
        assert!(!kinds_compatible(
            ChannelKind::Relay,
            Some(ChannelKind::Peer)
        ));
        assert!(!kinds_compatible(ChannelKind::ClientServer, None));
    }
}
