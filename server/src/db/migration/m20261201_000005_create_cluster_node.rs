//! Creates `cluster_node`: one row per server node of a cluster, with its last heartbeat
//! (see `crate::cluster`). Unused by a single node, created anyway so that both engines
//! carry one schema.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ClusterNode {
    Table,
    Node,
    HeartbeatMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClusterNode::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ClusterNode::Node)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ClusterNode::HeartbeatMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ClusterNode::Table).to_owned())
            .await
    }
}
