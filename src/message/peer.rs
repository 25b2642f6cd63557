//! Peer ↔ peer frames (SPEC.md §7, §8), validated on receipt.

use bytes::Bytes;

use super::common::{close_reason, truncate_human, WireError};
use crate::limits::{
    BLAKE3_LEN, ID_LEN, MAX_CHAT_TEXT, MAX_FEATURE_NAME, MAX_FILE_CHUNK, MAX_FILE_NAME,
    MAX_HELLO_FEATURES, SHA256_LEN,
};
use crate::wire::{self, peer_message::Body};

/// A chat message (SPEC.md §8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFrame {
    /// Unique id chosen by the sender.
    pub id: [u8; ID_LEN],
    /// Sender's clock.
    pub sent_at_unix_ms: u64,
    /// 1..=MAX_CHAT_TEXT bytes.
    pub text: String,
}

/// A file offer (SPEC.md §8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOfferFrame {
    /// Transfer id.
    pub id: [u8; ID_LEN],
    /// Name as the sender sees it (untrusted: sanitise before use, SPEC.md §8.4).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content; `None` for a streamed-hash offer, whose BLAKE3 follows in
    /// FileDigest after the last chunk (SPEC.md §8.3.1, only with `file-blake3`).
    pub sha256: Option<[u8; SHA256_LEN]>,
}

/// The PeerHello feature name of streamed-hash transfers (SPEC.md §7.2 rule 9, §8.3.1).
pub const FEATURE_FILE_BLAKE3: &str = "file-blake3";

/// The PeerHello feature name of the AES-256-GCM record cipher (SPEC.md §3.2.1).
pub const FEATURE_AES_GCM: &str = "aes-gcm";

/// Optional features named in a PeerHello (SPEC.md §7.2 rule 9). A feature is used on a
/// connection only when both hellos name it: see [`PeerFeatures::common`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerFeatures {
    /// `file-blake3`: offers may leave out the SHA-256 and send FileDigest (SPEC.md §8.3.1).
    pub file_blake3: bool,
    /// `aes-gcm`: both directions switch to AES-256-GCM after the hellos (SPEC.md §3.2.1).
    /// Named only by a side with AES hardware: see [`PeerFeatures::local`].
    pub aes_gcm: bool,
}

impl PeerFeatures {
    /// Every feature this implementation knows.
    pub const ALL: PeerFeatures = PeerFeatures {
        file_blake3: true,
        aes_gcm: true,
    };

    /// What this process names in its hellos: [`PeerFeatures::ALL`], without `aes-gcm` when
    /// this machine has no AES hardware (SPEC.md §3.2.1 rule 1) or `no_aes_gcm` is set.
    pub fn local(no_aes_gcm: bool) -> PeerFeatures {
        PeerFeatures {
            aes_gcm: !no_aes_gcm && crate::aes_gcm::hardware_available(),
            ..PeerFeatures::ALL
        }
    }

    /// Reads the names of a hello: the first [`MAX_HELLO_FEATURES`], each at most
    /// [`MAX_FEATURE_NAME`] bytes; unknown names are ignored.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let mut f = PeerFeatures::default();
        for n in names.iter().take(MAX_HELLO_FEATURES).map(AsRef::as_ref) {
            if n.len() > MAX_FEATURE_NAME {
                continue;
            }
            match n {
                FEATURE_FILE_BLAKE3 => f.file_blake3 = true,
                FEATURE_AES_GCM => f.aes_gcm = true,
                _ => {}
            }
        }
        f
    }

    /// The names to put in a hello.
    pub fn names(self) -> Vec<String> {
        let mut v = Vec::new();
        if self.file_blake3 {
            v.push(FEATURE_FILE_BLAKE3.to_owned());
        }
        if self.aes_gcm {
            v.push(FEATURE_AES_GCM.to_owned());
        }
        v
    }

    /// The features both ends named: what a connection may use.
    pub fn common(self, other: PeerFeatures) -> PeerFeatures {
        PeerFeatures {
            file_blake3: self.file_blake3 && other.file_blake3,
            aes_gcm: self.aes_gcm && other.aes_gcm,
        }
    }
}

