//! What a KeyLogin reads, kept in memory so that a KeyLogin of a known account, and its
//! Logout, need no database round trip (issue #14): the account (row id, registered spelling,
//! current identity key) and its [`LoginView`] (friends, pending requests, queued notices).
//!
//! **Coherence.** The cache is authoritative only while this process is the only writer of
//! the database: a single server, which is the default (SQLite admits one server; a
//! PostgreSQL database without `--cluster-node` is used by one process too, docs/DEPLOY.md).
//! Every [`super::Store`] method that changes what an entry holds invalidates the affected
//! accounts around its database write, through [`super::CacheWrite`]:
//!
//! | write | entries invalidated |
//! |---|---|
//! | identity key replaced (`set_identity_key`) | the account, and every view that shows its key ([`LoginCache::invalidate_key`]) |
//! | friend request sent, accepted, refused, crossing, replaced when expired | both accounts |
//! | unfriend | both accounts |
//! | expiry sweep | requester and target of every swept request |
//! | notice queued / deleted | its recipient |
//!
//! What a view shows of another account is its id, spelling and identity key; only the key
//! ever changes, hence the wider invalidation for a key change. Registration creates an
//! account no entry mentions; password changes touch nothing cached. In a cluster another
//! node may write at any moment and nothing tells this node in time, so the server does not
//! build the cache there (session 5's objection: a cache that accepts a key another node has
//! just replaced); a cluster's KeyLogin reads the database as before. Accounts are never
//! deleted, and their id and spelling never change.
//!
//! **Races with a reader.** A reader that misses reads the database and then offers what it
//! read with [`LoginCache::insert`] or [`LoginCache::insert_view`], passing the [`Epoch`] it
//! took *before* its read. Every invalidation advances the epoch, and a write invalidates both
//! before it begins and after it ends (committed or not). So a row read before or during a
//! write is never cached after it, and while a write is under way its accounts miss and read
//! the database exactly as they would without the cache.
//!
//! **Size.** At most `limit` accounts and `limit` views (`--key-login-cache`, default
//! [`DEFAULT_KEY_LOGIN_CACHE`]). An account entry costs about 150 bytes (the key is kept as
//! its SHA-256: 32 bytes instead of ~300-550 of DER). A view's size grows with its rows: about
//! 100 bytes when empty, plus about 800 bytes per friend with an RSA-2048 key (spelling,
//! lowercase spelling, and the key parsed: its DER, 294 bytes, and its modulus, 256; about
//! 1,300 for RSA-4096; parsed once here rather than at every login) and about 60 per pending
//! request, so views are also bounded in bytes: all of them together hold at most
//! [`VIEW_BYTES_PER_ENTRY`] × `limit` bytes (64 MiB at the default), and a view of more than
//! [`VIEW_MAX_ROWS`] rows is never cached (such a user's logins read the database). Over a
//! bound an arbitrary entry is dropped: a miss only costs the database reads the server did
//! before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ring::digest::{digest, SHA256};

use super::login_view::LoginView;

/// Default bound on cached accounts and views: ~10 MB of accounts at ~150 bytes each, plus at
/// most 64 MiB of views.
pub const DEFAULT_KEY_LOGIN_CACHE: usize = 65_536;

/// Bytes of views allowed per unit of the entry limit: an average view may be 1 KiB (an
/// account with one friend); larger ones displace others.
pub const VIEW_BYTES_PER_ENTRY: usize = 1024;

/// Rows (friends, pending requests and notices together) above which a view is not cached:
/// one such view would fill the space of a hundred ordinary ones.
pub const VIEW_MAX_ROWS: usize = 256;

/// SHA-256 of an identity key's DER: equal digests mean equal keys (collision resistance).
pub type KeyDigest = [u8; 32];

/// The digest of `der`.
pub fn key_digest(der: &[u8]) -> KeyDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, der).as_ref());
    out
}

