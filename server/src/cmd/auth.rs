//! Account requests (SPEC.md §5): Register, Login, KeyLogin, ForgotPassword, Logout,
//! ChangePassword.

use std::sync::Arc;
use std::time::Instant;

use peerchat_proto::limits::PASSWORD_MAX_BYTES;
use peerchat_proto::message::{
    Announcement, Endpoint, LoginSnapshot, PendingRequest, PushEvent, ResponseBody, Secret,
    ServerFrame,
};
use peerchat_proto::wire::{CloseReason, ErrorCode};

use super::{
    err, friend_info, internal, lookup, lookup_for_key_login, presence, rate_limited, Reply,
};
use crate::db::entity::notice::NoticeKind;
use crate::db::key_cache::{key_digest, KeyLoginAccount};
use crate::db::{NewAccount, PendingView, RegisterConflict};
use crate::hub::{SessionHandle, Stop};
use crate::state::{ConnState, LoggedIn, NoticeAck, Shared};
use crate::{recovery, validate};

fn pending(v: PendingView) -> PendingRequest {
    PendingRequest {
        userid: v.userid,
        created_at_unix_ms: v.created_at_ms,
        expires_at_unix_ms: v.expires_at_ms,
    }
}

/// Register (SPEC.md §5.2): checks in the order RATE_LIMITED (per address), INVALID_USERID, INVALID_EMAIL, WEAK_PASSWORD,
/// USERID_TAKEN, EMAIL_TAKEN. The identity key is the one the channel proved. Does not log in.
pub async fn register(
    shared: &Shared,
    conn: &ConnState,
    userid: String,
    email: String,
    password: Secret,
) -> Reply {
    // Before any work, whatever the outcome: one address cannot mint accounts (and argon2
    // hashes) as fast as it can send (SPEC.md §5.2 error 2).
    shared
        .register_limits
        .try_take(conn.peer_addr.ip(), Instant::now())
        .map_err(rate_limited)?;
    validate::userid(&userid).map_err(|e| err(e.code(), e.to_string()))?;
    validate::email(&email).map_err(|e| err(e.code(), e.to_string()))?;
    validate::password(password.expose(), &userid).map_err(|e| err(e.code(), e.to_string()))?;
    let conflict = |c: RegisterConflict| match c {
        RegisterConflict::UseridTaken => err(ErrorCode::UseridTaken, "this userid is taken"),
        RegisterConflict::EmailTaken => err(
            ErrorCode::EmailTaken,
            "this e-mail address is already registered",
        ),
        RegisterConflict::Db(e) => internal(e),
    };
    // Cheap uniqueness check first, so a taken name costs no hashing.
    shared
        .store
        .check_register(&validate::fold(&userid), &validate::fold(&email))
        .await
        .map_err(conflict)?;
    let code = recovery::generate();
    let canonical = recovery::normalize(&code)
        .ok_or_else(|| internal("generated recovery code does not normalise"))?;
    let password_hash = shared.hasher.hash(&password).await.map_err(internal)?;
    let recovery_hash = shared
        .hasher
        .hash(&Secret(canonical))
        .await
        .map_err(internal)?;
    let account = shared
        .store
        .create_account(NewAccount {
            userid,
            email,
            password_hash,
            recovery_hash,
            identity_key: conn.identity_key.to_der().to_vec(),
            created_at_ms: shared.now_ms(),
        })
        .await
        .map_err(conflict)?;
    tracing::info!(userid = %account.userid, peer = %conn.peer_addr, "account registered");
    Ok(ResponseBody::Register {
        recovery_code: code,
    })
}

