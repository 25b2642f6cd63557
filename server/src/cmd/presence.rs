//! Presence (SPEC.md §6.6, §6.8): SetPeerEndpoint and the FriendOnline / FriendOffline
//! fan-out. Only friends are ever told anything about a user's presence or address.

use std::net::{IpAddr, SocketAddr};

use peerchat_proto::message::{Announcement, Candidate, Endpoint, PushEvent, ResponseBody};
use peerchat_proto::wire::ErrorCode;

use super::{err, Reply};
use crate::hub::SessionHandle;
use crate::state::{ConnState, LoggedIn, Shared};

/// The effective endpoint (SPEC.md §5.1.6): an empty host becomes the connection's source
/// address, and an IPv4-mapped IPv6 address its IPv4 form.
pub fn effective(endpoint: Endpoint, observed: IpAddr) -> SocketAddr {
    let addr = endpoint.resolve(observed);
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The session's candidate list (SPEC.md §7.5): host candidates in the announced order,
/// then the observed endpoint when the client dialled from its listening port, without
/// repeats.
pub fn candidate_list(announcement: &Announcement, observed: SocketAddr) -> Vec<Candidate> {
    let observed = SocketAddr::new(observed.ip().to_canonical(), observed.port());
    let mut out: Vec<Candidate> = Vec::new();
    let hosts = announcement
        .host_candidates
        .iter()
        .map(|a| Candidate::host(SocketAddr::new(a.ip().to_canonical(), a.port())));
    let observed = announcement
        .observed_is_listener
        .then(|| Candidate::observed(observed));
    for c in hosts.chain(observed) {
        if !out.iter().any(|o| o.addr == c.addr) {
            out.push(c);
        }
    }
    out
}

/// This connection's source address in canonical form: the observed endpoint (SPEC.md §7.5).
pub fn observed(conn: &ConnState) -> SocketAddr {
    SocketAddr::new(conn.peer_addr.ip().to_canonical(), conn.peer_addr.port())
}

/// The FriendOnline push describing `session`.
fn online_event(session: &SessionHandle) -> PushEvent {
    PushEvent::FriendOnline {
        userid: session.userid.clone(),
        endpoint: session.endpoint(),
        identity_key: session.identity_key.clone(),
        candidates: session.candidates(),
    }
}

/// Tells every online friend in `friends` (lowercase userids) that `session` is online (or
/// moved).
pub fn announce_online<'a>(
    shared: &Shared,
    session: &SessionHandle,
    friends: impl IntoIterator<Item = &'a str>,
) {
    // The other nodes first: their directories then know the session before its friends
    // there are told (and an older session of this user on another node is replaced).
    shared.hub.publish_online(session);
    let ev = online_event(session);
    shared.hub.push_many(friends, &ev);
}

/// Tells every online friend of the ended session `login` FriendOffline.
pub async fn announce_offline(shared: &Shared, login: &LoggedIn) {
    // Fault switch for the conformance suite's self-test: FriendOffline is never sent.
    if shared.faults.no_offline_push() {
        return;
    }
    let Some((friends, ev)) =
        offline_announcement(shared, login.account_id, &login.handle.userid).await
    else {
        return;
    };
    shared
        .hub
        .push_many(friends.iter().map(String::as_str), &ev);
}

/// Who must hear that `userid` (account `account_id`) went offline (their lowercase
/// userids), and the push to send them; `None` (logged) when the database cannot say: the
/// announcement is best effort. Shared by a session's own end and the cluster's announcement
/// for a dead node's users. A single server answers from the account's cached view.
pub(crate) async fn offline_announcement(
    shared: &Shared,
    account_id: i64,
    userid: &str,
) -> Option<(Vec<String>, PushEvent)> {
    match shared.store.friend_lowers(account_id).await {
        Ok(friends) => Some((
            friends,
            PushEvent::FriendOffline {
                userid: userid.to_owned(),
            },
        )),
        Err(e) => {
            tracing::error!(error = %e, "cannot announce offline");
            None
        }
    }
}

/// SetPeerEndpoint (SPEC.md §6.8): an empty host means the connection's source IP. Online
/// friends get FriendOnline with the new endpoint.
pub async fn set_peer_endpoint(
    shared: &Shared,
    conn: &mut ConnState,
    endpoint: Endpoint,
    announcement: Announcement,
) -> Reply {
    let Some(login) = &conn.login else {
        return Err(err(ErrorCode::NotLoggedIn, "not logged in"));
    };
    let effective = effective(endpoint, conn.peer_addr.ip());
    let observed = observed(conn);
    login.handle.set_endpoint(Some(effective));
    login
        .handle
        .set_candidates(candidate_list(&announcement, observed));
    let friends = shared.store.friend_lowers(login.account_id).await?;
    announce_online(shared, &login.handle, friends.iter().map(String::as_str));
    Ok(ResponseBody::SetPeerEndpoint {
        endpoint: effective,
        observed: Some(observed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_hosts_then_observed_without_repeats() {
        let a = Announcement {
            host_candidates: vec![
                "198.19.1.10:4000".parse().unwrap(),
                "[::ffff:198.18.0.9]:4000".parse().unwrap(),
            ],
            observed_is_listener: true,
        };
        let list = candidate_list(&a, "198.18.0.9:4000".parse().unwrap());
        assert_eq!(
            list,
            vec![
                Candidate::host("198.19.1.10:4000".parse().unwrap()),
                Candidate::host("198.18.0.9:4000".parse().unwrap()),
            ],
            "a public host's observed endpoint equals its host candidate: listed once"
        );
        let behind_nat = candidate_list(&a, "198.18.0.2:61000".parse().unwrap());
        assert_eq!(
            behind_nat.last(),
            Some(&Candidate::observed("198.18.0.2:61000".parse().unwrap()))
        );
        let not_listener = Announcement {
            observed_is_listener: false,
            ..a
        };
        assert_eq!(
            candidate_list(&not_listener, "198.18.0.2:61000".parse().unwrap()).len(),
            2
        );
    }
}
