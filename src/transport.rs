//! Encrypted transport after the handshake, sans-IO (SPEC.md §3.2, §3.3).
//!
//! The [`Sealer`] turns frames (one protobuf message each) into records on the wire; the
//! [`Opener`] turns received records back into frames. They share the Noise keys but keep
//! their own nonce counters, so a connection's reader and writer can run on different tasks.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::aes_gcm::{AesGcm, KEY_LEN};
use crate::error::FrameError;
use crate::limits::{MAX_FRAME, MAX_RECORD_PLAINTEXT, NOISE_TAG_LEN};
use crate::record::RECORD_HEADER;

/// Frame length-prefix size inside the decrypted stream.
pub const FRAME_HEADER: usize = 4;

/// Both directions of an established connection.
pub struct Transport {
    /// Encrypts outgoing frames.
    pub sealer: Sealer,
    /// Decrypts incoming records.
    pub opener: Opener,
}

impl Transport {
    /// `send_aes` / `recv_aes`: this side's AES-256-GCM keys for the optional switch after
    /// the hellos (SPEC.md §3.2.1), unused unless [`Sealer::switch_to_aes_gcm`] and
    /// [`Opener::switch_to_aes_gcm`] are called.
    pub(crate) fn new(
        state: snow::StatelessTransportState,
        send_aes: [u8; KEY_LEN],
        recv_aes: [u8; KEY_LEN],
    ) -> Self {
        let state = Arc::new(state);
        Self {
            sealer: Sealer {
                cipher: Cipher::ChaChaPoly(state.clone()),
                nonce: 0,
                pending: BytesMut::new(),
                aes_key: Some(send_aes),
            },
            opener: Opener {
                cipher: Cipher::ChaChaPoly(state),
                nonce: 0,
                frames: FrameSplitter::new(MAX_FRAME),
                aes_key: Some(recv_aes),
            },
        }
    }
}

/// The record cipher of one direction: Noise's ChaChaPoly from the handshake, or
/// AES-256-GCM after the switch of SPEC.md §3.2.1.
enum Cipher {
    ChaChaPoly(Arc<snow::StatelessTransportState>),
    // Boxed: ring's expanded key is ~0.5 KiB, and most connections never switch.
    AesGcm(Box<AesGcm>),
}

/// Whether a direction still uses ChaChaPoly or has switched (SPEC.md §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherKind {
    /// Noise ChaChaPoly, the cipher of every connection's start.
    ChaChaPoly,
    /// AES-256-GCM after both hellos named `aes-gcm`.
    Aes256Gcm,
}

impl Cipher {
    fn kind(&self) -> CipherKind {
        match self {
            Cipher::ChaChaPoly(_) => CipherKind::ChaChaPoly,
            Cipher::AesGcm(_) => CipherKind::Aes256Gcm,
        }
    }
}

/// The sending half: frames in, encrypted records out.
pub struct Sealer {
    cipher: Cipher,
    nonce: u64,
    /// Plaintext stream (length-prefixed frames) not yet encrypted.
    pending: BytesMut,
    /// The AES-256-GCM key of this direction until the switch.
    aes_key: Option<[u8; KEY_LEN]>,
}

impl Sealer {
    /// Queues one frame; call [`Sealer::flush`] to encrypt what is queued. Queuing several
    /// frames before flushing packs them into fewer records.
    ///
    /// # Errors
    /// [`FrameError::SendTooLarge`] if `frame` exceeds MAX_FRAME.
    pub fn queue_frame(&mut self, frame: &[u8]) -> Result<(), FrameError> {
        if frame.len() > MAX_FRAME {
            return Err(FrameError::SendTooLarge {
                len: frame.len(),
                max: MAX_FRAME,
            });
        }
        self.pending.reserve(FRAME_HEADER + frame.len());
        // Bounded by MAX_FRAME above, so the cast cannot truncate.
        self.pending.put_u32(frame.len() as u32);
        self.pending.put_slice(frame);
        Ok(())
    }

    /// Queues a protobuf message as a frame, encoding it straight into the pending stream.
    ///
    /// # Errors
    /// As [`Sealer::queue_frame`].
    pub fn queue_message<M: prost::Message>(&mut self, msg: &M) -> Result<(), FrameError> {
        let len = msg.encoded_len();
        if len > MAX_FRAME {
            return Err(FrameError::SendTooLarge {
                len,
                max: MAX_FRAME,
            });
        }
        self.pending.reserve(FRAME_HEADER + len);
        self.pending.put_u32(len as u32);
        // Cannot fail: capacity was reserved above.
        msg.encode(&mut self.pending)
            .map_err(|_| FrameError::SendTooLarge {
                len,
                max: MAX_FRAME,
            })?;
        Ok(())
    }