/// Login (`password` set, SPEC.md §5.3) and KeyLogin (`password` None, §5.4).
///
/// Order: RATE_LIMITED (login-failure limits), BAD_CREDENTIALS. On success: a password login
/// from a new key replaces the account key and tells online friends FriendKeyChanged; an
/// existing session of the account is closed with SESSION_REPLACED; online friends get
/// FriendOnline; the reply is the LoginOk snapshot. Queued notices follow in
/// [`finish_login`], after the connection has queued LoginOk.
pub async fn login(
    shared: &Shared,
    conn: &mut ConnState,
    userid: String,
    password: Option<Secret>,
    endpoint: Option<Endpoint>,
    announcement: Announcement,
) -> Reply {
    let lower = validate::fold(&userid);
    // Password failures count against the userid only if it could name an account; KeyLogin
    // failures count per source address only: a wrong key proves nothing about the password
    // and costs no argon2, so strangers cannot lock the owner out with it (SPEC.md §5.1.7).
    let account_key =
        (password.is_some() && validate::userid(&userid).is_ok()).then_some(lower.as_str());
    let ip = conn.peer_addr.ip();
    // The slot is taken before any work, so concurrent guesses see each other.
    let attempt = shared
        .login_limits
        .reserve(account_key, ip, Instant::now())
        .map_err(rate_limited)?;
    let cluster_attempt = reserve_shared(shared, account_key, ip).await?;
    let channel_key = conn.identity_key.to_der();
    let channel_digest = key_digest(&channel_key);
    let (account, ok) = match &password {
        // Unknown user: verify against a dummy hash anyway, so timing reveals nothing.
        // A password over the length limit never matches; it still costs one verification.
        Some(pw) => {
            let account = lookup(shared, &userid).await?;
            let phc = account
                .as_ref()
                .filter(|_| pw.expose().len() <= PASSWORD_MAX_BYTES)
                .map(|a| a.password_hash.as_str());
            let ok = shared.hasher.verify(pw, phc).await.map_err(internal)?;
            let account = account.map(|a| KeyLoginAccount {
                id: a.id,
                key: key_digest(&a.identity_key),
                userid: a.userid,
            });
            (account, ok)
        }
        // KeyLogin: from the account cache where this server keeps one (db::key_cache).
        None => {
            let account = lookup_for_key_login(shared, &userid).await?;
            let ok = account
                .as_ref()
                .is_some_and(|a| a.key == channel_digest || shared.faults.accept_any_key_login());
            (account, ok)
        }
    };
    let Some(account) = account.filter(|_| ok) else {
        attempt.failed(Instant::now());
        if let Some(a) = cluster_attempt {
            a.failed(wall_ms()).await;
        }
        tracing::info!(peer = %conn.peer_addr, key_login = password.is_none(), "login failed");
        return Err(err(
            ErrorCode::BadCredentials,
            "unknown userid or wrong credentials",
        ));
    };
    attempt.succeeded();
    if let Some(a) = cluster_attempt {
        a.succeeded().await;
    }

    let key_changed = password.is_some() && account.key != channel_digest;
    if key_changed {
        shared
            .store
            .set_identity_key(account.id, channel_key.to_vec())
            .await?;
        tracing::info!(userid = %account.userid, fingerprint = %conn.identity_key.fingerprint(), "identity key replaced by password login");
    }

    let endpoint = endpoint.map(|e| presence::effective(e, ip));
    let handle = Arc::new(SessionHandle::new(
        shared.next_session_id(),
        account.id,
        account.userid.clone(),
        conn.identity_key.clone(),
        endpoint,
        conn.outbox.clone(),
        shared.outbound_queue,
    ));
    handle.set_candidates(presence::candidate_list(
        &announcement,
        presence::observed(conn),
    ));
    // The session becomes visible before the snapshot is read: a change made meanwhile by
    // another connection is then pushed (held until LoginOk is out), so nothing falls between
    // snapshot and pushes (SPEC.md §4.6 rule 5). Of two friends logging in at once, at least
    // one sees the other online.
    if let Some(old) = shared.hub.insert(lower.clone(), Arc::clone(&handle)) {
        old.stop(Stop::Close(
            CloseReason::SessionReplaced,
            "this account logged in on another connection".into(),
        ));
    }
    let now = shared.now_ms();
    // Friends and pending requests: from memory where this server keeps the account's view
    // (db::key_cache), so a KeyLogin of a cached account makes no database round trip.
    let view = match shared.store.login_view(account.id).await {
        Ok(v) => v,
        Err(e) => {
            // Nobody has been told anything yet: withdraw the session and stay Authenticating.
            handle.close();
            shared.hub.remove_if_current(&lower, handle.session_id);
            return Err(internal(e));
        }
    };
    conn.login = Some(LoggedIn {
        account_id: account.id,
        userid_lower: lower,
        handle: Arc::clone(&handle),
    });
    conn.finish_login = true;

    if key_changed {
        let ev = PushEvent::FriendKeyChanged {
            userid: account.userid.clone(),
            identity_key: conn.identity_key.clone(),
        };
        shared
            .hub
            .push_many(view.friends.iter().map(|f| f.userid_lower.as_str()), &ev);
    }
    presence::announce_online(
        shared,
        &handle,
        view.friends.iter().map(|f| f.userid_lower.as_str()),
    );

    let snapshot = LoginSnapshot {
        userid: account.userid.clone(),
        friends: view
            .friends
            .iter()
            .filter_map(|f| {
                friend_info(shared, f)
                    .map_err(|e| tracing::error!(error = %e, "friend left out of LoginOk"))
                    .ok()
            })
            .collect(),
        incoming: view.incoming(now).cloned().map(pending).collect(),
        outgoing: view.outgoing(now).cloned().map(pending).collect(),
        endpoint,
        server_time_unix_ms: now,
        observed: Some(presence::observed(conn)),
    };
    tracing::info!(userid = %account.userid, peer = %conn.peer_addr, key_login = password.is_none(), "logged in");
    Ok(ResponseBody::Login(snapshot))
}

