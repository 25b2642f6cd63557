//! Types and errors shared by the client, server and peer conversions.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::identity::{IdentityError, IdentityKey};
use crate::wire;

/// A received message breaks a rule of SPEC.md.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A field the spec requires is absent.
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    /// A field is present but invalid.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl WireError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        WireError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// A secret string (password, recovery code) whose `Debug` output is redacted, so it cannot
/// reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A peer endpoint as sent in requests: the host may be left to the server (SPEC.md §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The IP, or `None` for "the address the server sees this connection come from".
    pub host: Option<IpAddr>,
    /// The TCP port, never 0.
    pub port: u16,
}

impl Endpoint {
    /// The endpoint with the host filled in from `observed` when absent.
    pub fn resolve(self, observed: IpAddr) -> SocketAddr {
        SocketAddr::new(self.host.unwrap_or(observed), self.port)
    }
}

impl TryFrom<&wire::PeerEndpoint> for Endpoint {
    type Error = WireError;
    fn try_from(e: &wire::PeerEndpoint) -> Result<Self, WireError> {
        let port = u16::try_from(e.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                WireError::invalid(
                    "peer_endpoint.port",
                    format!("{} is not in 1..=65535", e.port),
                )
            })?;
        let host = if e.host.is_empty() {
            None
        } else {
            Some(e.host.parse::<IpAddr>().map_err(|_| {
                WireError::invalid("peer_endpoint.host", "must be an IPv4 or IPv6 literal")
            })?)
        };
        Ok(Self { host, port })
    }
}

impl From<Endpoint> for wire::PeerEndpoint {
    fn from(e: Endpoint) -> Self {
        wire::PeerEndpoint {
            host: e.host.map(|h| h.to_string()).unwrap_or_default(),
            port: u32::from(e.port),
        }
    }
}

impl From<SocketAddr> for wire::PeerEndpoint {
    fn from(a: SocketAddr) -> Self {
        wire::PeerEndpoint {
            host: a.ip().to_string(),
            port: u32::from(a.port()),
        }
    }
}

/// Parses an endpoint that must be complete (server → client direction).
pub(crate) fn full_endpoint(
    e: &wire::PeerEndpoint,
    field: &'static str,
) -> Result<SocketAddr, WireError> {
    let ep = Endpoint::try_from(e)?;
    let host = ep
        .host
        .ok_or_else(|| WireError::invalid(field, "host is empty"))?;
    Ok(SocketAddr::new(host, ep.port))
}

pub(crate) fn identity_key(der: &[u8], field: &'static str) -> Result<IdentityKey, WireError> {
    IdentityKey::from_der(der).map_err(|e: IdentityError| WireError::invalid(field, e.to_string()))
}

/// A friend as the server reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendInfo {
    /// Registered spelling.
    pub userid: String,
    /// Logged in now.
    pub online: bool,
    /// Where they accept peer connections, if online and announced.
    pub endpoint: Option<SocketAddr>,
    /// Their current identity key.
    pub identity_key: IdentityKey,
    /// Where they may be reachable, while online (SPEC.md §7.5).
    pub candidates: Vec<super::traversal::Candidate>,
}

impl TryFrom<&wire::Friend> for FriendInfo {
    type Error = WireError;
    fn try_from(f: &wire::Friend) -> Result<Self, WireError> {
        if f.userid.is_empty() {
            return Err(WireError::MissingField("friend.userid"));
        }
        Ok(Self {
            userid: f.userid.clone(),
            online: f.online,
            endpoint: f
                .peer_endpoint
                .as_ref()
                .map(|e| full_endpoint(e, "friend.peer_endpoint"))
                .transpose()?,
            identity_key: identity_key(&f.identity_key, "friend.identity_key")?,
            candidates: super::traversal::candidates(&f.candidates, "friend.candidates")?,
        })
    }
}

impl From<&FriendInfo> for wire::Friend {
    fn from(f: &FriendInfo) -> Self {
        wire::Friend {
            userid: f.userid.clone(),
            online: f.online,
            peer_endpoint: f.endpoint.map(Into::into),
            identity_key: f.identity_key.to_der(),
            candidates: super::traversal::candidates_to_wire(&f.candidates),
        }
    }
}

/// A request's error answer (SPEC.md §9.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct RequestError {
    /// The code; unknown codes read as `Internal` (SPEC.md §11.2).
    pub code: wire::ErrorCode,
    /// Human-readable detail.
    pub message: String,
    /// For RATE_LIMITED: when to retry.
    pub retry_after: Option<Duration>,
}

impl From<&wire::Error> for RequestError {
    fn from(e: &wire::Error) -> Self {
        let code = match wire::ErrorCode::try_from(e.code) {
            Ok(wire::ErrorCode::Unspecified) | Err(_) => wire::ErrorCode::Internal,
            Ok(c) => c,
        };
        Self {
            code,
            message: e.message.clone(),
            retry_after: (e.retry_after_ms > 0).then(|| Duration::from_millis(e.retry_after_ms)),
        }
    }
}

impl RequestError {
    /// An error without retry hint.
    pub fn new(code: wire::ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<&RequestError> for wire::Error {
    fn from(e: &RequestError) -> Self {
        wire::Error {
            code: e.code as i32,
            message: truncate_human(&e.message),
            retry_after_ms: e
                .retry_after
                .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
                .unwrap_or(0),
        }
    }
}

/// Cuts a human-readable text to MAX_HUMAN_TEXT bytes on a character boundary.
pub fn truncate_human(s: &str) -> String {
    let max = crate::limits::MAX_HUMAN_TEXT;
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Reads a CloseReason, mapping unknown values to PROTOCOL_ERROR (SPEC.md §11.2).
pub fn close_reason(raw: i32) -> wire::CloseReason {
    match wire::CloseReason::try_from(raw) {
        Ok(wire::CloseReason::Unspecified) | Err(_) => wire::CloseReason::ProtocolError,
        Ok(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rules() {
        let ok = wire::PeerEndpoint {
            host: "127.0.0.1".into(),
            port: 9,
        };
        assert_eq!(Endpoint::try_from(&ok).unwrap().port, 9);
        let empty_host = wire::PeerEndpoint {
            host: String::new(),
            port: 9,
        };
        assert_eq!(Endpoint::try_from(&empty_host).unwrap().host, None);
        for bad in [
            wire::PeerEndpoint {
                host: "127.0.0.1".into(),
                port: 0,
            },
            wire::PeerEndpoint {
                host: "127.0.0.1".into(),
                port: 70000,
            },
            wire::PeerEndpoint {
                host: "example.com".into(),
                port: 1,
            },
        ] {
            assert!(Endpoint::try_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret("hunter2".into())),
            "Secret(<redacted>)"
        );
    }

    #[test]
    fn unknown_codes_read_as_internal() {
        let e = wire::Error {
            code: 999,
            message: String::new(),
            retry_after_ms: 0,
        };
        assert_eq!(RequestError::from(&e).code, wire::ErrorCode::Internal);
        assert_eq!(close_reason(999), wire::CloseReason::ProtocolError);
    }

    #[test]
    fn human_text_is_cut_on_char_boundary() {
        let s = "é".repeat(1000);
        let t = truncate_human(&s);
        assert!(t.len() <= 1024 && t.chars().all(|c| c == 'é'));
    }
}
