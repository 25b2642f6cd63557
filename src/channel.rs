//! The encrypted channel over any async byte stream: the thin tokio layer over
//! [`crate::handshake`], [`crate::record`] and [`crate::transport`].
//!
//! One [`Channel`] per TCP connection, client↔server or peer↔peer. Split it into a
//! [`ChannelReader`] and a [`ChannelWriter`] to read and write from different tasks.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder as _;

use crate::error::{ChannelError, FrameError, HandshakeError};
use crate::handshake::{Handshake, LocalIdentity, RemoteIdentity, Role};
use crate::limits::HANDSHAKE_TIMEOUT;
use crate::record::{put_record, RecordCodec};
use crate::transport::{CipherKind, Opener, Sealer, Transport};
use crate::wire::ChannelKind;

/// An established, authenticated, encrypted connection.
pub struct Channel<S> {
    /// Receiving half.
    pub reader: ChannelReader<ReadHalf<S>>,
    /// Sending half.
    pub writer: ChannelWriter<WriteHalf<S>>,
    /// Who the other side proved to be.
    pub remote: RemoteIdentity,
    /// This side's final handshake role: a peer dialler becomes `Responder` when it lost the
    /// tie-break of a TCP simultaneous open (SPEC.md §4.7).
    pub role: Role,
}

impl Channel<TcpStream> {
    /// Connects to `addr` and runs the handshake as initiator, all within `HANDSHAKE_TIMEOUT`.
    ///
    /// # Errors
    /// I/O, time-out and handshake errors.
    pub async fn connect(
        addr: SocketAddr,
        local: &LocalIdentity,
        kind: ChannelKind,
    ) -> Result<Self, ChannelError> {
        Self::connect_verified(addr, local, kind, |_| true).await
    }