/// What KeyLogin needs of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLoginAccount {
    /// Account row id.
    pub id: i64,
    /// Registered spelling.
    pub userid: String,
    /// SHA-256 of the current identity key's DER.
    pub key: KeyDigest,
}

/// The cache's write counter, taken before a database read (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

/// A cached account: lowercase userid (to unlink it from `by_lower`), spelling, key digest.
/// Boxed strings: no spare capacity per entry.
type AccountEntry = (Box<str>, Box<str>, KeyDigest);

#[derive(Debug, Default)]
struct Inner {
    /// Lowercase userid → account id.
    by_lower: HashMap<Box<str>, i64>,
    accounts: HashMap<i64, AccountEntry>,
    /// Account id → its view and the view's estimated size.
    views: HashMap<i64, (Arc<LoginView>, usize)>,
    /// Sum of the views' sizes.
    view_bytes: usize,
    epoch: u64,
}

impl Inner {
    fn forget(&mut self, id: i64) {
        if let Some((lower, _, _)) = self.accounts.remove(&id) {
            self.by_lower.remove(&lower);
        }
        self.forget_view(id);
    }

    fn forget_view(&mut self, id: i64) {
        if let Some((_, bytes)) = self.views.remove(&id) {
            self.view_bytes -= bytes;
        }
    }
}

/// Bounded maps from lowercase userid to [`KeyLoginAccount`] and from account id to
/// [`LoginView`], under one lock and one epoch.
#[derive(Debug)]
pub struct LoginCache {
    inner: Mutex<Inner>,
    limit: usize,
    view_budget: usize,
}

impl LoginCache {
    /// An empty cache holding at most `limit` accounts and `limit` views of
    /// [`VIEW_BYTES_PER_ENTRY`] × `limit` bytes in all.
    pub fn new(limit: usize) -> Self {
        Self::with_view_budget(limit, limit.saturating_mul(VIEW_BYTES_PER_ENTRY))
    }

