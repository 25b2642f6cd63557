//! What a login shows of an account besides the account itself: its friends, its pending
//! friend requests (SPEC.md §5.3) and its queued notices (§6.9), read in one place so that a
//! single server can keep it in memory ([`super::key_cache`]) and a KeyLogin and its Logout
//! need no database round trip.
//!
//! Pending requests are kept as stored, expired or not: the time filter is applied when the
//! view is used ([`LoginView::incoming`]), so a cached view stays right as time passes (the
//! rows the filter hides are deleted later by the sweeper, which invalidates the view).

use std::sync::Arc;

use peerchat_proto::IdentityKey;

use super::entity::account;
use super::friends::PendingView;
use super::notices::Notice;
use super::{DbError, Store};

/// Another account as a view shows it: what a Friend entry or a notice names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Account row id.
    pub id: i64,
    /// Registered spelling.
    pub userid: String,
    /// Lowercase userid (the hub key).
    pub userid_lower: String,
    /// Identity key, parsed once when the row is read: a cached view then serves every
    /// login's Friend entries without parsing DER again (parsing and re-encoding 20 friends'
    /// keys was about a third of a cached KeyLogin's server CPU, docs/PERFORMANCE.md). A
    /// stored key that does not parse stays here as its error, so only the Friend entry that
    /// would show it is left out, as when keys were parsed at use.
    pub identity_key: Result<IdentityKey, CorruptKey>,
}

/// A stored identity key that does not parse as SPEC.md §4.3 requires (a damaged database).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity key of account {account}: {reason}")]
pub struct CorruptKey {
    /// Account row id.
    pub account: i64,
    /// Why it was rejected.
    pub reason: String,
}

impl CorruptKey {
    /// Heap bytes held, for the cache's byte bound.
    fn heap_bytes(&self) -> usize {
        self.reason.len()
    }
}

/// Parses account `id`'s stored key.
fn parse_key(id: i64, der: &[u8]) -> Result<IdentityKey, CorruptKey> {
    IdentityKey::from_der(der).map_err(|e| CorruptKey {
        account: id,
        reason: e.to_string(),
    })
}

impl Contact {
    /// Estimated heap and inline bytes, for the cache's byte bound.
    pub(crate) fn approx_bytes(&self) -> usize {
        let key = match &self.identity_key {
            Ok(k) => k.heap_bytes(),
            Err(e) => e.heap_bytes(),
        };
        std::mem::size_of::<Self>() + self.userid.len() + self.userid_lower.len() + key
    }
}

impl From<account::Model> for Contact {
    fn from(a: account::Model) -> Self {
        Self {
            identity_key: parse_key(a.id, &a.identity_key),
            id: a.id,
            userid: a.userid,
            userid_lower: a.userid_lower,
        }
    }
}

impl From<&account::Model> for Contact {
    fn from(a: &account::Model) -> Self {
        Self {
            id: a.id,
            userid: a.userid.clone(),
            userid_lower: a.userid_lower.clone(),
            identity_key: parse_key(a.id, &a.identity_key),
        }
    }
}

/// An account's friends, pending requests and (when read for the cache) queued notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginView {
    /// Every friend, sorted by lowercase userid.
    pub friends: Vec<Contact>,
    /// Requests sent to the account, oldest first, expired ones included.
    incoming: Vec<PendingView>,
    /// Requests sent by the account, oldest first, expired ones included.
    outgoing: Vec<PendingView>,
    /// Queued notices, oldest first; `None` when the view was read for one login without the
    /// cache: the login then reads them after LoginOk, as it always did.
    pub notices: Option<Vec<Notice>>,
}

impl LoginView {
    /// Requests to the account still pending at `now`.
    pub fn incoming(&self, now: u64) -> impl Iterator<Item = &PendingView> {
        self.incoming.iter().filter(move |r| r.expires_at_ms > now)
    }

    /// Requests by the account still pending at `now`.
    pub fn outgoing(&self, now: u64) -> impl Iterator<Item = &PendingView> {
        self.outgoing.iter().filter(move |r| r.expires_at_ms > now)
    }

