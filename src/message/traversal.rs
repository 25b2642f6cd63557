//! NAT traversal types (SPEC.md §7.5–§7.8): what a client announces, the candidates the server
//! hands to friends, connection reversal and punching, and relay invitations.
//!
//! As everywhere in this module, the wire types are checked once here: a candidate list never
//! holds an empty host, an attempt id is always 16 bytes, a mode is never UNSPECIFIED.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::common::{Endpoint, WireError};
use crate::limits::{MAX_HOST_CANDIDATES, PUNCH_DELAY_MAX, TRAVERSAL_ID_LEN};
use crate::wire;

/// A 16-byte id naming one ConnectPeer attempt or one relay (its token).
pub type TraversalId = [u8; TRAVERSAL_ID_LEN];

/// What a client announces besides its endpoint (SPEC.md §7.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announcement {
    /// Own interface addresses with the listening port, most preferred first.
    pub host_candidates: Vec<SocketAddr>,
    /// The server connection was dialled from the listening port.
    pub observed_is_listener: bool,
}

impl TryFrom<&wire::PeerAnnouncement> for Announcement {
    type Error = WireError;
    fn try_from(a: &wire::PeerAnnouncement) -> Result<Self, WireError> {
        if a.host_candidates.len() > MAX_HOST_CANDIDATES {
            return Err(WireError::invalid(
                "announcement.host_candidates",
                format!("more than {MAX_HOST_CANDIDATES} candidates"),
            ));
        }
        let host_candidates = a
            .host_candidates
            .iter()
            .map(|e| {
                let ep = Endpoint::try_from(e)?;
                let host = ep.host.ok_or_else(|| {
                    WireError::invalid("announcement.host_candidates", "host is empty")
                })?;
                if host.is_unspecified() || host.is_multicast() {
                    return Err(WireError::invalid(
                        "announcement.host_candidates",
                        "unspecified or multicast address",
                    ));
                }
                Ok(SocketAddr::new(host, ep.port))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            host_candidates,
            observed_is_listener: a.observed_is_listener,
        })
    }
}

impl From<&Announcement> for wire::PeerAnnouncement {
    fn from(a: &Announcement) -> Self {
        wire::PeerAnnouncement {
            host_candidates: a.host_candidates.iter().map(|c| (*c).into()).collect(),
            observed_is_listener: a.observed_is_listener,
        }
    }
}

/// Where a candidate address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateKind {
    /// One of the friend's own interface addresses.
    Host,
    /// The friend's server connection as the server saw it: their NAT mapping.
    Observed,
}

/// One address at which a friend may be reachable (SPEC.md §7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The address.
    pub addr: SocketAddr,
    /// Its origin.
    pub kind: CandidateKind,
}

impl Candidate {
    /// A host candidate.
    pub fn host(addr: SocketAddr) -> Self {
        Self {
            addr,
            kind: CandidateKind::Host,
        }
    }
    /// An observed candidate.
    pub fn observed(addr: SocketAddr) -> Self {
        Self {
            addr,
            kind: CandidateKind::Observed,
        }
    }
}

/// Parses a candidate list from the server. Candidates of an unknown kind are skipped
/// (SPEC.md §11.2); an invalid address is an error.
pub(crate) fn candidates(
    list: &[wire::PeerCandidate],
    field: &'static str,
) -> Result<Vec<Candidate>, WireError> {
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        let kind = match wire::CandidateKind::try_from(c.kind) {
            Ok(wire::CandidateKind::Host) => CandidateKind::Host,
            Ok(wire::CandidateKind::Observed) => CandidateKind::Observed,
            Ok(wire::CandidateKind::Unspecified) | Err(_) => continue,
        };
        let e = c.endpoint.as_ref().ok_or(WireError::MissingField(field))?;
        let ep = Endpoint::try_from(e)?;
        let host: IpAddr = ep
            .host
            .ok_or_else(|| WireError::invalid(field, "candidate host is empty"))?;
        out.push(Candidate {
            addr: SocketAddr::new(host, ep.port),
            kind,
        });
    }
    Ok(out)
}

/// Candidates in wire form.
pub(crate) fn candidates_to_wire(list: &[Candidate]) -> Vec<wire::PeerCandidate> {
    list.iter()
        .map(|c| wire::PeerCandidate {
            endpoint: Some(c.addr.into()),
            kind: match c.kind {
                CandidateKind::Host => wire::CandidateKind::Host,
                CandidateKind::Observed => wire::CandidateKind::Observed,
            } as i32,
        })
        .collect()
}