    /// Like [`Channel::connect`], but `expected` must accept the responder's identity key before
    /// this side reveals its own in message 3 (SPEC.md §4.2 step 5): pass the pinned server
    /// key check, or "is the key of the friend being dialed".
    ///
    /// # Errors
    /// [`crate::HandshakeError::UnexpectedRemoteKey`] when `expected` says no; otherwise as
    /// [`Channel::connect`].
    pub async fn connect_verified(
        addr: SocketAddr,
        local: &LocalIdentity,
        kind: ChannelKind,
        expected: impl FnOnce(&crate::IdentityKey) -> bool,
    ) -> Result<Self, ChannelError> {
        let fut = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Self::handshake_with(stream, local, Role::Initiator, kind, expected).await
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
            .await
            .map_err(|_| ChannelError::HandshakeTimeout(HANDSHAKE_TIMEOUT))?
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Channel<S> {
    /// Runs the handshake on `stream` as `role`, failing after `timeout`.
    ///
    /// # Errors
    /// [`ChannelError::HandshakeTimeout`], [`ChannelError::Handshake`], I/O and framing errors.
    pub async fn handshake(
        stream: S,
        local: &LocalIdentity,
        role: Role,
        kind: ChannelKind,
        timeout: Duration,
    ) -> Result<Self, ChannelError> {
        Self::handshake_verified(stream, BytesMut::new(), local, role, kind, timeout, |_| {
            true
        })
        .await
    }

    /// Runs the handshake on `stream` whose first bytes, already read from it, are in
    /// `already_read` (a relayed stream whose start arrived behind RelayOpenOk, SPEC.md §7.7).
    /// As initiator, `expected` must accept the remote identity before this side reveals its
    /// own (or, after a simultaneous open, before any frame flows, SPEC.md §4.7). Peer dialers
    /// use this for sockets they connected themselves (hole punching from the listening port).
    ///
    /// # Errors
    /// As [`Channel::handshake`], plus [`crate::HandshakeError::UnexpectedRemoteKey`].
    pub async fn handshake_verified(
        stream: S,
        already_read: BytesMut,
        local: &LocalIdentity,
        role: Role,
        kind: ChannelKind,
        timeout: Duration,
        expected: impl FnOnce(&crate::IdentityKey) -> bool,
    ) -> Result<Self, ChannelError> {
        tokio::time::timeout(
            timeout,
            Self::handshake_buffered(stream, already_read, local, role, kind, expected),
        )
        .await
        .map_err(|_| ChannelError::HandshakeTimeout(timeout))?
    }

    async fn handshake_with(
        stream: S,
        local: &LocalIdentity,
        role: Role,
        kind: ChannelKind,
        expected: impl FnOnce(&crate::IdentityKey) -> bool,
    ) -> Result<Self, ChannelError> {
        Self::handshake_buffered(stream, BytesMut::new(), local, role, kind, expected).await
    }

    async fn handshake_buffered(
        mut stream: S,
        already_read: BytesMut,
        local: &LocalIdentity,
        role: Role,
        kind: ChannelKind,
        expected: impl FnOnce(&crate::IdentityKey) -> bool,
    ) -> Result<Self, ChannelError> {
        let mut hs = Handshake::new(local, role, kind)?;
        let mut expected = Some(expected);
        let mut buf = already_read;
        buf.reserve(4096);
        while !hs.is_finished() {
            if hs.is_my_turn() {
                let msg = hs.write_message()?;
                let mut out = BytesMut::with_capacity(msg.len() + 2);
                put_record(&mut out, &msg)?;
                stream.write_all(&out).await?;
            } else {
                let rec = read_record(&mut stream, &mut buf)
                    .await?
                    .ok_or(ChannelError::ClosedDuringHandshake)?;
                hs.read_message(&rec)?;
                if let (Role::Initiator, Some(remote)) = (hs.role(), hs.remote()) {
                    if let Some(check) = expected.take() {
                        if !check(&remote.identity_key) {
                            return Err(HandshakeError::UnexpectedRemoteKey(
                                remote.identity_key.fingerprint(),
                            )
                            .into());
                        }
                    }
                }
            }
        }
        let final_role = hs.role();
        // After a simultaneous open the former dialler answered as responder and saw the
        // remote's identity only in message 3: check it now, before any frame flows.
        if let (Some(check), Some(remote)) = (expected.take(), hs.remote()) {
            if role == Role::Initiator && !check(&remote.identity_key) {
                return Err(
                    HandshakeError::UnexpectedRemoteKey(remote.identity_key.fingerprint()).into(),
                );
            }
        }
        let (Transport { sealer, opener }, remote) = hs.finish()?;
        let (r, w) = tokio::io::split(stream);
        Ok(Self {
            // Bytes that arrived right behind the last handshake message stay in `buf`.
            reader: ChannelReader { io: r, buf, opener },
            writer: ChannelWriter {
                io: w,
                sealer,
                out: BytesMut::new(),
            },
            remote,
            role: final_role,
        })
    }
}

/// Spare room a read gets when the buffer is (nearly) full. Small, because an idle
/// connection waits inside a read with this much allocated; a buffer that keeps filling
/// grows by doubling (BytesMut's reserve), so bulk reads still become large.
const MIN_READ_SPACE: usize = 512;

/// Reads one record, or `None` on EOF at a record boundary.
async fn read_record<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> Result<Option<BytesMut>, ChannelError> {
    loop {
        if let Some(rec) = RecordCodec.decode(buf)? {
            return Ok(Some(rec));
        }
        if buf.capacity() - buf.len() < 64 {
            // Without this, `read_buf` on a full BytesMut reserves only 64 bytes.
            buf.reserve(MIN_READ_SPACE);
        }
        if io.read_buf(buf).await? == 0 {
            return Ok(RecordCodec.decode_eof(buf)?);
        }
    }
}

/// The receiving half of a channel.
pub struct ChannelReader<R> {
    io: R,
    buf: BytesMut,
    opener: Opener,
}

impl<R: AsyncRead + Unpin> ChannelReader<R> {
    /// The next frame's bytes, or `None` if the remote closed cleanly between frames.
    ///
    /// Cancel-safe: bytes read before a cancellation stay buffered for the next call.
    ///
    /// # Errors
    /// Framing, decryption and I/O errors; a close in the middle of a frame is
    /// [`FrameError::Truncated`].
    pub async fn recv_frame(&mut self) -> Result<Option<Bytes>, ChannelError> {
        loop {
            if let Some(frame) = self.opener.next_frame()? {
                return Ok(Some(frame));
            }
            match read_record(&mut self.io, &mut self.buf).await? {
                Some(rec) => self.opener.open_record(&rec)?,
                None if self.opener.has_partial_frame() => {
                    return Err(FrameError::Truncated("frame").into())
                }
                None => return Ok(None),
            }
        }
    }

    /// The next frame decoded as `M`, or `None` on a clean close.
    ///
    /// # Errors
    /// As [`ChannelReader::recv_frame`], plus [`ChannelError::Decode`].
    pub async fn recv<M: prost::Message + Default>(&mut self) -> Result<Option<M>, ChannelError> {
        match self.recv_frame().await? {
            Some(frame) => Ok(Some(M::decode(frame)?)),
            None => Ok(None),
        }
    }

    /// The read half and the raw bytes read from it that are not yet decrypted (see
    /// [`Channel::into_inner`]).
    ///
    /// # Errors
    /// [`ChannelError::DataAfterRelaySwitch`] if decrypted data is left over.
    pub fn into_parts(self) -> Result<(R, BytesMut), ChannelError> {
        if self.opener.has_partial_frame() {
            return Err(ChannelError::DataAfterRelaySwitch);
        }
        Ok((self.io, self.buf))
    }

    /// Frees the read and decryption buffers if they hold no partial record or frame. A
    /// server calls it between requests: the buffers keep the capacity of the largest record
    /// ever read (at least the handshake's 4 KiB), which an idle session would otherwise hold
    /// for its whole life (issue #14: RSS per session). The next read allocates
    /// `MIN_READ_SPACE` again.
    pub fn release_idle_buffers(&mut self) {
        crate::transport::release_if_empty(&mut self.buf);
        self.opener.release_idle_buffer();
    }

    /// Lowers the largest frame this side accepts.
    pub fn set_max_frame(&mut self, max: usize) {
        self.opener.set_max_frame(max);
    }

    /// Decrypts the records after the remote's PeerHello with AES-256-GCM (SPEC.md §3.2.1).
    ///
    /// # Errors
    /// [`FrameError::SwitchNotAtBoundary`] if the hello's record carried more bytes.
    pub fn switch_to_aes_gcm(&mut self) -> Result<(), ChannelError> {
        Ok(self.opener.switch_to_aes_gcm()?)
    }

    /// The cipher of the records received now.
    pub fn cipher(&self) -> CipherKind {
        self.opener.cipher()
    }
}

/// The sending half of a channel.
pub struct ChannelWriter<W> {
    io: W,
    sealer: Sealer,
    out: BytesMut,
}

impl<W: AsyncWrite + Unpin> ChannelWriter<W> {
    /// Queues a message without writing; [`ChannelWriter::flush`] sends everything queued in as
    /// few records as possible.
    ///
    /// # Errors
    /// [`FrameError::SendTooLarge`].
    pub fn queue<M: prost::Message>(&mut self, msg: &M) -> Result<(), ChannelError> {
        self.sealer.queue_message(msg)?;
        Ok(())
    }

    /// Encrypts and writes everything queued.
    ///
    /// # Errors
    /// Encryption and I/O errors.
    pub async fn flush(&mut self) -> Result<(), ChannelError> {
        self.sealer.flush(&mut self.out)?;
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends one message now.
    ///
    /// # Errors
    /// As [`ChannelWriter::queue`] and [`ChannelWriter::flush`].
    pub async fn send<M: prost::Message>(&mut self, msg: &M) -> Result<(), ChannelError> {
        self.queue(msg)?;
        self.flush().await
    }

    /// Writes one record with an empty plaintext (after what is queued). Only for
    /// conformance tests: SPEC.md §8.5 L3 says a receiver ignores it.
    ///
    /// # Errors
    /// Encryption and I/O errors.
    pub async fn send_empty_record(&mut self) -> Result<(), ChannelError> {
        self.sealer.seal_empty_record(&mut self.out)?;
        self.io.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// The write half, once everything queued has been flushed.
    ///
    /// # Errors
    /// [`ChannelError::DataAfterRelaySwitch`] if frames are still queued.
    pub fn into_inner(self) -> Result<W, ChannelError> {
        if self.sealer.pending_len() > 0 || !self.out.is_empty() {
            return Err(ChannelError::DataAfterRelaySwitch);
        }
        Ok(self.io)
    }

    /// Bytes queued but not yet flushed.
    pub fn pending_len(&self) -> usize {
        self.sealer.pending_len()
    }

    /// Frees the plaintext and ciphertext buffers if nothing is queued (see
    /// [`ChannelReader::release_idle_buffers`]); the next flush allocates what it needs.
    pub fn release_idle_buffers(&mut self) {
        crate::transport::release_if_empty(&mut self.out);
        self.sealer.release_idle_buffer();
    }

    /// Encrypts the records after this side's PeerHello with AES-256-GCM (SPEC.md §3.2.1).
    ///
    /// # Errors
    /// [`FrameError::SwitchNotAtBoundary`] if frames are queued but not sent.
    pub fn switch_to_aes_gcm(&mut self) -> Result<(), ChannelError> {
        if !self.out.is_empty() {
            return Err(FrameError::SwitchNotAtBoundary.into());
        }
        Ok(self.sealer.switch_to_aes_gcm()?)
    }

    /// The cipher of the records sent now.
    pub fn cipher(&self) -> CipherKind {
        self.sealer.cipher()
    }

    /// Queues raw bytes into the plaintext stream, without a frame header.
    ///
    /// Only for conformance and robustness tests, which must send what a correct
    /// implementation never would (a length prefix over MAX_FRAME, a body that is not a
    /// protobuf message); see [`Sealer::queue_raw_plaintext`].
    pub fn queue_raw_plaintext(&mut self, bytes: &[u8]) {
        self.sealer.queue_raw_plaintext(bytes);
    }

    /// Shuts down the write side of the socket (after a Close frame).
    ///
    /// # Errors
    /// I/O errors.
    pub async fn shutdown(&mut self) -> Result<(), ChannelError> {
        self.io.shutdown().await?;
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Channel<S> {
    /// Ends this channel's encryption and hands back the byte stream with the raw bytes
    /// already read from it but not yet used (SPEC.md §7.7: after RelayOpen / RelayOpenOk
    /// the connection carries a relayed stream).
    ///
    /// # Errors
    /// [`ChannelError::DataAfterRelaySwitch`] if decrypted data or unsent frames remain.
    pub fn into_inner(self) -> Result<(S, BytesMut), ChannelError> {
        let (r, leftover) = self.reader.into_parts()?;
        let w = self.writer.into_inner()?;
        Ok((r.unsplit(w), leftover))
    }

    /// Sends one message.
    ///
    /// # Errors
    /// See [`ChannelWriter::send`].
    pub async fn send<M: prost::Message>(&mut self, msg: &M) -> Result<(), ChannelError> {
        self.writer.send(msg).await
    }

    /// Receives one message.
    ///
    /// # Errors
    /// See [`ChannelReader::recv`].
    pub async fn recv<M: prost::Message + Default>(&mut self) -> Result<Option<M>, ChannelError> {
        self.reader.recv().await
    }
}