    /// Whether account `id` is a friend.
    pub fn is_friend(&self, id: i64) -> bool {
        self.friends.iter().any(|f| f.id == id)
    }

    /// Whether the view shows account `id`'s identity key (a friend, or a notice about it).
    pub(crate) fn shows_key_of(&self, id: i64) -> bool {
        self.is_friend(id) || self.notices.iter().flatten().any(|n| n.other.id == id)
    }

    /// Rows held: friends, requests and notices.
    pub(crate) fn rows(&self) -> usize {
        self.friends.len()
            + self.incoming.len()
            + self.outgoing.len()
            + self.notices.as_ref().map_or(0, Vec::len)
    }

    /// Estimated heap and inline bytes, for the cache's byte bound.
    pub(crate) fn approx_bytes(&self) -> usize {
        use std::mem::size_of;
        let contact = Contact::approx_bytes;
        let pending = |p: &PendingView| size_of::<PendingView>() + p.userid.len();
        size_of::<LoginView>()
            + 2 * size_of::<usize>() // the Arc's counters
            + self.friends.iter().map(contact).sum::<usize>()
            + self.incoming.iter().chain(&self.outgoing).map(pending).sum::<usize>()
            + self
                .notices
                .iter()
                .flatten()
                .map(|n| size_of::<Notice>() - size_of::<Contact>() + contact(&n.other))
                .sum::<usize>()
    }
}

impl Store {
    /// The view of account `id`: from the cache when this store has one and holds it, else
    /// from the database (then cached, with the notices, if it fits; see
    /// [`super::key_cache`] for why this is exact on a single server).
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn login_view(&self, id: i64) -> Result<Arc<LoginView>, DbError> {
        let epoch = match self.key_cache().map(|c| c.view(id)) {
            Some(Ok(hit)) => return Ok(hit),
            Some(Err(epoch)) => Some(epoch),
            None => None,
        };
        let view = Arc::new(LoginView {
            friends: self
                .friends_of(id)
                .await?
                .into_iter()
                .map(Contact::from)
                .collect(),
            incoming: self.requests(id, None, true).await?,
            outgoing: self.requests(id, None, false).await?,
            // Only worth a read when the view will be kept: the login's own notice
            // delivery reads them otherwise.
            notices: match epoch {
                Some(_) => Some(self.pending_notices(id).await?),
                None => None,
            },
        });
        if let (Some(cache), Some(epoch)) = (self.key_cache(), epoch) {
            cache.insert_view(id, &view, epoch);
        }
        Ok(view)
    }

    /// The cached view of account `id`, if any; never reads the database.
    pub fn cached_login_view(&self, id: i64) -> Option<Arc<LoginView>> {
        self.key_cache()?.view(id).ok()
    }

