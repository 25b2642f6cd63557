//! Creates `notice` (see `entity::notice`).

use sea_orm_migration::prelude::*;

use super::m20260101_000001_create_account::Account;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Notice {
    Table,
    Id,
    AccountId,
    Kind,
    OtherId,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notice::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Notice::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Notice::AccountId).big_integer().not_null())
                    .col(ColumnDef::new(Notice::Kind).string().not_null())
                    .col(ColumnDef::new(Notice::OtherId).big_integer().not_null())
                    .col(ColumnDef::new(Notice::CreatedAtMs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Notice::Table, Notice::AccountId)
                            .to(Account::Table, Account::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Notice::Table, Notice::OtherId)
                            .to(Account::Table, Account::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_notice_account")
                    .table(Notice::Table)
                    .col(Notice::AccountId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Notice::Table).to_owned())
            .await
    }
}
