//! Schema migrations of the history database, run at every start.

use sea_orm_migration::prelude::*;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_create_history::Migration),
            Box::new(m20261201_000002_transfer_spec_state::Migration),
            Box::new(m20261201_000003_outbox_lookup::Migration),
            Box::new(m20261201_000004_outbox_in_messages::Migration),
        ]
    }
}

#[allow(clippy::enum_variant_names)]
mod m20250101_000001_create_history {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    #[derive(DeriveMigrationName)]
    pub struct Migration;

    #[derive(DeriveIden)]
    enum Message {
        Table,
        Seq,
        MessageId,
        Friend,
        Direction,
        Text,
        SentAt,
        Acked,
        StoredAt,
    }

    #[derive(DeriveIden)]
    enum Outbox {
        Table,
        Seq,
        Friend,
        MessageId,
        Text,
        SentAt,
    }

    #[derive(DeriveIden)]
    enum Transfer {
        Table,
        Seq,
        TransferId,
        Friend,
        Direction,
        Name,
        Size,
        Sha256,
        Path,
        State,
        CreatedAt,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Message::Table)
                        .if_not_exists()
                        .col(pk_auto(Message::Seq))
                        .col(string(Message::MessageId))
                        .col(string(Message::Friend))
                        .col(string(Message::Direction))
                        .col(text(Message::Text))
                        .col(big_integer(Message::SentAt))
                        .col(boolean(Message::Acked))
                        .col(big_integer(Message::StoredAt))
                        .to_owned(),
                )
                .await?;
            // A message id is stored once per friend and direction: this is the duplicate rule.
            manager
                .create_index(
                    Index::create()
                        .name("message_unique_id")
                        .table(Message::Table)
                        .col(Message::Friend)
                        .col(Message::Direction)
                        .col(Message::MessageId)
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Outbox::Table)
                        .if_not_exists()
                        .col(pk_auto(Outbox::Seq))
                        .col(string(Outbox::Friend))
                        .col(string(Outbox::MessageId))
                        .col(text(Outbox::Text))
                        .col(big_integer(Outbox::SentAt))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Transfer::Table)
                        .if_not_exists()
                        .col(pk_auto(Transfer::Seq))
                        .col(string(Transfer::TransferId))
                        .col(string(Transfer::Friend))
                        .col(string(Transfer::Direction))
                        .col(string(Transfer::Name))
                        .col(big_integer(Transfer::Size))
                        .col(string(Transfer::Sha256))
                        .col(text(Transfer::Path))
                        .col(string(Transfer::State))
                        .col(big_integer(Transfer::CreatedAt))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("transfer_unique_id")
                        .table(Transfer::Table)
                        .col(Transfer::Friend)
                        .col(Transfer::Direction)
                        .col(Transfer::TransferId)
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            for t in [
                Message::Table.into_iden(),
                Outbox::Table.into_iden(),
                Transfer::Table.into_iden(),
            ] {
                manager
                    .drop_table(Table::drop().table(t).to_owned())
                    .await?;
            }
            Ok(())
        }
    }
}

/// Transfer states as SPEC.md §8.3 names them, with the reason that ended a transfer and the
/// offered name as received (issue #13 item 4; audit D3, D4, D20), and a sender's FileCancel
/// still to deliver (D6). Nullable, so rows of older versions stay valid; the old `state`
/// column stays for the code that still reads it.
mod m20261201_000002_transfer_spec_state {
    use sea_orm_migration::prelude::*;

    pub struct Migration;

