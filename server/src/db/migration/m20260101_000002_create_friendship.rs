//! Creates `friendship` (see `entity::friendship`).

use sea_orm_migration::prelude::*;

use super::m20260101_000001_create_account::Account;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Friendship {
    Table,
    UserA,
    UserB,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Friendship::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Friendship::UserA).big_integer().not_null())
                    .col(ColumnDef::new(Friendship::UserB).big_integer().not_null())
                    .col(
                        ColumnDef::new(Friendship::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(Friendship::UserA)
                            .col(Friendship::UserB),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Friendship::Table, Friendship::UserA)
                            .to(Account::Table, Account::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Friendship::Table, Friendship::UserB)
                            .to(Account::Table, Account::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Lookups by either end: the primary key covers user_a, this index covers user_b.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_friendship_user_b")
                    .table(Friendship::Table)
                    .col(Friendship::UserB)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Friendship::Table).to_owned())
            .await
    }
}
