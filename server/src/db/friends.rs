//! The friend graph (SPEC.md §6.2–§6.7): friendships, pending requests and their expiry.
//!
//! A request whose expiry has passed is treated as absent by every rule here even before the
//! sweeper ([`Store::expire_requests`]) deletes it, so answers never depend on sweep timing.

use peerchat_proto::limits::{MAX_FRIENDS, MAX_PENDING_INCOMING, MAX_PENDING_OUTGOING};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, Condition, ConnectionTrait, EntityTrait as _,
    JoinType, ModelTrait as _, PaginatorTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, RelationTrait as _, Set, TransactionTrait as _,
};

use super::entity::notice::NoticeKind;
use super::entity::{account, friend_request, friendship, notice};
use super::{ms, unix_ms, DbError, Store};

/// A pending request as listed in LoginOk (SPEC.md §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingView {
    /// The other user's registered spelling.
    pub userid: String,
    /// Sent at, Unix ms.
    pub created_at_ms: u64,
    /// Expires at, Unix ms.
    pub expires_at_ms: u64,
}

/// What SendFriendRequest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The request is stored and pending.
    Pending {
        /// Sent at, Unix ms.
        created_at_ms: u64,
        /// Expires at, Unix ms.
        expires_at_ms: u64,
    },
    /// The target had already asked the caller: they are friends now (SPEC.md §6.2).
    BecameFriends,
}

/// A friend-graph rule the request breaks (each maps to one error code), or a database error.
#[derive(Debug, thiserror::Error)]
pub enum FriendError {
    /// ALREADY_FRIENDS.
    #[error("already friends")]
    AlreadyFriends,
    /// DUPLICATE_REQUEST.
    #[error("a request to this user is already pending")]
    DuplicateRequest,
    /// LIMIT_EXCEEDED.
    #[error("{0}")]
    LimitExceeded(&'static str),
    /// REQUEST_NOT_FOUND.
    #[error("no pending request from this user")]
    RequestNotFound,
    /// NOT_FRIENDS.
    #[error("not friends")]
    NotFriends,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sea_orm::DbErr> for FriendError {
    fn from(e: sea_orm::DbErr) -> Self {
        FriendError::Db(e.into())
    }
}

/// A request removed by the sweeper.
#[derive(Debug, Clone)]
pub struct ExpiredRequest {
    /// The requester's account id (to queue a notice if the push cannot be delivered).
    pub requester_id: i64,
    /// The target's account id.
    pub target_id: i64,
    /// The requester's lowercase userid (the hub key).
    pub requester_lower: String,
    /// The target's registered spelling (what FriendRequestExpired names).
    pub target_userid: String,
    /// Whether a notice was queued because the requester was offline.
    pub queued: bool,
}

async fn friend_count<C: ConnectionTrait>(c: &C, id: i64) -> Result<u64, sea_orm::DbErr> {
    friendship::Entity::find()
        .filter(
            Condition::any()
                .add(friendship::Column::UserA.eq(id))
                .add(friendship::Column::UserB.eq(id)),
        )
        .count(c)
        .await
}

async fn friendship_row<C: ConnectionTrait>(
    c: &C,
    x: i64,
    y: i64,
) -> Result<Option<friendship::Model>, sea_orm::DbErr> {
    let (a, b) = friendship::ordered(x, y);
    friendship::Entity::find_by_id((a, b)).one(c).await
}

async fn request_row<C: ConnectionTrait>(
    c: &C,
    from: i64,
    to: i64,
) -> Result<Option<friend_request::Model>, sea_orm::DbErr> {
    friend_request::Entity::find()
        .filter(friend_request::Column::FromId.eq(from))
        .filter(friend_request::Column::ToId.eq(to))
        .one(c)
        .await
}

async fn check_friend_limits<C: ConnectionTrait>(c: &C, x: i64, y: i64) -> Result<(), FriendError> {
    if friend_count(c, x).await? >= MAX_FRIENDS as u64
        || friend_count(c, y).await? >= MAX_FRIENDS as u64
    {
        return Err(FriendError::LimitExceeded(
            "one of you already has the maximum number of friends",
        ));
    }
    Ok(())
}

async fn insert_friendship<C: ConnectionTrait>(
    c: &C,
    x: i64,
    y: i64,
    now: u64,
) -> Result<(), sea_orm::DbErr> {
    let (a, b) = friendship::ordered(x, y);
    friendship::ActiveModel {
        user_a: Set(a),
        user_b: Set(b),
        created_at_ms: Set(ms(now)),
    }
    .insert(c)
    .await?;
    Ok(())
}

pub(super) async fn insert_notice<C: ConnectionTrait>(
    c: &C,
    to: i64,
    kind: NoticeKind,
    other: i64,
    now: u64,
) -> Result<(), sea_orm::DbErr> {
    notice::ActiveModel {
        account_id: Set(to),
        kind: Set(kind.as_str().to_owned()),
        other_id: Set(other),
        created_at_ms: Set(ms(now)),
        ..Default::default()
    }
    .insert(c)
    .await?;
    Ok(())
}

impl Store {
    /// Every friend of account `id`, sorted by lowercase userid (SPEC.md §5.3).
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn friends_of(&self, id: i64) -> Result<Vec<account::Model>, DbError> {
        let rows = friendship::Entity::find()
            .filter(
                Condition::any()
                    .add(friendship::Column::UserA.eq(id))
                    .add(friendship::Column::UserB.eq(id)),
            )
            .all(self.conn())
            .await?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|f| if f.user_a == id { f.user_b } else { f.user_a })
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(account::Entity::find()
            .filter(account::Column::Id.is_in(ids))
            .order_by_asc(account::Column::UseridLower)
            .all(self.conn())
            .await?)
    }

    /// Whether `x` and `y` are friends.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn are_friends(&self, x: i64, y: i64) -> Result<bool, DbError> {
        Ok(friendship_row(self.conn(), x, y).await?.is_some())
    }

