//! Server → client frames (SPEC.md §5, §6), as a client sees them, and constructors the
//! server uses to build them.

use std::net::SocketAddr;

use super::common::{
    close_reason, full_endpoint, identity_key, truncate_human, FriendInfo, RequestError, WireError,
};
use super::traversal::{
    candidates, candidates_to_wire, dial_in, dial_in_ms, traversal_id, Candidate, ConnectMode,
    ConnectPeerOk, PeerConnectRequested, TraversalId,
};
use crate::identity::IdentityKey;
use crate::wire::{self, push, response, server_message};

/// A ServerMessage as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// The answer to request `request_id`.
    Response {
        /// Echoed request id.
        request_id: u64,
        /// Success body or error.
        result: Result<ResponseBody, RequestError>,
    },
    /// A notification.
    Push(PushEvent),
    /// Liveness probe; answer with Pong.
    Ping(u64),
    /// Answer to our Ping.
    Pong(u64),
    /// The server is closing the connection.
    Close {
        /// Why.
        reason: wire::CloseReason,
        /// Detail.
        message: String,
    },
    /// A body or push this version does not know; ignored (SPEC.md §11.2).
    Unknown,
}

/// The success answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBody {
    /// Register succeeded.
    Register {
        /// Show once to the user.
        recovery_code: String,
    },
    /// Login or KeyLogin succeeded.
    Login(LoginSnapshot),
    /// ForgotPassword succeeded.
    ForgotPassword {
        /// The new recovery code.
        recovery_code: String,
    },
    /// Logout succeeded.
    Logout,
    /// ChangePassword succeeded: the new password is in force.
    ChangePassword,
    /// Find answer.
    Find {
        /// Whether the user exists.
        found: bool,
        /// Registered spelling, when found.
        userid: String,
    },
    /// Friend request stored, or (with a friend) it met the target's own request.
    SendFriendRequest {
        /// The new friend when the requests crossed.
        friend: Option<FriendInfo>,
    },
    /// Accepted; the new friend.
    AcceptFriendRequest(FriendInfo),
    /// Refused.
    RefuseFriendRequest,
    /// Unfriended.
    Unfriend,
    /// The effective endpoint.
    SetPeerEndpoint {
        /// The effective endpoint.
        endpoint: SocketAddr,
        /// This connection's source address as the server sees it (SPEC.md §7.5).
        observed: Option<SocketAddr>,
    },
    /// ConnectPeer accepted; the friend was asked.
    ConnectPeer(ConnectPeerOk),
    /// Both ends joined the relay: the connection now carries the relayed stream.
    RelayOpen,
}

/// Everything LoginOk carries.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginSnapshot {
    /// Registered spelling of our userid.
    pub userid: String,
    /// All friends.
    pub friends: Vec<FriendInfo>,
    /// Requests to us.
    pub incoming: Vec<PendingRequest>,
    /// Requests from us.
    pub outgoing: Vec<PendingRequest>,
    /// Our effective endpoint.
    pub endpoint: Option<SocketAddr>,
    /// Server clock.
    pub server_time_unix_ms: u64,
    /// This connection's source address as the server sees it (SPEC.md §7.5).
    pub observed: Option<SocketAddr>,
}

/// A pending friend request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// The other user.
    pub userid: String,
    /// Created.
    pub created_at_unix_ms: u64,
    /// Expires.
    pub expires_at_unix_ms: u64,
}

impl From<&wire::FriendRequestInfo> for PendingRequest {
    fn from(r: &wire::FriendRequestInfo) -> Self {
        Self {
            userid: r.userid.clone(),
            created_at_unix_ms: r.created_at_unix_ms,
            expires_at_unix_ms: r.expires_at_unix_ms,
        }
    }
}

impl From<&PendingRequest> for wire::FriendRequestInfo {
    fn from(r: &PendingRequest) -> Self {
        Self {
            userid: r.userid.clone(),
            created_at_unix_ms: r.created_at_unix_ms,
            expires_at_unix_ms: r.expires_at_unix_ms,
        }
    }
}

