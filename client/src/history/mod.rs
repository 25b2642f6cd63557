//! The local history database (SQLite, in the profile): messages, the persisted outbox and
//! file transfers. Reads and migrations go through sea-orm; the group commit's writes
//! through one rusqlite connection on a thread of its own (`writer.rs`).
//!
//! History stays on this device: nothing here is ever sent to the server, and to a friend
//! only the messages and files themselves.

mod batch;
pub mod entity;
pub mod migration;
mod sql;
mod writer;

pub use batch::BatchResult;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use peerchat_proto::message::ChatFrame;
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    SqlxSqliteConnector,
};
use sea_orm_migration::MigratorTrait;
use serde::Serialize;

use self::entity::{message, transfer};
use crate::ids::{MessageId, TransferId};
use crate::transfer::Direction;

/// Why the history database failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database failed.
    #[error("history database: {0}")]
    Db(#[from] DbErr),
    /// A statement of the group commit's writer (`sql.rs`, `writer.rs`) failed.
    #[error("history database: {0}")]
    Write(#[from] rusqlite::Error),
    /// The writer thread is gone (its process is going down), so the write was not made.
    #[error("history database: the writer has stopped")]
    WriterGone,
    /// The database could not be opened.
    #[error("history database {path}: {detail}")]
    Open {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

/// One stored message, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The message id.
    pub message_id: String,
    /// `in` or `out`.
    pub direction: String,
    /// The text.
    pub text: String,
    /// Sender's clock, Unix ms.
    pub sent_at_unix_ms: u64,
    /// Outgoing: acknowledged by the friend.
    pub acked: bool,
}

/// A finished file, as the chat shows it (a `<File>` line that survives a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// The transfer id, hex.
    pub transfer_id: String,
    /// `in` or `out`.
    pub direction: String,
    /// The offered (outgoing) or sanitised (incoming) name.
    pub name: String,
    /// Outgoing: the source file; incoming: the received file.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// When the transfer was offered, Unix ms (for ordering among the messages).
    pub at_unix_ms: u64,
}

/// States stored in `transfer.state`.
pub mod state {
    /// Outgoing, not complete: offer again on every connection.
    pub const PENDING: &str = "pending";
    /// Incoming, waiting for the user's decision.
    pub const OFFERED: &str = "offered";
    /// Incoming, accepted: resume from the `.part` file.
    pub const ACTIVE: &str = "active";
    /// Done.
    pub const COMPLETE: &str = "complete";
    /// Stopped by a user.
    pub const CANCELLED: &str = "cancelled";
    /// Declined by the receiver.
    pub const DECLINED: &str = "declined";
    /// Failed (hash mismatch, invalid, I/O).
    pub const FAILED: &str = "failed";
}

/// The history store.
#[derive(Debug, Clone)]
pub struct History {
    /// Every commit synced (`synchronous = FULL`): what SPEC.md §8.1 promises durable.
    /// Reads and the occasional single write.
    db: DatabaseConnection,
    /// The group commit's connection, on a thread of its own ([`History::apply_batch`],
    /// `writer.rs` says why).
    writer: writer::WriterHandle,
}

/// The `synchronous` level the writer connection is set to, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writer {
    /// Unknown: a `PRAGMA` failed; the next batch sets its level again.
    Unknown,
    /// `synchronous = FULL`: each commit syncs the WAL (durable, §8.1 r2, r8).
    Synced,
    /// `synchronous = NORMAL`: commits append to the WAL without a sync; the next synced
    /// commit's sync of the same log, or a checkpoint, makes them durable too.
    Unsynced,
}

impl Writer {
    /// The value of `PRAGMA synchronous` for this level.
    fn pragma_value(self) -> &'static str {
        match self {
            Writer::Unsynced => "NORMAL",
            Writer::Synced | Writer::Unknown => "FULL",
        }
    }
}

