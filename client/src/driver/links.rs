//! Peer links in the driver: session events become [`LinkEvent`]s and frames for the
//! machine; its `SendFrame`, `CloseLink` and `Dial` actions go to the links and to the
//! connection order of SPEC.md §7.6 ([`Traversal`]).

use std::time::Instant;

use bytes::Bytes;
use peerchat_proto::message::{PeerFrame, Request, ResponseBody};
use peerchat_proto::wire::{self, peer_message::Body, CloseReason, ErrorCode, FileCancelReason};

use super::Core;
use crate::error::ClientError;
use crate::events::{Event, LinkPath};
use crate::friends::key;
use crate::ids::TransferId;
use crate::machine::{LinkEnd, LinkEvent};
use crate::peer::relay::spawn_relay;
use crate::peer::session::{spawn_dial, DialSpec};
use crate::peer::traversal::{Action as Step, ConnectFailure};
use crate::peer::{ConnId, PeerEvent};
use crate::transfer::disk::free_space;

impl Core {
    pub(super) fn on_peer(&mut self, ev: PeerEvent) {
        let now = Instant::now();
        match ev {
            PeerEvent::Up {
                conn,
                friend,
                initiated_by_me,
                addr,
                path,
                link,
            } => {
                let k = key(&friend);
                let path = path.unwrap_or_else(|| self.traversal.inbound_path(&k, now));
                // Read before on_link_open ends the attempt.
                self.attempt_note = match path {
                    LinkPath::Punched => self.traversal.punch_attempt(&k),
                    _ => None,
                };
                let (fingerprint, features) = (link.fingerprint.clone(), link.features);
                self.links.insert(conn, link);
                self.machine.handle_link_event(
                    LinkEvent::Up {
                        link: conn,
                        friend: friend.clone(),
                        initiated_by_me,
                        path,
                        fingerprint,
                        features,
                    },
                    now,
                );
                if self.machine.active_link(&k) == Some(conn) {
                    self.dialing.remove(&k);
                    self.traversal.on_link_open(&k, path, initiated_by_me, now);
                    if initiated_by_me && path != LinkPath::Relayed {
                        self.with_book(|b| b.set_last_addr(&k, addr));
                    }
                    tracing::info!(%friend, %path, %addr, "peer link open");
                }
            }
            PeerEvent::Frame { conn, frame } => {
                if matches!(frame, PeerFrame::FileOffer(_)) {
                    // R4b: the free space of the download volume, as it is now.
                    self.machine
                        .set_free_space(free_space(self.profile.downloads()));
                }
                self.machine
                    .handle_peer_frame(conn, frame, now, crate::history::now_ms());
            }
            PeerEvent::Down {
                conn,
                reason,
                friend_close,
            } => {
                self.links.remove(&conn);
                if let Some(k) = self.machine.link_friend(conn).map(str::to_owned) {
                    if self.machine.active_link(&k) == Some(conn) {
                        self.traversal.on_link_closed(&k);
                    }
                }
                let end = match friend_close {
                    Some(r) => LinkEnd::FriendClosed(r),
                    None => LinkEnd::Dropped,
                };
                self.down_note = Some(reason);
                self.machine
                    .handle_link_event(LinkEvent::Down { link: conn, end }, now);
            }
            PeerEvent::InvalidFileFrame { conn, frame, why } => {
                tracing::debug!(?conn, %why, "invalid file frame");
                self.machine.handle_invalid_file_frame(conn, frame, now);
            }
            PeerEvent::DialFailed {
                friend,
                step,
                reason,
            } => {
                tracing::info!(%friend, %reason, "dial failed");
                let actions = self.traversal.on_dial_failed(&key(&friend), step, now);
                self.run_traversal(actions);
            }
            PeerEvent::ConnectPeerAnswer {
                friend,
                step,
                result,
            } => {
                let actions = match result {
                    Ok(ok) => self.traversal.on_connect_peer_ok(&friend, step, &ok, now),
                    Err(why) => {
                        tracing::info!(%friend, ?why, "ConnectPeer did not help");
                        self.traversal
                            .on_connect_peer_failed(&friend, step, why, now)
                    }
                };
                self.run_traversal(actions);
            }
            PeerEvent::RelayFailed {
                friend,
                step,
                reason,
            } => {
                tracing::info!(%friend, %reason, "relay failed");
                if let Some(step) = step {
                    let actions = self.traversal.on_relay_failed(&key(&friend), step, now);
                    self.run_traversal(actions);
                }
            }
            PeerEvent::Refused {
                fingerprint,
                addr,
                reason,
            } => self.emit(Event::PeerRefused {
                fingerprint,
                address: addr.to_string(),
                reason,
            }),
        }
    }

