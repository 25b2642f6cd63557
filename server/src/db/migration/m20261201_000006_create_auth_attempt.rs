//! Creates `auth_attempt`: authentication failure marks shared by the nodes of a cluster
//! (see `crate::cluster::limits`). A single node keeps them in memory instead.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuthAttempt {
    Table,
    Id,
    Key,
    AtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthAttempt::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AuthAttempt::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuthAttempt::Key).string().not_null())
                    .col(ColumnDef::new(AuthAttempt::AtMs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_auth_attempt_key")
                    .table(AuthAttempt::Table)
                    .col(AuthAttempt::Key)
                    .col(AuthAttempt::AtMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuthAttempt::Table).to_owned())
            .await
    }
}