/// Server pushes (SPEC.md §6.9).
#[derive(Debug, Clone, PartialEq)]
pub enum PushEvent {
    /// Someone asked us.
    FriendRequestReceived(PendingRequest),
    /// Our request was accepted.
    FriendRequestAccepted(FriendInfo),
    /// Our request was refused.
    FriendRequestRefused {
        /// By whom.
        userid: String,
    },
    /// Our request expired.
    FriendRequestExpired {
        /// To whom.
        userid: String,
    },
    /// A friend is online (or moved).
    FriendOnline {
        /// Who.
        userid: String,
        /// Where, if announced.
        endpoint: Option<SocketAddr>,
        /// Their key.
        identity_key: IdentityKey,
        /// Where they may be reachable (SPEC.md §7.5).
        candidates: Vec<Candidate>,
    },
    /// A friend went offline.
    FriendOffline {
        /// Who.
        userid: String,
    },
    /// A friend removed us.
    Unfriended {
        /// Who.
        userid: String,
    },
    /// A friend's key changed.
    FriendKeyChanged {
        /// Who.
        userid: String,
        /// New key.
        identity_key: IdentityKey,
    },
    /// A friend asks us to dial them or to punch (SPEC.md §7.6).
    PeerConnectRequested(PeerConnectRequested),
    /// A friend opened a relay and waits for us (SPEC.md §7.7).
    RelayInvite {
        /// Who.
        userid: String,
        /// Put it in RelayOpen.token.
        token: TraversalId,
    },
}

fn required<'a, T>(v: &'a Option<T>, field: &'static str) -> Result<&'a T, WireError> {
    v.as_ref().ok_or(WireError::MissingField(field))
}

impl TryFrom<wire::ServerMessage> for ServerFrame {
    type Error = WireError;
    fn try_from(m: wire::ServerMessage) -> Result<Self, WireError> {
        use server_message::Body;
        Ok(match m.body {
            None => ServerFrame::Unknown,
            Some(Body::Ping(p)) => ServerFrame::Ping(p.nonce),
            Some(Body::Pong(p)) => ServerFrame::Pong(p.nonce),
            Some(Body::Close(c)) => ServerFrame::Close {
                reason: close_reason(c.reason),
                message: c.message,
            },
            Some(Body::Push(p)) => match p.body {
                None => ServerFrame::Unknown,
                Some(b) => ServerFrame::Push(PushEvent::try_from(b)?),
            },
            Some(Body::Response(r)) => {
                let request_id = r.request_id;
                let result = match r.result {
                    None => return Err(WireError::MissingField("response.result")),
                    Some(response::Result::Error(e)) => Err(RequestError::from(&e)),
                    Some(ok) => Ok(ResponseBody::try_from(ok)?),
                };
                ServerFrame::Response { request_id, result }
            }
        })
    }
}