    /// The lowercase userids of account `id`'s friends (who hears its presence): from the
    /// cached view if there is one, else from the database (not cached: only a login fills
    /// the cache).
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn friend_lowers(&self, id: i64) -> Result<Vec<String>, DbError> {
        if let Some(view) = self.cached_login_view(id) {
            return Ok(view
                .friends
                .iter()
                .map(|f| f.userid_lower.clone())
                .collect());
        }
        Ok(self
            .friends_of(id)
            .await?
            .into_iter()
            .map(|f| f.userid_lower)
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::accounts::tests::new_account;
    use crate::db::entity::notice::NoticeKind;
    use crate::db::tests::temp_store;

    pub(crate) fn contact(id: i64, userid: &str) -> Contact {
        Contact {
            id,
            userid: userid.into(),
            userid_lower: userid.to_ascii_lowercase(),
            identity_key: Ok(peerchat_proto::test_keys::identity(0).public().clone()),
        }
    }

    pub(crate) fn view_with(friends: &[Contact]) -> Arc<LoginView> {
        Arc::new(LoginView {
            friends: friends.to_vec(),
            incoming: Vec::new(),
            outgoing: Vec::new(),
            notices: Some(Vec::new()),
        })
    }

    /// A key is parsed when its row is read, once; a key that does not parse is kept as its
    /// error, naming the account, so a login leaves out that one Friend entry.
    #[test]
    fn contacts_hold_parsed_keys_or_why_not() {
        let key = peerchat_proto::test_keys::identity(1).public().clone();
        let mut row = account::Model {
            id: 9,
            userid: "Bob".into(),
            userid_lower: "bob".into(),
            email: "b@x.org".into(),
            email_lower: "b@x.org".into(),
            password_hash: "p".into(),
            recovery_hash: "r".into(),
            identity_key: key.to_der().to_vec(),
            created_at_ms: 5,
        };
        assert_eq!(Contact::from(&row).identity_key, Ok(key));
        row.identity_key = vec![1, 2, 3];
        let bad = Contact::from(row).identity_key.unwrap_err();
        assert_eq!(bad.account, 9);
        assert!(bad.to_string().starts_with("identity key of account 9: "));
    }

    /// The byte bound counts what a parsed key holds (DER and modulus), not the DER alone.
    #[test]
    fn approx_bytes_counts_the_parsed_key() {
        let key = peerchat_proto::test_keys::identity(0).public().clone();
        let empty = view_with(&[]).approx_bytes();
        let one = view_with(&[contact(2, "bob")]).approx_bytes();
        assert_eq!(
            one - empty,
            std::mem::size_of::<Contact>() + 2 * "bob".len() + key.heap_bytes()
        );
        assert!(
            key.heap_bytes() > key.to_der().len() + 200,
            "modulus counted"
        );
    }

    #[test]
    fn pending_requests_are_filtered_at_use() {
        let p = |userid: &str, expires_at_ms| PendingView {
            userid: userid.into(),
            created_at_ms: 1,
            expires_at_ms,
        };
        let v = LoginView {
            friends: Vec::new(),
            incoming: vec![p("a", 100), p("b", 200)],
            outgoing: vec![p("c", 150)],
            notices: None,
        };
        let names = |it: &mut dyn Iterator<Item = &PendingView>| {
            it.map(|r| r.userid.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(&mut v.incoming(99)), ["a", "b"]);
        assert_eq!(
            names(&mut v.incoming(100)),
            ["b"],
            "expiry at now is expired"
        );
        assert_eq!(names(&mut v.outgoing(150)), Vec::<String>::new());
    }

    /// Every write that changes a view goes through the store and leaves the cache answering
    /// what the database now holds, for both accounts it touches.
    #[tokio::test]
    async fn cached_views_follow_every_friend_graph_write() {
        let (mut s, _d) = temp_store().await;
        s.cache_key_logins(16);
        let mk = |u: &str| new_account(u, &format!("{u}@x.org"));
        let alice = s.create_account(mk("alice")).await.unwrap();
        let bob = s.create_account(mk("Bob")).await.unwrap();
        let carol = s.create_account(mk("carol")).await.unwrap();
        let (a, b, c) = (alice.id, bob.id, carol.id);

        // Each check: the cached view equals a fresh database read, for every account.
        async fn check(s: &Store, ids: [i64; 3], what: &str) {
            for id in ids {
                let cached = s.login_view(id).await.unwrap();
                let (cache, keep) = (s.key_cache().unwrap(), cached.clone());
                assert!(s.cached_login_view(id).is_some(), "{what}: {id} cached");
                cache.invalidate(&[id]);
                let fresh = s.login_view(id).await.unwrap();
                assert_eq!(keep, fresh, "{what}: view of {id}");
            }
        }
        let ids = [a, b, c];
        check(&s, ids, "start").await;
        s.send_request(&alice, &bob, 100, 1000, |_| true)
            .await
            .unwrap();
        check(&s, ids, "request sent").await;
        assert_eq!(s.login_view(b).await.unwrap().incoming(100).count(), 1);
        s.accept_request(b, a, 110, true).await.unwrap();
        check(&s, ids, "request accepted").await;
        let va = s.login_view(a).await.unwrap();
        assert!(va.is_friend(b));
        assert_eq!(va.notices.as_ref().unwrap()[0].kind, NoticeKind::Accepted);
        let notice_ids: Vec<i64> = va.notices.iter().flatten().map(|n| n.id).collect();
        s.delete_notices(a, &notice_ids).await.unwrap();
        check(&s, ids, "notices deleted").await;
        assert!(s
            .login_view(a)
            .await
            .unwrap()
            .notices
            .as_ref()
            .unwrap()
            .is_empty());
        let bobs_new_key = peerchat_proto::test_keys::identity(2).public().clone();
        s.set_identity_key(b, bobs_new_key.to_der().to_vec())
            .await
            .unwrap();
        assert!(
            s.cached_login_view(a).is_none(),
            "alice's view showed bob's key"
        );
        check(&s, ids, "bob's key changed").await;
        assert_eq!(
            s.login_view(a).await.unwrap().friends[0].identity_key,
            Ok(bobs_new_key),
            "the view holds the new key, parsed"
        );
        s.unfriend(a, b).await.unwrap();
        check(&s, ids, "unfriended").await;
        s.send_request(&carol, &alice, 200, 50, |_| false)
            .await
            .unwrap();
        s.send_request(&bob, &carol, 200, 50, |_| false)
            .await
            .unwrap();
        check(&s, ids, "two requests").await;
        s.refuse_request(c, b, 210, true).await.unwrap();
        check(&s, ids, "refused").await;
        s.queue_notice(c, NoticeKind::Refused, a, 220)
            .await
            .unwrap();
        check(&s, ids, "notice queued").await;
        assert_eq!(s.expire_requests(250, |_| false).await.unwrap().len(), 1);
        check(&s, ids, "swept").await;
        assert_eq!(
            s.login_view(c)
                .await
                .unwrap()
                .notices
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        // Crossing requests: one transaction turns them into a friendship.
        s.send_request(&bob, &carol, 300, 50, |_| true)
            .await
            .unwrap();
        check(&s, ids, "before crossing").await;
        s.send_request(&carol, &bob, 310, 50, |_| false)
            .await
            .unwrap();
        check(&s, ids, "crossing").await;
        assert!(s.login_view(b).await.unwrap().is_friend(c));
        assert_eq!(
            s.friend_lowers(b).await.unwrap(),
            ["carol"],
            "Logout's friends, from the cache"
        );
    }

    /// The test that fails without the invalidation: a cached view must not survive a write.
    #[tokio::test]
    async fn a_write_forgets_the_cached_views_of_both_accounts() {
        let (mut s, _d) = temp_store().await;
        s.cache_key_logins(16);
        let alice = s
            .create_account(new_account("alice", "a@x.org"))
            .await
            .unwrap();
        let bob = s
            .create_account(new_account("bob", "b@x.org"))
            .await
            .unwrap();
        assert!(s.login_view(alice.id).await.unwrap().friends.is_empty());
        assert!(s.login_view(bob.id).await.unwrap().friends.is_empty());
        s.send_request(&alice, &bob, 1, 100, |_| true)
            .await
            .unwrap();
        s.accept_request(bob.id, alice.id, 2, false).await.unwrap();
        assert_eq!(
            s.login_view(alice.id).await.unwrap().friends[0].userid,
            "bob"
        );
        assert_eq!(
            s.login_view(bob.id).await.unwrap().friends[0].userid,
            "alice"
        );
    }

    /// Without the cache (a cluster) the view is read for each login and carries no notices.
    #[tokio::test]
    async fn without_the_cache_every_view_is_read() {
        let (s, _d) = temp_store().await;
        let alice = s
            .create_account(new_account("alice", "a@x.org"))
            .await
            .unwrap();
        let v = s.login_view(alice.id).await.unwrap();
        assert_eq!(v.notices, None);
        assert!(s.cached_login_view(alice.id).is_none());
    }
}