    /// Like [`Self::new`] with an explicit bound on the views' bytes (for tests).
    pub fn with_view_budget(limit: usize, view_budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limit,
            view_budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent; a panic inside cannot split them.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached account `userid_lower`, or the epoch to pass to [`Self::insert`] after
    /// reading the database.
    pub fn get(&self, userid_lower: &str) -> Result<KeyLoginAccount, Epoch> {
        let inner = self.lock();
        let hit = inner
            .by_lower
            .get(userid_lower)
            .and_then(|id| Some((*id, inner.accounts.get(id)?)));
        match hit {
            Some((id, (_, userid, key))) => Ok(KeyLoginAccount {
                id,
                userid: userid.to_string(),
                key: *key,
            }),
            None => Err(Epoch(inner.epoch)),
        }
    }

    /// Caches `account` as read from the database, unless anything was invalidated since
    /// `epoch` (the row may then be an old one).
    pub fn insert(&self, userid_lower: &str, account: &KeyLoginAccount, epoch: Epoch) {
        if self.limit == 0 {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch != epoch.0 {
            return;
        }
        if inner.accounts.len() >= self.limit && !inner.accounts.contains_key(&account.id) {
            // Arbitrary victim: a miss costs one database read, no LRU bookkeeping per hit.
            if let Some(victim) = inner.accounts.keys().next().copied() {
                if let Some((lower, _, _)) = inner.accounts.remove(&victim) {
                    inner.by_lower.remove(&lower);
                }
            }
        }
        inner.by_lower.insert(userid_lower.into(), account.id);
        inner.accounts.insert(
            account.id,
            (
                userid_lower.into(),
                account.userid.as_str().into(),
                account.key,
            ),
        );
    }

    /// The cached view of account `id`, or the epoch to pass to [`Self::insert_view`] after
    /// reading the database.
    pub fn view(&self, id: i64) -> Result<Arc<LoginView>, Epoch> {
        let inner = self.lock();
        match inner.views.get(&id) {
            Some((view, _)) => Ok(Arc::clone(view)),
            None => Err(Epoch(inner.epoch)),
        }
    }

    /// Caches the view of account `id` as read from the database, unless anything was
    /// invalidated since `epoch` or the view is over the size bounds. Returns whether it was
    /// cached.
    pub fn insert_view(&self, id: i64, view: &Arc<LoginView>, epoch: Epoch) -> bool {
        let bytes = view.approx_bytes();
        if self.limit == 0 || view.rows() > VIEW_MAX_ROWS || bytes > self.view_budget {
            return false;
        }
        let mut inner = self.lock();
        if inner.epoch != epoch.0 {
            return false;
        }
        inner.forget_view(id);
        while inner.views.len() >= self.limit || inner.view_bytes + bytes > self.view_budget {
            // Arbitrary victims, as for accounts; the loop ends: the view alone fits.
            let Some(victim) = inner.views.keys().next().copied() else {
                break;
            };
            inner.forget_view(victim);
        }
        inner.view_bytes += bytes;
        inner.views.insert(id, (Arc::clone(view), bytes));
        true
    }

    /// Forgets accounts `ids` and their views, and advances the epoch. A write calls it both
    /// before and after its database write: after the first call no reader takes the old state
    /// from the cache, after the second no read that started before the write ended can cache
    /// it again.
    pub fn invalidate(&self, ids: &[i64]) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for id in ids {
            inner.forget(*id);
        }
    }

    /// [`Self::invalidate`] for an identity-key change of account `id`: also forgets every
    /// view that shows the key (its friends' views, and views with a notice about it).
    ///
    /// This scans every cached view's rows; key changes (a password login from a new device)
    /// are rare enough that a reverse index would cost more memory than it saves time.
    pub fn invalidate_key(&self, id: i64) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.forget(id);
        let showing: Vec<i64> = inner
            .views
            .iter()
            .filter(|(_, (view, _))| view.shows_key_of(id))
            .map(|(owner, _)| *owner)
            .collect();
        for owner in showing {
            inner.forget_view(owner);
        }
    }

    /// Number of cached accounts.
    pub fn len(&self) -> usize {
        self.lock().accounts.len()
    }

