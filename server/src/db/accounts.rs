//! Account queries (SPEC.md §5): create, look up case-insensitively, replace the identity key,
//! reset the password.

use sea_orm::{ActiveModelTrait as _, ColumnTrait as _, EntityTrait as _, QueryFilter as _, Set};

use super::entity::account;
use super::key_cache::{key_digest, KeyLoginAccount};
use super::{DbError, Store};

/// A validated, hashed registration, ready to store.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Registered spelling.
    pub userid: String,
    /// E-mail as typed.
    pub email: String,
    /// argon2id PHC of the password.
    pub password_hash: String,
    /// argon2id PHC of the normalised recovery code.
    pub recovery_hash: String,
    /// Identity key DER.
    pub identity_key: Vec<u8>,
    /// Now, Unix ms.
    pub created_at_ms: u64,
}

/// Why a registration could not be stored, in the order SPEC.md §5.2 checks.
#[derive(Debug, thiserror::Error)]
pub enum RegisterConflict {
    /// USERID_TAKEN.
    #[error("userid taken")]
    UseridTaken,
    /// EMAIL_TAKEN.
    #[error("e-mail taken")]
    EmailTaken,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sea_orm::DbErr> for RegisterConflict {
    fn from(e: sea_orm::DbErr) -> Self {
        RegisterConflict::Db(e.into())
    }
}

impl Store {
    /// The account whose lowercase userid is `userid_lower`.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn account_by_userid(
        &self,
        userid_lower: &str,
    ) -> Result<Option<account::Model>, DbError> {
        Ok(account::Entity::find()
            .filter(account::Column::UseridLower.eq(userid_lower))
            .one(self.conn())
            .await?)
    }