/// How the server should help (SPEC.md §7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectMode {
    /// The friend dials the requester.
    Reverse,
    /// Both dial each other at the moment the server sets.
    Punch,
}

impl ConnectMode {
    pub(crate) fn from_wire(v: i32, field: &'static str) -> Result<Self, WireError> {
        match wire::ConnectMode::try_from(v) {
            Ok(wire::ConnectMode::Reverse) => Ok(ConnectMode::Reverse),
            Ok(wire::ConnectMode::Punch) => Ok(ConnectMode::Punch),
            _ => Err(WireError::invalid(field, "must be REVERSE or PUNCH")),
        }
    }
    pub(crate) fn to_wire(self) -> i32 {
        match self {
            ConnectMode::Reverse => wire::ConnectMode::Reverse as i32,
            ConnectMode::Punch => wire::ConnectMode::Punch as i32,
        }
    }
}

/// Checks a 16-byte id.
pub(crate) fn traversal_id(b: &[u8], field: &'static str) -> Result<TraversalId, WireError> {
    b.try_into()
        .map_err(|_| WireError::invalid(field, format!("must be {TRAVERSAL_ID_LEN} bytes")))
}

/// `dial_in_ms` as a duration, capped at PUNCH_DELAY_MAX (a larger value is not an error:
/// the receiver just does not wait longer than the cap).
pub(crate) fn dial_in(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms)).min(PUNCH_DELAY_MAX)
}

/// The duration as wire milliseconds.
pub(crate) fn dial_in_ms(d: Duration) -> u32 {
    d.min(PUNCH_DELAY_MAX).as_millis() as u32
}

/// The answer to ConnectPeer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectPeerOk {
    /// Names this attempt.
    pub attempt_id: TraversalId,
    /// The friend's candidates.
    pub candidates: Vec<Candidate>,
    /// Wait this long before dialling (punch).
    pub dial_in: Duration,
}

/// The push a friend receives when someone asks to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConnectRequested {
    /// Who asks.
    pub userid: String,
    /// Reversal or punch.
    pub mode: ConnectMode,
    /// As in the requester's ConnectPeerOk.
    pub attempt_id: TraversalId,
    /// The requester's candidates.
    pub candidates: Vec<Candidate>,
    /// Wait this long before dialling.
    pub dial_in: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_rejects_empty_hosts_and_too_many_candidates() {
        let ok = wire::PeerAnnouncement {
            host_candidates: vec![wire::PeerEndpoint {
                host: "198.19.1.10".into(),
                port: 4000,
            }],
            observed_is_listener: true,
        };
        let a = Announcement::try_from(&ok).unwrap();
        assert_eq!(a.host_candidates, vec!["198.19.1.10:4000".parse().unwrap()]);
        assert!(a.observed_is_listener);

        let empty = wire::PeerAnnouncement {
            host_candidates: vec![wire::PeerEndpoint {
                host: String::new(),
                port: 4000,
            }],
            observed_is_listener: false,
        };
        assert!(Announcement::try_from(&empty).is_err());

        let unspecified = wire::PeerAnnouncement {
            host_candidates: vec![wire::PeerEndpoint {
                host: "0.0.0.0".into(),
                port: 4000,
            }],
            observed_is_listener: false,
        };
        assert!(Announcement::try_from(&unspecified).is_err());

        let many = wire::PeerAnnouncement {
            host_candidates: (0..=MAX_HOST_CANDIDATES)
                .map(|i| wire::PeerEndpoint {
                    host: format!("10.0.0.{}", i + 1),
                    port: 1,
                })
                .collect(),
            observed_is_listener: false,
        };
        assert!(Announcement::try_from(&many).is_err());
    }

    #[test]
    fn unknown_candidate_kinds_are_skipped() {
        let list = vec![
            wire::PeerCandidate {
                endpoint: Some(wire::PeerEndpoint {
                    host: "198.18.0.7".into(),
                    port: 9,
                }),
                kind: 99,
            },
            wire::PeerCandidate {
                endpoint: Some(wire::PeerEndpoint {
                    host: "198.18.0.8".into(),
                    port: 9,
                }),
                kind: wire::CandidateKind::Observed as i32,
            },
        ];
        let c = candidates(&list, "c").unwrap();
        assert_eq!(
            c,
            vec![Candidate::observed("198.18.0.8:9".parse().unwrap())]
        );
        assert_eq!(candidates(&candidates_to_wire(&c), "c").unwrap(), c);
    }

    #[test]
    fn dial_delay_is_capped() {
        assert_eq!(dial_in(60_000), PUNCH_DELAY_MAX);
        assert_eq!(dial_in(150), Duration::from_millis(150));
    }
}
