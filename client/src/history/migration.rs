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
