//! Several server nodes on one PostgreSQL database (SPEC.md §6.11, docs/DEPLOY.md).
//!
//! Each node keeps its own sessions in its [`PresenceHub`]; what the other nodes must know
//! travels on one PostgreSQL `LISTEN`/`NOTIFY` channel, [`CHANNEL`]:
//!
//! - `Online`: a user has a session on a node (login, replacement, endpoint change), with the
//!   `FriendOnline` push that describes it. Every node records it in its hub's directory of
//!   remote sessions; a node that holds an older session of that user closes it with
//!   `CLOSE_REASON_SESSION_REPLACED` (session replacement across nodes).
//! - `Offline`: that session ended.
//! - `Push`: a push for a user whose session is on another node, with the notice to queue if
//!   the session has ended by the time it arrives (queued notices are stored exactly once).
//! - `Sync`: a node that just started asks the others to announce their sessions again.
//!
//! Liveness: every node writes its heartbeat to the `cluster_node` table every
//! [`HEARTBEAT_INTERVAL`]. A node whose heartbeat is older than [`NODE_DEAD_AFTER`] is dead
//! (killed, or cut off from the database): every other node drops its sessions from the
//! directory and pushes `FriendOffline` to the dead node's users' friends it hosts. The clients
//! of the dead node reconnect (through the load balancer) to a live one.
//!
//! Why PostgreSQL and not Redis: the database is already the one thing every node must reach,
//! so the bus adds no engine to install, secure, monitor or fail over, and a node cut off from
//! the database is cut off from the bus at the same moment (no split view where a node writes
//! friendships but misses presence). The cost is one round trip per `NOTIFY` and an 8000-byte
//! payload limit, both far from what presence needs (SPEC.md §6.11, docs/DEPLOY.md).

pub mod limits;
pub mod link;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peerchat_proto::message::{PushEvent, ServerFrame};
use peerchat_proto::wire;
use prost::Message as _;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::db::entity::notice::NoticeKind;
use crate::hub::{RemoteSession, Stop};
use crate::state::Shared;

/// The `LISTEN`/`NOTIFY` channel every node of one cluster shares.
pub const CHANNEL: &str = "peerchat_cluster";
/// How often a node writes its heartbeat (SPEC.md §10 `NODE_HEARTBEAT`).
pub const HEARTBEAT_INTERVAL: Duration = peerchat_proto::limits::NODE_HEARTBEAT;
/// A node silent this long is dead (SPEC.md §10 `NODE_DEAD_AFTER`).
pub const NODE_DEAD_AFTER: Duration = peerchat_proto::limits::NODE_DEAD_AFTER;

/// One message on the cluster bus. JSON, because `NOTIFY` payloads are text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "t")]
pub enum BusMessage {
    /// `user` has session `session` on `node`; `online` is the hex of the `FriendOnline`
    /// `ServerMessage` that describes it.
    Online {
        /// Sending node.
        node: String,
        /// Session id, unique per node.
        session: u64,
        /// Lowercase userid.
        user: String,
        /// Account row id (for the friends lookup when the node dies).
        account_id: i64,
        /// Hex of the encoded `ServerMessage{push: FriendOnline}`.
        online: String,
    },
    /// Session `session` of `user` on `node` ended.
    Offline {
        /// Sending node.
        node: String,
        /// Session id.
        session: u64,
        /// Lowercase userid.
        user: String,
    },
    /// Deliver `frame` (hex of an encoded `ServerMessage`) to the sessions of `to` that
    /// the receiving node holds.
    Push {
        /// Sending node.
        node: String,
        /// Lowercase userids of the recipients.
        to: Vec<String>,
        /// Hex of the encoded `ServerMessage{push}`.
        frame: String,
        /// The notice `holder` stores if the recipient has no session when this arrives.
        notice: Option<QueuedNotice>,
        /// The node the sender's directory names as the recipient's (one recipient only).
        holder: Option<String>,
    },
    /// A relay opened on `node` waits for `invitee` under `token` (hex); a node that
    /// receives the invitee's relay connection dials `addr` to join it (see [`link`]).
    RelayWaiting {
        /// Sending node.
        node: String,
        /// Hex of the relay token.
        token: String,
        /// The sending node's link listener.
        addr: std::net::SocketAddr,
        /// Lowercase userid of the opener.
        opener: String,
        /// Lowercase userid of the invited friend.
        invitee: String,
    },
    /// `node` started: everyone announces their sessions again.
    Sync {
        /// Sending node.
        node: String,
    },
}