impl TryFrom<response::Result> for ResponseBody {
    type Error = WireError;
    fn try_from(r: response::Result) -> Result<Self, WireError> {
        use response::Result as R;
        Ok(match r {
            R::Error(_) => {
                return Err(WireError::invalid(
                    "response.result",
                    "error is not a success body",
                ))
            }
            R::Register(ok) => ResponseBody::Register {
                recovery_code: ok.recovery_code,
            },
            R::Login(ok) => ResponseBody::Login(LoginSnapshot {
                userid: ok.userid,
                friends: ok
                    .friends
                    .iter()
                    .map(FriendInfo::try_from)
                    .collect::<Result<_, _>>()?,
                incoming: ok.incoming_requests.iter().map(Into::into).collect(),
                outgoing: ok.outgoing_requests.iter().map(Into::into).collect(),
                endpoint: ok
                    .peer_endpoint
                    .as_ref()
                    .map(|e| full_endpoint(e, "login.peer_endpoint"))
                    .transpose()?,
                server_time_unix_ms: ok.server_time_unix_ms,
                observed: ok
                    .observed_endpoint
                    .as_ref()
                    .map(|e| full_endpoint(e, "login.observed_endpoint"))
                    .transpose()?,
            }),
            R::ForgotPassword(ok) => ResponseBody::ForgotPassword {
                recovery_code: ok.recovery_code,
            },
            R::Logout(_) => ResponseBody::Logout,
            R::ChangePassword(_) => ResponseBody::ChangePassword,
            R::Find(ok) => ResponseBody::Find {
                found: ok.found,
                userid: ok.userid,
            },
            R::SendFriendRequest(ok) => ResponseBody::SendFriendRequest {
                friend: ok.friend.as_ref().map(FriendInfo::try_from).transpose()?,
            },
            R::AcceptFriendRequest(ok) => ResponseBody::AcceptFriendRequest(FriendInfo::try_from(
                required(&ok.friend, "accept_friend_request.friend")?,
            )?),
            R::RefuseFriendRequest(_) => ResponseBody::RefuseFriendRequest,
            R::Unfriend(_) => ResponseBody::Unfriend,
            R::SetPeerEndpoint(ok) => ResponseBody::SetPeerEndpoint {
                endpoint: full_endpoint(
                    required(&ok.peer_endpoint, "set_peer_endpoint.peer_endpoint")?,
                    "set_peer_endpoint.peer_endpoint",
                )?,
                observed: ok
                    .observed_endpoint
                    .as_ref()
                    .map(|e| full_endpoint(e, "set_peer_endpoint.observed_endpoint"))
                    .transpose()?,
            },
            R::ConnectPeer(ok) => ResponseBody::ConnectPeer(ConnectPeerOk {
                attempt_id: traversal_id(&ok.attempt_id, "connect_peer.attempt_id")?,
                candidates: candidates(&ok.candidates, "connect_peer.candidates")?,
                dial_in: dial_in(ok.dial_in_ms),
            }),
            R::RelayOpen(_) => ResponseBody::RelayOpen,
        })
    }
}

impl TryFrom<push::Body> for PushEvent {
    type Error = WireError;
    fn try_from(b: push::Body) -> Result<Self, WireError> {
        use push::Body as B;
        Ok(match b {
            B::FriendRequestReceived(p) => PushEvent::FriendRequestReceived(PendingRequest {
                userid: p.from_userid,
                created_at_unix_ms: p.created_at_unix_ms,
                expires_at_unix_ms: p.expires_at_unix_ms,
            }),
            B::FriendRequestAccepted(p) => PushEvent::FriendRequestAccepted(FriendInfo::try_from(
                required(&p.friend, "friend_request_accepted.friend")?,
            )?),
            B::FriendRequestRefused(p) => PushEvent::FriendRequestRefused { userid: p.userid },
            B::FriendRequestExpired(p) => PushEvent::FriendRequestExpired { userid: p.userid },
            B::FriendOnline(p) => PushEvent::FriendOnline {
                endpoint: p
                    .peer_endpoint
                    .as_ref()
                    .map(|e| full_endpoint(e, "friend_online.peer_endpoint"))
                    .transpose()?,
                identity_key: identity_key(&p.identity_key, "friend_online.identity_key")?,
                candidates: candidates(&p.candidates, "friend_online.candidates")?,
                userid: p.userid,
            },
            B::FriendOffline(p) => PushEvent::FriendOffline { userid: p.userid },
            B::Unfriended(p) => PushEvent::Unfriended { userid: p.userid },
            B::FriendKeyChanged(p) => PushEvent::FriendKeyChanged {
                identity_key: identity_key(&p.identity_key, "friend_key_changed.identity_key")?,
                userid: p.userid,
            },
            B::PeerConnectRequested(p) => PushEvent::PeerConnectRequested(PeerConnectRequested {
                mode: ConnectMode::from_wire(p.mode, "peer_connect_requested.mode")?,
                attempt_id: traversal_id(&p.attempt_id, "peer_connect_requested.attempt_id")?,
                candidates: candidates(&p.candidates, "peer_connect_requested.candidates")?,
                dial_in: dial_in(p.dial_in_ms),
                userid: p.userid,
            }),
            B::RelayInvite(p) => PushEvent::RelayInvite {
                token: traversal_id(&p.token, "relay_invite.token")?,
                userid: p.userid,
            },
        })
    }
}

