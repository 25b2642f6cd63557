//! Requests (SPEC.md §5, §6): the connection-state check, then one handler per request in
//! the file of its family — [`auth`] (Register, Login, KeyLogin, ForgotPassword, Logout,
//! ChangePassword),
//! [`friends`] (Find, SendFriendRequest, AcceptFriendRequest, RefuseFriendRequest, Unfriend)
//! [`presence`] (SetPeerEndpoint, and the FriendOnline/FriendOffline fan-out) and
//! [`traversal`] (ConnectPeer). RelayOpen is valid only on a relay connection
//! ([`crate::relay`]).
//!
//! Handlers return the response body or a [`RequestError`]; the connection queues it.

pub mod auth;
pub mod friends;
pub mod presence;
pub mod traversal;

use std::time::Duration;

use peerchat_proto::message::{FriendInfo, PushEvent, Request, RequestError, ResponseBody};
use peerchat_proto::wire::client_message::Body;
use peerchat_proto::wire::ErrorCode;

use crate::db::entity::account;
use crate::db::entity::notice::NoticeKind;
use crate::db::{Contact, DbError};
use crate::state::{ConnState, Shared};

/// A handler's result.
pub type Reply = Result<ResponseBody, RequestError>;

/// Shorthand for an error reply.
pub(crate) fn err(code: ErrorCode, message: impl Into<String>) -> RequestError {
    RequestError::new(code, message)
}

/// RATE_LIMITED with a retry hint of at least 1 ms.
pub(crate) fn rate_limited(wait: Duration) -> RequestError {
    RequestError {
        code: ErrorCode::RateLimited,
        message: "too many attempts; retry later".into(),
        retry_after: Some(wait.max(Duration::from_millis(1))),
    }
}

/// INTERNAL, with the cause logged (never sent: it may name server internals).
pub(crate) fn internal(e: impl std::fmt::Display) -> RequestError {
    tracing::error!(error = %e, "request failed");
    err(ErrorCode::Internal, "internal server error; retry later")
}

impl From<DbError> for RequestError {
    fn from(e: DbError) -> Self {
        internal(e)
    }
}

/// The connection-state check of SPEC.md §4.6 step 6 for a raw request body: Register, Login,
/// KeyLogin and ForgotPassword need Authenticating, every other request LoggedIn.
///
/// # Errors
/// NOT_LOGGED_IN or ALREADY_LOGGED_IN.
pub fn state_check(body: Option<&Body>, logged_in: bool) -> Result<(), RequestError> {
    let (name, needs_login) = match body {
        // Not requests, or not known: handled elsewhere.
        None | Some(Body::Ping(_) | Body::Pong(_) | Body::Close(_)) => return Ok(()),
        Some(Body::Register(_)) => ("Register", false),
        Some(Body::Login(_)) => ("Login", false),
        Some(Body::KeyLogin(_)) => ("KeyLogin", false),
        Some(Body::ForgotPassword(_)) => ("ForgotPassword", false),
        Some(Body::Logout(_)) => ("Logout", true),
        Some(Body::ChangePassword(_)) => ("ChangePassword", true),
        Some(Body::Find(_)) => ("Find", true),
        Some(Body::SendFriendRequest(_)) => ("SendFriendRequest", true),
        Some(Body::AcceptFriendRequest(_)) => ("AcceptFriendRequest", true),
        Some(Body::RefuseFriendRequest(_)) => ("RefuseFriendRequest", true),
        Some(Body::Unfriend(_)) => ("Unfriend", true),
        Some(Body::SetPeerEndpoint(_)) => ("SetPeerEndpoint", true),
        Some(Body::ConnectPeer(_)) => ("ConnectPeer", true),
        // Valid only as the first frame of a relay connection (SPEC.md §7.7); on a
        // client-server connection it is answered INVALID_REQUEST by dispatch.
        Some(Body::RelayOpen(_)) => return Ok(()),
    };
    match (needs_login, logged_in) {
        (true, false) => Err(err(
            ErrorCode::NotLoggedIn,
            format!("{name} needs a logged-in session"),
        )),
        (false, true) => Err(err(
            ErrorCode::AlreadyLoggedIn,
            format!("{name} is not allowed while logged in"),
        )),
        _ => Ok(()),
    }
}