    /// Queues raw bytes into the plaintext stream without a frame header.
    ///
    /// Only for conformance and robustness tests, which must be able to send what a correct
    /// implementation never would (a length prefix over MAX_FRAME, half a frame, ...).
    pub fn queue_raw_plaintext(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Encrypts everything queued into records appended to `out`.
    ///
    /// # Errors
    /// [`FrameError::Encrypt`] if Noise fails (nonce space exhausted).
    pub fn flush(&mut self, out: &mut BytesMut) -> Result<(), FrameError> {
        // Encrypts straight into `out`: no per-connection scratch buffer, so an idle
        // connection costs kilobytes rather than the 64 KiB of a maximum record.
        while !self.pending.is_empty() {
            let take = self.pending.len().min(MAX_RECORD_PLAINTEXT);
            let body = take + NOISE_TAG_LEN;
            let start = out.len();
            out.resize(start + RECORD_HEADER + body, 0);
            // `body` <= MAX_RECORD by construction, so it fits the u16 prefix.
            out[start..start + RECORD_HEADER].copy_from_slice(&(body as u16).to_be_bytes());
            let written = match &self.cipher {
                Cipher::ChaChaPoly(state) => state
                    .write_message(
                        self.nonce,
                        &self.pending[..take],
                        &mut out[start + RECORD_HEADER..],
                    )
                    .map(|n| debug_assert_eq!(n, body))
                    .map_err(FrameError::Encrypt),
                Cipher::AesGcm(aes) => {
                    let rec = &mut out[start + RECORD_HEADER..];
                    rec[..take].copy_from_slice(&self.pending[..take]);
                    aes.seal(self.nonce, rec)
                }
            };
            if let Err(e) = written {
                out.truncate(start);
                return Err(e);
            }
            self.nonce += 1;
            self.pending.advance(take);
        }
        Ok(())
    }

    /// Appends one record whose plaintext is empty (`P = 0`) to `out`, after flushing what
    /// is queued (so the stream order is kept).
    ///
    /// Only for conformance and robustness tests: SPEC.md §3.2 rule 5 makes such a record
    /// valid and meaningless (§8.5 L3), so a correct sender never needs one, and a receiver
    /// must take it without a frame and without counting it as activity.
    ///
    /// # Errors
    /// As [`Sealer::flush`].
    pub fn seal_empty_record(&mut self, out: &mut BytesMut) -> Result<(), FrameError> {
        self.flush(out)?;
        let start = out.len();
        out.resize(start + RECORD_HEADER + NOISE_TAG_LEN, 0);
        // NOISE_TAG_LEN (16) fits the u16 prefix.
        out[start..start + RECORD_HEADER].copy_from_slice(&(NOISE_TAG_LEN as u16).to_be_bytes());
        let written = match &self.cipher {
            Cipher::ChaChaPoly(state) => state
                .write_message(self.nonce, &[], &mut out[start + RECORD_HEADER..])
                .map(|_| ())
                .map_err(FrameError::Encrypt),
            Cipher::AesGcm(aes) => aes.seal(self.nonce, &mut out[start + RECORD_HEADER..]),
        };
        if let Err(e) = written {
            out.truncate(start);
            return Err(e);
        }
        self.nonce += 1;
        Ok(())
    }

    /// Queues `frame` and flushes: one frame in, its records out.
    ///
    /// # Errors
    /// As [`Sealer::queue_frame`] and [`Sealer::flush`].
    pub fn seal_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
        self.queue_frame(frame)?;
        self.flush(out)
    }

    /// The number of plaintext bytes queued but not yet flushed.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Frees the plaintext buffer if nothing is queued: it keeps the capacity of the largest
    /// batch ever flushed (a LoginOk with many friends is kilobytes), which an idle server
    /// session would otherwise hold for its whole life (issue #14: RSS per session).
    pub fn release_idle_buffer(&mut self) {
        release_if_empty(&mut self.pending);
    }

    /// Encrypts every later record with AES-256-GCM, counter from 0 (SPEC.md §3.2.1): call
    /// it right after flushing this side's PeerHello, when both hellos named `aes-gcm`.
    ///
    /// # Errors
    /// [`FrameError::SwitchNotAtBoundary`] if frames are queued but not flushed (they would
    /// land on the wrong side of the switch) or the switch already happened.
    pub fn switch_to_aes_gcm(&mut self) -> Result<(), FrameError> {
        if !self.pending.is_empty() {
            return Err(FrameError::SwitchNotAtBoundary);
        }
        let key = self.aes_key.take().ok_or(FrameError::SwitchNotAtBoundary)?;
        self.cipher = Cipher::AesGcm(Box::new(AesGcm::new(&key)));
        self.nonce = 0;
        Ok(())
    }

