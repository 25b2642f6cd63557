//! Seeding the server's database directly, before the server starts.
//!
//! Registering 10,000 accounts through the protocol would cost 20,000 argon2id hashes
//! (password and recovery code, ~19 MiB and tens of milliseconds each): minutes of CPU on
//! this machine before the first measurement. The scale scenario measures connect +
//! handshake + KeyLogin, not Register, so the accounts are inserted with the server's own
//! sea-orm entities in one transaction. Every account gets the same real argon2id PHC string
//! (made by the server's own [`peerchat_server::password::Hasher`]), so password logins work.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use peerchat_proto::message::Secret;
use peerchat_server::db::entity::{account, friendship};
use sea_orm::{ActiveValue::Set, Database, EntityTrait as _, TransactionTrait as _};

/// The password of every seeded account.
pub const PASSWORD: &str = "bench-password-0123";

/// Rows per multi-row INSERT (well under SQLite's bound-variable limit).
const BATCH: usize = 500;

/// What to put into a fresh server database.
#[derive(Debug, Default)]
pub struct Seed {
    /// Userids to create; all share `identity_der` and [`PASSWORD`].
    pub users: Vec<String>,
    /// Friendships as indices into `users`.
    pub friendships: Vec<(usize, usize)>,
}

/// The argon2id PHC string of [`PASSWORD`] with the server's parameters.
///
/// # Errors
/// Hashing failed.
pub async fn password_phc() -> anyhow::Result<String> {
    let hasher = peerchat_server::password::Hasher::new();
    Ok(hasher.hash(&Secret(PASSWORD.into())).await?)
}

/// Creates the schema in `data_dir` (as the server would) and inserts `seed`.
///
/// # Errors
/// Database errors.
pub async fn seed(
    data_dir: &Path,
    seed: &Seed,
    identity_der: &[u8],
    phc: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let url = peerchat_server::Config::new(data_dir.to_path_buf()).database_url();
    seed_url(&url, seed, identity_der, phc).await
}

/// As [`seed`], into the database at `url` (SQLite or PostgreSQL, e.g. a cluster's).
///
/// # Errors
/// Database errors.
pub async fn seed_url(
    url: &str,
    seed: &Seed,
    identity_der: &[u8],
    phc: &str,
) -> anyhow::Result<()> {
    // The server's own migrations, so the schema is exactly what it expects.
    peerchat_server::db::Store::connect(url)
        .await?
        .close()
        .await?;
    let db = Database::connect(url).await?;
    let txn = db.begin().await?;
    for chunk in seed.users.chunks(BATCH) {
        let rows = chunk.iter().map(|u| account::ActiveModel {
            userid: Set(u.clone()),
            userid_lower: Set(u.to_ascii_lowercase()),
            email: Set(format!("{u}@bench.example.org")),
            email_lower: Set(format!("{}@bench.example.org", u.to_ascii_lowercase())),
            password_hash: Set(phc.to_owned()),
            recovery_hash: Set(phc.to_owned()),
            identity_key: Set(identity_der.to_vec()),
            created_at_ms: Set(0),
            ..Default::default()
        });
        account::Entity::insert_many(rows).exec(&txn).await?;
    }
    let ids: HashMap<String, i64> = account::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(|a| (a.userid_lower, a.id))
        .collect();
    let id = |i: usize| -> anyhow::Result<i64> {
        let u = seed.users.get(i).context("friendship names no user")?;
        ids.get(&u.to_ascii_lowercase())
            .copied()
            .context("seeded account missing")
    };
    let mut pairs = Vec::with_capacity(seed.friendships.len());
    for &(x, y) in &seed.friendships {
        pairs.push(friendship::ordered(id(x)?, id(y)?));
    }
    for chunk in pairs.chunks(BATCH) {
        let rows = chunk.iter().map(|&(a, b)| friendship::ActiveModel {
            user_a: Set(a),
            user_b: Set(b),
            created_at_ms: Set(0),
        });
        friendship::Entity::insert_many(rows).exec(&txn).await?;
    }
    txn.commit().await?;
    db.close().await?;
    Ok(())
}
