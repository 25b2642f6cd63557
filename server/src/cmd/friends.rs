//! The friend graph (SPEC.md §6.1–§6.5): Find, SendFriendRequest, AcceptFriendRequest,
//! RefuseFriendRequest, Unfriend.
//!
//! The rules and their transactions live in [`crate::db::friends`]; these handlers resolve
//! userids, pick the error codes and push to the other user when they are online (or let
//! the store queue a notice when they are not).

use peerchat_proto::message::{FriendInfo, PendingRequest, PushEvent, ResponseBody};
use peerchat_proto::wire::ErrorCode;

use super::{err, friend_info, internal, lookup, push_or_queue, Reply};
use crate::db::entity::account;
use crate::db::entity::notice::NoticeKind;
use crate::db::{FriendError, SendOutcome};
use crate::state::{ConnState, LoggedIn, Shared};

fn me(conn: &ConnState) -> Result<&LoggedIn, peerchat_proto::message::RequestError> {
    conn.login
        .as_ref()
        .ok_or_else(|| err(ErrorCode::NotLoggedIn, "not logged in"))
}

/// The caller as a Friend entry for pushes to the other user: online, with this session's
/// endpoint and key.
fn me_as_friend(login: &LoggedIn) -> FriendInfo {
    FriendInfo {
        userid: login.handle.userid.clone(),
        online: true,
        endpoint: login.handle.endpoint(),
        identity_key: login.handle.identity_key.clone(),
        candidates: login.handle.candidates(),
    }
}

fn friend_error(e: FriendError) -> peerchat_proto::message::RequestError {
    match e {
        FriendError::AlreadyFriends => err(ErrorCode::AlreadyFriends, "you are already friends"),
        FriendError::DuplicateRequest => err(
            ErrorCode::DuplicateRequest,
            "your earlier request to this user is still pending",
        ),
        FriendError::LimitExceeded(why) => err(ErrorCode::LimitExceeded, why),
        FriendError::RequestNotFound => err(
            ErrorCode::RequestNotFound,
            "no pending friend request from this user",
        ),
        FriendError::NotFriends => err(ErrorCode::NotFriends, "this user is not your friend"),
        FriendError::Db(e) => internal(e),
    }
}

async fn target(
    shared: &Shared,
    userid: &str,
    missing: (ErrorCode, &str),
) -> Result<account::Model, peerchat_proto::message::RequestError> {
    lookup(shared, userid)
        .await?
        .ok_or_else(|| err(missing.0, missing.1))
}

/// Find (SPEC.md §6.1): existence and registered spelling only. A userid that breaks the
/// syntax rules is simply not found.
pub async fn find(shared: &Shared, userid: String) -> Reply {
    // Fault switch for the conformance suite's self-test.
    if shared.faults.find_reveals_nothing() {
        return Ok(ResponseBody::Find {
            found: false,
            userid: String::new(),
        });
    }
    Ok(match lookup(shared, &userid).await? {
        Some(a) => ResponseBody::Find {
            found: true,
            userid: a.userid,
        },
        None => ResponseBody::Find {
            found: false,
            userid: String::new(),
        },
    })
}

