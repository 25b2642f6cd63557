//! Creates `friend_request` (see `entity::friend_request`).

use sea_orm_migration::prelude::*;

use super::m20260101_000001_create_account::Account;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FriendRequest {
    Table,
    Id,
    FromId,
    ToId,
    CreatedAtMs,
    ExpiresAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FriendRequest::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(FriendRequest::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(FriendRequest::FromId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(FriendRequest::ToId).big_integer().not_null())
                    .col(
                        ColumnDef::new(FriendRequest::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(FriendRequest::ExpiresAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FriendRequest::Table, FriendRequest::FromId)
                            .to(Account::Table, Account::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(FriendRequest::Table, FriendRequest::ToId)
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
                    .name("idx_friend_request_pair")
                    .table(FriendRequest::Table)
                    .col(FriendRequest::FromId)
                    .col(FriendRequest::ToId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_friend_request_to")
                    .table(FriendRequest::Table)
                    .col(FriendRequest::ToId)
                    .to_owned(),
            )
            .await?;
        // The sweeper scans by expiry every second.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_friend_request_expires")
                    .table(FriendRequest::Table)
                    .col(FriendRequest::ExpiresAtMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FriendRequest::Table).to_owned())
            .await
    }
}
