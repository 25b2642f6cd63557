//! Queued notices (SPEC.md §6.9): what happened to a user's friend requests while they were
//! offline, delivered after their next LoginOk and deleted only once the client has
//! acknowledged them (the Pong to the Ping that follows them).

use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _};

use super::entity::notice::NoticeKind;
use super::entity::{account, notice};
use super::login_view::Contact;
use super::{DbError, Store};

/// One queued notice, joined with the other user's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Row id, to delete exactly the notices that were delivered.
    pub id: i64,
    /// What happened.
    pub kind: NoticeKind,
    /// The other user as they are now (for an accepted request: the new friend).
    pub other: Contact,
}

impl Store {
    /// Every notice for `id`, oldest first. Nothing is deleted: see [`Store::delete_notices`].
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn pending_notices(&self, id: i64) -> Result<Vec<Notice>, DbError> {
        let rows = notice::Entity::find()
            .filter(notice::Column::AccountId.eq(id))
            .order_by_asc(notice::Column::Id)
            .find_also_related(account::Entity)
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(n, other)| {
                Some(Notice {
                    id: n.id,
                    kind: NoticeKind::parse(&n.kind)?,
                    other: other?.into(),
                })
            })
            .collect())
    }

    /// Queues one notice for `to` about `other` (an event whose push could not be enqueued
    /// because the session ended between the online check and the push).
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn queue_notice(
        &self,
        to: i64,
        kind: NoticeKind,
        other: i64,
        now: u64,
    ) -> Result<(), DbError> {
        let _w = self.writer().await;
        let _cached = self.cache_write(vec![to]);
        super::friends::insert_notice(self.conn(), to, kind, other, now).await?;
        Ok(())
    }

    /// Deletes the notices of account `to` with these row ids (delivered and acknowledged, or
    /// discarded). The account is named so that its cached view can be invalidated, and
    /// limits the deletion to its own notices.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn delete_notices(&self, to: i64, ids: &[i64]) -> Result<(), DbError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _w = self.writer().await;
        let _cached = self.cache_write(vec![to]);
        notice::Entity::delete_many()
            .filter(notice::Column::AccountId.eq(to))
            .filter(notice::Column::Id.is_in(ids.iter().copied()))
            .exec(self.conn())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
impl Store {
    /// Pending notices, then deleted (the old one-step form, for the store's own tests).
    pub(crate) async fn take_notices(&self, id: i64) -> Result<Vec<Notice>, DbError> {
        let n = self.pending_notices(id).await?;
        self.delete_notices(id, &n.iter().map(|n| n.id).collect::<Vec<_>>())
            .await?;
        Ok(n)
    }
}