/// A PeerMessage, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerFrame {
    /// First frame (SPEC.md §7.2).
    Hello {
        /// Sender's userid.
        userid: String,
        /// Who the sender thinks it is talking to.
        to_userid: String,
        /// Optional features the sender implements (SPEC.md §7.2 rule 9).
        features: PeerFeatures,
    },
    /// Chat.
    Chat(ChatFrame),
    /// Ack of a chat message.
    Ack {
        /// The acknowledged id.
        id: [u8; ID_LEN],
    },
    /// Typing indicator.
    Typing(bool),
    /// File offer.
    FileOffer(FileOfferFrame),
    /// File accepted from `offset`.
    FileAccept {
        /// Transfer id.
        id: [u8; ID_LEN],
        /// First byte wanted.
        offset: u64,
    },
    /// File data.
    FileChunk {
        /// Transfer id.
        id: [u8; ID_LEN],
        /// Position of `data`.
        offset: u64,
        /// 1..=MAX_FILE_CHUNK bytes.
        data: Bytes,
    },
    /// The BLAKE3 of a streamed-hash transfer's whole file (SPEC.md §8.3.1).
    FileDigest {
        /// Transfer id.
        id: [u8; ID_LEN],
        /// BLAKE3 of bytes 0..size.
        blake3: [u8; BLAKE3_LEN],
    },
    /// Receiver has the verified file.
    FileComplete {
        /// Transfer id.
        id: [u8; ID_LEN],
    },
    /// Transfer stopped.
    FileCancel {
        /// Transfer id.
        id: [u8; ID_LEN],
        /// Why (unknown values read as CANCELLED).
        reason: wire::FileCancelReason,
        /// Detail.
        message: String,
    },
    /// Liveness probe.
    Ping(u64),
    /// Answer to Ping.
    Pong(u64),
    /// Closing.
    Close {
        /// Why.
        reason: wire::CloseReason,
        /// Detail.
        message: String,
    },
    /// A case this version does not know: ignored (SPEC.md §11.2).
    Unknown,
}

/// A file frame (or acknowledgement) whose field values fail the checks of
/// [`PeerFrame::try_from`]. SPEC.md §8.5 (L26, C10; rows R2, R21, R25, S2, R31, S12, S21)
/// answers these without closing the link, so the receiver of such a frame needs the id as
/// it came (any length) to echo it in a `FileCancel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidFileFrame {
    /// A `FileOffer`: answered `FileCancel(INVALID)` (R2), ending the transfer it names (R3).
    Offer {
        /// `transfer_id` as received.
        id: Bytes,
    },
    /// A `FileAccept` (only its id can be wrong): answered `FileCancel(UNKNOWN_TRANSFER)`
    /// (S2).
    Accept {
        /// `transfer_id` as received.
        id: Bytes,
    },
    /// A `FileChunk` with a bad id or empty/oversized data: answered `FileCancel(INVALID)`
    /// (R21), ending the transfer it names (R25).
    Chunk {
        /// `transfer_id` as received.
        id: Bytes,
    },
    /// `FileComplete`, `FileCancel` or `MessageAck` with a bad id: ignored.
    Ignored,
}

impl InvalidFileFrame {
    /// What `m` would be if it fails validation: `None` for frames whose invalid values do
    /// close the link (hello, chat) and for the others. Cheap (the id is reference-counted).
    pub fn of(m: &wire::PeerMessage) -> Option<Self> {
        Some(match m.body.as_ref()? {
            Body::FileOffer(o) => InvalidFileFrame::Offer {
                id: o.transfer_id.clone(),
            },
            Body::FileAccept(a) => InvalidFileFrame::Accept {
                id: a.transfer_id.clone(),
            },
            Body::FileChunk(c) => InvalidFileFrame::Chunk {
                id: c.transfer_id.clone(),
            },
            // An invalid FileDigest (a blake3 that is not 32 bytes, a bad id) "is answered like
            // a bad chunk" (SPEC.md §8.3.1 rule 4): FileCancel(INVALID), never a closed link
            // (§8.5.1 L26).
            Body::FileDigest(d) => InvalidFileFrame::Chunk {
                id: d.transfer_id.clone(),
            },
            Body::FileComplete(_) | Body::FileCancel(_) | Body::Ack(_) => InvalidFileFrame::Ignored,
            _ => return None,
        })
    }
}