/// Runs `request` for the connection `conn`, after checking that the connection's state
/// allows it (SPEC.md §4.6: NOT_LOGGED_IN / ALREADY_LOGGED_IN).
pub async fn dispatch(shared: &Shared, conn: &mut ConnState, request: Request) -> Reply {
    let logged_in = conn.login.is_some();
    if let Request::RelayOpen { .. } = request {
        return Err(err(
            ErrorCode::InvalidRequest,
            "RelayOpen is valid only on a relay connection (SPEC.md §7.7)",
        ));
    }
    let needs_login = !matches!(
        request,
        Request::Register { .. }
            | Request::Login { .. }
            | Request::KeyLogin { .. }
            | Request::ForgotPassword { .. }
    );
    if needs_login && !logged_in {
        return Err(err(
            ErrorCode::NotLoggedIn,
            format!("{} needs a logged-in session", request.name()),
        ));
    }
    if !needs_login && logged_in {
        return Err(err(
            ErrorCode::AlreadyLoggedIn,
            format!("{} is not allowed while logged in", request.name()),
        ));
    }
    match request {
        Request::Register {
            userid,
            email,
            password,
        } => auth::register(shared, conn, userid, email, password).await,
        Request::Login {
            userid,
            password,
            endpoint,
            announcement,
        } => auth::login(shared, conn, userid, Some(password), endpoint, announcement).await,
        Request::KeyLogin {
            userid,
            endpoint,
            announcement,
        } => auth::login(shared, conn, userid, None, endpoint, announcement).await,
        Request::ForgotPassword {
            userid,
            email,
            recovery_code,
            new_password,
        } => auth::forgot_password(shared, conn, userid, email, recovery_code, new_password).await,
        Request::Logout => auth::logout(shared, conn).await,
        Request::ChangePassword {
            old_password,
            new_password,
        } => auth::change_password(shared, conn, old_password, new_password).await,
        Request::Find { userid } => friends::find(shared, userid).await,
        Request::SendFriendRequest { userid } => friends::send_request(shared, conn, userid).await,
        Request::AcceptFriendRequest { userid } => {
            friends::accept_request(shared, conn, userid).await
        }
        Request::RefuseFriendRequest { userid } => {
            friends::refuse_request(shared, conn, userid).await
        }
        Request::Unfriend { userid } => friends::unfriend(shared, conn, userid).await,
        Request::SetPeerEndpoint {
            endpoint,
            announcement,
        } => presence::set_peer_endpoint(shared, conn, endpoint, announcement).await,
        Request::ConnectPeer { userid, mode } => {
            traversal::connect_peer(shared, conn, userid, mode).await
        }
        Request::RelayOpen { .. } => Err(err(
            ErrorCode::InvalidRequest,
            "RelayOpen is valid only on a relay connection (SPEC.md §7.7)",
        )),
    }
}

/// Delivers an event that SPEC.md §6.9 queues for an offline recipient
/// (FriendRequestAccepted, FriendRequestRefused, FriendRequestExpired): pushed if the
/// recipient's session takes it, else stored as a notice for its next login.
///
/// `queued` says the request's own transaction already stored the notice (the recipient was
/// offline when it ran). Otherwise a push that cannot be enqueued — the session ended between
/// that online check and now — is stored here, so a recipient who goes offline in between
/// gets the notice instead of nothing.
pub(crate) async fn push_or_queue(
    shared: &Shared,
    to: (&str, i64),
    kind: NoticeKind,
    other_id: i64,
    event: &PushEvent,
    queued: bool,
) {
    let (to_lower, to_id) = to;
    // On another node, the receiving node stores the notice if the session ended meanwhile.
    let notice = (!queued).then_some(crate::cluster::QueuedNotice {
        to_id,
        kind,
        other_id,
    });
    if shared.hub.push_or_notice(to_lower, event, notice) || queued {
        return;
    }
    tracing::debug!(to = %to_lower, ?kind, "recipient went offline before the push; queueing a notice");
    if let Err(e) = shared
        .store
        .queue_notice(to_id, kind, other_id, shared.now_ms())
        .await
    {
        tracing::error!(error = %e, "could not queue a notice for a missed push");
    }
}

/// Looks up an account by a userid as typed; a userid that breaks the syntax rules names
/// nobody (no database query).
pub(crate) async fn lookup(
    shared: &Shared,
    userid: &str,
) -> Result<Option<account::Model>, DbError> {
    if crate::validate::userid(userid).is_err() {
        return Ok(None);
    }
    shared
        .store
        .account_by_userid(&crate::validate::fold(userid))
        .await
}

/// What KeyLogin needs of the account a userid as typed names (memory first where the
/// server keeps the account cache); like [`lookup`], a malformed userid names nobody.
pub(crate) async fn lookup_for_key_login(
    shared: &Shared,
    userid: &str,
) -> Result<Option<crate::db::key_cache::KeyLoginAccount>, DbError> {
    if crate::validate::userid(userid).is_err() {
        return Ok(None);
    }
    shared
        .store
        .key_login_account(&crate::validate::fold(userid))
        .await
}

/// `account` as a Friend entry: presence and endpoint from the hub, key as parsed when the
/// account was read (SPEC.md §6: only friends ever receive this).
///
/// # Errors
/// [`DbError::Corrupt`] when the stored key did not parse.
pub(crate) fn friend_info(shared: &Shared, account: &Contact) -> Result<FriendInfo, DbError> {
    let identity_key = account
        .identity_key
        .clone()
        .map_err(|e| DbError::Corrupt(e.to_string()))?;
    if let Some(s) = shared.hub.get(&account.userid_lower) {
        return Ok(FriendInfo {
            userid: account.userid.clone(),
            online: true,
            endpoint: s.endpoint(),
            candidates: s.candidates(),
            identity_key,
        });
    }
    // On another node of the cluster: as its last FriendOnline described it.
    let (online, endpoint, candidates) = match shared.hub.remote_presence(&account.userid_lower) {
        Some(PushEvent::FriendOnline {
            endpoint,
            candidates,
            ..
        }) => (true, endpoint, candidates),
        _ => (false, None, Vec::new()),
    };
    Ok(FriendInfo {
        userid: account.userid.clone(),
        online,
        endpoint,
        candidates,
        identity_key,
    })
}