    /// True if no account is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of cached views and their estimated bytes.
    pub fn views(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.views.len(), inner.view_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::login_view::tests::{contact, view_with};
    use super::*;

    fn acct(id: i64, key: u8) -> KeyLoginAccount {
        KeyLoginAccount {
            id,
            userid: format!("User{id}"),
            key: [key; 32],
        }
    }

    #[test]
    fn miss_then_insert_then_hit() {
        let c = LoginCache::new(4);
        let epoch = c.get("user1").unwrap_err();
        c.insert("user1", &acct(1, 7), epoch);
        assert_eq!(c.get("user1"), Ok(acct(1, 7)));
    }

    #[test]
    fn a_row_read_across_a_key_change_is_not_cached() {
        let c = LoginCache::new(4);
        // A reader misses and starts its database read...
        let epoch = c.get("user1").unwrap_err();
        // ...a password login replaces the key meanwhile...
        c.invalidate_key(1);
        c.invalidate_key(1);
        // ...and the reader's (possibly old) row must not be cached.
        c.insert("user1", &acct(1, 7), epoch);
        assert!(c.get("user1").is_err());
        assert!(c.is_empty());
    }

    #[test]
    fn invalidate_forgets_the_account_by_id() {
        let c = LoginCache::new(4);
        let epoch = c.get("user1").unwrap_err();
        c.insert("user1", &acct(1, 7), epoch);
        c.insert("user2", &acct(2, 8), epoch);
        c.invalidate(&[1]);
        assert!(c.get("user1").is_err());
        assert_eq!(c.get("user2"), Ok(acct(2, 8)));
    }

    #[test]
    fn bounded() {
        let c = LoginCache::new(3);
        for i in 0..10 {
            let epoch = c.get(&format!("user{i}")).unwrap_err();
            c.insert(&format!("user{i}"), &acct(i, 1), epoch);
            assert!(c.len() <= 3);
            let epoch = c.view(i).unwrap_err();
            assert!(c.insert_view(i, &view_with(&[]), epoch));
            assert!(c.views().0 <= 3);
        }
        assert_eq!(c.get("user9"), Ok(acct(9, 1)), "the newest entry stays");
        assert!(c.view(9).is_ok(), "the newest view stays");
        let off = LoginCache::new(0);
        let epoch = off.get("user1").unwrap_err();
        off.insert("user1", &acct(1, 1), epoch);
        assert!(off.is_empty(), "a limit of 0 disables the cache");
        assert!(!off.insert_view(1, &view_with(&[]), epoch));
    }

    #[test]
    fn views_are_bounded_in_bytes_and_rows() {
        let one = view_with(&[contact(2, "bob")]);
        let size = one.approx_bytes();
        let c = LoginCache::with_view_budget(100, 3 * size);
        for id in 10..20 {
            let epoch = c.view(id).unwrap_err();
            assert!(c.insert_view(id, &one, epoch));
            assert!(c.views().1 <= 3 * size, "within the byte budget");
        }
        assert_eq!(c.views(), (3, 3 * size));
        let big: Vec<_> = (0..=VIEW_MAX_ROWS as i64)
            .map(|i| contact(100 + i, "x"))
            .collect();
        let c = LoginCache::new(100_000);
        let epoch = c.view(1).unwrap_err();
        assert!(!c.insert_view(1, &view_with(&big), epoch), "too many rows");
        assert!(
            c.insert_view(1, &view_with(&big[1..]), epoch),
            "at the bound"
        );
    }

    /// The invalidation a friend-graph write does: without it the first login after the
    /// write would show the friendship as it was.
    #[test]
    fn a_view_read_across_a_write_is_not_cached_and_a_write_forgets_both_sides() {
        let c = LoginCache::new(8);
        let (alice, bob, carol) = (1, 2, 3);
        for (id, friends) in [(alice, vec![contact(bob, "bob")]), (carol, vec![])] {
            let epoch = c.view(id).unwrap_err();
            assert!(c.insert_view(id, &view_with(&friends), epoch));
        }
        let epoch = c.view(bob).unwrap_err();
        // Bob's view is being read while Alice unfriends him: the write invalidates both...
        c.invalidate(&[alice, bob]);
        c.invalidate(&[alice, bob]);
        // ...so neither Alice's cached view nor Bob's in-flight read survives it.
        assert!(c.view(alice).is_err(), "the writer's own side is forgotten");
        assert!(!c.insert_view(bob, &view_with(&[contact(alice, "alice")]), epoch));
        assert!(
            c.view(bob).is_err(),
            "the other side's old read is not cached"
        );
        assert!(c.view(carol).is_ok(), "an unrelated view stays");
    }

    #[test]
    fn a_key_change_forgets_the_views_that_show_the_key() {
        let c = LoginCache::new(8);
        let epoch = c.view(1).unwrap_err();
        c.insert_view(1, &view_with(&[contact(2, "bob")]), epoch);
        c.insert_view(3, &view_with(&[contact(4, "dan")]), epoch);
        c.insert_view(2, &view_with(&[]), epoch);
        c.invalidate_key(2);
        assert!(c.view(1).is_err(), "a friend's view shows Bob's key");
        assert!(c.view(2).is_err(), "Bob's own entry goes too");
        assert!(c.view(3).is_ok());
        assert_eq!(c.views().1, c.view(3).unwrap().approx_bytes());
    }

    #[test]
    fn digests_tell_keys_apart() {
        assert_eq!(key_digest(b"abc"), key_digest(b"abc"));
        assert_ne!(key_digest(b"abc"), key_digest(b"abd"));
    }
}