fn id(b: &[u8], field: &'static str) -> Result<[u8; ID_LEN], WireError> {
    b.try_into()
        .map_err(|_| WireError::invalid(field, format!("must be {ID_LEN} bytes, got {}", b.len())))
}

impl TryFrom<wire::PeerMessage> for PeerFrame {
    type Error = WireError;
    fn try_from(m: wire::PeerMessage) -> Result<Self, WireError> {
        Ok(match m.body {
            None => PeerFrame::Unknown,
            Some(Body::Hello(h)) => {
                if h.userid.is_empty() {
                    return Err(WireError::MissingField("hello.userid"));
                }
                PeerFrame::Hello {
                    userid: h.userid,
                    to_userid: h.to_userid,
                    features: PeerFeatures::from_names(&h.features),
                }
            }
            Some(Body::Chat(c)) => {
                if c.text.is_empty() || c.text.len() > MAX_CHAT_TEXT {
                    return Err(WireError::invalid(
                        "chat.text",
                        format!("{} bytes; allowed 1..={MAX_CHAT_TEXT}", c.text.len()),
                    ));
                }
                PeerFrame::Chat(ChatFrame {
                    id: id(&c.message_id, "chat.message_id")?,
                    sent_at_unix_ms: c.sent_at_unix_ms,
                    text: c.text,
                })
            }
            Some(Body::Ack(a)) => PeerFrame::Ack {
                id: id(&a.message_id, "ack.message_id")?,
            },
            Some(Body::Typing(t)) => PeerFrame::Typing(t.active),
            Some(Body::FileOffer(o)) => {
                if o.name.is_empty() || o.name.len() > MAX_FILE_NAME {
                    return Err(WireError::invalid(
                        "file_offer.name",
                        format!("{} bytes; allowed 1..={MAX_FILE_NAME}", o.name.len()),
                    ));
                }
                // Empty: a streamed-hash offer (SPEC.md §8.3.1); whether the link allows it
                // is the receiver's decision.
                let sha256 = if o.sha256.is_empty() {
                    None
                } else {
                    Some(o.sha256.as_ref().try_into().map_err(|_| {
                        WireError::invalid("file_offer.sha256", "must be 32 bytes or empty")
                    })?)
                };
                PeerFrame::FileOffer(FileOfferFrame {
                    id: id(&o.transfer_id, "file_offer.transfer_id")?,
                    name: o.name,
                    size: o.size,
                    sha256,
                })
            }
            Some(Body::FileAccept(a)) => PeerFrame::FileAccept {
                id: id(&a.transfer_id, "file_accept.transfer_id")?,
                offset: a.offset,
            },
            Some(Body::FileChunk(c)) => {
                if c.data.is_empty() || c.data.len() > MAX_FILE_CHUNK {
                    return Err(WireError::invalid(
                        "file_chunk.data",
                        format!("{} bytes; allowed 1..={MAX_FILE_CHUNK}", c.data.len()),
                    ));
                }
                PeerFrame::FileChunk {
                    id: id(&c.transfer_id, "file_chunk.transfer_id")?,
                    offset: c.offset,
                    data: c.data,
                }
            }
            Some(Body::FileDigest(d)) => {
                PeerFrame::FileDigest {
                    id: id(&d.transfer_id, "file_digest.transfer_id")?,
                    blake3: d.blake3.as_ref().try_into().map_err(|_| {
                        WireError::invalid("file_digest.blake3", "must be 32 bytes")
                    })?,
                }
            }
            Some(Body::FileComplete(c)) => PeerFrame::FileComplete {
                id: id(&c.transfer_id, "file_complete.transfer_id")?,
            },
            Some(Body::FileCancel(c)) => PeerFrame::FileCancel {
                id: id(&c.transfer_id, "file_cancel.transfer_id")?,
                reason: match wire::FileCancelReason::try_from(c.reason) {
                    Ok(wire::FileCancelReason::Unspecified) | Err(_) => {
                        wire::FileCancelReason::Cancelled
                    }
                    Ok(r) => r,
                },
                message: c.message,
            },
            Some(Body::Ping(p)) => PeerFrame::Ping(p.nonce),
            Some(Body::Pong(p)) => PeerFrame::Pong(p.nonce),
            Some(Body::Close(c)) => PeerFrame::Close {
                reason: close_reason(c.reason),
                message: c.message,
            },
        })
    }
}