impl From<&PushEvent> for push::Body {
    fn from(p: &PushEvent) -> Self {
        use push::Body as B;
        match p {
            PushEvent::FriendRequestReceived(r) => {
                B::FriendRequestReceived(wire::FriendRequestReceived {
                    from_userid: r.userid.clone(),
                    created_at_unix_ms: r.created_at_unix_ms,
                    expires_at_unix_ms: r.expires_at_unix_ms,
                })
            }
            PushEvent::FriendRequestAccepted(f) => {
                B::FriendRequestAccepted(wire::FriendRequestAccepted {
                    friend: Some(f.into()),
                })
            }
            PushEvent::FriendRequestRefused { userid } => {
                B::FriendRequestRefused(wire::FriendRequestRefused {
                    userid: userid.clone(),
                })
            }
            PushEvent::FriendRequestExpired { userid } => {
                B::FriendRequestExpired(wire::FriendRequestExpired {
                    userid: userid.clone(),
                })
            }
            PushEvent::FriendOnline {
                userid,
                endpoint,
                identity_key,
                candidates,
            } => B::FriendOnline(wire::FriendOnline {
                userid: userid.clone(),
                peer_endpoint: endpoint.map(Into::into),
                identity_key: identity_key.to_der(),
                candidates: candidates_to_wire(candidates),
            }),
            PushEvent::FriendOffline { userid } => B::FriendOffline(wire::FriendOffline {
                userid: userid.clone(),
            }),
            PushEvent::Unfriended { userid } => B::Unfriended(wire::Unfriended {
                userid: userid.clone(),
            }),
            PushEvent::FriendKeyChanged {
                userid,
                identity_key,
            } => B::FriendKeyChanged(wire::FriendKeyChanged {
                userid: userid.clone(),
                identity_key: identity_key.to_der(),
            }),
            PushEvent::PeerConnectRequested(p) => {
                B::PeerConnectRequested(wire::PeerConnectRequested {
                    userid: p.userid.clone(),
                    mode: p.mode.to_wire(),
                    attempt_id: p.attempt_id.to_vec().into(),
                    candidates: candidates_to_wire(&p.candidates),
                    dial_in_ms: dial_in_ms(p.dial_in),
                })
            }
            PushEvent::RelayInvite { userid, token } => B::RelayInvite(wire::RelayInvite {
                userid: userid.clone(),
                token: token.to_vec().into(),
            }),
        }
    }
}

