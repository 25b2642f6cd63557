//! Schema migrations, run at every start (`Migrator::up`), in file-name order.

use sea_orm_migration::prelude::*;

mod m20260101_000001_create_account;
mod m20260101_000002_create_friendship;
mod m20260101_000003_create_friend_request;
mod m20260101_000004_create_notice;
mod m20261201_000005_create_cluster_node;
mod m20261201_000006_create_auth_attempt;

/// All migrations of the server database.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_create_account::Migration),
            Box::new(m20260101_000002_create_friendship::Migration),
            Box::new(m20260101_000003_create_friend_request::Migration),
            Box::new(m20260101_000004_create_notice::Migration),
            Box::new(m20261201_000005_create_cluster_node::Migration),
            Box::new(m20261201_000006_create_auth_attempt::Migration),
        ]
    }
}
