//! Records: the outermost layer, `u16` big-endian length + bytes (SPEC.md §3.1).
//!
//! Every handshake message and every encrypted transport message is one record. The codec is
//! a tokio-util [`Decoder`]/[`Encoder`] over a byte buffer — no sockets — so it can be driven
//! by tests with byte slices.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::FrameError;
use crate::limits::MAX_RECORD;

/// Length-prefix size of a record.
pub const RECORD_HEADER: usize = 2;

/// Splits a byte stream into records and writes records with their prefix.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordCodec;

impl Decoder for RecordCodec {
    type Item = BytesMut;
    type Error = RecordCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, RecordCodecError> {
        if src.len() < RECORD_HEADER {
            src.reserve(RECORD_HEADER);
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([src[0], src[1]]));
        if len == 0 {
            return Err(FrameError::EmptyRecord.into());
        }
        if src.len() < RECORD_HEADER + len {
            // Bounded: a record is at most 64 KiB, so this reservation cannot be abused.
            src.reserve(RECORD_HEADER + len - src.len());
            return Ok(None);
        }
        src.advance(RECORD_HEADER);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, RecordCodecError> {
        match self.decode(buf)? {
            Some(rec) => Ok(Some(rec)),
            None if buf.is_empty() => Ok(None),
            None => Err(FrameError::Truncated("record").into()),
        }
    }
}

impl Encoder<Bytes> for RecordCodec {
    type Error = RecordCodecError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), RecordCodecError> {
        put_record(dst, &item)?;
        Ok(())
    }
}

/// Appends one record (prefix + body) to `dst`.
///
/// # Errors
/// [`FrameError::SendTooLarge`] if `body` is empty or longer than [`MAX_RECORD`].
pub fn put_record(dst: &mut BytesMut, body: &[u8]) -> Result<(), FrameError> {
    let len =
        u16::try_from(body.len())
            .ok()
            .filter(|l| *l > 0)
            .ok_or(FrameError::SendTooLarge {
                len: body.len(),
                max: MAX_RECORD,
            })?;
    dst.reserve(RECORD_HEADER + body.len());
    dst.put_u16(len);
    dst.put_slice(body);
    Ok(())
}

/// The record codec's error: framing or socket I/O (tokio-util requires `From<io::Error>`).
#[derive(Debug, thiserror::Error)]
pub enum RecordCodecError {
    /// Framing.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<RecordCodecError> for crate::error::ChannelError {
    fn from(e: RecordCodecError) -> Self {
        match e {
            RecordCodecError::Frame(f) => f.into(),
            RecordCodecError::Io(i) => i.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_records_across_arbitrary_reads() {
        let mut wire = BytesMut::new();
        put_record(&mut wire, b"hello").unwrap();
        put_record(&mut wire, &[9u8; 300]).unwrap();
        let mut codec = RecordCodec;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(r) = codec.decode(&mut buf).unwrap() {
                out.push(r);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0][..], b"hello");
        assert_eq!(out[1].len(), 300);
    }

    #[test]
    fn zero_length_record_is_an_error() {
        let mut buf = BytesMut::from(&[0u8, 0, 1][..]);
        assert!(matches!(
            RecordCodec.decode(&mut buf),
            Err(RecordCodecError::Frame(FrameError::EmptyRecord))
        ));
    }

    #[test]
    fn eof_inside_a_record_is_truncation() {
        let mut buf = BytesMut::from(&[0u8, 10, 1, 2][..]);
        assert!(matches!(
            RecordCodec.decode_eof(&mut buf),
            Err(RecordCodecError::Frame(FrameError::Truncated("record")))
        ));
    }

    #[test]
    fn cannot_send_oversized_or_empty_records() {
        let mut dst = BytesMut::new();
        assert!(put_record(&mut dst, &vec![0u8; MAX_RECORD + 1]).is_err());
        assert!(put_record(&mut dst, &[]).is_err());
        assert!(put_record(&mut dst, &vec![0u8; MAX_RECORD]).is_ok());
    }
}