/// Now, Unix ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl History {
    /// Opens (creating and migrating) the database at `path`.
    ///
    /// # Errors
    /// [`HistoryError`].
    pub async fn open(path: &Path) -> Result<Self, HistoryError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Durable before MessageAck (SPEC.md §8.1): every commit is synced.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let open_err = |e: sea_orm::sqlx::Error| HistoryError::Open {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        // No liveness ping before each use (`test_before_acquire`, on by default): it guards
        // against a server that hung up, which an SQLite file cannot do, and cost every use
        // one more round trip to the connection's worker thread (issue #14, session 11).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(open_err)?;
        let db = SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
        migration::Migrator::up(&db, None).await?;
        let writer = writer::WriterHandle::start(path).await?;
        Ok(Self { db, writer })
    }

    /// The whole outbox, in sending order: the outgoing messages not acknowledged, in the
    /// order they were stored (the partial index `message_outbox` serves this query).
    ///
    /// # Errors
    /// Database errors.
    pub async fn outbox(&self) -> Result<Vec<(String, ChatFrame)>, HistoryError> {
        let rows = message::Entity::find()
            .filter(message::Column::Direction.eq(Direction::Outgoing.as_str()))
            .filter(message::Column::Acked.eq(false))
            .order_by_asc(message::Column::Seq)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let id = MessageId::from_slice(&hex::decode(&r.message_id).ok()?)?;
                Some((
                    r.friend,
                    ChatFrame {
                        id: id.0,
                        sent_at_unix_ms: u64::try_from(r.sent_at).unwrap_or(0),
                        text: r.text,
                    },
                ))
            })
            .collect())
    }

    /// The last `limit` messages with `friend`, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn messages(
        &self,
        friend: &str,
        limit: u64,
    ) -> Result<Vec<HistoryEntry>, HistoryError> {
        let mut rows = message::Entity::find()
            .filter(message::Column::Friend.eq(friend))
            .order_by_desc(message::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|r| HistoryEntry {
                message_id: r.message_id,
                direction: r.direction,
                text: r.text,
                sent_at_unix_ms: u64::try_from(r.sent_at).unwrap_or(0),
                acked: r.acked,
            })
            .collect())
    }

    /// The last `limit` completed files with `friend`, oldest first: the chat's `<File>`
    /// lines, which must come back after a log-out or a restart like the messages do.
    ///
    /// # Errors
    /// Database errors.
    pub async fn completed_files(
        &self,
        friend: &str,
        limit: u64,
    ) -> Result<Vec<FileEntry>, HistoryError> {
        let mut rows = transfer::Entity::find()
            .filter(transfer::Column::Friend.eq(friend))
            .filter(transfer::Column::State.eq(state::COMPLETE))
            .order_by_desc(transfer::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|r| FileEntry {
                transfer_id: r.transfer_id,
                direction: r.direction,
                name: r.name,
                path: PathBuf::from(r.path),
                size: u64::try_from(r.size).unwrap_or(0),
                at_unix_ms: u64::try_from(r.created_at).unwrap_or(0),
            })
            .collect())
    }
}

impl History {
    /// Writes a transfer as the sans-IO machine reports it (`PersistOp::Transfer`): the SPEC
    /// state name, the end reason and the raw offered name as typed columns. Inserts the row
    /// if the transfer is new (its `path` is then empty until the driver sets it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn record_machine_transfer(
        &self,
        t: &crate::transfer::TransferRecord,
    ) -> Result<(), HistoryError> {
        let results = self
            .apply_batch(vec![crate::machine::PersistOp::Transfer(t.clone())])
            .await;
        match results.into_iter().next().and_then(|r| r.error) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The typed state of a transfer written by [`History::record_machine_transfer`]: the
    /// SPEC state name, the end reason and whether a cancel waits for a link.
    ///
    /// # Errors
    /// Database errors.
    pub async fn machine_transfer_state(
        &self,
        friend: &str,
        direction: Direction,
        id: TransferId,
    ) -> Result<Option<(String, Option<peerchat_proto::wire::FileCancelReason>, bool)>, HistoryError>
    {
        let row = transfer::Entity::find()
            .filter(transfer::Column::Friend.eq(friend))
            .filter(transfer::Column::Direction.eq(direction.as_str()))
            .filter(transfer::Column::TransferId.eq(id.to_hex()))
            .one(&self.db)
            .await?;
        Ok(row.and_then(|r| {
            let reason = r
                .end_reason
                .and_then(|n| peerchat_proto::wire::FileCancelReason::try_from(n).ok());
            Some((r.spec_state?, reason, r.cancel_unsent))
        }))
    }
}

