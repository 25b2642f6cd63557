//! The 16-byte random ids of chat messages and file transfers (SPEC.md §8.1, §8.3).
//!
//! Ids are chosen by the sender and are the only thing that ties an acknowledgement, a
//! duplicate, a resumed transfer or a history row to the original message, so they get a
//! type of their own instead of travelling as bare byte arrays.

use std::fmt;
use std::str::FromStr;

use peerchat_proto::limits::ID_LEN;
use rand::RngCore as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// A fresh id from the operating system's CSPRNG.
            pub fn random() -> Self {
                let mut b = [0u8; ID_LEN];
                rand::rngs::OsRng.fill_bytes(&mut b);
                Self(b)
            }

            /// A fresh id whose first 6 bytes are `unix_ms` big-endian and whose other 10
            /// come from a CSPRNG (SPEC.md §8.1 r1, like a UUIDv7): `rand`'s thread-local
            /// ChaCha generator, seeded and periodically reseeded from the operating system.
            /// Why not the OS generator directly, as [`Self::random`]: that is a `getrandom`
            /// system call per message, a visible cost of a chat flood (issue #14).
            ///
            /// Why: ids are keys of the history's indexes on both ends. Random keys land
            /// on a random B-tree page each, so a burst of n messages dirtied ~n pages per
            /// index (one 4 KiB WAL frame each) and read back pages that no longer fit the
            /// cache; ids that grow with time append to the same few pages (issue #14). The
            /// 80 random bits keep ids unguessable and unique; the time is the same one the
            /// message carries in `sent_at_unix_ms` anyway.
            pub fn time_ordered(unix_ms: u64) -> Self {
                let mut b = [0u8; ID_LEN];
                rand::thread_rng().fill_bytes(&mut b[6..]);
                let ms = unix_ms.to_be_bytes();
                b[..6].copy_from_slice(&ms[2..]);
                Self(b)
            }

            /// The id from raw bytes, if there are exactly 16 of them.
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                b.try_into().ok().map(Self)
            }

            /// Lower-case hex, as shown to users and stored in the history database.
            ///
            /// Encoded through a table into a buffer: `hex::encode` pushes one `char` at a
            /// time, which a chat flood paid for twice per message (issue #14).
            pub fn to_hex(&self) -> String {
                let mut buf = [0u8; 2 * ID_LEN];
                // Cannot fail: the buffer is exactly twice the id's length, and hex is ASCII.
                if hex::encode_to_slice(self.0, &mut buf).is_err() {
                    return hex::encode(self.0);
                }
                std::str::from_utf8(&buf).map_or_else(|_| hex::encode(self.0), str::to_owned)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<Self, BadId> {
                let raw = hex::decode(s.trim()).map_err(|_| BadId(s.to_owned()))?;
                Self::from_slice(&raw).ok_or_else(|| BadId(s.to_owned()))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Identifies one chat message across resends, acknowledgements and history.
    MessageId
);
id_type!(
    /// Identifies one file transfer across offers, resumes and restarts.
    TransferId
);

/// Text that is not 32 hex digits.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{0}` is not an id (32 hex digits)")]
pub struct BadId(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_json() {
        let id = MessageId::random();
        assert_eq!(id.to_hex().parse::<MessageId>().ok(), Some(id));
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
        assert!("abc".parse::<TransferId>().is_err());
        assert_ne!(MessageId::random(), MessageId::random());
    }

    /// The stored form must not change: history rows written before are found by it.
    #[test]
    fn hex_is_lower_case_and_as_hex_encode_made_it() {
        let id = MessageId([
            0x00, 0x01, 0x09, 0x0a, 0x0f, 0x10, 0x7f, 0x80, 0xa5, 0xab, 0xcd, 0xef, 0xf0, 0xfe,
            0xff, 0x42,
        ]);
        assert_eq!(id.to_hex(), "0001090a0f107f80a5abcdeff0feff42");
        assert_eq!(id.to_hex(), hex::encode(id.0));
    }

    #[test]
    fn time_ordered_ids_sort_by_time_and_stay_unique() {
        let t = 1_764_600_000_000u64;
        let a = MessageId::time_ordered(t);
        let b = MessageId::time_ordered(t + 1);
        assert!(a < b, "a later millisecond sorts after");
        assert_eq!(
            &a.0[..6],
            &t.to_be_bytes()[2..],
            "the time, big-endian, first"
        );
        assert_ne!(
            MessageId::time_ordered(t),
            MessageId::time_ordered(t),
            "10 random bytes"
        );
    }
}