    /// Requests sent to (`incoming`) or by account `id`, oldest first: those still pending
    /// at `now`, or every stored one when `now` is `None` (a [`super::LoginView`] filters
    /// when it is used).
    pub(super) async fn requests(
        &self,
        id: i64,
        now: Option<u64>,
        incoming: bool,
    ) -> Result<Vec<PendingView>, DbError> {
        let (mine, other) = if incoming {
            (friend_request::Column::ToId, friend_request::Relation::From)
        } else {
            (friend_request::Column::FromId, friend_request::Relation::To)
        };
        let mut query = friend_request::Entity::find().filter(mine.eq(id));
        if let Some(now) = now {
            query = query.filter(friend_request::Column::ExpiresAtMs.gt(ms(now)));
        }
        let rows = query
            .select_also(account::Entity)
            .join(JoinType::LeftJoin, other.def())
            .order_by_asc(friend_request::Column::CreatedAtMs)
            .order_by_asc(account::Column::UseridLower)
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(r, acc)| {
                acc.map(|a| PendingView {
                    userid: a.userid,
                    created_at_ms: unix_ms(r.created_at_ms),
                    expires_at_ms: unix_ms(r.expires_at_ms),
                })
            })
            .collect())
    }

    /// Unexpired requests sent to `id`, oldest first.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn incoming_requests(&self, id: i64, now: u64) -> Result<Vec<PendingView>, DbError> {
        self.requests(id, Some(now), true).await
    }

    /// Unexpired requests sent by `id`, oldest first.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn outgoing_requests(&self, id: i64, now: u64) -> Result<Vec<PendingView>, DbError> {
        self.requests(id, Some(now), false).await
    }

    /// SendFriendRequest from `from` to `to` (distinct, existing accounts), with the checks
    /// of SPEC.md §6.2 from ALREADY_FRIENDS on, in order. If `to` already asked `from`, the two
    /// become friends (and `to` gets an "accepted" notice if `is_online` says it is offline).
    ///
    /// Expired requests between the two that the sweeper has not removed yet are removed here
    /// first, in the same transaction, with their requesters notified (SPEC.md §6.7 rule 5):
    /// the returned list names those whose requester is online and must be pushed to.
    ///
    /// # Errors
    /// [`FriendError`].
    pub async fn send_request(
        &self,
        from: &account::Model,
        to: &account::Model,
        now: u64,
        ttl_ms: u64,
        is_online: impl Fn(&str) -> bool,
    ) -> Result<(SendOutcome, Vec<ExpiredRequest>), FriendError> {
        let _w = self.writer().await;
        // Every row this writes (requests, friendship, notices) belongs to one of the two.
        let _cached = self.cache_write(vec![from.id, to.id]);
        let txn = self.conn().begin().await?;
        if friendship_row(&txn, from.id, to.id).await?.is_some() {
            return Err(FriendError::AlreadyFriends);
        }
        let pending = |r: &friend_request::Model| unix_ms(r.expires_at_ms) > now;
        let forward = request_row(&txn, from.id, to.id).await?;
        let reverse = request_row(&txn, to.id, from.id).await?;
        if forward.as_ref().is_some_and(pending) {
            return Err(FriendError::DuplicateRequest);
        }
        let crossing = reverse.as_ref().is_some_and(pending);
        if crossing {
            check_friend_limits(&txn, from.id, to.id).await?;
        } else {
            let outgoing = friend_request::Entity::find()
                .filter(friend_request::Column::FromId.eq(from.id))
                .filter(friend_request::Column::ExpiresAtMs.gt(ms(now)))
                .count(&txn)
                .await?;
            if outgoing >= MAX_PENDING_OUTGOING as u64 {
                return Err(FriendError::LimitExceeded(
                    "you have too many pending friend requests",
                ));
            }
            check_friend_limits(&txn, from.id, to.id).await?;
            let incoming = friend_request::Entity::find()
                .filter(friend_request::Column::ToId.eq(to.id))
                .filter(friend_request::Column::ExpiresAtMs.gt(ms(now)))
                .count(&txn)
                .await?;
            if incoming >= MAX_PENDING_INCOMING as u64 {
                return Err(FriendError::LimitExceeded(
                    "this user has too many pending friend requests",
                ));
            }
        }
        let mut expired = Vec::new();
        for old in [forward, reverse]
            .into_iter()
            .flatten()
            .filter(|r| !pending(r))
        {
            let (requester, target) = if old.from_id == from.id {
                (from, to)
            } else {
                (to, from)
            };
            old.delete(&txn).await?;
            let queued = !is_online(&requester.userid_lower);
            if queued {
                insert_notice(&txn, requester.id, NoticeKind::Expired, target.id, now).await?;
            }
            expired.push(ExpiredRequest {
                requester_id: requester.id,
                target_id: target.id,
                requester_lower: requester.userid_lower.clone(),
                target_userid: target.userid.clone(),
                queued,
            });
        }
        let outcome = if crossing {
            if let Some(r) = request_row(&txn, to.id, from.id).await? {
                r.delete(&txn).await?;
            }
            insert_friendship(&txn, from.id, to.id, now).await?;
            if !is_online(&to.userid_lower) {
                insert_notice(&txn, to.id, NoticeKind::Accepted, from.id, now).await?;
            }
            SendOutcome::BecameFriends
        } else {
            let expires = now.saturating_add(ttl_ms);
            friend_request::ActiveModel {
                from_id: Set(from.id),
                to_id: Set(to.id),
                created_at_ms: Set(ms(now)),
                expires_at_ms: Set(ms(expires)),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
            SendOutcome::Pending {
                created_at_ms: now,
                expires_at_ms: expires,
            }
        };
        txn.commit().await?;
        Ok((outcome, expired.into_iter().filter(|e| !e.queued).collect()))
    }

    /// AcceptFriendRequest: `accepter` accepts the pending request from `requester`. One
    /// transaction deletes the request and inserts the friendship (and queues the
    /// requester's notice when `queue_notice`).
    ///
    /// # Errors
    /// [`FriendError::RequestNotFound`], [`FriendError::LimitExceeded`], database errors.
    pub async fn accept_request(
        &self,
        accepter: i64,
        requester: i64,
        now: u64,
        queue_notice: bool,
    ) -> Result<(), FriendError> {
        let _w = self.writer().await;
        let _cached = self.cache_write(vec![accepter, requester]);
        let txn = self.conn().begin().await?;
        let req = request_row(&txn, requester, accepter)
            .await?
            .filter(|r| unix_ms(r.expires_at_ms) > now)
            .ok_or(FriendError::RequestNotFound)?;
        check_friend_limits(&txn, accepter, requester).await?;
        req.delete(&txn).await?;
        if friendship_row(&txn, accepter, requester).await?.is_none() {
            insert_friendship(&txn, accepter, requester, now).await?;
        }
        if queue_notice {
            insert_notice(&txn, requester, NoticeKind::Accepted, accepter, now).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// RefuseFriendRequest: deletes the pending request from `requester` to `refuser`.
    ///
    /// # Errors
    /// [`FriendError::RequestNotFound`], database errors.
    pub async fn refuse_request(
        &self,
        refuser: i64,
        requester: i64,
        now: u64,
        queue_notice: bool,
    ) -> Result<(), FriendError> {
        let _w = self.writer().await;
        let _cached = self.cache_write(vec![refuser, requester]);
        let txn = self.conn().begin().await?;
        let req = request_row(&txn, requester, refuser)
            .await?
            .filter(|r| unix_ms(r.expires_at_ms) > now)
            .ok_or(FriendError::RequestNotFound)?;
        req.delete(&txn).await?;
        if queue_notice {
            insert_notice(&txn, requester, NoticeKind::Refused, refuser, now).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Unfriend: deletes the friendship between `x` and `y`.
    ///
    /// # Errors
    /// [`FriendError::NotFriends`], database errors.
    pub async fn unfriend(&self, x: i64, y: i64) -> Result<(), FriendError> {
        let _w = self.writer().await;
        let _cached = self.cache_write(vec![x, y]);
        let row = friendship_row(self.conn(), x, y)
            .await?
            .ok_or(FriendError::NotFriends)?;
        row.delete(self.conn()).await?;
        Ok(())
    }

    /// Deletes every request whose expiry is at or before `now` and queues an "expired"
    /// notice for each requester for whom `is_online(requester_lower)` is false, all in one
    /// transaction. Returns what was removed so the caller can push to online requesters.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn expire_requests(
        &self,
        now: u64,
        is_online: impl Fn(&str) -> bool,
    ) -> Result<Vec<ExpiredRequest>, DbError> {
        // Cheap check without the write lock: nearly every sweep finds nothing.
        let any = friend_request::Entity::find()
            .filter(friend_request::Column::ExpiresAtMs.lte(ms(now)))
            .count(self.conn())
            .await?;
        if any == 0 {
            return Ok(Vec::new());
        }
        let _w = self.writer().await;
        let txn = self.conn().begin().await?;
        // In a cluster every node sweeps; one at a time holds this lock, the others skip
        // this round (it is released at commit, after the rows are gone).
        if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
            let got = txn
                .query_one(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    "SELECT pg_try_advisory_xact_lock($1)",
                    [super::CLUSTER_LOCK.into()],
                ))
                .await?
                .and_then(|r| r.try_get_by_index::<bool>(0).ok())
                .unwrap_or(false);
            if !got {
                return Ok(Vec::new());
            }
        }
        let rows = friend_request::Entity::find()
            .filter(friend_request::Column::ExpiresAtMs.lte(ms(now)))
            .order_by_asc(friend_request::Column::ExpiresAtMs)
            .order_by_asc(friend_request::Column::Id)
            .all(&txn)
            .await?;
        // Before the first delete, and again after the commit (or rollback): both ends of
        // every swept request, and the requester's notice.
        let _cached = self.cache_write(rows.iter().flat_map(|r| [r.from_id, r.to_id]).collect());
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let from = account::Entity::find_by_id(r.from_id).one(&txn).await?;
            let to = account::Entity::find_by_id(r.to_id).one(&txn).await?;
            let (from_id, to_id) = (r.from_id, r.to_id);
            // Already deleted by a concurrent transaction (another node replacing it, rule
            // 5 of SPEC.md §6.7): that one notified.
            if r.delete(&txn).await?.rows_affected == 0 {
                continue;
            }
            let (Some(from), Some(to)) = (from, to) else {
                continue;
            };
            let queued = !is_online(&from.userid_lower);
            if queued {
                insert_notice(&txn, from_id, NoticeKind::Expired, to_id, now).await?;
            }
            out.push(ExpiredRequest {
                requester_id: from_id,
                target_id: to_id,
                requester_lower: from.userid_lower,
                target_userid: to.userid,
                queued,
            });
        }
        txn.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::accounts::tests::new_account;
    use crate::db::tests::temp_store;

    /// The old test shape: ids, and whether requesters/targets are offline (notices queued).
    async fn send(
        s: &Store,
        from: i64,
        to: i64,
        now: u64,
        ttl: u64,
        queue: bool,
    ) -> Result<SendOutcome, FriendError> {
        let from = s.account_by_id(from).await.unwrap().unwrap();
        let to = s.account_by_id(to).await.unwrap().unwrap();
        s.send_request(&from, &to, now, ttl, |_| !queue)
            .await
            .map(|(o, _)| o)
    }

    async fn two(s: &Store) -> (i64, i64) {
        let a = s
            .create_account(new_account("alice", "a@x.org"))
            .await
            .unwrap()
            .id;
        let b = s
            .create_account(new_account("Bob", "b@x.org"))
            .await
            .unwrap()
            .id;
        (a, b)
    }

    #[tokio::test]
    async fn request_accept_unfriend() {
        let (s, _d) = temp_store().await;
        let (a, b) = two(&s).await;
        assert_eq!(
            send(&s, a, b, 100, 50, false).await.unwrap(),
            SendOutcome::Pending {
                created_at_ms: 100,
                expires_at_ms: 150
            }
        );
        assert!(matches!(
            send(&s, a, b, 101, 50, false).await,
            Err(FriendError::DuplicateRequest)
        ));
        assert_eq!(s.outgoing_requests(a, 120).await.unwrap()[0].userid, "Bob");
        assert_eq!(
            s.incoming_requests(b, 120).await.unwrap()[0].userid,
            "alice"
        );
        assert!(matches!(
            s.accept_request(a, b, 120, false).await,
            Err(FriendError::RequestNotFound)
        ));
        s.accept_request(b, a, 120, true).await.unwrap();
        assert!(s.are_friends(a, b).await.unwrap());
        assert!(s.incoming_requests(b, 120).await.unwrap().is_empty());
        assert_eq!(s.friends_of(a).await.unwrap()[0].userid, "Bob");
        let notices = s.take_notices(a).await.unwrap();
        assert_eq!(notices.len(), 1);
        assert!(matches!(
            send(&s, b, a, 130, 50, false).await,
            Err(FriendError::AlreadyFriends)
        ));
        s.unfriend(b, a).await.unwrap();
        assert!(matches!(
            s.unfriend(a, b).await,
            Err(FriendError::NotFriends)
        ));
    }

    #[tokio::test]
    async fn crossing_requests_make_friends() {
        let (s, _d) = temp_store().await;
        let (a, b) = two(&s).await;
        send(&s, a, b, 100, 50, false).await.unwrap();
        assert_eq!(
            send(&s, b, a, 110, 50, true).await.unwrap(),
            SendOutcome::BecameFriends
        );
        assert!(s.are_friends(a, b).await.unwrap());
        assert!(s.outgoing_requests(a, 110).await.unwrap().is_empty());
        assert_eq!(s.take_notices(a).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn expiry_removes_and_queues() {
        let (s, _d) = temp_store().await;
        let (a, b) = two(&s).await;
        send(&s, a, b, 100, 50, false).await.unwrap();
        assert!(s.expire_requests(149, |_| false).await.unwrap().is_empty());
        // Expired requests are invisible before the sweep.
        assert!(matches!(
            s.accept_request(b, a, 150, false).await,
            Err(FriendError::RequestNotFound)
        ));
        assert!(s.incoming_requests(b, 150).await.unwrap().is_empty());
        let gone = s.expire_requests(150, |_| false).await.unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (
                gone[0].requester_lower.as_str(),
                gone[0].target_userid.as_str(),
                gone[0].queued
            ),
            ("alice", "Bob", true)
        );
        assert_eq!(s.take_notices(a).await.unwrap().len(), 1);
        assert!(s.take_notices(a).await.unwrap().is_empty());
        // A fresh request after expiry is allowed.
        send(&s, a, b, 200, 50, false).await.unwrap();
        // An expired request not yet swept is removed, and notified, by a new one (§6.7 rule 5).
        let (alice, bob) = (
            s.account_by_id(a).await.unwrap().unwrap(),
            s.account_by_id(b).await.unwrap().unwrap(),
        );
        let (outcome, pushed) = s
            .send_request(&alice, &bob, 300, 50, |_| true)
            .await
            .unwrap();
        assert!(matches!(outcome, SendOutcome::Pending { .. }));
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0].target_userid, "Bob");
        // The reverse direction: bob's fresh request while alice's expired one is unswept
        // does not cross it; alice is offline, so she gets a notice.
        let (outcome, pushed) = s
            .send_request(&bob, &alice, 400, 50, |_| false)
            .await
            .unwrap();
        assert!(matches!(outcome, SendOutcome::Pending { .. }));
        assert!(pushed.is_empty());
        assert_eq!(s.take_notices(a).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn pending_outgoing_limit() {
        let (s, _d) = temp_store().await;
        let a = s
            .create_account(new_account("alice", "a@x.org"))
            .await
            .unwrap()
            .id;
        for i in 0..MAX_PENDING_OUTGOING {
            let t = s
                .create_account(new_account(&format!("user{i}"), &format!("u{i}@x.org")))
                .await
                .unwrap()
                .id;
            send(&s, a, t, 1, 1000, false).await.unwrap();
        }
        let last = s
            .create_account(new_account("last", "l@x.org"))
            .await
            .unwrap()
            .id;
        assert!(matches!(
            send(&s, a, last, 1, 1000, false).await,
            Err(FriendError::LimitExceeded(_))
        ));
        // Refusing one frees a slot.
        let first = s.account_by_userid("user0").await.unwrap().unwrap().id;
        s.refuse_request(first, a, 2, false).await.unwrap();
        send(&s, a, last, 2, 1000, false).await.unwrap();
    }
}
