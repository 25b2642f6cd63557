//! Persistence: accounts, friendships, pending friend requests and queued notices, through
//! sea-orm: SQLite by default, PostgreSQL with a `postgres://` URL.
//!
//! Everything goes through the query builder and the migrations' schema builder, so the same
//! code runs on both engines: no raw SQL, 64-bit integers everywhere, case-insensitive lookups
//! through the stored `*_lower` columns (never a collation or `ILIKE`), no upsert. Only the
//! connection settings differ (the PRAGMAs below exist on SQLite alone).
//!
//! [`Store`] is the only way the rest of the server touches the database. Each method is one
//! rule-level operation; every operation that changes more than one row runs in one
//! transaction, and write transactions are serialised in-process by an async mutex because
//! SQLite admits one writer at a time anyway and would otherwise answer a deferred
//! transaction's upgrade with SQLITE_BUSY instead of waiting.

pub mod accounts;
pub mod entity;
pub mod friends;
pub mod key_cache;
pub mod login_view;
pub mod migration;
pub mod notices;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DbBackend, DbErr, Statement,
};
use sea_orm_migration::MigratorTrait as _;
use tokio::sync::{Mutex, MutexGuard};

pub use accounts::{NewAccount, RegisterConflict};
pub use friends::{ExpiredRequest, FriendError, PendingView, SendOutcome};
pub use login_view::{Contact, LoginView};
pub use notices::Notice;

/// How long SQLite waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A database failure. Clients see ERROR_CODE_INTERNAL; the detail goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// sea-orm / sqlx reported an error.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// A stored value is not what the schema promises (for example an unparsable key).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The server's database handle.
#[derive(Debug)]
pub struct Store {
    db: DatabaseConnection,
    write: Mutex<()>,
    /// What KeyLogin reads, on a single server only ([`Store::cache_key_logins`]).
    keys: Option<key_cache::LoginCache>,
}

impl Store {
    /// Connects to `url` and runs every pending migration.
    ///
    /// `url` is `sqlite://…` or `postgres://…`. For SQLite the connection uses WAL journaling (readers never block the writer),
    /// `synchronous = FULL`, foreign keys on and a busy time-out.
    ///
    /// FULL, not NORMAL: with WAL, NORMAL survives a crash of the process but SQLite documents
    /// that a power loss may roll back the last committed transactions — a registration whose
    /// recovery code the user has already been shown, or an accepted friend request. FULL
    /// syncs the WAL on every commit; the cost is one fsync per write transaction (writes are
    /// already serialised by [`Store::writer`]), which is small beside argon2 on the paths
    /// that write most (Register, Login with a new key, ForgotPassword).
    ///
    /// # Errors
    /// [`DbError::Db`] if the database cannot be opened or migrated.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.sqlx_logging(false)
            .max_connections(8)
            .min_connections(1);
        if url.starts_with("sqlite:") {
            opts.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(BUSY_TIMEOUT)
            });
        }
        let db = Database::connect(opts).await?;
        if db.get_database_backend() == DbBackend::Postgres {
            migrate_locked(url).await?;
        } else {
            migration::Migrator::up(&db, None).await?;
        }
        Ok(Self {
            db,
            write: Mutex::new(()),
            keys: None,
        })
    }

    /// Closes the connection pool (after every in-flight operation has finished).
    ///
    /// # Errors
    /// [`DbError::Db`] if closing fails.
    pub async fn close(&self) -> Result<(), DbError> {
        // Closing a clone closes the shared pool.
        self.db.clone().close().await?;
        Ok(())
    }

    /// Keeps what KeyLogin reads of up to `limit` accounts in memory: the account and its
    /// [`LoginView`] ([`key_cache`]). Only for a process that is the only writer of the
    /// database: never in a cluster, where another node may write unseen.
    pub fn cache_key_logins(&mut self, limit: usize) {
        self.keys = (limit > 0).then(|| key_cache::LoginCache::new(limit));
    }

    /// The KeyLogin cache, if this store has one.
    pub(crate) fn key_cache(&self) -> Option<&key_cache::LoginCache> {
        self.keys.as_ref()
    }

    /// Invalidates the cached entries of accounts `ids` now and again when the returned guard
    /// drops: hold it from before a write's first statement until after its commit (or
    /// rollback), so that nothing read before or during the write is served or cached after
    /// it ([`key_cache`]).
    pub(crate) fn cache_write(&self, ids: Vec<i64>) -> CacheWrite<'_> {
        let w = CacheWrite {
            cache: self.key_cache(),
            ids,
            key_change: false,
        };
        w.invalidate();
        w
    }

    /// [`Store::cache_write`] for a change of account `id`'s identity key, which every view
    /// showing that key must forget too.
    pub(crate) fn cache_key_write(&self, id: i64) -> CacheWrite<'_> {
        let w = CacheWrite {
            cache: self.key_cache(),
            ids: vec![id],
            key_change: true,
        };
        w.invalidate();
        w
    }

    /// The pool, for reads.
    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Exclusive right to write; hold it across a whole write transaction.
    pub(crate) async fn writer(&self) -> MutexGuard<'_, ()> {
        self.write.lock().await
    }
}