    /// What KeyLogin needs of the account whose lowercase userid is `userid_lower`: from the
    /// cache when this store has one and holds the account, else from the database (and then
    /// cached). See [`super::key_cache`] for why this is coherent on a single server.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn key_login_account(
        &self,
        userid_lower: &str,
    ) -> Result<Option<KeyLoginAccount>, DbError> {
        let epoch = match self.key_cache().map(|c| c.get(userid_lower)) {
            Some(Ok(hit)) => return Ok(Some(hit)),
            Some(Err(epoch)) => Some(epoch),
            None => None,
        };
        let Some(row) = self.account_by_userid(userid_lower).await? else {
            // Unknown userids are not cached: strangers cannot fill the cache with them.
            return Ok(None);
        };
        let account = KeyLoginAccount {
            id: row.id,
            userid: row.userid,
            key: key_digest(&row.identity_key),
        };
        if let (Some(cache), Some(epoch)) = (self.key_cache(), epoch) {
            cache.insert(userid_lower, &account, epoch);
        }
        Ok(Some(account))
    }

    /// The account with internal id `id`.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn account_by_id(&self, id: i64) -> Result<Option<account::Model>, DbError> {
        Ok(account::Entity::find_by_id(id).one(self.conn()).await?)
    }

    /// Which uniqueness rule (if any) a registration of `userid_lower` / `email_lower` breaks,
    /// without writing. Lets Register answer USERID_TAKEN/EMAIL_TAKEN before spending two
    /// argon2 hashes.
    ///
    /// # Errors
    /// [`RegisterConflict`].
    pub async fn check_register(
        &self,
        userid_lower: &str,
        email_lower: &str,
    ) -> Result<(), RegisterConflict> {
        if self.account_by_userid(userid_lower).await?.is_some() {
            return Err(RegisterConflict::UseridTaken);
        }
        let email = account::Entity::find()
            .filter(account::Column::EmailLower.eq(email_lower))
            .one(self.conn())
            .await?;
        if email.is_some() {
            return Err(RegisterConflict::EmailTaken);
        }
        Ok(())
    }

    /// Stores a new account, re-checking uniqueness under the write lock (another connection
    /// may have registered the same name while this one was hashing).
    ///
    /// # Errors
    /// [`RegisterConflict`].
    pub async fn create_account(
        &self,
        new: NewAccount,
    ) -> Result<account::Model, RegisterConflict> {
        let _w = self.writer().await;
        let userid_lower = new.userid.to_ascii_lowercase();
        let email_lower = new.email.to_ascii_lowercase();
        self.check_register(&userid_lower, &email_lower).await?;
        let row = account::ActiveModel {
            userid: Set(new.userid),
            userid_lower: Set(userid_lower),
            email: Set(new.email),
            email_lower: Set(email_lower),
            password_hash: Set(new.password_hash),
            recovery_hash: Set(new.recovery_hash),
            identity_key: Set(new.identity_key),
            created_at_ms: Set(super::ms(new.created_at_ms)),
            ..Default::default()
        };
        Ok(row.insert(self.conn()).await?)
    }

    /// Replaces an account's identity key (a password login from a new device, SPEC.md §5.3).
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn set_identity_key(&self, id: i64, der: Vec<u8>) -> Result<(), DbError> {
        let _w = self.writer().await;
        // Now: no KeyLogin takes the old key from the cache once the change has begun, and no
        // login shows it to a friend. On drop, after the UPDATE: a read that saw the old row
        // cannot cache it (super::key_cache).
        let _cached = self.cache_key_write(id);
        account::ActiveModel {
            id: Set(id),
            identity_key: Set(der),
            ..Default::default()
        }
        .update(self.conn())
        .await?;
        Ok(())
    }

    /// Sets a new password and recovery code (SPEC.md §5.5); the old code stops working.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn reset_password(
        &self,
        id: i64,
        password_hash: String,
        recovery_hash: String,
    ) -> Result<(), DbError> {
        let _w = self.writer().await;
        account::ActiveModel {
            id: Set(id),
            password_hash: Set(password_hash),
            recovery_hash: Set(recovery_hash),
            ..Default::default()
        }
        .update(self.conn())
        .await?;
        Ok(())
    }

    /// Sets a new password and nothing else (ChangePassword, SPEC.md §5.7): the recovery code
    /// stays valid, so knowing the password is not enough to take it from the owner.
    ///
    /// # Errors
    /// [`DbError`].
    pub async fn set_password(&self, id: i64, password_hash: String) -> Result<(), DbError> {
        let _w = self.writer().await;
        account::ActiveModel {
            id: Set(id),
            password_hash: Set(password_hash),
            ..Default::default()
        }
        .update(self.conn())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::tests::temp_store;

    pub(crate) fn new_account(userid: &str, email: &str) -> NewAccount {
        NewAccount {
            userid: userid.into(),
            email: email.into(),
            password_hash: "p".into(),
            recovery_hash: "r".into(),
            identity_key: vec![1, 2, 3],
            created_at_ms: 5,
        }
    }

    /// With the cache, a KeyLogin lookup is served from memory after the first, and a key
    /// replaced through the store is never answered from the cache afterwards.
    #[tokio::test]
    async fn key_login_cache_follows_key_changes() {
        let (mut s, _d) = temp_store().await;
        s.cache_key_logins(16);
        let a = s
            .create_account(new_account("Alice", "a@example.org"))
            .await
            .unwrap();
        assert_eq!(s.key_login_account("nobody").await.unwrap(), None);
        let first = s.key_login_account("alice").await.unwrap().unwrap();
        assert_eq!(
            (first.id, first.userid.as_str(), first.key),
            (a.id, "Alice", key_digest(&[1, 2, 3]))
        );
        let cache = s.key_cache().unwrap();
        assert_eq!(
            cache.len(),
            1,
            "known accounts are cached, unknown ones not"
        );
        assert_eq!(cache.get("alice"), Ok(first.clone()));

        s.set_identity_key(a.id, vec![9]).await.unwrap();
        assert!(s.key_cache().unwrap().get("alice").is_err(), "invalidated");
        let after = s.key_login_account("alice").await.unwrap().unwrap();
        assert_eq!(after.key, key_digest(&[9]));
        assert_eq!(s.key_cache().unwrap().get("alice"), Ok(after));
    }

    /// Without the cache (a cluster), every lookup reads the database.
    #[tokio::test]
    async fn key_login_without_cache_reads_the_database() {
        let (s, _d) = temp_store().await;
        let a = s
            .create_account(new_account("bob", "b@example.org"))
            .await
            .unwrap();
        assert!(s.key_cache().is_none());
        s.set_identity_key(a.id, vec![4]).await.unwrap();
        let got = s.key_login_account("bob").await.unwrap().unwrap();
        assert_eq!(got.key, key_digest(&[4]));
    }

    #[tokio::test]
    async fn uniqueness_is_case_insensitive() {
        let (s, _d) = temp_store().await;
        let a = s
            .create_account(new_account("Alice", "A@example.org"))
            .await
            .unwrap();
        assert_eq!(a.userid_lower, "alice");
        assert!(matches!(
            s.create_account(new_account("ALICE", "b@example.org"))
                .await,
            Err(RegisterConflict::UseridTaken)
        ));
        assert!(matches!(
            s.create_account(new_account("bob", "a@EXAMPLE.org")).await,
            Err(RegisterConflict::EmailTaken)
        ));
        assert_eq!(
            s.account_by_userid("alice").await.unwrap().unwrap().userid,
            "Alice"
        );
        s.set_identity_key(a.id, vec![9]).await.unwrap();
        s.reset_password(a.id, "p2".into(), "r2".into())
            .await
            .unwrap();
        let a2 = s.account_by_id(a.id).await.unwrap().unwrap();
        assert_eq!(
            (
                a2.identity_key,
                a2.password_hash.as_str(),
                a2.recovery_hash.as_str()
            ),
            (vec![9], "p2", "r2")
        );
        s.set_password(a.id, "p3".into()).await.unwrap();
        let a3 = s.account_by_id(a.id).await.unwrap().unwrap();
        assert_eq!(
            (a3.password_hash.as_str(), a3.recovery_hash.as_str()),
            ("p3", "r2"),
            "a password change keeps the recovery code"
        );
    }
}