impl From<PeerFrame> for wire::PeerMessage {
    fn from(f: PeerFrame) -> Self {
        let body = match f {
            PeerFrame::Hello {
                userid,
                to_userid,
                features,
            } => Body::Hello(wire::PeerHello {
                userid,
                to_userid,
                features: features.names(),
            }),
            PeerFrame::Chat(c) => Body::Chat(wire::ChatMessage {
                message_id: Bytes::copy_from_slice(&c.id),
                sent_at_unix_ms: c.sent_at_unix_ms,
                text: c.text,
            }),
            PeerFrame::Ack { id } => Body::Ack(wire::MessageAck {
                message_id: Bytes::copy_from_slice(&id),
            }),
            PeerFrame::Typing(active) => Body::Typing(wire::Typing { active }),
            PeerFrame::FileOffer(o) => Body::FileOffer(wire::FileOffer {
                transfer_id: Bytes::copy_from_slice(&o.id),
                name: o.name,
                size: o.size,
                sha256: o
                    .sha256
                    .map_or_else(Bytes::new, |h| Bytes::copy_from_slice(&h)),
            }),
            PeerFrame::FileAccept { id, offset } => Body::FileAccept(wire::FileAccept {
                transfer_id: Bytes::copy_from_slice(&id),
                offset,
            }),
            PeerFrame::FileChunk { id, offset, data } => Body::FileChunk(wire::FileChunk {
                transfer_id: Bytes::copy_from_slice(&id),
                offset,
                data,
            }),
            PeerFrame::FileDigest { id, blake3 } => Body::FileDigest(wire::FileDigest {
                transfer_id: Bytes::copy_from_slice(&id),
                blake3: Bytes::copy_from_slice(&blake3),
            }),
            PeerFrame::FileComplete { id } => Body::FileComplete(wire::FileComplete {
                transfer_id: Bytes::copy_from_slice(&id),
            }),
            PeerFrame::FileCancel {
                id,
                reason,
                message,
            } => Body::FileCancel(wire::FileCancel {
                transfer_id: Bytes::copy_from_slice(&id),
                reason: reason as i32,
                message: truncate_human(&message),
            }),
            PeerFrame::Ping(nonce) => Body::Ping(wire::Ping { nonce }),
            PeerFrame::Pong(nonce) => Body::Pong(wire::Pong { nonce }),
            PeerFrame::Close { reason, message } => Body::Close(wire::Close {
                reason: reason as i32,
                message: truncate_human(&message),
            }),
            PeerFrame::Unknown => return wire::PeerMessage { body: None },
        };
        wire::PeerMessage { body: Some(body) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn every_peer_frame_round_trips_through_bytes() {
        let frames = vec![
            PeerFrame::Hello {
                userid: "alice".into(),
                to_userid: "bob".into(),
                features: PeerFeatures::default(),
            },
            PeerFrame::Hello {
                userid: "alice".into(),
                to_userid: "bob".into(),
                features: PeerFeatures::ALL,
            },
            PeerFrame::Chat(ChatFrame {
                id: [1; 16],
                sent_at_unix_ms: 5,
                text: "héllo".into(),
            }),
            PeerFrame::Ack { id: [1; 16] },
            PeerFrame::Typing(true),
            PeerFrame::FileOffer(FileOfferFrame {
                id: [2; 16],
                name: "a.iso".into(),
                size: 1 << 33,
                sha256: Some([3; 32]),
            }),
            PeerFrame::FileOffer(FileOfferFrame {
                id: [2; 16],
                name: "streamed.iso".into(),
                size: 1 << 33,
                sha256: None,
            }),
            PeerFrame::FileDigest {
                id: [2; 16],
                blake3: [4; 32],
            },
            PeerFrame::FileAccept {
                id: [2; 16],
                offset: 100,
            },
            PeerFrame::FileChunk {
                id: [2; 16],
                offset: 100,
                data: Bytes::from_static(b"data"),
            },
            PeerFrame::FileComplete { id: [2; 16] },
            PeerFrame::FileCancel {
                id: [2; 16],
                reason: wire::FileCancelReason::HashMismatch,
                message: "bad".into(),
            },
            PeerFrame::Ping(7),
            PeerFrame::Pong(7),
            PeerFrame::Close {
                reason: wire::CloseReason::NotAFriend,
                message: "who are you".into(),
            },
        ];
        for f in frames {
            let bytes = wire::PeerMessage::from(f.clone()).encode_to_vec();
            assert_eq!(
                PeerFrame::try_from(wire::PeerMessage::decode(&bytes[..]).unwrap()).unwrap(),
                f
            );
        }
    }

    #[test]
    fn invalid_file_frames_keep_their_raw_id_and_hello_and_chat_are_not_among_them() {
        let bad_id = Bytes::from_static(&[1, 2, 3]);
        let offer = wire::PeerMessage {
            body: Some(Body::FileOffer(wire::FileOffer {
                transfer_id: bad_id.clone(),
                name: String::new(),
                size: 1,
                sha256: Bytes::new(),
            })),
        };
        assert!(PeerFrame::try_from(offer.clone()).is_err());
        assert_eq!(
            InvalidFileFrame::of(&offer),
            Some(InvalidFileFrame::Offer { id: bad_id.clone() })
        );
        let accept = wire::PeerMessage {
            body: Some(Body::FileAccept(wire::FileAccept {
                transfer_id: bad_id.clone(),
                offset: 0,
            })),
        };
        assert_eq!(
            InvalidFileFrame::of(&accept),
            Some(InvalidFileFrame::Accept { id: bad_id.clone() })
        );
        let ack = wire::PeerMessage {
            body: Some(Body::Ack(wire::MessageAck {
                message_id: bad_id.clone(),
            })),
        };
        assert_eq!(InvalidFileFrame::of(&ack), Some(InvalidFileFrame::Ignored));
        // §8.3.1 rule 4: a bad FileDigest is answered like a bad chunk.
        let digest = wire::PeerMessage {
            body: Some(Body::FileDigest(wire::FileDigest {
                transfer_id: Bytes::from_static(&[7; 16]),
                blake3: Bytes::from_static(&[0; 31]),
            })),
        };
        assert!(PeerFrame::try_from(digest.clone()).is_err());
        assert_eq!(
            InvalidFileFrame::of(&digest),
            Some(InvalidFileFrame::Chunk {
                id: Bytes::from_static(&[7; 16])
            })
        );
        let chat = wire::PeerMessage {
            body: Some(Body::Chat(wire::ChatMessage {
                message_id: bad_id,
                sent_at_unix_ms: 0,
                text: "x".into(),
            })),
        };
        assert_eq!(InvalidFileFrame::of(&chat), None, "C3 closes the link");
    }

    /// SPEC.md §8.5 C6 (§2): a chat text that is not UTF-8 does not decode, so it is a
    /// framing error (L5, Close MALFORMED_FRAME), never a `PeerFrame`.
    #[test]
    fn a_chat_text_that_is_not_utf8_does_not_decode() {
        use prost::Message as _;
        // PeerMessage.chat (field 2) { message_id (1): 16 bytes, text (3): 0xff }.
        let mut chat = vec![0x0a, 16];
        chat.extend_from_slice(&[7; 16]);
        chat.extend_from_slice(&[0x1a, 1, 0xff]);
        let mut frame = vec![0x12, chat.len() as u8];
        frame.extend_from_slice(&chat);
        assert!(wire::PeerMessage::decode(&frame[..]).is_err());
        chat.truncate(chat.len() - 1);
        chat.push(b'x');
        let mut ok = vec![0x12, chat.len() as u8];
        ok.extend_from_slice(&chat);
        assert!(
            wire::PeerMessage::decode(&ok[..]).is_ok(),
            "the same frame with UTF-8 text"
        );
    }

    #[test]
    fn invalid_peer_fields_are_typed_errors() {
        let chat = |text: String, id: Vec<u8>| wire::PeerMessage {
            body: Some(Body::Chat(wire::ChatMessage {
                message_id: id.into(),
                sent_at_unix_ms: 0,
                text,
            })),
        };
        assert!(PeerFrame::try_from(chat(String::new(), vec![0; 16])).is_err());
        assert!(PeerFrame::try_from(chat("x".repeat(MAX_CHAT_TEXT + 1), vec![0; 16])).is_err());
        assert!(PeerFrame::try_from(chat("x".into(), vec![0; 15])).is_err());
        assert!(PeerFrame::try_from(chat("x".repeat(MAX_CHAT_TEXT), vec![0; 16])).is_ok());
        let chunk = wire::PeerMessage {
            body: Some(Body::FileChunk(wire::FileChunk {
                transfer_id: vec![0u8; 16].into(),
                offset: 0,
                data: Bytes::new(),
            })),
        };
        assert!(PeerFrame::try_from(chunk).is_err());
        let offer = |sha256: Vec<u8>| wire::PeerMessage {
            body: Some(Body::FileOffer(wire::FileOffer {
                transfer_id: vec![0u8; 16].into(),
                name: "f".into(),
                size: 1,
                sha256: sha256.into(),
            })),
        };
        assert!(PeerFrame::try_from(offer(vec![0; 31])).is_err());
        assert!(PeerFrame::try_from(offer(vec![])).is_ok(), "streamed hash");
        let digest = wire::PeerMessage {
            body: Some(Body::FileDigest(wire::FileDigest {
                transfer_id: vec![0u8; 16].into(),
                blake3: vec![0u8; 31].into(),
            })),
        };
        assert!(PeerFrame::try_from(digest).is_err());
    }

    #[test]
    fn features_are_read_within_their_limits_and_unknown_names_ignored() {
        assert_eq!(
            PeerFeatures::from_names(&["x-future", FEATURE_FILE_BLAKE3]),
            PeerFeatures {
                file_blake3: true,
                aes_gcm: false
            }
        );
        assert_eq!(
            PeerFeatures::from_names(&[FEATURE_AES_GCM, FEATURE_FILE_BLAKE3]),
            PeerFeatures::ALL
        );
        assert_eq!(PeerFeatures::ALL.names(), ["file-blake3", "aes-gcm"]);
        assert!(
            !PeerFeatures::local(true).aes_gcm,
            "the test switch turns it off"
        );
        assert_eq!(
            PeerFeatures::from_names::<&str>(&[]),
            PeerFeatures::default()
        );
        let mut many = vec!["other"; MAX_HELLO_FEATURES];
        many.push(FEATURE_FILE_BLAKE3);
        assert_eq!(
            PeerFeatures::from_names(&many),
            PeerFeatures::default(),
            "names past the first MAX_HELLO_FEATURES are not read"
        );
        assert_eq!(
            PeerFeatures::ALL.common(PeerFeatures::default()),
            PeerFeatures::default(),
            "used only when both name it"
        );
    }
}