/// Nonces of the Pings that follow queued notices: the top bit set keeps them apart from the
/// idle Pings' counter.
const NOTICE_PING: u64 = 1 << 63;

/// After LoginOk is queued: delivers the notices stored while the user was offline, oldest
/// first, then a Ping, then lets held pushes through (SPEC.md §6.9). The notices stay stored
/// until the Pong to that Ping arrives ([`acknowledge_notices`]): a client that drops right
/// after LoginOk gets them again at its next login.
///
/// Notices and friendships come from the account's cached view when the server holds one:
/// read now, it is what the database holds now (db::key_cache), so the common case, no
/// notices, costs no database round trip.
pub async fn finish_login(shared: &Shared, conn: &mut ConnState) {
    conn.finish_login = false;
    let Some(login) = conn.login.clone() else {
        return;
    };
    let view = shared
        .store
        .cached_login_view(login.account_id)
        .filter(|v| v.notices.is_some());
    let notices = match view.as_ref().and_then(|v| v.notices.as_ref()) {
        Some(cached) => Ok(cached.clone()),
        None => shared.store.pending_notices(login.account_id).await,
    };
    match notices {
        Ok(notices) if !notices.is_empty() => {
            let mut ids = Vec::with_capacity(notices.len());
            for n in notices {
                // Delivered or discarded, it goes once acknowledged.
                ids.push(n.id);
                let ev = match n.kind {
                    NoticeKind::Accepted => {
                        // A friendship ended since is not announced: the snapshot already lacks it.
                        let friends = match &view {
                            Some(v) => Ok(v.is_friend(n.other.id)),
                            None => shared.store.are_friends(login.account_id, n.other.id).await,
                        };
                        match friends {
                            Ok(true) => match friend_info(shared, &n.other) {
                                Ok(f) => PushEvent::FriendRequestAccepted(f),
                                Err(e) => {
                                    tracing::error!(error = %e, "skipping notice");
                                    continue;
                                }
                            },
                            Ok(false) => continue,
                            Err(e) => {
                                tracing::error!(error = %e, "skipping notice");
                                ids.pop();
                                continue;
                            }
                        }
                    }
                    NoticeKind::Refused => PushEvent::FriendRequestRefused {
                        userid: n.other.userid,
                    },
                    NoticeKind::Expired => PushEvent::FriendRequestExpired {
                        userid: n.other.userid,
                    },
                };
                conn.outbox.send_frame(&ServerFrame::Push(ev));
            }
            let nonce = NOTICE_PING | (login.handle.session_id & !NOTICE_PING);
            conn.outbox.send_frame(&ServerFrame::Ping(nonce));
            conn.notice_ack = Some(NoticeAck {
                nonce,
                account_id: login.account_id,
                ids,
            });
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not load queued notices"),
    }
    login.handle.open();
}

/// A Pong arrived: if it answers the Ping that followed the queued notices, the client has
/// read them (frames are processed in order), so they are deleted (SPEC.md §6.9).
pub async fn acknowledge_notices(shared: &Shared, conn: &mut ConnState, nonce: u64) {
    if conn.notice_ack.as_ref().is_none_or(|a| a.nonce != nonce) {
        return;
    }
    let Some(ack) = conn.notice_ack.take() else {
        return;
    };
    if let Err(e) = shared.store.delete_notices(ack.account_id, &ack.ids).await {
        // They are delivered again at the next login: repeated notices are harmless.
        tracing::error!(error = %e, "could not delete acknowledged notices");
    }
}

/// ForgotPassword (SPEC.md §5.5): WEAK_PASSWORD first (cheap), then RATE_LIMITED, then
/// RESET_REFUSED when userid, e-mail and code do not all match one account.
pub async fn forgot_password(
    shared: &Shared,
    conn: &ConnState,
    userid: String,
    email: String,
    code: Secret,
    new_password: Secret,
) -> Reply {
    validate::password(new_password.expose(), &userid).map_err(|e| err(e.code(), e.to_string()))?;
    let lower = validate::fold(&userid);
    let account_key = validate::userid(&userid).is_ok().then_some(lower.as_str());
    let ip = conn.peer_addr.ip();
    let attempt = shared
        .login_limits
        .reserve(account_key, ip, Instant::now())
        .map_err(rate_limited)?;
    let cluster_attempt = reserve_shared(shared, account_key, ip).await?;
    let account = lookup(shared, &userid)
        .await?
        .filter(|a| a.email_lower == validate::fold(&email));
    let canonical = recovery::normalize(code.expose());
    // Always one argon2 verification, whatever was wrong, so the three cases look alike.
    let (secret, phc) = match (&account, canonical) {
        (Some(a), Some(c)) => (Secret(c), Some(a.recovery_hash.as_str())),
        (_, c) => (Secret(c.unwrap_or_default()), None),
    };
    let ok = shared.hasher.verify(&secret, phc).await.map_err(internal)?;
    let Some(account) = account.filter(|_| ok) else {
        attempt.failed(Instant::now());
        if let Some(a) = cluster_attempt {
            a.failed(wall_ms()).await;
        }
        return Err(err(
            ErrorCode::ResetRefused,
            "userid, e-mail address and recovery code do not match",
        ));
    };
    attempt.succeeded();
    if let Some(a) = cluster_attempt {
        a.succeeded().await;
    }
    let new_code = recovery::generate();
    let canonical = recovery::normalize(&new_code)
        .ok_or_else(|| internal("generated recovery code does not normalise"))?;
    let password_hash = shared.hasher.hash(&new_password).await.map_err(internal)?;
    let recovery_hash = shared
        .hasher
        .hash(&Secret(canonical))
        .await
        .map_err(internal)?;
    shared
        .store
        .reset_password(account.id, password_hash, recovery_hash)
        .await?;
    tracing::info!(userid = %account.userid, "password reset with recovery code");
    Ok(ResponseBody::ForgotPassword {
        recovery_code: new_code,
    })
}

/// ChangePassword (SPEC.md §5.7): WEAK_PASSWORD first (cheap), then RATE_LIMITED (the
/// login-failure limits, account key = the session's userid), then BAD_CREDENTIALS when the
/// old password does not verify. Only the password hash changes: the session, the identity
/// key and the recovery code stay.
pub async fn change_password(
    shared: &Shared,
    conn: &ConnState,
    old_password: Secret,
    new_password: Secret,
) -> Reply {
    let Some(login) = conn.login.as_ref() else {
        return Err(err(
            ErrorCode::NotLoggedIn,
            "ChangePassword needs a logged-in session",
        ));
    };
    validate::password(new_password.expose(), &login.handle.userid)
        .map_err(|e| err(e.code(), e.to_string()))?;
    let lower = login.userid_lower.as_str();
    let ip = conn.peer_addr.ip();
    // A stolen session must not become an unlimited password oracle: same counters as Login.
    let attempt = shared
        .login_limits
        .reserve(Some(lower), ip, Instant::now())
        .map_err(rate_limited)?;
    let cluster_attempt = reserve_shared(shared, Some(lower), ip).await?;
    // Read afresh: a password login elsewhere may have replaced this session meanwhile, and
    // the hash must be the one stored now.
    let account = shared.store.account_by_id(login.account_id).await?;
    let phc = account
        .as_ref()
        .filter(|_| old_password.expose().len() <= PASSWORD_MAX_BYTES)
        .map(|a| a.password_hash.as_str());
    let ok = shared
        .hasher
        .verify(&old_password, phc)
        .await
        .map_err(internal)?
        || shared.faults.change_password_unchecked();
    let Some(account) = account.filter(|_| ok) else {
        attempt.failed(Instant::now());
        if let Some(a) = cluster_attempt {
            a.failed(wall_ms()).await;
        }
        tracing::info!(userid = %login.handle.userid, peer = %conn.peer_addr, "password change refused: wrong old password");
        return Err(err(
            ErrorCode::BadCredentials,
            "the current password is wrong",
        ));
    };
    // An error from here on is no failure for §5.1.7: the reservations are refunded when
    // they drop unsettled (rule 5).
    let password_hash = shared.hasher.hash(&new_password).await.map_err(internal)?;
    shared.store.set_password(account.id, password_hash).await?;
    attempt.succeeded();
    if let Some(a) = cluster_attempt {
        a.succeeded().await;
    }
    tracing::info!(userid = %account.userid, peer = %conn.peer_addr, "password changed");
    Ok(ResponseBody::ChangePassword)
}

/// Logout (SPEC.md §5.6): friends get FriendOffline; the connection returns to
/// Authenticating.
pub async fn logout(shared: &Shared, conn: &mut ConnState) -> Reply {
    if let Some(login) = conn.login.take() {
        end_session(shared, &login).await;
        tracing::info!(userid = %login.handle.userid, "logged out");
    }
    Ok(ResponseBody::Logout)
}

/// Ends a session (logout or disconnect): stops pushes and, unless the session was already
/// replaced by a newer login, removes it from the hub and tells friends FriendOffline.
pub async fn end_session(shared: &Shared, login: &LoggedIn) {
    login.handle.close();
    // Relay links live only as long as the session they were opened under (SPEC.md §7.7).
    shared.relays.close_session(login.handle.session_id);
    if shared
        .hub
        .remove_if_current(&login.userid_lower, login.handle.session_id)
    {
        presence::announce_offline(shared, login).await;
    }
}

/// Wall-clock Unix ms: the shared limiter's marks are compared across machines.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// In a cluster, the reservation in the limits every node shares (SPEC.md §5.1.7, §6.11),
/// taken after this node's own; `None` on a single server.
async fn reserve_shared(
    shared: &Shared,
    account: Option<&str>,
    ip: std::net::IpAddr,
) -> Result<Option<crate::cluster::limits::SharedAttempt>, peerchat_proto::message::RequestError> {
    let Some(limits) = &shared.shared_limits else {
        return Ok(None);
    };
    match limits.reserve(account, ip, wall_ms()).await {
        Ok(Ok(a)) => Ok(Some(a)),
        Ok(Err(wait)) => Err(rate_limited(wait)),
        Err(e) => Err(internal(e)),
    }
}