    // Named by hand: `DeriveMigrationName` takes the file's name, which the first migration
    // in this file already uses.
    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261201_000002_transfer_spec_state"
        }
    }

    #[derive(DeriveIden)]
    enum Transfer {
        Table,
        SpecState,
        EndReason,
        OfferedName,
        CancelUnsent,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            // SQLite alters one column per statement.
            for col in [
                ColumnDef::new(Transfer::SpecState)
                    .string()
                    .null()
                    .to_owned(),
                ColumnDef::new(Transfer::EndReason)
                    .integer()
                    .null()
                    .to_owned(),
                ColumnDef::new(Transfer::OfferedName)
                    .text()
                    .null()
                    .to_owned(),
                ColumnDef::new(Transfer::CancelUnsent)
                    .boolean()
                    .not_null()
                    .default(false)
                    .to_owned(),
            ] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Transfer::Table)
                            .add_column(col)
                            .to_owned(),
                    )
                    .await?;
            }
            Ok(())
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            for col in [
                Transfer::SpecState,
                Transfer::EndReason,
                Transfer::OfferedName,
                Transfer::CancelUnsent,
            ] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Transfer::Table)
                            .drop_column(col)
                            .to_owned(),
                    )
                    .await?;
            }
            Ok(())
        }
    }
}

/// An index on `outbox(friend, message_id)`: an acknowledgement removes its entry by friend
/// and id, and without an index every removal scanned the whole outbox — quadratic in a
/// burst of thousands of unacknowledged messages (group commit, issue 14).
mod m20261201_000003_outbox_lookup {
    use sea_orm_migration::prelude::*;

    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261201_000003_outbox_lookup"
        }
    }

    #[derive(DeriveIden)]
    enum Outbox {
        Table,
        Friend,
        MessageId,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_index(
                    Index::create()
                        .name("outbox_friend_message")
                        .table(Outbox::Table)
                        .col(Outbox::Friend)
                        .col(Outbox::MessageId)
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_index(
                    Index::drop()
                        .name("outbox_friend_message")
                        .table(Outbox::Table)
                        .to_owned(),
                )
                .await
        }
    }
}

/// The outbox becomes the outgoing messages not yet acknowledged (issue 14): the `outbox`
/// table held a second copy of each unacknowledged message's text, so a sent message cost two
/// inserts and its acknowledgement an update and a delete — the sender's half of a chat flood
/// was its history. Every outbox row had its `message` row (both were written in one
/// transaction, and removed from the outbox in the transaction that marked the message
/// acked), so `direction = 'out' AND NOT acked` in `seq` order is the same list in the same
/// order. A partial index keeps that list cheap to read at start-up and costs an
/// acknowledgement one index entry instead of a row and its index entry.
mod m20261201_000004_outbox_in_messages {
    use sea_orm_migration::prelude::*;

    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261201_000004_outbox_in_messages"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            let db = manager.get_connection();
            // An outbox row without its message row cannot be written by this client; kept
            // anyway, as an unacknowledged outgoing message, so that nothing is lost.
            db.execute_unprepared(
                "INSERT INTO message (message_id, friend, direction, text, sent_at, acked, stored_at) \
                 SELECT o.message_id, o.friend, 'out', o.text, o.sent_at, 0, o.sent_at FROM outbox o \
                 WHERE NOT EXISTS (SELECT 1 FROM message m WHERE m.friend = o.friend \
                 AND m.direction = 'out' AND m.message_id = o.message_id) ORDER BY o.seq",
            )
            .await?;
            db.execute_unprepared(
                "CREATE INDEX IF NOT EXISTS message_outbox ON message (seq) \
                 WHERE direction = 'out' AND acked = 0",
            )
            .await?;
            db.execute_unprepared("DROP TABLE outbox").await?;
            Ok(())
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            let db = manager.get_connection();
            db.execute_unprepared(
                "CREATE TABLE outbox (seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \
                 friend VARCHAR NOT NULL, message_id VARCHAR NOT NULL, text TEXT NOT NULL, \
                 sent_at BIGINT NOT NULL)",
            )
            .await?;
            db.execute_unprepared(
                "INSERT INTO outbox (friend, message_id, text, sent_at) \
                 SELECT friend, message_id, text, sent_at FROM message \
                 WHERE direction = 'out' AND acked = 0 ORDER BY seq",
            )
            .await?;
            db.execute_unprepared(
                "CREATE INDEX outbox_friend_message ON outbox (friend, message_id)",
            )
            .await?;
            db.execute_unprepared("DROP INDEX message_outbox").await?;
            Ok(())
        }
    }
}
