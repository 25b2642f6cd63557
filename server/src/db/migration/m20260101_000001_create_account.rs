//! Creates `account` (see `entity::account`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Account {
    Table,
    Id,
    Userid,
    UseridLower,
    Email,
    EmailLower,
    PasswordHash,
    RecoveryHash,
    IdentityKey,
    CreatedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Account::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Account::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Account::Userid).string().not_null())
                    .col(
                        ColumnDef::new(Account::UseridLower)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Account::Email).string().not_null())
                    .col(
                        ColumnDef::new(Account::EmailLower)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Account::PasswordHash).string().not_null())
                    .col(ColumnDef::new(Account::RecoveryHash).string().not_null())
                    .col(ColumnDef::new(Account::IdentityKey).binary().not_null())
                    .col(
                        ColumnDef::new(Account::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Account::Table).to_owned())
            .await
    }
}