/// A transfer row as the driver restores it into the machine at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransfer {
    /// Friend (lower-case).
    pub friend: String,
    /// The id.
    pub id: TransferId,
    /// The name as offered (the raw name; older rows hold the sanitised one).
    pub offered_name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256; `None` for a streamed-hash transfer or one not hashed yet.
    pub sha256: Option<[u8; 32]>,
    /// Source file (outgoing), `.part` or final file (incoming).
    pub path: PathBuf,
    /// The SPEC §8.3 state name (mapped from the older `state` column for older rows).
    pub spec_state: String,
    /// Why it ended.
    pub end_reason: Option<peerchat_proto::wire::FileCancelReason>,
    /// A sender's FileCancel still waits for a link (S32).
    pub cancel_unsent: bool,
}

impl History {
    /// Every transfer going `direction`, oldest first, for the machine's restore.
    ///
    /// # Errors
    /// Database errors.
    pub async fn stored_transfers(
        &self,
        direction: Direction,
    ) -> Result<Vec<StoredTransfer>, HistoryError> {
        let rows = transfer::Entity::find()
            .filter(transfer::Column::Direction.eq(direction.as_str()))
            .order_by_asc(transfer::Column::Seq)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let spec_state = r
                    .spec_state
                    .clone()
                    .unwrap_or_else(|| spec_of_legacy(&r.state, direction).to_owned());
                Some(StoredTransfer {
                    friend: r.friend,
                    id: TransferId::from_slice(&hex::decode(&r.transfer_id).ok()?)?,
                    offered_name: r.offered_name.unwrap_or(r.name),
                    size: u64::try_from(r.size).ok()?,
                    sha256: hex::decode(&r.sha256)
                        .ok()
                        .and_then(|h| <[u8; 32]>::try_from(h).ok()),
                    path: PathBuf::from(r.path),
                    spec_state,
                    end_reason: r
                        .end_reason
                        .and_then(|n| peerchat_proto::wire::FileCancelReason::try_from(n).ok()),
                    cancel_unsent: r.cancel_unsent,
                })
            })
            .collect())
    }

    /// Records where a transfer's file is: the source (outgoing), the `.part` file once
    /// created, the final file once renamed (incoming).
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_transfer_path(
        &self,
        friend: &str,
        direction: Direction,
        id: TransferId,
        path: &Path,
    ) -> Result<(), HistoryError> {
        transfer::Entity::update_many()
            .col_expr(
                transfer::Column::Path,
                sea_orm::sea_query::Expr::value(path.to_string_lossy().into_owned()),
            )
            .filter(transfer::Column::Friend.eq(friend))
            .filter(transfer::Column::Direction.eq(direction.as_str()))
            .filter(transfer::Column::TransferId.eq(id.to_hex()))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// The SPEC state of a row written before the machine (only the older `state` column).
fn spec_of_legacy(state: &str, direction: Direction) -> &'static str {
    match (state, direction) {
        (state::PENDING, _) | (state::ACTIVE, _) => "SUSPENDED",
        (state::OFFERED, _) => "PENDING_DECISION",
        (state::COMPLETE, _) => "DONE",
        (state::DECLINED, _) => "DECLINED",
        (state::FAILED, _) => "FAILED",
        _ => "CANCELLED",
    }
}

/// The pre-machine `state` column for a SPEC state name, so that code still reading it
/// keeps working.
fn legacy_state(spec: &str) -> &'static str {
    match spec {
        "OFFERED" | "SENDING" | "AWAITING_COMPLETE" => state::PENDING,
        "PENDING_DECISION" => state::OFFERED,
        "RECEIVING" | "VERIFYING" => state::ACTIVE,
        "SUSPENDED" => state::PENDING,
        "DONE" => state::COMPLETE,
        "DECLINED" => state::DECLINED,
        "FAILED" => state::FAILED,
        _ => state::CANCELLED,
    }
}

