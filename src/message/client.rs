//! Client → server frames (SPEC.md §4.6, §5, §6).

use super::common::{Endpoint, Secret, WireError};
use super::traversal::{traversal_id, Announcement, ConnectMode, TraversalId};
use crate::wire::{self, client_message::Body};

/// A ClientMessage as the server sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A request; `request` is `Err` when a field breaks the spec (answered INVALID_REQUEST).
    Request {
        /// The client's request id (may be 0, which the server answers with INVALID_REQUEST).
        id: u64,
        /// The decoded request.
        request: Result<Request, WireError>,
    },
    /// Liveness probe.
    Ping(u64),
    /// Answer to the server's Ping.
    Pong(u64),
    /// The client is closing.
    Close {
        /// Reason (unknown values read as PROTOCOL_ERROR).
        reason: wire::CloseReason,
        /// Detail.
        message: String,
    },
    /// No body, or a body this version does not know: answered UNSUPPORTED_REQUEST.
    Unsupported {
        /// The request id to echo.
        id: u64,
    },
}

/// A request, with its fields checked for shape (not for account rules, which are the
/// server's business: SPEC.md §5.1).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// SPEC.md §5.2.
    Register {
        /// Userid as typed.
        userid: String,
        /// E-mail as typed.
        email: String,
        /// Password.
        password: Secret,
    },
    /// SPEC.md §5.3.
    Login {
        /// Userid as typed.
        userid: String,
        /// Password.
        password: Secret,
        /// Peer endpoint, if announced.
        endpoint: Option<Endpoint>,
        /// Host candidates and observed-is-listener (SPEC.md §7.5).
        announcement: Announcement,
    },
    /// SPEC.md §5.4.
    KeyLogin {
        /// Userid as typed.
        userid: String,
        /// Peer endpoint, if announced.
        endpoint: Option<Endpoint>,
        /// Host candidates and observed-is-listener (SPEC.md §7.5).
        announcement: Announcement,
    },
    /// SPEC.md §5.5.
    ForgotPassword {
        /// Userid as typed.
        userid: String,
        /// E-mail as typed.
        email: String,
        /// Recovery code as typed.
        recovery_code: Secret,
        /// New password.
        new_password: Secret,
    },
    /// SPEC.md §5.6.
    Logout,
    /// SPEC.md §5.7.
    ChangePassword {
        /// The current password, checked as in Login.
        old_password: Secret,
        /// The new password (SPEC.md §5.1.3).
        new_password: Secret,
    },
    /// SPEC.md §6.1.
    Find {
        /// Userid to look up.
        userid: String,
    },
    /// SPEC.md §6.2.
    SendFriendRequest {
        /// Target.
        userid: String,
    },
    /// SPEC.md §6.3.
    AcceptFriendRequest {
        /// Requester.
        userid: String,
    },
    /// SPEC.md §6.4.
    RefuseFriendRequest {
        /// Requester.
        userid: String,
    },
    /// SPEC.md §6.5.
    Unfriend {
        /// Friend.
        userid: String,
    },
    /// SPEC.md §6.8.
    SetPeerEndpoint {
        /// The endpoint.
        endpoint: Endpoint,
        /// Host candidates and observed-is-listener (SPEC.md §7.5).
        announcement: Announcement,
    },
    /// SPEC.md §7.6.
    ConnectPeer {
        /// The friend.
        userid: String,
        /// Reversal or punch.
        mode: ConnectMode,
    },
    /// SPEC.md §7.7 (only on a relay channel).
    RelayOpen {
        /// Own userid.
        userid: String,
        /// The friend at the other end.
        peer_userid: String,
        /// `None` opens a relay; `Some` joins the one a RelayInvite named.
        token: Option<TraversalId>,
    },
}

