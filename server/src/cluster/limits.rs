//! Authentication failure limits shared by every node of a cluster (SPEC.md §5.1.7, §6.11):
//! N nodes must not give an attacker N times the budget.
//!
//! The marks live in the `auth_attempt` table. A reservation is one transaction that takes
//! transaction-scoped advisory locks on the address key and then the account key (always in
//! that order, so two reservations cannot deadlock), reads the marks still inside their
//! windows, applies the same pure rules as a single node ([`decide_ms`]) and inserts its own
//! marks before commit: concurrent attempts on different nodes see each other exactly as
//! concurrent attempts on one node do ("reserved before work").

use std::net::IpAddr;
use std::time::Duration;

use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait as _,
};

use crate::ratelimit::{address_key, decide_ms, LoginPolicy};

/// The shared limiter of one node.
#[derive(Debug, Clone)]
pub struct SharedLimiter {
    db: DatabaseConnection,
    policy: LoginPolicy,
}

/// A reserved attempt in the shared table; settle it with [`SharedAttempt::failed`] or
/// [`SharedAttempt::succeeded`]. Dropped unsettled, its marks are removed (refund).
#[derive(Debug)]
#[must_use = "settle with failed() or succeeded(); dropping it refunds the slot"]
pub struct SharedAttempt {
    db: DatabaseConnection,
    ids: Vec<i64>,
    ip_id: i64,
    account_key: Option<String>,
    settled: bool,
}

fn st(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

async fn marks(txn: &DatabaseTransaction, key: &str, since: i64) -> Result<Vec<i64>, DbErr> {
    let rows = txn
        .query_all(st(
            "SELECT at_ms FROM auth_attempt WHERE key = $1 AND at_ms > $2 ORDER BY at_ms",
            vec![key.into(), since.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect())
}

async fn insert(txn: &DatabaseTransaction, key: &str, at: i64) -> Result<i64, DbErr> {
    txn.query_one(st(
        "INSERT INTO auth_attempt (key, at_ms) VALUES ($1, $2) RETURNING id",
        vec![key.into(), at.into()],
    ))
    .await?
    .and_then(|r| r.try_get_by_index::<i64>(0).ok())
    .ok_or_else(|| DbErr::Custom("INSERT RETURNING gave no id".into()))
}

impl SharedLimiter {
    /// A limiter with `policy` on the cluster's database.
    pub fn new(db: DatabaseConnection, policy: LoginPolicy) -> Self {
        Self { db, policy }
    }

    /// Reserves a slot for an attempt from `ip` on `account` (as
    /// [`crate::ratelimit::LoginLimiter::reserve`]), at wall-clock `now_ms`.
    ///
    /// # Errors
    /// The outer error is the database's; the inner one how long to wait.
    pub async fn reserve(
        &self,
        account: Option<&str>,
        ip: IpAddr,
        now_ms: i64,
    ) -> Result<Result<SharedAttempt, Duration>, DbErr> {
        let ip_key = format!("ip:{}", address_key(ip));
        let account_key = account.map(|a| format!("account:{a}"));
        let txn = self.db.begin().await?;
        for k in std::iter::once(&ip_key).chain(account_key.as_ref()) {
            txn.execute(st(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                vec![k.as_str().into()],
            ))
            .await?;
        }
        let ip_marks = marks(&txn, &ip_key, now_ms - ms(self.policy.ip_window)).await?;
        let account_marks = match &account_key {
            Some(k) => marks(&txn, k, now_ms - ms(self.policy.account_window)).await?,
            None => Vec::new(),
        };
        if let Err(wait) = decide_ms(&self.policy, &ip_marks, &account_marks, now_ms) {
            txn.rollback().await?;
            return Ok(Err(wait));
        }
        let ip_id = insert(&txn, &ip_key, now_ms).await?;
        let mut ids = vec![ip_id];
        if let Some(k) = &account_key {
            ids.push(insert(&txn, k, now_ms).await?);
        }
        // Marks older than the longest window matter to nobody: forget them now and then.
        if ip_id % 64 == 0 {
            let oldest = now_ms - ms(self.policy.ip_window.max(self.policy.account_window));
            txn.execute(st(
                "DELETE FROM auth_attempt WHERE at_ms < $1",
                vec![oldest.into()],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(Ok(SharedAttempt {
            db: self.db.clone(),
            ids,
            ip_id,
            account_key,
            settled: false,
        }))
    }
}

impl SharedAttempt {
    /// The attempt failed: its marks stay, dated `now_ms`.
    pub async fn failed(mut self, now_ms: i64) {
        self.settled = true;
        let r = self
            .db
            .execute(st(
                "UPDATE auth_attempt SET at_ms = $1 WHERE id = ANY($2)",
                vec![now_ms.into(), self.ids.clone().into()],
            ))
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "shared limiter: cannot record a failure");
        }
    }

    /// The attempt succeeded: its address mark is given back and the account's failures
    /// are cleared (SPEC.md §5.1.7 rule 7).
    pub async fn succeeded(mut self) {
        self.settled = true;
        let mut r = self
            .db
            .execute(st(
                "DELETE FROM auth_attempt WHERE id = $1",
                vec![self.ip_id.into()],
            ))
            .await;
        if let (Ok(_), Some(k)) = (&r, &self.account_key) {
            r = self
                .db
                .execute(st(
                    "DELETE FROM auth_attempt WHERE key = $1",
                    vec![k.as_str().into()],
                ))
                .await;
        }
        if let Err(e) = r {
            tracing::error!(error = %e, "shared limiter: cannot clear failures");
        }
    }
}

impl Drop for SharedAttempt {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let db = self.db.clone();
        let ids = std::mem::take(&mut self.ids);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = db
                    .execute(st(
                        "DELETE FROM auth_attempt WHERE id = ANY($1)",
                        vec![ids.into()],
                    ))
                    .await;
            });
        }
    }
}