/// SendFriendRequest (SPEC.md §6.2): USER_NOT_FOUND, SELF_REQUEST, ALREADY_FRIENDS,
/// DUPLICATE_REQUEST, LIMIT_EXCEEDED. Crossing requests become a friendship.
pub async fn send_request(shared: &Shared, conn: &ConnState, userid: String) -> Reply {
    let login = me(conn)?;
    let target = target(shared, &userid, (ErrorCode::UserNotFound, "no such user")).await?;
    if target.id == login.account_id {
        return Err(err(ErrorCode::SelfRequest, "you cannot befriend yourself"));
    }
    let now = shared.now_ms();
    let ttl = shared.request_ttl.as_millis().min(u128::from(u64::MAX)) as u64;
    let caller = shared
        .store
        .account_by_id(login.account_id)
        .await?
        .ok_or_else(|| internal("the caller's account row is missing"))?;
    // Who the transaction judged offline (and so stored a notice for).
    let offline = std::sync::Mutex::new(Vec::new());
    let (outcome, expired) = shared
        .store
        .send_request(&caller, &target, now, ttl, |u| {
            let online = shared.hub.is_online(u);
            if !online {
                offline
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(u.to_owned());
            }
            online
        })
        .await
        .map_err(friend_error)?;
    let offline = offline
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for e in &expired {
        push_or_queue(
            shared,
            (&e.requester_lower, e.requester_id),
            NoticeKind::Expired,
            e.target_id,
            &PushEvent::FriendRequestExpired {
                userid: e.target_userid.clone(),
            },
            e.queued,
        )
        .await;
    }
    match outcome {
        SendOutcome::Pending {
            created_at_ms,
            expires_at_ms,
        } => {
            let ev = PushEvent::FriendRequestReceived(PendingRequest {
                userid: login.handle.userid.clone(),
                created_at_unix_ms: created_at_ms,
                expires_at_unix_ms: expires_at_ms,
            });
            shared.hub.push(&target.userid_lower, &ev);
            Ok(ResponseBody::SendFriendRequest { friend: None })
        }
        SendOutcome::BecameFriends => {
            push_or_queue(
                shared,
                (&target.userid_lower, target.id),
                NoticeKind::Accepted,
                login.account_id,
                &PushEvent::FriendRequestAccepted(me_as_friend(login)),
                offline.contains(&target.userid_lower),
            )
            .await;
            Ok(ResponseBody::SendFriendRequest {
                friend: Some(friend_info(shared, &(&target).into())?),
            })
        }
    }
}

/// AcceptFriendRequest (SPEC.md §6.3): REQUEST_NOT_FOUND, LIMIT_EXCEEDED. The requester gets
/// FriendRequestAccepted now or as a notice at their next login.
pub async fn accept_request(shared: &Shared, conn: &ConnState, userid: String) -> Reply {
    let login = me(conn)?;
    let requester = target(
        shared,
        &userid,
        (
            ErrorCode::RequestNotFound,
            "no pending friend request from this user",
        ),
    )
    .await?;
    let queue = !shared.hub.is_online(&requester.userid_lower);
    shared
        .store
        .accept_request(login.account_id, requester.id, shared.now_ms(), queue)
        .await
        .map_err(friend_error)?;
    push_or_queue(
        shared,
        (&requester.userid_lower, requester.id),
        NoticeKind::Accepted,
        login.account_id,
        &PushEvent::FriendRequestAccepted(me_as_friend(login)),
        queue,
    )
    .await;
    Ok(ResponseBody::AcceptFriendRequest(friend_info(
        shared,
        &requester.into(),
    )?))
}

/// RefuseFriendRequest (SPEC.md §6.4): REQUEST_NOT_FOUND. The requester is told.
pub async fn refuse_request(shared: &Shared, conn: &ConnState, userid: String) -> Reply {
    let login = me(conn)?;
    let requester = target(
        shared,
        &userid,
        (
            ErrorCode::RequestNotFound,
            "no pending friend request from this user",
        ),
    )
    .await?;
    let queue = !shared.hub.is_online(&requester.userid_lower);
    shared
        .store
        .refuse_request(login.account_id, requester.id, shared.now_ms(), queue)
        .await
        .map_err(friend_error)?;
    push_or_queue(
        shared,
        (&requester.userid_lower, requester.id),
        NoticeKind::Refused,
        login.account_id,
        &PushEvent::FriendRequestRefused {
            userid: login.handle.userid.clone(),
        },
        queue,
    )
    .await;
    Ok(ResponseBody::RefuseFriendRequest)
}

