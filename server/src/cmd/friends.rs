//! The friend graph (SPEC.md §6.1–§6.5): Find, SendFriendRequest, AcceptFriendRequest,
//! RefuseFriendRequest, Unfriend.
//!
//! The rules and their transactions live in [`crate::db::friends`]; these handlers resolve
//! userids, pick the error codes and push to the other user when they are online (or let
//! the store queue a notice when they are not).

use peerchat_proto::message::{FriendInfo, PendingRequest, PushEvent, ResponseBody};
use peerchat_proto::wire::ErrorCode;

use super::{err, friend_info, internal, lookup, Reply};
use crate::db::entity::account;
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
    if shared.faults.find_reveals_nothing {
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
    let (outcome, expired) = shared
        .store
        .send_request(&caller, &target, now, ttl, |u| shared.hub.is_online(u))
        .await
        .map_err(friend_error)?;
    for e in &expired {
        shared.hub.push(
            &e.requester_lower,
            &PushEvent::FriendRequestExpired {
                userid: e.target_userid.clone(),
            },
        );
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
            shared.hub.push(
                &target.userid_lower,
                &PushEvent::FriendRequestAccepted(me_as_friend(login)),
            );
            Ok(ResponseBody::SendFriendRequest {
                friend: Some(friend_info(shared, &target)?),
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
    shared.hub.push(
        &requester.userid_lower,
        &PushEvent::FriendRequestAccepted(me_as_friend(login)),
    );
    Ok(ResponseBody::AcceptFriendRequest(friend_info(
        shared, &requester,
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
    shared.hub.push(
        &requester.userid_lower,
        &PushEvent::FriendRequestRefused {
            userid: login.handle.userid.clone(),
        },
    );
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