/// A write in progress, as the KeyLogin cache sees it: see [`Store::cache_write`].
#[must_use = "the cache is invalidated again when this drops: hold it across the write"]
pub(crate) struct CacheWrite<'a> {
    cache: Option<&'a key_cache::LoginCache>,
    ids: Vec<i64>,
    key_change: bool,
}

impl CacheWrite<'_> {
    fn invalidate(&self) {
        let Some(cache) = self.cache else {
            return;
        };
        if self.key_change {
            self.ids.iter().for_each(|id| cache.invalidate_key(*id));
        } else {
            cache.invalidate(&self.ids);
        }
    }
}

impl Drop for CacheWrite<'_> {
    fn drop(&mut self) {
        self.invalidate();
    }
}

/// Key of the PostgreSQL advisory locks the nodes of a cluster share: migrations and the
/// request-expiry sweep each run on one node at a time.
pub(crate) const CLUSTER_LOCK: i64 = 0x7065_6572_6368_6174; // "peerchat"

/// Runs the migrations on PostgreSQL under a session advisory lock, on a connection of its
/// own (the lock belongs to the connection): cluster nodes started together would otherwise
/// race to create the same tables.
async fn migrate_locked(url: &str) -> Result<(), DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .max_connections(1)
        .min_connections(1);
    let one = Database::connect(opts).await?;
    let lock = |f: &str| {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT {f}($1)"),
            [CLUSTER_LOCK.into()],
        )
    };
    one.execute(lock("pg_advisory_lock")).await?;
    let migrated = migration::Migrator::up(&one, None).await;
    one.execute(lock("pg_advisory_unlock")).await?;
    one.close().await?;
    migrated
}

/// Converts protocol time (u64 ms) to the stored form.
pub(crate) fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Converts stored time to protocol time.
pub(crate) fn unix_ms(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store on a fresh temporary SQLite file (kept alive by the returned guard).
    pub(crate) async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        (Store::connect(&url).await.unwrap(), dir)
    }

    /// Committed transactions must survive power loss (issue #10): WAL with synchronous=FULL
    /// (2), not NORMAL (1).
    #[tokio::test]
    async fn sqlite_syncs_every_commit() {
        use sea_orm::{ConnectionTrait as _, Statement};
        let (store, _dir) = temp_store().await;
        for (pragma, want) in [("synchronous", "2"), ("journal_mode", "wal")] {
            let row = store
                .conn()
                .query_one(Statement::from_string(
                    store.conn().get_database_backend(),
                    format!("PRAGMA {pragma}"),
                ))
                .await
                .unwrap()
                .unwrap();
            let got: String = row
                .try_get_by_index::<i64>(0)
                .map(|v| v.to_string())
                .or_else(|_| row.try_get_by_index::<String>(0))
                .unwrap();
            assert_eq!(got, want, "PRAGMA {pragma}");
        }
    }

    #[tokio::test]
    async fn migrations_run_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        Store::connect(&url).await.unwrap().close().await.unwrap();
        Store::connect(&url).await.unwrap().close().await.unwrap();
    }
}
