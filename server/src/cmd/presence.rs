//! Presence (SPEC.md §6.6, §6.8): SetPeerEndpoint and the FriendOnline / FriendOffline
//! fan-out. Only friends are ever told anything about a user's presence or address.

use std::net::{IpAddr, SocketAddr};

use peerchat_proto::message::{Endpoint, PushEvent, ResponseBody};
use peerchat_proto::wire::ErrorCode;

use super::{err, Reply};
use crate::db::entity::account;
use crate::hub::SessionHandle;
use crate::state::{ConnState, LoggedIn, Shared};

/// The effective endpoint (SPEC.md §5.1.6): an empty host becomes the connection's source
/// address, and an IPv4-mapped IPv6 address its IPv4 form.
pub fn effective(endpoint: Endpoint, observed: IpAddr) -> SocketAddr {
    let addr = endpoint.resolve(observed);
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The FriendOnline push describing `session`.
fn online_event(session: &SessionHandle) -> PushEvent {
    PushEvent::FriendOnline {
        userid: session.userid.clone(),
        endpoint: session.endpoint(),
        identity_key: session.identity_key.clone(),
    }
}

/// Tells every online friend in `friends` that `session` is online (or moved).
pub fn announce_online(shared: &Shared, session: &SessionHandle, friends: &[account::Model]) {
    let ev = online_event(session);
    for f in friends {
        shared.hub.push(&f.userid_lower, &ev);
    }
}

/// Tells every online friend of the ended session `login` FriendOffline.
pub async fn announce_offline(shared: &Shared, login: &LoggedIn) {
    // Fault switch for the conformance suite's self-test: FriendOffline is never sent.
    if shared.faults.no_offline_push() {
        return;
    }
    let friends = match shared.store.friends_of(login.account_id).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot announce offline");
            return;
        }
    };
    let ev = PushEvent::FriendOffline {
        userid: login.handle.userid.clone(),
    };
    for f in &friends {
        shared.hub.push(&f.userid_lower, &ev);
    }
}

/// SetPeerEndpoint (SPEC.md §6.8): an empty host means the connection's source IP. Online
/// friends get FriendOnline with the new endpoint.
pub async fn set_peer_endpoint(shared: &Shared, conn: &mut ConnState, endpoint: Endpoint) -> Reply {
    let Some(login) = &conn.login else {
        return Err(err(ErrorCode::NotLoggedIn, "not logged in"));
    };
    let effective = effective(endpoint, conn.peer_addr.ip());
    login.handle.set_endpoint(Some(effective));
    let friends = shared.store.friends_of(login.account_id).await?;
    announce_online(shared, &login.handle, &friends);
    Ok(ResponseBody::SetPeerEndpoint(effective))
}
