//! The group commit's statements as SQL text, bound to borrowed values (issue #14).
//!
//! Why not through sea-orm like the rest of the history: a chat flood spends its time in
//! these few statements, and building them cost more CPU than SQLite spent running them.
//! A profile of `peerchat-bench __profile history` (session 9) put sea-query's statement
//! building, the copies of every value into `sea_query::Value`s (cloned twice more on the
//! way to sqlx) and the allocator behind them at about half of a batch's CPU, against about
//! a third in `sqlite3_step`. Written as SQL, each statement is prepared once per connection
//! (sqlx caches prepared statements by their text) and each value is copied once, into the
//! arguments sent to SQLite's thread.
//!
//! Multi-row statements come in the three sizes of [`CHUNK_SIZES`], so a run of any length
//! reuses at most three prepared statements per kind instead of preparing one per length.
//!
//! The column names are the entities' (`entity::message`, `entity::transfer`, created by
//! `migration.rs`); the tests in `batch.rs` and `mod.rs` read the rows back through the
//! entities, so a drift between the two fails them.

use std::collections::HashSet;
use std::sync::LazyLock;

use sea_orm::sqlx::{self, sqlite::SqliteConnection, Row as _};

use crate::transfer::TransferRecord;

/// Rows per multi-row statement, largest first. SQLite binds at most 32,766 values per
/// statement (999 before 3.32); 100 rows of 7 columns stays below either limit, and larger
/// statements gained nothing measurable. A run of `n` rows becomes `n / 100` statements of
/// 100, then tens, then ones.
pub(super) const CHUNK_SIZES: [usize; 3] = [100, 10, 1];

/// Splits `rows` into consecutive chunks whose lengths are in [`CHUNK_SIZES`], each with the
/// index of its length there (which is also the index of its statement text).
pub(super) fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = (usize, &[T])> {
    std::iter::from_fn(move || {
        let (i, size) = CHUNK_SIZES
            .into_iter()
            .enumerate()
            .find(|&(_, s)| s <= rows.len())?;
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some((i, chunk))
    })
}

/// One statement text per chunk size, built by `make(rows)`.
fn per_size(make: impl Fn(usize) -> String) -> [String; 3] {
    CHUNK_SIZES.map(make)
}

/// `(?, …, ?), …` for `rows` rows of `columns` values.
fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

const MESSAGE_COLUMNS: &str = "message_id, friend, direction, text, sent_at, acked, stored_at";
const MESSAGE_COLUMN_COUNT: usize = 7;

/// Plain multi-row insert: a duplicate fails the statement (an outbox append must be new).
static INSERT_MESSAGES: LazyLock<[String; 3]> = LazyLock::new(|| {
    per_size(|n| {
        format!(
            "INSERT INTO message ({MESSAGE_COLUMNS}) VALUES {}",
            placeholders(n, MESSAGE_COLUMN_COUNT)
        )
    })
});

/// Multi-row insert that skips a row already stored (the duplicate rule, SPEC.md §8.1 r7, by
/// the unique index on friend, direction and id). It returns no rows: see
/// [`insert_new_messages`] for how the inserted ones are told apart.
static INSERT_NEW_MESSAGES: LazyLock<[String; 3]> = LazyLock::new(|| {
    per_size(|n| {
        format!(
            "INSERT INTO message ({MESSAGE_COLUMNS}) VALUES {} \
             ON CONFLICT (friend, direction, message_id) DO NOTHING",
            placeholders(n, MESSAGE_COLUMN_COUNT)
        )
    })
});

/// The newest `?` message rows, by `seq`: after an [`INSERT_NEW_MESSAGES`] that inserted
/// that many, exactly the rows it inserted (see [`insert_new_messages`]).
const NEWEST_MESSAGES: &str =
    "SELECT friend, direction, message_id FROM message ORDER BY seq DESC LIMIT ?";

/// Marks messages of one friend and direction acknowledged, by id.
static MARK_ACKED: LazyLock<[String; 3]> = LazyLock::new(|| {
    per_size(|n| {
        format!(
            "UPDATE message SET acked = 1 WHERE friend = ? AND direction = ? AND message_id IN ({})",
            vec!["?"; n].join(", ")
        )
    })
});

/// Inserts a transfer, or updates the columns the machine changes over its life (the path,
/// name, size and creation time are set once).
const UPSERT_TRANSFER: &str = "INSERT INTO transfer (transfer_id, friend, direction, name, \
     size, sha256, path, state, created_at, spec_state, end_reason, offered_name, cancel_unsent) \
     VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (friend, direction, transfer_id) DO UPDATE SET sha256 = excluded.sha256, \
     state = excluded.state, spec_state = excluded.spec_state, end_reason = excluded.end_reason, \
     offered_name = excluded.offered_name, cancel_unsent = excluded.cancel_unsent";

/// A `message` row, borrowing what it can from the op it comes from.
#[derive(Debug)]
pub(super) struct MessageRow<'a> {
    /// The id, lower-case hex (the column's form).
    pub id_hex: String,
    pub friend: &'a str,
    /// `in` or `out` ([`crate::transfer::Direction::as_str`]).
    pub direction: &'static str,
    pub text: &'a str,
    pub sent_at: i64,
    pub acked: bool,
    pub stored_at: i64,
}