impl From<&ResponseBody> for response::Result {
    fn from(b: &ResponseBody) -> Self {
        use response::Result as R;
        match b {
            ResponseBody::Register { recovery_code } => R::Register(wire::RegisterOk {
                recovery_code: recovery_code.clone(),
            }),
            ResponseBody::Login(s) => R::Login(wire::LoginOk {
                userid: s.userid.clone(),
                friends: s.friends.iter().map(Into::into).collect(),
                incoming_requests: s.incoming.iter().map(Into::into).collect(),
                outgoing_requests: s.outgoing.iter().map(Into::into).collect(),
                peer_endpoint: s.endpoint.map(Into::into),
                server_time_unix_ms: s.server_time_unix_ms,
                observed_endpoint: s.observed.map(Into::into),
            }),
            ResponseBody::ForgotPassword { recovery_code } => {
                R::ForgotPassword(wire::ForgotPasswordOk {
                    recovery_code: recovery_code.clone(),
                })
            }
            ResponseBody::Logout => R::Logout(wire::LogoutOk {}),
            ResponseBody::ChangePassword => R::ChangePassword(wire::ChangePasswordOk {}),
            ResponseBody::Find { found, userid } => R::Find(wire::FindOk {
                found: *found,
                userid: userid.clone(),
            }),
            ResponseBody::SendFriendRequest { friend } => {
                R::SendFriendRequest(wire::SendFriendRequestOk {
                    friend: friend.as_ref().map(Into::into),
                })
            }
            ResponseBody::AcceptFriendRequest(f) => {
                R::AcceptFriendRequest(wire::AcceptFriendRequestOk {
                    friend: Some(f.into()),
                })
            }
            ResponseBody::RefuseFriendRequest => {
                R::RefuseFriendRequest(wire::RefuseFriendRequestOk {})
            }
            ResponseBody::Unfriend => R::Unfriend(wire::UnfriendOk {}),
            ResponseBody::SetPeerEndpoint { endpoint, observed } => {
                R::SetPeerEndpoint(wire::SetPeerEndpointOk {
                    peer_endpoint: Some((*endpoint).into()),
                    observed_endpoint: observed.map(Into::into),
                })
            }
            ResponseBody::ConnectPeer(ok) => R::ConnectPeer(wire::ConnectPeerOk {
                attempt_id: ok.attempt_id.to_vec().into(),
                candidates: candidates_to_wire(&ok.candidates),
                dial_in_ms: dial_in_ms(ok.dial_in),
            }),
            ResponseBody::RelayOpen => R::RelayOpen(wire::RelayOpenOk {}),
        }
    }
}