    /// `SendFrame`: control frames ahead of file data on the link's control queue; a file
    /// chunk or digest on the bulk queue, in the slot its reader reserved (so the driver
    /// never waits for a slow friend, and the digest stays behind the last chunk).
    pub(super) fn send_frame(&mut self, conn: ConnId, frame: PeerFrame) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        match frame {
            PeerFrame::FileChunk { id, offset, data } => {
                let len = data.len() as u64;
                let msg = wire::PeerMessage::from(PeerFrame::FileChunk { id, offset, data });
                self.disk.send_bulk(TransferId(id), msg, &link.bulk);
                self.progress_out(TransferId(id), offset + len);
            }
            PeerFrame::FileDigest { id, blake3 } => {
                let msg = wire::PeerMessage::from(PeerFrame::FileDigest { id, blake3 });
                self.disk.send_bulk(TransferId(id), msg, &link.bulk);
            }
            PeerFrame::Ack { .. } if crate::faults::on("no-ack") => {}
            f => link.send(f),
        }
    }

    /// `SendRawCancel`: a FileCancel echoing an id of any length (§8.5.3).
    pub(super) fn send_raw_cancel(
        &mut self,
        conn: ConnId,
        transfer_id: Bytes,
        reason: FileCancelReason,
    ) {
        if let Some(link) = self.links.get(&conn) {
            link.send_wire(wire::PeerMessage {
                body: Some(Body::FileCancel(wire::FileCancel {
                    transfer_id,
                    reason: reason as i32,
                    message: String::new(),
                })),
            });
        }
    }

    /// `CloseLink`. With a reason the link sends `Close` and drains (CLOSING); without one
    /// the friend's `Close` was read and the link task has ended it already.
    pub(super) fn close_link(&mut self, conn: ConnId, reason: Option<CloseReason>) {
        let Some(reason) = reason else { return };
        if let Some(link) = self.links.get(&conn) {
            link.close(reason, reason.as_str_name());
        }
    }

    /// `Dial`: the connection order of §7.6 toward the friend. Its end reaches the machine
    /// as the link's `Up`, or as `DialFailed` once no step is left ([`Core::run_traversal`]).
    pub(super) fn dial(&mut self, friend: &str) {
        let k = key(friend);
        self.dialing.insert(k.clone());
        let targets = self
            .book
            .read()
            .ok()
            .and_then(|b| b.get(&k).map(|f| (f.candidates.clone(), f.dial_addr())));
        if let Some((candidates, endpoint)) = targets {
            tracing::debug!(friend = %k, ?candidates, ?endpoint, "connecting");
            let actions = self
                .traversal
                .start(&k, &candidates, endpoint, Instant::now());
            self.run_traversal(actions);
        } else {
            self.end_dials();
        }
    }

    /// Carries out what the traversal decided, then tells the machine of every dial whose
    /// connection order ended without a link.
    pub(super) fn run_traversal(&mut self, actions: Vec<Step>) {
        for a in actions {
            match a {
                Step::Dial {
                    friend,
                    step,
                    addrs,
                    at,
                    timeout,
                    from_listener,
                    path,
                } => {
                    let userid = self.display(&friend);
                    tracing::debug!(friend = %userid, ?addrs, %path, "dialling");
                    let spec = DialSpec {
                        step,
                        addrs,
                        at: tokio::time::Instant::from_std(at),
                        timeout,
                        from_listener,
                        path,
                    };
                    spawn_dial(self.session_ctx.clone(), userid, spec);
                }
                Step::ConnectPeer { friend, step, mode } => {
                    let userid = self.display(&friend);
                    let server = self.server.clone();
                    let events = self.session_ctx.events.clone();
                    tokio::spawn(async move {
                        let result =
                            match server.request(Request::ConnectPeer { userid, mode }).await {
                                Ok(ResponseBody::ConnectPeer(ok)) => Ok(ok),
                                Err(ClientError::Server(e)) if e.code == ErrorCode::PeerOffline => {
                                    Err(ConnectFailure::PeerOffline)
                                }
                                Err(ClientError::Server(e)) if e.code == ErrorCode::NotLoggedIn => {
                                    Err(ConnectFailure::ServerUnavailable)
                                }
                                Err(ClientError::Server(_)) | Ok(_) => Err(ConnectFailure::Other),
                                Err(_) => Err(ConnectFailure::ServerUnavailable),
                            };
                        let _ = events
                            .send(PeerEvent::ConnectPeerAnswer {
                                friend,
                                step,
                                result,
                            })
                            .await;
                    });
                }
                Step::OpenRelay { friend, step } => {
                    let userid = self.display(&friend);
                    tracing::debug!(friend = %userid, "opening a relay");
                    spawn_relay(self.session_ctx.clone(), userid, None, Some(step));
                }
                Step::Failed { friend } => {
                    tracing::info!(%friend, "no link could be made");
                }
            }
        }
        self.end_dials();
    }

    /// The machine's dials whose connection order is no longer running and made no link.
    fn end_dials(&mut self) {
        let ended: Vec<String> = self
            .dialing
            .iter()
            .filter(|k| !self.traversal.is_running(k))
            .cloned()
            .collect();
        for k in ended {
            self.dialing.remove(&k);
            if self.machine.active_link(&k).is_none() {
                let friend = self.display(&k);
                self.machine
                    .handle_link_event(LinkEvent::DialFailed { friend }, Instant::now());
            }
        }
    }
}