/// A notice to store in place of an undeliverable push (SPEC.md §6.9).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueuedNotice {
    /// Recipient account id.
    pub to_id: i64,
    /// Kind, as stored.
    pub kind: NoticeKind,
    /// The other account.
    pub other_id: i64,
}

/// What the publisher task is handed: a message, or a request to say when every message
/// queued before it has been sent.
#[derive(Debug)]
enum Outgoing {
    Msg(BusMessage),
    Flush(oneshot::Sender<()>),
}

/// This node's end of the bus, held by the hub: publishing is a non-blocking send to the one
/// publisher task, so messages leave in the order they were made.
#[derive(Debug, Clone)]
pub struct Link {
    /// This node's name (unique in the cluster).
    pub node: String,
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Link {
    /// Queues `msg` for publication.
    pub fn publish(&self, msg: BusMessage) {
        let _ = self.tx.send(Outgoing::Msg(msg));
    }

    /// Returns once every message queued before this call has been handed to PostgreSQL
    /// (its `NOTIFY` committed), or the publisher has stopped.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Outgoing::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Why the cluster could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Clustering needs PostgreSQL.
    #[error(
        "--cluster-node needs a postgres:// database URL (the bus is PostgreSQL LISTEN/NOTIFY)"
    )]
    NotPostgres,
    /// The database refused.
    #[error("cluster bus: {0}")]
    Db(String),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Encodes a push as the bus carries it.
pub fn encode_push(event: &PushEvent) -> String {
    hex::encode(
        ServerFrame::Push(event.clone())
            .to_message()
            .encode_to_vec(),
    )
}

/// Decodes a push the bus carried; `None` if it is not one.
pub fn decode_push(frame: &str) -> Option<PushEvent> {
    let bytes = hex::decode(frame).ok()?;
    let msg = wire::ServerMessage::decode(&bytes[..]).ok()?;
    match ServerFrame::try_from(msg).ok()? {
        ServerFrame::Push(ev) => Some(ev),
        _ => None,
    }
}

/// Joins the cluster: listens on [`CHANNEL`], starts the publisher and the heartbeat, and
/// asks the other nodes for their sessions. Returns once `LISTEN` is in place, so no message
/// published after this returns is missed.
///
/// # Errors
/// [`ClusterError`] if the database is not PostgreSQL or refuses.
pub async fn join(
    shared: Arc<Shared>,
    url: &str,
    node: String,
    stop: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) -> Result<(), ClusterError> {
    if !url.starts_with("postgres") {
        return Err(ClusterError::NotPostgres);
    }
    let mut listener = PgListener::connect(url)
        .await
        .map_err(|e| ClusterError::Db(e.to_string()))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(|e| ClusterError::Db(e.to_string()))?;
    heartbeat(&shared, &node)
        .await
        .map_err(|e| ClusterError::Db(e.to_string()))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let link = Link {
        node: node.clone(),
        tx,
    };
    shared.hub.set_link(link.clone());
    tracker.spawn(publisher(shared.clone(), rx, stop.clone()));
    tracker.spawn(receiver(
        shared.clone(),
        listener,
        node.clone(),
        stop.clone(),
    ));
    tracker.spawn(liveness(shared.clone(), node.clone(), stop));
    link.publish(BusMessage::Sync { node });
    Ok(())
}

/// Publishes queued messages one by one (one `NOTIFY` each), in order.
async fn publisher(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            m = rx.recv() => match m {
                Some(Outgoing::Msg(m)) => m,
                Some(Outgoing::Flush(done)) => {
                    let _ = done.send(());
                    continue;
                }
                None => return,
            },
        };
        let payload = match serde_json::to_string(&msg) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cluster message not encodable");
                continue;
            }
        };
        let st = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), payload.into()],
        );
        if let Err(e) = shared.store.conn().execute(st).await {
            tracing::error!(error = %e, "cluster publish failed");
        }
    }
}

/// Applies every message of the other nodes to this node.
async fn receiver(
    shared: Arc<Shared>,
    mut listener: PgListener,
    me: String,
    stop: CancellationToken,
) {
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            n = listener.recv() => n,
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                // PgListener reconnects by itself on the next recv; messages sent meanwhile
                // are lost, so ask everyone to announce again.
                tracing::warn!(error = %e, "cluster bus interrupted");
                tokio::time::sleep(Duration::from_millis(200)).await;
                shared.hub.publish(BusMessage::Sync { node: me.clone() });
                continue;
            }
        };
        let msg: BusMessage = match serde_json::from_str(n.payload()) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable cluster message");
                continue;
            }
        };
        apply(&shared, &me, msg).await;
    }
}