fn bind_rows<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    rows: &'q [MessageRow<'_>],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for r in rows {
        q = q
            .bind(r.id_hex.as_str())
            .bind(r.friend)
            .bind(r.direction)
            .bind(r.text)
            .bind(r.sent_at)
            .bind(r.acked)
            .bind(r.stored_at);
    }
    q
}

/// Inserts `rows` in their order; fails on a duplicate.
pub(super) async fn insert_messages(
    c: &mut SqliteConnection,
    rows: &[MessageRow<'_>],
) -> Result<(), sqlx::Error> {
    for (i, chunk) in chunks(rows) {
        let q = sqlx::query(&INSERT_MESSAGES[i]);
        bind_rows(q, chunk).execute(&mut *c).await?;
    }
    Ok(())
}

/// Inserts those of `rows` not stored yet, in their order, and says for each row whether it
/// was inserted. A second copy of a row in `rows` is not inserted again.
///
/// How the inserted rows are told apart: when a chunk inserted all its rows (a flood has no
/// duplicates) the statement's count says so, and nothing else is read. Otherwise the chunk
/// inserted the newest `count` rows by `seq`: `seq` is an `AUTOINCREMENT` key, so each new
/// row gets a larger one than every row before it, and this connection is the only writer
/// inside its transaction. Why not `RETURNING`: it streamed one row per message from
/// SQLite's thread and cost two strings and a set entry per message, for an answer that is
/// almost always "all of them".
pub(super) async fn insert_new_messages(
    c: &mut SqliteConnection,
    rows: &[MessageRow<'_>],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut fresh = Vec::with_capacity(rows.len());
    for (i, chunk) in chunks(rows) {
        let q = sqlx::query(&INSERT_NEW_MESSAGES[i]);
        let count = bind_rows(q, chunk).execute(&mut *c).await?.rows_affected();
        if count == chunk.len() as u64 {
            fresh.extend(std::iter::repeat_n(true, chunk.len()));
            continue;
        }
        let newest = sqlx::query(NEWEST_MESSAGES)
            .bind(i64::try_from(count).unwrap_or(i64::MAX))
            .fetch_all(&mut *c)
            .await?;
        let mut inserted = HashSet::with_capacity(newest.len());
        for row in newest {
            let key: (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            inserted.insert(key);
        }
        for r in chunk {
            // Removed when seen, so a second copy in the chunk is not fresh.
            let key = (
                r.friend.to_owned(),
                r.direction.to_owned(),
                r.id_hex.clone(),
            );
            fresh.push(inserted.remove(&key));
        }
    }
    Ok(fresh)
}

/// Marks the messages `ids_hex` of `friend` in `direction` acknowledged; ids not stored are
/// ignored.
pub(super) async fn mark_acked(
    c: &mut SqliteConnection,
    friend: &str,
    direction: &str,
    ids_hex: &[String],
) -> Result<(), sqlx::Error> {
    for (i, chunk) in chunks(ids_hex) {
        let mut q = sqlx::query(&MARK_ACKED[i]).bind(friend).bind(direction);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Writes a transfer as the sans-IO machine reports it (see
/// [`History::record_machine_transfer`](super::History::record_machine_transfer)).
pub(super) async fn upsert_transfer(
    c: &mut SqliteConnection,
    t: &TransferRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(UPSERT_TRANSFER)
        .bind(t.id.to_hex())
        .bind(t.friend.as_str())
        .bind(t.direction.as_str())
        .bind(t.offered_name.as_str())
        .bind(super::to_i64(t.size))
        .bind(t.sha256.map(hex::encode).unwrap_or_default())
        .bind(super::legacy_state(t.state))
        .bind(super::to_i64(super::now_ms()))
        .bind(t.state)
        .bind(t.end_reason.map(|r| r as i32))
        .bind(t.offered_name.as_str())
        .bind(t.cancel_unsent)
        .execute(&mut *c)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_use_only_prepared_sizes_and_keep_order() {
        for n in [0usize, 1, 9, 10, 11, 99, 100, 101, 257, 1024] {
            let rows: Vec<usize> = (0..n).collect();
            let parts: Vec<(usize, &[usize])> = chunks(&rows).collect();
            assert!(parts.iter().all(|(i, p)| CHUNK_SIZES[*i] == p.len()), "{n}");
            let joined: Vec<usize> = parts.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            assert_eq!(joined, rows, "{n}");
        }
        let rows = [0u8; 257];
        let lens: Vec<usize> = chunks(&rows).map(|(_, p)| p.len()).collect();
        assert_eq!(lens, [100, 100, 10, 10, 10, 10, 10, 1, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn statements_have_one_placeholder_per_value() {
        for (i, n) in CHUNK_SIZES.into_iter().enumerate() {
            assert_eq!(
                INSERT_MESSAGES[i].matches('?').count(),
                n * MESSAGE_COLUMN_COUNT
            );
            assert_eq!(
                INSERT_NEW_MESSAGES[i].matches('?').count(),
                n * MESSAGE_COLUMN_COUNT
            );
            assert_eq!(MARK_ACKED[i].matches('?').count(), n + 2);
        }
        assert_eq!(MESSAGE_COLUMNS.split(',').count(), MESSAGE_COLUMN_COUNT);
        assert_eq!(UPSERT_TRANSFER.matches('?').count(), 12);
    }
}