/// A database path in a fresh temporary directory, which lasts as long as the directory
/// returned with it (tests).
#[cfg(test)]
fn temp_db() -> Result<(tempfile::TempDir, PathBuf), HistoryError> {
    let dir = tempfile::tempdir().map_err(|e| HistoryError::Open {
        path: String::new(),
        detail: e.to_string(),
    })?;
    let path = dir.path().join("h.db");
    Ok((dir, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::PersistOp;

    /// What the driver does when the user sends `frame`: its `AppendOutbox` in a batch.
    async fn send(h: &History, friend: &str, frame: ChatFrame) -> Result<(), HistoryError> {
        let op = PersistOp::AppendOutbox {
            friend: friend.into(),
            frame,
        };
        match h.apply_batch(vec![op]).await.pop().and_then(|r| r.error) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A received `frame` stored as the driver stores it; true if it was new.
    async fn receive(h: &History, friend: &str, frame: ChatFrame) -> Option<bool> {
        let op = PersistOp::StoreIncoming {
            friend: friend.into(),
            frame,
            received_at_unix_ms: now_ms(),
        };
        match h.apply_batch(vec![op]).await.pop()?.persisted? {
            crate::machine::Persisted::Incoming { fresh, .. } => fresh,
            crate::machine::Persisted::Outbox { .. } => None,
        }
    }

    /// The friend's acknowledgement of `id`, marked as the driver marks it.
    async fn ack(h: &History, friend: &str, id: MessageId) {
        let op = PersistOp::MarkDelivered {
            friend: friend.into(),
            id,
        };
        h.apply_batch(vec![op]).await;
    }

    fn frame(n: u8, text: &str) -> ChatFrame {
        ChatFrame {
            id: [n; 16],
            sent_at_unix_ms: 1000 + u64::from(n),
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn machine_transfer_states_are_typed_columns() -> Result<(), HistoryError> {
        use crate::transfer::TransferRecord as Rec;
        use peerchat_proto::wire::FileCancelReason;
        let (_dir, path) = super::temp_db()?;
        let id = TransferId([5; 16]);
        let mut rec = Rec {
            friend: "bob".into(),
            id,
            direction: Direction::Outgoing,
            offered_name: "a\u{202e}txt.exe".into(),
            size: 10,
            sha256: Some([1; 32]),
            state: "SUSPENDED",
            end_reason: None,
            bytes: 0,
            cancel_unsent: false,
        };
        {
            let h = History::open(&path).await?;
            h.record_machine_transfer(&rec).await?;
            rec.state = "CANCELLED";
            rec.end_reason = Some(FileCancelReason::Cancelled);
            rec.cancel_unsent = true;
            h.record_machine_transfer(&rec).await?;
        }
        let h = History::open(&path).await?;
        assert_eq!(
            h.machine_transfer_state("bob", Direction::Outgoing, id)
                .await?,
            Some(("CANCELLED".into(), Some(FileCancelReason::Cancelled), true))
        );
        let stored = h.stored_transfers(Direction::Outgoing).await?;
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (
                stored[0].spec_state.as_str(),
                stored[0].offered_name.as_str()
            ),
            ("CANCELLED", "a\u{202e}txt.exe"),
            "the raw offered name (audit D5)"
        );
        Ok(())
    }

    #[tokio::test]
    async fn outbox_survives_reopen_and_acks_remove_entries() -> Result<(), HistoryError> {
        let (_dir, path) = super::temp_db()?;
        {
            let h = History::open(&path).await?;
            send(&h, "bob", frame(1, "one")).await?;
            send(&h, "bob", frame(2, "two")).await?;
            send(&h, "carol", frame(3, "three")).await?;
            ack(&h, "bob", MessageId([1; 16])).await;
        }
        let h = History::open(&path).await?;
        let out = h.outbox().await?;
        assert_eq!(
            out,
            vec![
                ("bob".to_owned(), frame(2, "two")),
                ("carol".to_owned(), frame(3, "three"))
            ]
        );
        let msgs = h.messages("bob", 10).await?;
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].acked && !msgs[1].acked);
        assert_eq!(msgs[0].text, "one");
        Ok(())
    }

    /// A database written before the outbox moved into `message` (migration 4): its outbox
    /// rows, in their order, are the outbox after the upgrade, an orphan row included, and
    /// the acknowledged message stays out of it.
    #[tokio::test]
    async fn the_old_outbox_table_becomes_the_unacked_messages() -> Result<(), HistoryError> {
        use sea_orm::ConnectionTrait as _;
        let (_dir, path) = super::temp_db()?;
        {
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let db = sea_orm::Database::connect(url).await?;
            migration::Migrator::up(&db, Some(3)).await?;
            let one = hex::encode([1u8; 16]);
            let two = hex::encode([2u8; 16]);
            let orphan = hex::encode([3u8; 16]);
            for sql in [
                format!("INSERT INTO message (message_id, friend, direction, text, sent_at, acked, stored_at) VALUES ('{one}', 'bob', 'out', 'one', 1, 1, 1)"),
                format!("INSERT INTO message (message_id, friend, direction, text, sent_at, acked, stored_at) VALUES ('{two}', 'bob', 'out', 'two', 2, 0, 2)"),
                format!("INSERT INTO outbox (friend, message_id, text, sent_at) VALUES ('carol', '{orphan}', 'three', 3)"),
                format!("INSERT INTO outbox (friend, message_id, text, sent_at) VALUES ('bob', '{two}', 'two', 2)"),
            ] {
                db.execute_unprepared(&sql).await?;
            }
            db.close().await?;
        }
        let h = History::open(&path).await?;
        let mut f2 = frame(2, "two");
        f2.sent_at_unix_ms = 2;
        let mut f3 = frame(3, "three");
        f3.sent_at_unix_ms = 3;
        // The orphan's message row is written by the migration, after every stored one.
        let out = h.outbox().await?;
        assert_eq!(out.len(), 2);
        assert!(out.contains(&("bob".to_owned(), f2)));
        assert!(out.contains(&("carol".to_owned(), f3)));
        ack(&h, "bob", MessageId([2; 16])).await;
        assert_eq!(h.outbox().await?.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn incoming_duplicates_are_stored_once() -> Result<(), HistoryError> {
        let (_dir, path) = super::temp_db()?;
        let h = History::open(&path).await?;
        assert_eq!(receive(&h, "bob", frame(7, "hi")).await, Some(true));
        assert_eq!(receive(&h, "bob", frame(7, "hi")).await, Some(false));
        assert_eq!(
            receive(&h, "carol", frame(7, "hi")).await,
            Some(true),
            "same id from someone else"
        );
        assert_eq!(h.messages("bob", 10).await?.len(), 1);
        Ok(())
    }

    fn rec(n: u8, direction: Direction, state: &'static str) -> crate::transfer::TransferRecord {
        crate::transfer::TransferRecord {
            friend: "bob".into(),
            id: TransferId([n; 16]),
            direction,
            offered_name: format!("f{n}.txt"),
            size: 5_000_000_000 + u64::from(n),
            sha256: Some([n; 32]),
            state,
            end_reason: None,
            bytes: 0,
            cancel_unsent: false,
        }
    }

    /// What the driver restores at start-up is what the machine recorded, with the path the
    /// driver set; a streamed-hash transfer keeps "no SHA-256 yet".
    #[tokio::test]
    async fn transfers_round_trip() -> Result<(), HistoryError> {
        let (_dir, path) = super::temp_db()?;
        let h = History::open(&path).await?;
        let mut t = rec(9, Direction::Outgoing, "OFFERED");
        h.record_machine_transfer(&t).await?;
        h.set_transfer_path("bob", Direction::Outgoing, t.id, Path::new("/tmp/a.iso"))
            .await?;
        t.state = "SUSPENDED";
        h.record_machine_transfer(&t).await?;
        let mut streamed = rec(8, Direction::Outgoing, "SENDING");
        streamed.sha256 = None;
        h.record_machine_transfer(&streamed).await?;
        let got = h.stored_transfers(Direction::Outgoing).await?;
        type Seen<'a> = (TransferId, &'a str, Option<[u8; 32]>, &'a Path, u64);
        let seen: Vec<Seen<'_>> = got
            .iter()
            .map(|g| {
                (
                    g.id,
                    g.spec_state.as_str(),
                    g.sha256,
                    g.path.as_path(),
                    g.size,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    t.id,
                    "SUSPENDED",
                    Some([9; 32]),
                    Path::new("/tmp/a.iso"),
                    t.size
                ),
                (streamed.id, "SENDING", None, Path::new(""), streamed.size),
            ]
        );
        assert!(h.stored_transfers(Direction::Incoming).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn completed_files_survive_reopen_for_the_chat() -> Result<(), HistoryError> {
        let (_dir, path) = super::temp_db()?;
        {
            let h = History::open(&path).await?;
            for (n, st) in [(1u8, "DONE"), (2, "CANCELLED"), (3, "DONE")] {
                let t = rec(n, Direction::Incoming, st);
                h.record_machine_transfer(&t).await?;
                h.set_transfer_path(
                    "bob",
                    Direction::Incoming,
                    t.id,
                    Path::new(&format!("/dl/bob/f{n}.txt")),
                )
                .await?;
            }
        }
        let h = History::open(&path).await?;
        let files = h.completed_files("bob", 10).await?;
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["f1.txt", "f3.txt"],
            "only completed ones, oldest first"
        );
        assert_eq!(files[1].path, PathBuf::from("/dl/bob/f3.txt"));
        assert_eq!(files[1].direction, "in");
        assert!(h.completed_files("carol", 10).await?.is_empty());
        Ok(())
    }
}