    /// The cipher of the records this side sends now.
    pub fn cipher(&self) -> CipherKind {
        self.cipher.kind()
    }
}

/// The receiving half: records in, frames out.
pub struct Opener {
    cipher: Cipher,
    nonce: u64,
    /// Decrypted stream not yet split into frames.
    frames: FrameSplitter,
    /// The AES-256-GCM key of this direction until the switch.
    aes_key: Option<[u8; KEY_LEN]>,
}

impl Opener {
    /// Lowers the largest frame accepted (never above MAX_FRAME).
    pub fn set_max_frame(&mut self, max: usize) {
        self.frames.set_max_frame(max);
    }

    /// Decrypts one record (its body, without the length prefix) into the frame stream.
    ///
    /// # Errors
    /// [`FrameError::Decrypt`] if the record was tampered with, reordered or replayed;
    /// [`FrameError::FrameTooLarge`] as soon as a frame header announces too many bytes.
    pub fn open_record(&mut self, record: &[u8]) -> Result<(), FrameError> {
        // Decrypts straight into the frame stream (no scratch buffer, see Sealer::flush).
        let stream = &mut self.frames.stream;
        let start = stream.len();
        let opened = match &self.cipher {
            Cipher::ChaChaPoly(state) => {
                stream.resize(start + record.len(), 0);
                state
                    .read_message(self.nonce, record, &mut stream[start..])
                    .map_err(|_| FrameError::Decrypt)
            }
            Cipher::AesGcm(aes) => {
                stream.extend_from_slice(record);
                aes.open(self.nonce, &mut stream[start..])
            }
        };
        match opened {
            Ok(n) => stream.truncate(start + n),
            Err(e) => {
                stream.truncate(start);
                return Err(e);
            }
        }
        self.nonce += 1;
        self.frames.check_header()
    }

    /// The next complete frame, if one has arrived.
    ///
    /// # Errors
    /// [`FrameError::FrameTooLarge`].
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.frames.next_frame()
    }

    /// True if part of a frame has arrived but not all of it (EOF now means truncation).
    pub fn has_partial_frame(&self) -> bool {
        self.frames.has_partial_frame()
    }

    /// Frees the decrypted-stream buffer if no partial frame is in it (see
    /// [`Sealer::release_idle_buffer`]).
    pub fn release_idle_buffer(&mut self) {
        release_if_empty(&mut self.frames.stream);
    }

    /// Decrypts every later record with AES-256-GCM, counter from 0 (SPEC.md §3.2.1): call
    /// it right after taking the remote's PeerHello out, when both hellos named `aes-gcm`.
    ///
    /// # Errors
    /// [`FrameError::SwitchNotAtBoundary`] if decrypted bytes follow the hello in its record
    /// (the sender did not end the record there: rule 2), or the switch already happened.
    pub fn switch_to_aes_gcm(&mut self) -> Result<(), FrameError> {
        if self.frames.has_partial_frame() {
            return Err(FrameError::SwitchNotAtBoundary);
        }
        let key = self.aes_key.take().ok_or(FrameError::SwitchNotAtBoundary)?;
        self.cipher = Cipher::AesGcm(Box::new(AesGcm::new(&key)));
        self.nonce = 0;
        Ok(())
    }

    /// The cipher of the records this side receives now.
    pub fn cipher(&self) -> CipherKind {
        self.cipher.kind()
    }
}

#[cfg(feature = "fuzzing")]
impl Sealer {
    /// A sealer already switched to AES-256-GCM under `key`, without a handshake: for the
    /// fuzz target of the AES record path (`fuzzing::aes_gcm_records`), which must not pay
    /// for an RSA and X25519 handshake per input.
    pub(crate) fn aes_gcm_only(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: Cipher::AesGcm(Box::new(AesGcm::new(key))),
            nonce: 0,
            pending: BytesMut::new(),
            aes_key: None,
        }
    }
}

#[cfg(feature = "fuzzing")]
impl Opener {
    /// The receiving counterpart of [`Sealer::aes_gcm_only`].
    pub(crate) fn aes_gcm_only(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: Cipher::AesGcm(Box::new(AesGcm::new(key))),
            nonce: 0,
            frames: FrameSplitter::new(MAX_FRAME),
            aes_key: None,
        }
    }
}

/// Capacity an empty buffer may keep when asked to release it: below this, freeing and
/// allocating again would cost more than it saves.
pub const IDLE_BUFFER_KEEP: usize = 256;

/// Replaces `buf` by an unallocated buffer if it is empty and holds more than
/// [`IDLE_BUFFER_KEEP`] bytes of capacity.
pub fn release_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > IDLE_BUFFER_KEEP {
        *buf = BytesMut::new();
    }
}