/// One bus message, received by node `me`.
pub async fn apply(shared: &Shared, me: &str, msg: BusMessage) {
    match msg {
        BusMessage::Online {
            node,
            session,
            user,
            account_id,
            online,
        } if node != me => {
            let Some(event) = decode_push(&online) else {
                return;
            };
            // An older session of this user on another node ends with this one: so do the
            // relay connections admitted here under it.
            if let Some((n, s)) = shared.hub.remote_session(&user) {
                if (n.as_str(), s) != (node.as_str(), session) {
                    shared.relays.close_remote_session(&n, s);
                }
            }
            // A session of this user here is older: the login on `node` replaces it
            // (SPEC.md §6.10). Taken out of the hub first, so it ends without FriendOffline.
            if let Some(old) = shared.hub.take_local(&user) {
                shared.relays.close_session(old.session_id);
                old.stop(Stop::Close(
                    peerchat_proto::wire::CloseReason::SessionReplaced,
                    "this account logged in on another connection".into(),
                ));
                // Nodes that recorded the old session drop it. If two nodes replaced each
                // other at once (both logins within the bus latency), neither keeps a stale
                // entry for the other's closed session.
                shared.hub.publish(BusMessage::Offline {
                    node: me.to_owned(),
                    session: old.session_id,
                    user: user.clone(),
                });
            }
            shared.hub.set_remote(
                user,
                RemoteSession {
                    node,
                    session_id: session,
                    account_id,
                    online: event,
                },
            );
        }
        BusMessage::Offline {
            node,
            session,
            user,
        } if node != me => {
            shared.hub.remove_remote(&user, &node, session);
            shared.relays.close_remote_session(&node, session);
        }
        BusMessage::RelayWaiting {
            node,
            token,
            addr,
            opener,
            invitee,
        } if node != me => {
            let Some(token) = hex::decode(&token)
                .ok()
                .and_then(|t| <[u8; 16]>::try_from(t).ok())
            else {
                return;
            };
            shared.relays.remote.insert(
                token,
                crate::relay::RemoteRelay {
                    addr,
                    opener,
                    invitee,
                },
                shared.relays.settings.join_timeout,
            );
        }
        BusMessage::Push {
            node,
            to,
            frame,
            notice,
            holder,
        } if node != me => {
            let Some(event) = decode_push(&frame) else {
                return;
            };
            let mut delivered = false;
            for u in &to {
                delivered |= shared.hub.push_local(u, &event);
            }
            if delivered || holder.as_deref() != Some(me) {
                return;
            }
            if let Some(n) = notice {
                if let Err(e) = shared
                    .store
                    .queue_notice(n.to_id, n.kind, n.other_id, shared.now_ms())
                    .await
                {
                    tracing::error!(error = %e, "could not queue a notice for a missed push");
                }
            }
        }
        BusMessage::Sync { node } if node != me => {
            for h in shared.hub.local_sessions() {
                shared.hub.publish_online(&h);
            }
        }
        _ => {}
    }
}

/// Writes this node's heartbeat row.
async fn heartbeat(shared: &Shared, node: &str) -> Result<(), sea_orm::DbErr> {
    let st = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO cluster_node (node, heartbeat_ms) VALUES ($1, $2) \
         ON CONFLICT (node) DO UPDATE SET heartbeat_ms = EXCLUDED.heartbeat_ms",
        [node.into(), now_ms().into()],
    );
    shared.store.conn().execute(st).await.map(|_| ())
}

/// The nodes whose heartbeat is recent.
async fn live_nodes(shared: &Shared) -> Result<HashSet<String>, sea_orm::DbErr> {
    let since = now_ms() - i64::try_from(NODE_DEAD_AFTER.as_millis()).unwrap_or(i64::MAX);
    let st = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT node FROM cluster_node WHERE heartbeat_ms >= $1",
        [since.into()],
    );
    let rows = shared.store.conn().query_all(st).await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .collect())
}

/// Whether the other nodes may have declared this node dead: its heartbeat that just
/// succeeded follows the previous successful one (written from `previous`) by
/// [`NODE_DEAD_AFTER`] or more. Measured on the monotonic clock, which keeps running while
/// the process is paused, up to when the new heartbeat was committed.
pub fn presumed_dead(previous: Option<Instant>, committed: Instant) -> bool {
    previous.is_some_and(|p| committed.saturating_duration_since(p) >= NODE_DEAD_AFTER)
}