impl Request {
    /// The request's name as in SPEC.md, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Register { .. } => "Register",
            Request::Login { .. } => "Login",
            Request::KeyLogin { .. } => "KeyLogin",
            Request::ForgotPassword { .. } => "ForgotPassword",
            Request::Logout => "Logout",
            Request::ChangePassword { .. } => "ChangePassword",
            Request::Find { .. } => "Find",
            Request::SendFriendRequest { .. } => "SendFriendRequest",
            Request::AcceptFriendRequest { .. } => "AcceptFriendRequest",
            Request::RefuseFriendRequest { .. } => "RefuseFriendRequest",
            Request::Unfriend { .. } => "Unfriend",
            Request::SetPeerEndpoint { .. } => "SetPeerEndpoint",
            Request::ConnectPeer { .. } => "ConnectPeer",
            Request::RelayOpen { .. } => "RelayOpen",
        }
    }

    /// The wire body for this request (client side).
    pub fn into_body(self) -> Body {
        match self {
            Request::Register {
                userid,
                email,
                password,
            } => Body::Register(wire::Register {
                userid,
                email,
                password: password.0,
            }),
            Request::Login {
                userid,
                password,
                endpoint,
                announcement,
            } => Body::Login(wire::Login {
                userid,
                password: password.0,
                peer_endpoint: endpoint.map(Into::into),
                announcement: announce_to_wire(&announcement),
            }),
            Request::KeyLogin {
                userid,
                endpoint,
                announcement,
            } => Body::KeyLogin(wire::KeyLogin {
                userid,
                peer_endpoint: endpoint.map(Into::into),
                announcement: announce_to_wire(&announcement),
            }),
            Request::ForgotPassword {
                userid,
                email,
                recovery_code,
                new_password,
            } => Body::ForgotPassword(wire::ForgotPassword {
                userid,
                email,
                recovery_code: recovery_code.0,
                new_password: new_password.0,
            }),
            Request::Logout => Body::Logout(wire::Logout {}),
            Request::ChangePassword {
                old_password,
                new_password,
            } => Body::ChangePassword(wire::ChangePassword {
                old_password: old_password.0,
                new_password: new_password.0,
            }),
            Request::Find { userid } => Body::Find(wire::Find { userid }),
            Request::SendFriendRequest { userid } => {
                Body::SendFriendRequest(wire::SendFriendRequest { userid })
            }
            Request::AcceptFriendRequest { userid } => {
                Body::AcceptFriendRequest(wire::AcceptFriendRequest { userid })
            }
            Request::RefuseFriendRequest { userid } => {
                Body::RefuseFriendRequest(wire::RefuseFriendRequest { userid })
            }
            Request::Unfriend { userid } => Body::Unfriend(wire::Unfriend { userid }),
            Request::SetPeerEndpoint {
                endpoint,
                announcement,
            } => Body::SetPeerEndpoint(wire::SetPeerEndpoint {
                peer_endpoint: Some(endpoint.into()),
                announcement: announce_to_wire(&announcement),
            }),
            Request::ConnectPeer { userid, mode } => Body::ConnectPeer(wire::ConnectPeer {
                userid,
                mode: mode.to_wire(),
            }),
            Request::RelayOpen {
                userid,
                peer_userid,
                token,
            } => Body::RelayOpen(wire::RelayOpen {
                userid,
                peer_userid,
                token: token.map(|t| t.to_vec().into()).unwrap_or_default(),
            }),
        }
    }

    /// A complete ClientMessage carrying this request.
    pub fn into_message(self, request_id: u64) -> wire::ClientMessage {
        wire::ClientMessage {
            request_id,
            body: Some(self.into_body()),
        }
    }
}

fn endpoint(e: Option<&wire::PeerEndpoint>) -> Result<Option<Endpoint>, WireError> {
    e.map(Endpoint::try_from).transpose()
}