/// Splits the decrypted byte stream into frames: `u32` big-endian length, then that many
/// bytes (SPEC.md §3.3). It holds no keys, so the one piece of parsing every connection runs
/// on attacker-chosen lengths can be fuzzed and tested on its own.
#[derive(Debug)]
pub struct FrameSplitter {
    stream: BytesMut,
    max_frame: usize,
}

impl Default for FrameSplitter {
    fn default() -> Self {
        Self::new(MAX_FRAME)
    }
}

impl FrameSplitter {
    /// A splitter accepting frames of at most `max_frame` bytes (never above MAX_FRAME).
    pub fn new(max_frame: usize) -> Self {
        Self {
            stream: BytesMut::new(),
            max_frame: max_frame.min(MAX_FRAME),
        }
    }

    /// Lowers the largest frame accepted (never above MAX_FRAME).
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max.min(MAX_FRAME);
    }

    /// Appends decrypted bytes.
    ///
    /// # Errors
    /// [`FrameError::FrameTooLarge`] as soon as a frame header announces too many bytes, so a
    /// peer can never make this side buffer more than one maximal frame.
    pub fn push(&mut self, plaintext: &[u8]) -> Result<(), FrameError> {
        self.stream.extend_from_slice(plaintext);
        self.check_header()
    }

    fn check_header(&self) -> Result<(), FrameError> {
        if self.stream.len() >= FRAME_HEADER {
            let len = u32::from_be_bytes([
                self.stream[0],
                self.stream[1],
                self.stream[2],
                self.stream[3],
            ]) as usize;
            if len > self.max_frame {
                return Err(FrameError::FrameTooLarge {
                    len,
                    max: self.max_frame,
                });
            }
        }
        Ok(())
    }

    /// The next complete frame, if one has arrived.
    ///
    /// # Errors
    /// [`FrameError::FrameTooLarge`].
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.check_header()?;
        if self.stream.len() < FRAME_HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes([
            self.stream[0],
            self.stream[1],
            self.stream[2],
            self.stream[3],
        ]) as usize;
        if self.stream.len() < FRAME_HEADER + len {
            return Ok(None);
        }
        self.stream.advance(FRAME_HEADER);
        Ok(Some(self.stream.split_to(len).freeze()))
    }

    /// True if part of a frame has arrived but not all of it (EOF now means truncation).
    pub fn has_partial_frame(&self) -> bool {
        !self.stream.is_empty()
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.stream.len()
    }
}

/// Size on the wire of a record carrying `plaintext` bytes.
pub const fn record_wire_len(plaintext: usize) -> usize {
    RECORD_HEADER + plaintext + NOISE_TAG_LEN
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::handshake::LocalIdentity;
    use crate::test_keys;

    fn transports() -> (Transport, Transport) {
        let a = LocalIdentity::new(test_keys::identity(0)).unwrap();
        let b = LocalIdentity::new(test_keys::identity(1)).unwrap();
        let ((i, _), (r, _)) = crate::handshake::complete_in_memory(&a, &b);
        (i, r)
    }

    /// SPEC.md §8.5 L3: a record whose plaintext is empty (`P = 0`) is valid, yields no
    /// frame and leaves no partial frame behind; the stream goes on with the next nonce.
    /// (It is not activity either: the link task counts complete frames only, §3.6 r3.)
    #[test]
    fn an_empty_plaintext_record_yields_no_frame() {
        let (mut a, mut b) = transports();
        let mut rec = BytesMut::new();
        a.sealer.seal_empty_record(&mut rec).unwrap();
        assert_eq!(rec.len(), RECORD_HEADER + NOISE_TAG_LEN);
        b.opener.open_record(&rec[RECORD_HEADER..]).unwrap();
        assert!(b.opener.next_frame().unwrap().is_none());
        assert!(!b.opener.has_partial_frame());
        let mut wire = BytesMut::new();
        a.sealer.seal_frame(b"after", &mut wire).unwrap();
        b.opener.open_record(&wire[RECORD_HEADER..]).unwrap();
        assert_eq!(&b.opener.next_frame().unwrap().unwrap()[..], b"after");
    }

    /// SPEC.md §8.5 L54 (§3.2 r6): the nonce 2^64 − 1 is never used. The sealer refuses
    /// to write a record with it (a typed error, nothing written), so the link task ends
    /// the link instead of sending under a reserved nonce.
    #[test]
    fn the_last_nonce_is_never_used() {
        let (mut a, _) = transports();
        a.sealer.nonce = u64::MAX - 1;
        let mut wire = BytesMut::new();
        a.sealer.seal_frame(b"last", &mut wire).unwrap();
        let sent = wire.len();
        assert!(matches!(
            a.sealer.seal_frame(b"one too many", &mut wire),
            Err(FrameError::Encrypt(_))
        ));
        assert_eq!(wire.len(), sent, "no record under the reserved nonce");
    }
}