/// Unfriend (SPEC.md §6.5): NOT_FRIENDS (also for unknown users). The other side is told if
/// online; no notice is queued (their next snapshot shows it).
pub async fn unfriend(shared: &Shared, conn: &ConnState, userid: String) -> Reply {
    let login = me(conn)?;
    let other = target(
        shared,
        &userid,
        (ErrorCode::NotFriends, "this user is not your friend"),
    )
    .await?;
    shared
        .store
        .unfriend(login.account_id, other.id)
        .await
        .map_err(friend_error)?;
    // A relay runs only between friends (SPEC.md §7.7 rule 1).
    shared
        .relays
        .close_pair(&login.userid_lower, &other.userid_lower);
    shared.hub.push(
        &other.userid_lower,
        &PushEvent::Unfriended {
            userid: login.handle.userid.clone(),
        },
    );
    Ok(ResponseBody::Unfriend)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::db::accounts::tests::new_account;
    use crate::db::tests::temp_store;
    use crate::hub::{Outbox, SessionHandle};
    use crate::ratelimit::{LoginLimiter, LoginPolicy, RegisterLimiter};

    fn session(account: &account::Model, id: u64) -> (Arc<SessionHandle>, Outbox) {
        let (outbox, rx) = Outbox::new(16);
        std::mem::forget(rx);
        let key = peerchat_proto::test_keys::identity(0).public().clone();
        let h = Arc::new(SessionHandle::new(
            id,
            account.id,
            account.userid.clone(),
            key,
            None,
            outbox.clone(),
            16,
        ));
        (h, outbox)
    }

    /// Issue #10: a requester who went offline between the online check and the push got
    /// neither push nor notice. Alice's session is still in the hub (online) but already
    /// closed — the moment inside end_session between closing the gate and leaving the hub —
    /// when Bob accepts and refuses: each event must end up as a queued notice.
    #[tokio::test]
    async fn requester_leaving_during_the_answer_still_gets_a_notice() {
        let (store, _dir) = temp_store().await;
        let mut a = new_account("alice", "a@x.org");
        a.identity_key = peerchat_proto::test_keys::identity(0)
            .public()
            .to_der()
            .to_vec();
        let alice = store.create_account(a).await.unwrap();
        let bob = store
            .create_account(new_account("bob", "b@x.org"))
            .await
            .unwrap();
        let carol = store
            .create_account(new_account("carol", "c@x.org"))
            .await
            .unwrap();
        let shared = Shared::new(
            store,
            LoginLimiter::new(LoginPolicy::default()),
            RegisterLimiter::new(60, 1),
            Arc::new(crate::config::SystemClock),
            crate::config::Faults::default(),
            std::time::Duration::from_secs(3600),
            16,
        );
        let now = shared.now_ms();
        for target in [&bob, &carol] {
            shared
                .store
                .send_request(&alice, target, now, 3_600_000, |_| true)
                .await
                .unwrap();
        }
        let (alice_session, _a) = session(&alice, 1);
        shared.hub.insert("alice".into(), alice_session.clone());
        alice_session.close();

        for (answerer, id) in [(&bob, 2), (&carol, 3)] {
            let (handle, outbox) = session(answerer, id);
            let conn = ConnState {
                peer_addr: "127.0.0.1:1".parse().unwrap(),
                identity_key: handle.identity_key.clone(),
                outbox,
                login: Some(LoggedIn {
                    account_id: answerer.id,
                    userid_lower: answerer.userid_lower.clone(),
                    handle,
                }),
                finish_login: false,
                notice_ack: None,
            };
            if id == 2 {
                accept_request(&shared, &conn, "alice".into())
                    .await
                    .unwrap();
            } else {
                refuse_request(&shared, &conn, "alice".into())
                    .await
                    .unwrap();
            }
        }
        let notices = shared.store.pending_notices(alice.id).await.unwrap();
        let kinds: Vec<_> = notices.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, [NoticeKind::Accepted, NoticeKind::Refused]);
    }
}