/// An absent announcement reads as the default (no host candidates, not from the listener).
fn announcement(a: Option<&wire::PeerAnnouncement>) -> Result<Announcement, WireError> {
    a.map(Announcement::try_from)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The default announcement is sent as an absent field (older servers see nothing new).
fn announce_to_wire(a: &Announcement) -> Option<wire::PeerAnnouncement> {
    (a != &Announcement::default()).then(|| a.into())
}

impl From<wire::ClientMessage> for ClientFrame {
    fn from(m: wire::ClientMessage) -> Self {
        let id = m.request_id;
        let request = match m.body {
            None => return ClientFrame::Unsupported { id },
            Some(Body::Ping(p)) => return ClientFrame::Ping(p.nonce),
            Some(Body::Pong(p)) => return ClientFrame::Pong(p.nonce),
            Some(Body::Close(c)) => {
                return ClientFrame::Close {
                    reason: super::common::close_reason(c.reason),
                    message: c.message,
                }
            }
            Some(Body::Register(r)) => Ok(Request::Register {
                userid: r.userid,
                email: r.email,
                password: Secret(r.password),
            }),
            Some(Body::Login(r)) => endpoint(r.peer_endpoint.as_ref()).and_then(|endpoint| {
                Ok(Request::Login {
                    announcement: announcement(r.announcement.as_ref())?,
                    userid: r.userid,
                    password: Secret(r.password),
                    endpoint,
                })
            }),
            Some(Body::KeyLogin(r)) => endpoint(r.peer_endpoint.as_ref()).and_then(|endpoint| {
                Ok(Request::KeyLogin {
                    announcement: announcement(r.announcement.as_ref())?,
                    userid: r.userid,
                    endpoint,
                })
            }),
            Some(Body::ForgotPassword(r)) => Ok(Request::ForgotPassword {
                userid: r.userid,
                email: r.email,
                recovery_code: Secret(r.recovery_code),
                new_password: Secret(r.new_password),
            }),
            Some(Body::Logout(_)) => Ok(Request::Logout),
            Some(Body::ChangePassword(r)) => Ok(Request::ChangePassword {
                old_password: Secret(r.old_password),
                new_password: Secret(r.new_password),
            }),
            Some(Body::Find(r)) => Ok(Request::Find { userid: r.userid }),
            Some(Body::SendFriendRequest(r)) => Ok(Request::SendFriendRequest { userid: r.userid }),
            Some(Body::AcceptFriendRequest(r)) => {
                Ok(Request::AcceptFriendRequest { userid: r.userid })
            }
            Some(Body::RefuseFriendRequest(r)) => {
                Ok(Request::RefuseFriendRequest { userid: r.userid })
            }
            Some(Body::Unfriend(r)) => Ok(Request::Unfriend { userid: r.userid }),
            Some(Body::SetPeerEndpoint(r)) => r
                .peer_endpoint
                .as_ref()
                .ok_or(WireError::MissingField("set_peer_endpoint.peer_endpoint"))
                .and_then(Endpoint::try_from)
                .and_then(|endpoint| {
                    Ok(Request::SetPeerEndpoint {
                        endpoint,
                        announcement: announcement(r.announcement.as_ref())?,
                    })
                }),
            Some(Body::ConnectPeer(r)) => {
                ConnectMode::from_wire(r.mode, "connect_peer.mode").map(|mode| {
                    Request::ConnectPeer {
                        userid: r.userid,
                        mode,
                    }
                })
            }
            Some(Body::RelayOpen(r)) => {
                let token = if r.token.is_empty() {
                    Ok(None)
                } else {
                    traversal_id(&r.token, "relay_open.token").map(Some)
                };
                token.map(|token| Request::RelayOpen {
                    userid: r.userid,
                    peer_userid: r.peer_userid,
                    token,
                })
            }
        };
        ClientFrame::Request { id, request }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn all_requests() -> Vec<Request> {
        let ep = Some(Endpoint {
            host: None,
            port: 4000,
        });
        vec![
            Request::Register {
                userid: "alice".into(),
                email: "a@example.org".into(),
                password: Secret("correct horse".into()),
            },
            Request::Login {
                userid: "alice".into(),
                password: Secret("pw".into()),
                endpoint: ep,
                announcement: Announcement::default(),
            },
            Request::KeyLogin {
                userid: "alice".into(),
                endpoint: None,
                announcement: Announcement {
                    host_candidates: vec!["198.19.1.10:4000".parse().unwrap()],
                    observed_is_listener: true,
                },
            },
            Request::ForgotPassword {
                userid: "alice".into(),
                email: "a@example.org".into(),
                recovery_code: Secret("AAAAA-BBBBB-CCCCC-DDDDD".into()),
                new_password: Secret("another one!".into()),
            },
            Request::Logout,
            Request::ChangePassword {
                old_password: Secret("old password".into()),
                new_password: Secret("new password".into()),
            },
            Request::Find {
                userid: "bob".into(),
            },
            Request::SendFriendRequest {
                userid: "bob".into(),
            },
            Request::AcceptFriendRequest {
                userid: "bob".into(),
            },
            Request::RefuseFriendRequest {
                userid: "bob".into(),
            },
            Request::Unfriend {
                userid: "bob".into(),
            },
            Request::SetPeerEndpoint {
                endpoint: Endpoint {
                    host: Some("::1".parse().unwrap()),
                    port: 1,
                },
                announcement: Announcement::default(),
            },
            Request::ConnectPeer {
                userid: "bob".into(),
                mode: ConnectMode::Punch,
            },
            Request::RelayOpen {
                userid: "alice".into(),
                peer_userid: "bob".into(),
                token: None,
            },
            Request::RelayOpen {
                userid: "bob".into(),
                peer_userid: "alice".into(),
                token: Some([7; 16]),
            },
        ]
    }

    #[test]
    fn every_request_round_trips_through_bytes() {
        for (i, req) in all_requests().into_iter().enumerate() {
            let id = i as u64 + 1;
            let bytes = req.clone().into_message(id).encode_to_vec();
            let back = ClientFrame::from(wire::ClientMessage::decode(&bytes[..]).unwrap());
            assert_eq!(
                back,
                ClientFrame::Request {
                    id,
                    request: Ok(req)
                }
            );
        }
    }

    #[test]
    fn missing_endpoint_is_a_typed_error() {
        let m = wire::ClientMessage {
            request_id: 3,
            body: Some(Body::SetPeerEndpoint(wire::SetPeerEndpoint {
                peer_endpoint: None,
                announcement: None,
            })),
        };
        assert_eq!(
            ClientFrame::from(m),
            ClientFrame::Request {
                id: 3,
                request: Err(WireError::MissingField("set_peer_endpoint.peer_endpoint"))
            }
        );
    }

    #[test]
    fn empty_body_is_unsupported() {
        assert_eq!(
            ClientFrame::from(wire::ClientMessage {
                request_id: 9,
                body: None
            }),
            ClientFrame::Unsupported { id: 9 }
        );
    }
}