/// Heartbeat, and `FriendOffline` for the users of nodes that stopped beating.
async fn liveness(shared: Arc<Shared>, me: String, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the last heartbeat that succeeded was taken (its timestamp is at most this old).
    let mut last_beat: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let taken = Instant::now();
        if let Err(e) = heartbeat(&shared, &me).await {
            tracing::error!(error = %e, "cluster heartbeat failed");
            continue;
        }
        if presumed_dead(last_beat, Instant::now()) {
            // Paused (SIGSTOP, a VM freeze) or cut off from the database: the others have
            // told our users' friends FriendOffline and forgotten our sessions.
            tracing::warn!(node = %me, "this node's heartbeat lapsed: ending its sessions");
            end_stale_sessions(&shared).await;
        }
        last_beat = Some(taken);
        let live = match live_nodes(&shared).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cluster liveness check failed");
                continue;
            }
        };
        for (user, gone) in shared.hub.remove_remote_unless(&live) {
            tracing::info!(userid = %user, node = %gone.node, "node dead: user offline");
            shared
                .relays
                .close_remote_session(&gone.node, gone.session_id);
            announce_remote_offline(&shared, &gone).await;
        }
    }
}

/// Ends every session of this node after its heartbeat lapsed (SPEC.md §6.11 rule 6): the
/// other nodes may have declared it dead, so its sessions are offline to their users' friends
/// there. Re-announcing them would be wrong — a client may already have logged in again on
/// another node, and an `Online` for the old session would replace the newer one — so each
/// session is announced offline (to the nodes that did not notice the lapse) and, once those
/// announcements are on the bus, closed with `CLOSE_REASON_SERVER_SHUTDOWN`. The clients log
/// in again, which announces them afresh; that `Online` is published after our `FriendOffline`,
/// so every node sees the two in that order.
pub async fn end_stale_sessions(shared: &Shared) {
    let sessions = shared.hub.local_sessions();
    for h in &sessions {
        h.close();
        shared.relays.close_session(h.session_id);
        // Its connection's own end then finds it gone and announces nothing more.
        if shared
            .hub
            .remove_if_current(&crate::validate::fold(&h.userid), h.session_id)
        {
            if let Some((friends, ev)) =
                crate::cmd::presence::offline_announcement(shared, h.account_id, &h.userid).await
            {
                shared
                    .hub
                    .push_many(friends.iter().map(String::as_str), &ev);
            }
        }
    }
    shared.hub.flush().await;
    for h in &sessions {
        h.stop(Stop::Close(
            peerchat_proto::wire::CloseReason::ServerShutdown,
            "this server node lost contact with its cluster; log in again".into(),
        ));
    }
}

/// Tells the friends of `gone` hosted here that it is offline.
async fn announce_remote_offline(shared: &Shared, gone: &RemoteSession) {
    let PushEvent::FriendOnline { userid, .. } = &gone.online else {
        return;
    };
    let Some((friends, ev)) =
        crate::cmd::presence::offline_announcement(shared, gone.account_id, userid).await
    else {
        return;
    };
    // Only this node's sessions: every live node runs this for its own.
    for f in &friends {
        shared.hub.push_local(f, &ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_json() {
        let ev = PushEvent::FriendOffline {
            userid: "Alice".into(),
        };
        let m = BusMessage::Push {
            node: "n1".into(),
            to: vec!["bob".into()],
            frame: encode_push(&ev),
            holder: Some("n2".into()),
            notice: Some(QueuedNotice {
                to_id: 1,
                kind: NoticeKind::Accepted,
                other_id: 2,
            }),
        };
        let back: BusMessage = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let BusMessage::Push { frame, .. } = back else {
            unreachable!()
        };
        assert_eq!(decode_push(&frame), Some(ev));
    }

    #[test]
    fn a_lapse_of_node_dead_after_means_presumed_dead() {
        let t0 = Instant::now();
        assert!(!presumed_dead(None, t0 + NODE_DEAD_AFTER * 2));
        assert!(!presumed_dead(Some(t0), t0 + HEARTBEAT_INTERVAL));
        assert!(!presumed_dead(
            Some(t0),
            t0 + NODE_DEAD_AFTER - Duration::from_millis(1)
        ));
        assert!(presumed_dead(Some(t0), t0 + NODE_DEAD_AFTER));
    }
}
