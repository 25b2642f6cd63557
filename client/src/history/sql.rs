//! The group commit's statements as SQL text, run by the history's writer thread
//! (`writer.rs`) through rusqlite (issue #14).
//!
//! Why not through sea-orm like the rest of the history: a chat flood spends its time in
//! these few statements, and building them cost more CPU than SQLite spent running them.
//! A profile of `peerchat-bench __profile history` (session 9) put sea-query's statement
//! building, the copies of every value into `sea_query::Value`s and the allocator behind
//! them at about half of a batch's CPU, against about a third in `sqlite3_step`. Written as
//! SQL, each statement is prepared once per connection (rusqlite's statement cache, keyed by
//! the text) and each value is bound where it lies, without a copy (SQLite copies it once).
//!
//! Multi-row statements come in the three sizes of [`CHUNK_SIZES`], so a run of any length
//! reuses at most three prepared statements per kind instead of preparing one per length.
//!
//! The column names are the entities' (`entity::message`, `entity::transfer`, created by
//! `migration.rs`); the tests in `batch.rs` and `mod.rs` read the rows back through the
//! entities, so a drift between the two fails them.

use std::collections::HashSet;
use std::sync::LazyLock;

use rusqlite::{Connection, Statement};

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

/// Marks our messages acknowledged by their rows' `seq`, which the writer learnt when it
/// inserted them (`batch::OutboxRows`): a seek by integer key, where [`MARK_ACKED`] seeks
/// the text index on friend, direction and the 32-digit id first.
static MARK_ACKED_ROWS: LazyLock<[String; 3]> = LazyLock::new(|| {
    per_size(|n| {
        format!(
            "UPDATE message SET acked = 1 WHERE direction = 'out' AND seq IN ({})",
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

/// Prepared statements the writer keeps: three sizes each of four multi-row kinds, the
/// newest-rows query and the transfer upsert, with room to spare.
pub(super) const STATEMENT_CACHE: usize = 24;

/// Binds `rows` to `st`'s placeholders, in column order, row after row.
fn bind_rows(st: &mut Statement<'_>, rows: &[MessageRow<'_>]) -> rusqlite::Result<()> {
    let mut at = 1;
    for r in rows {
        st.raw_bind_parameter(at, r.id_hex.as_str())?;
        st.raw_bind_parameter(at + 1, r.friend)?;
        st.raw_bind_parameter(at + 2, r.direction)?;
        st.raw_bind_parameter(at + 3, r.text)?;
        st.raw_bind_parameter(at + 4, r.sent_at)?;
        st.raw_bind_parameter(at + 5, r.acked)?;
        st.raw_bind_parameter(at + 6, r.stored_at)?;
        at += MESSAGE_COLUMN_COUNT;
    }
    Ok(())
}

/// Inserts `rows` in their order; fails on a duplicate. Returns each row's `seq`.
///
/// How the rows' `seq`s are known without reading them back: a multi-row `INSERT` gives its
/// rows consecutive rowids in the order of its `VALUES` (`seq` is the rowid, and this
/// connection is the only writer inside its transaction), and `last_insert_rowid` is the
/// last row's.
pub(super) fn insert_messages(
    c: &Connection,
    rows: &[MessageRow<'_>],
) -> rusqlite::Result<Vec<i64>> {
    let mut seqs = Vec::with_capacity(rows.len());
    for (i, chunk) in chunks(rows) {
        let mut st = c.prepare_cached(&INSERT_MESSAGES[i])?;
        bind_rows(&mut st, chunk)?;
        st.raw_execute()?;
        let last = c.last_insert_rowid();
        let n = chunk.len() as i64;
        seqs.extend(last - n + 1..=last);
    }
    Ok(seqs)
}

/// Inserts those of `rows` not stored yet, in their order, and says for each row whether it
/// was inserted. A second copy of a row in `rows` is not inserted again.
///
/// How the inserted rows are told apart: when a chunk inserted all its rows (a flood has no
/// duplicates) the statement's count says so, and nothing else is read. Otherwise the chunk
/// inserted the newest `count` rows by `seq`: `seq` is an `AUTOINCREMENT` key, so each new
/// row gets a larger one than every row before it, and this connection is the only writer
/// inside its transaction. Why not `RETURNING`: it produced one row per message, and cost
/// two strings and a set entry per message, for an answer that is almost always "all of
/// them".
pub(super) fn insert_new_messages(
    c: &Connection,
    rows: &[MessageRow<'_>],
) -> rusqlite::Result<Vec<bool>> {
    let mut fresh = Vec::with_capacity(rows.len());
    for (i, chunk) in chunks(rows) {
        let count = {
            let mut st = c.prepare_cached(&INSERT_NEW_MESSAGES[i])?;
            bind_rows(&mut st, chunk)?;
            st.raw_execute()?
        };
        if count == chunk.len() {
            fresh.extend(std::iter::repeat_n(true, chunk.len()));
            continue;
        }
        let mut st = c.prepare_cached(NEWEST_MESSAGES)?;
        let newest = st.query_map([i64::try_from(count).unwrap_or(i64::MAX)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut inserted = HashSet::with_capacity(count);
        for key in newest {
            inserted.insert(key?);
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
pub(super) fn mark_acked(
    c: &Connection,
    friend: &str,
    direction: &str,
    ids_hex: &[String],
) -> rusqlite::Result<()> {
    for (i, chunk) in chunks(ids_hex) {
        let mut st = c.prepare_cached(&MARK_ACKED[i])?;
        st.raw_bind_parameter(1, friend)?;
        st.raw_bind_parameter(2, direction)?;
        for (n, id) in chunk.iter().enumerate() {
            st.raw_bind_parameter(n + 3, id.as_str())?;
        }
        st.raw_execute()?;
    }
    Ok(())
}

/// Marks the outgoing messages whose rows are `seqs` acknowledged.
pub(super) fn mark_acked_rows(c: &Connection, seqs: &[i64]) -> rusqlite::Result<()> {
    for (i, chunk) in chunks(seqs) {
        let mut st = c.prepare_cached(&MARK_ACKED_ROWS[i])?;
        for (n, seq) in chunk.iter().enumerate() {
            st.raw_bind_parameter(n + 1, seq)?;
        }
        st.raw_execute()?;
    }
    Ok(())
}

/// Writes a transfer as the sans-IO machine reports it (see
/// [`History::record_machine_transfer`](super::History::record_machine_transfer)).
pub(super) fn upsert_transfer(c: &Connection, t: &TransferRecord) -> rusqlite::Result<()> {
    let mut st = c.prepare_cached(UPSERT_TRANSFER)?;
    st.execute(rusqlite::params![
        t.id.to_hex(),
        t.friend,
        t.direction.as_str(),
        t.offered_name,
        super::to_i64(t.size),
        t.sha256.map(hex::encode).unwrap_or_default(),
        super::legacy_state(t.state),
        super::to_i64(super::now_ms()),
        t.state,
        t.end_reason.map(|r| r as i32),
        t.offered_name,
        t.cancel_unsent,
    ])?;
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
            assert_eq!(MARK_ACKED_ROWS[i].matches('?').count(), n);
        }
        assert_eq!(MESSAGE_COLUMNS.split(',').count(), MESSAGE_COLUMN_COUNT);
        assert_eq!(UPSERT_TRANSFER.matches('?').count(), 12);
    }
}
