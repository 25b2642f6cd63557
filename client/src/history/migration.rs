//! Schema migrations of the history database, run at every start.

use sea_orm_migration::prelude::*;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20250101_000001_create_history::Migration)]
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