impl ServerFrame {
    /// The wire message for this frame (server side).
    pub fn to_message(&self) -> wire::ServerMessage {
        use server_message::Body;
        let body = match self {
            ServerFrame::Response { request_id, result } => Body::Response(wire::Response {
                request_id: *request_id,
                result: Some(match result {
                    Ok(b) => b.into(),
                    Err(e) => response::Result::Error(e.into()),
                }),
            }),
            ServerFrame::Push(p) => Body::Push(wire::Push {
                body: Some(p.into()),
            }),
            ServerFrame::Ping(n) => Body::Ping(wire::Ping { nonce: *n }),
            ServerFrame::Pong(n) => Body::Pong(wire::Pong { nonce: *n }),
            ServerFrame::Close { reason, message } => Body::Close(wire::Close {
                reason: *reason as i32,
                message: truncate_human(message),
            }),
            ServerFrame::Unknown => return wire::ServerMessage { body: None },
        };
        wire::ServerMessage { body: Some(body) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn friend(n: usize, online: bool) -> FriendInfo {
        FriendInfo {
            userid: format!("friend{n}"),
            online,
            endpoint: online.then(|| "127.0.0.1:4000".parse().unwrap()),
            identity_key: crate::test_keys::identity(n).public().clone(),
            candidates: if online {
                vec![
                    Candidate::host("198.19.1.10:4000".parse().unwrap()),
                    Candidate::observed("198.18.0.2:4000".parse().unwrap()),
                ]
            } else {
                vec![]
            },
        }
    }

    fn req(u: &str) -> PendingRequest {
        PendingRequest {
            userid: u.into(),
            created_at_unix_ms: 1,
            expires_at_unix_ms: 2,
        }
    }

    #[test]
    fn every_server_frame_round_trips_through_bytes() {
        let key = crate::test_keys::identity(3).public().clone();
        let bodies = vec![
            ResponseBody::Register {
                recovery_code: "AAAAA-BBBBB-CCCCC-DDDDD".into(),
            },
            ResponseBody::Login(LoginSnapshot {
                userid: "alice".into(),
                friends: vec![friend(1, true), friend(2, false)],
                incoming: vec![req("x")],
                outgoing: vec![req("y")],
                endpoint: Some("10.0.0.1:5".parse().unwrap()),
                server_time_unix_ms: 42,
                observed: Some("198.18.0.2:5".parse().unwrap()),
            }),
            ResponseBody::ForgotPassword {
                recovery_code: "x".into(),
            },
            ResponseBody::Logout,
            ResponseBody::ChangePassword,
            ResponseBody::Find {
                found: true,
                userid: "Bob".into(),
            },
            ResponseBody::SendFriendRequest { friend: None },
            ResponseBody::SendFriendRequest {
                friend: Some(friend(4, false)),
            },
            ResponseBody::AcceptFriendRequest(friend(5, true)),
            ResponseBody::RefuseFriendRequest,
            ResponseBody::Unfriend,
            ResponseBody::SetPeerEndpoint {
                endpoint: "[::1]:9".parse().unwrap(),
                observed: None,
            },
            ResponseBody::ConnectPeer(ConnectPeerOk {
                attempt_id: [1; 16],
                candidates: vec![Candidate::observed("198.18.0.3:7".parse().unwrap())],
                dial_in: std::time::Duration::from_millis(120),
            }),
            ResponseBody::RelayOpen,
        ];
        let mut frames: Vec<ServerFrame> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, b)| ServerFrame::Response {
                request_id: i as u64,
                result: Ok(b),
            })
            .collect();
        frames.push(ServerFrame::Response {
            request_id: 77,
            result: Err(RequestError {
                code: wire::ErrorCode::RateLimited,
                message: "slow down".into(),
                retry_after: Some(std::time::Duration::from_millis(1500)),
            }),
        });
        for p in [
            PushEvent::FriendRequestReceived(req("z")),
            PushEvent::FriendRequestAccepted(friend(6, true)),
            PushEvent::FriendRequestRefused { userid: "r".into() },
            PushEvent::FriendRequestExpired { userid: "e".into() },
            PushEvent::FriendOnline {
                userid: "o".into(),
                endpoint: Some("127.0.0.2:7".parse().unwrap()),
                identity_key: key.clone(),
                candidates: vec![Candidate::host("127.0.0.2:7".parse().unwrap())],
            },
            PushEvent::FriendOffline { userid: "o".into() },
            PushEvent::Unfriended { userid: "u".into() },
            PushEvent::FriendKeyChanged {
                userid: "k".into(),
                identity_key: key.clone(),
            },
            PushEvent::PeerConnectRequested(PeerConnectRequested {
                userid: "p".into(),
                mode: ConnectMode::Reverse,
                attempt_id: [2; 16],
                candidates: vec![],
                dial_in: std::time::Duration::ZERO,
            }),
            PushEvent::RelayInvite {
                userid: "r".into(),
                token: [3; 16],
            },
        ] {
            frames.push(ServerFrame::Push(p));
        }
        frames.push(ServerFrame::Ping(1));
        frames.push(ServerFrame::Pong(2));
        frames.push(ServerFrame::Close {
            reason: wire::CloseReason::SessionReplaced,
            message: "elsewhere".into(),
        });
        for f in frames {
            let bytes = f.to_message().encode_to_vec();
            let back =
                ServerFrame::try_from(wire::ServerMessage::decode(&bytes[..]).unwrap()).unwrap();
            assert_eq!(back, f);
        }
    }

    #[test]
    fn accepted_push_without_friend_is_a_typed_error() {
        let m = wire::ServerMessage {
            body: Some(server_message::Body::Push(wire::Push {
                body: Some(push::Body::FriendRequestAccepted(
                    wire::FriendRequestAccepted { friend: None },
                )),
            })),
        };
        assert_eq!(
            ServerFrame::try_from(m),
            Err(WireError::MissingField("friend_request_accepted.friend"))
        );
    }

    #[test]
    fn unknown_push_is_ignored() {
        let m = wire::ServerMessage {
            body: Some(server_message::Body::Push(wire::Push { body: None })),
        };
        assert_eq!(ServerFrame::try_from(m), Ok(ServerFrame::Unknown));
    }
}
