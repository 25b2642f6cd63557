//! What KeyLogin reads of an account (row id, registered spelling, current identity key), kept
//! in memory so that a KeyLogin of a known account needs no database round trip for it
//! (issue #14).
//!
//! **Coherence.** The cache is authoritative only while this process is the only writer of
//! the `account` table: a single server, which is the default (SQLite admits one server; a
//! PostgreSQL database without `--cluster-node` is used by one process too, docs/DEPLOY.md).
//! The one write that changes what it holds, [`Store::set_identity_key`](super::Store), goes
//! through this process and invalidates the entry around its database write (see
//! [`AccountKeyCache::invalidate`]). In a cluster another node may replace a key at any moment
//! and nothing tells this node in time, so the server does not build the cache there (session
//! 5's objection: a cache that accepts a key another node has just replaced); a cluster's
//! KeyLogin reads the database as before. Accounts are never deleted, and their id and
//! spelling never change.
//!
//! **Races with a reader.** A reader that misses reads the database and then offers the row
//! with [`AccountKeyCache::insert`], passing the [`Epoch`] it took *before* its read. Every
//! invalidation advances the epoch, so a row read before or during a key change is never
//! cached after it.
//!
//! **Size.** At most `limit` entries (`--key-login-cache`, default
//! [`DEFAULT_KEY_LOGIN_CACHE`]); the key is kept as its SHA-256 (32 bytes instead of ~300-550
//! of DER), so an entry costs about 150 bytes. Over the limit an arbitrary entry is dropped:
//! a miss only costs the database read the server did before.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use ring::digest::{digest, SHA256};

/// Default bound on cached accounts: ~10 MB at ~150 bytes each.
pub const DEFAULT_KEY_LOGIN_CACHE: usize = 65_536;

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

#[derive(Debug, Default)]
struct Inner {
    /// Lowercase userid → entry. Boxed strings: no spare capacity per entry.
    map: HashMap<Box<str>, (i64, Box<str>, KeyDigest)>,
    epoch: u64,
}

/// A bounded map from lowercase userid to [`KeyLoginAccount`].
#[derive(Debug)]
pub struct AccountKeyCache {
    inner: Mutex<Inner>,
    limit: usize,
}

impl AccountKeyCache {
    /// An empty cache holding at most `limit` accounts.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the map consistent; a panic inside cannot split it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached entry of `userid_lower`, or the epoch to pass to [`Self::insert`] after
    /// reading the database.
    pub fn get(&self, userid_lower: &str) -> Result<KeyLoginAccount, Epoch> {
        let inner = self.lock();
        match inner.map.get(userid_lower) {
            Some((id, userid, key)) => Ok(KeyLoginAccount {
                id: *id,
                userid: userid.to_string(),
                key: *key,
            }),
            None => Err(Epoch(inner.epoch)),
        }
    }

    /// Caches `account` as read from the database, unless a key changed since `epoch` (the
    /// row may then be the old one).
    pub fn insert(&self, userid_lower: &str, account: &KeyLoginAccount, epoch: Epoch) {
        if self.limit == 0 {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch != epoch.0 {
            return;
        }
        if inner.map.len() >= self.limit && !inner.map.contains_key(userid_lower) {
            // Arbitrary victim: a miss costs one database read, no LRU bookkeeping per hit.
            if let Some(victim) = inner.map.keys().next().cloned() {
                inner.map.remove(&victim);
            }
        }
        inner.map.insert(
            userid_lower.into(),
            (account.id, account.userid.as_str().into(), account.key),
        );
    }

    /// Forgets account `id` and advances the epoch. The key change calls it both before and
    /// after its database write: after the first call no KeyLogin takes the old key from the
    /// cache, after the second no read that started before the commit can cache it again.
    pub fn invalidate(&self, id: i64) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.map.retain(|_, (entry_id, _, _)| *entry_id != id);
    }

    /// Number of cached accounts.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
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
        let c = AccountKeyCache::new(4);
        let epoch = c.get("user1").unwrap_err();
        c.insert("user1", &acct(1, 7), epoch);
        assert_eq!(c.get("user1"), Ok(acct(1, 7)));
    }

    #[test]
    fn a_row_read_across_a_key_change_is_not_cached() {
        let c = AccountKeyCache::new(4);
        // A reader misses and starts its database read...
        let epoch = c.get("user1").unwrap_err();
        // ...a password login replaces the key meanwhile...
        c.invalidate(1);
        c.invalidate(1);
        // ...and the reader's (possibly old) row must not be cached.
        c.insert("user1", &acct(1, 7), epoch);
        assert!(c.get("user1").is_err());
        assert!(c.is_empty());
    }

    #[test]
    fn invalidate_forgets_the_account_by_id() {
        let c = AccountKeyCache::new(4);
        let epoch = c.get("user1").unwrap_err();
        c.insert("user1", &acct(1, 7), epoch);
        c.insert("user2", &acct(2, 8), epoch);
        c.invalidate(1);
        assert!(c.get("user1").is_err());
        assert_eq!(c.get("user2"), Ok(acct(2, 8)));
    }

    #[test]
    fn bounded() {
        let c = AccountKeyCache::new(3);
        for i in 0..10 {
            let epoch = c.get(&format!("user{i}")).unwrap_err();
            c.insert(&format!("user{i}"), &acct(i, 1), epoch);
            assert!(c.len() <= 3);
        }
        assert_eq!(c.get("user9"), Ok(acct(9, 1)), "the newest entry stays");
        let off = AccountKeyCache::new(0);
        let epoch = off.get("user1").unwrap_err();
        off.insert("user1", &acct(1, 1), epoch);
        assert!(off.is_empty(), "a limit of 0 disables the cache");
    }

    #[test]
    fn digests_tell_keys_apart() {
        assert_eq!(key_digest(b"abc"), key_digest(b"abc"));
        assert_ne!(key_digest(b"abc"), key_digest(b"abd"));
    }
}
