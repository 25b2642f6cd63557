//! Queued notices (SPEC.md §6.9): what happened to a user's friend requests while they were
//! offline, delivered after their next LoginOk.

use sea_orm::{
    ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _, TransactionTrait as _,
};

use super::entity::notice::NoticeKind;
use super::entity::{account, notice};
use super::{DbError, Store};

/// One queued notice, joined with the other user's account.
#[derive(Debug, Clone)]
pub struct Notice {
    /// What happened.
    pub kind: NoticeKind,
    /// The other user as they are now (for an accepted request: the new friend).
    pub other: account::Model,
}

impl Store {
    /// Removes and returns every notice for `id`, oldest first, in one transaction.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn take_notices(&self, id: i64) -> Result<Vec<Notice>, DbError> {
        let _w = self.writer().await;
        let txn = self.conn().begin().await?;
        let rows = notice::Entity::find()
            .filter(notice::Column::AccountId.eq(id))
            .order_by_asc(notice::Column::Id)
            .find_also_related(account::Entity)
            .all(&txn)
            .await?;
        notice::Entity::delete_many()
            .filter(notice::Column::AccountId.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(rows
            .into_iter()
            .filter_map(|(n, other)| {
                Some(Notice {
                    kind: NoticeKind::parse(&n.kind)?,
                    other: other?,
                })
            })
            .collect())
    }
}
