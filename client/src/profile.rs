//! The profile directory of one user on one device: identity key, pinned server keys,
//! friend cache, history database, account name and downloads.
//!
//! Everything a client remembers lives here and nowhere else (in particular, never on the
//! server), so a profile can be backed up, moved or wiped as one folder.

use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomically;

use peerchat_proto::limits::RSA_DEFAULT_BITS;
use peerchat_proto::IdentityKeyPair;

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A file or folder of the profile could not be read or written.
    #[error("profile {path}: {detail}")]
    Io {
        /// The file or folder.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The identity key could not be loaded or created.
    #[error("identity key: {0}")]
    Identity(#[from] peerchat_proto::IdentityError),
    /// No data folder is known on this system and no `--profile` was given.
    #[error("no default profile location on this system; pass --profile DIR")]
    NoDefaultLocation,
}

/// The paths of a profile directory.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
    downloads: PathBuf,
}

impl Profile {
    /// Opens (creating if needed) the profile at `dir`, with downloads in `download_dir` or
    /// `dir/downloads`.
    ///
    /// # Errors
    /// [`ProfileError::Io`] if the folders cannot be created.
    pub fn open(dir: &Path, download_dir: Option<&Path>) -> Result<Self, ProfileError> {
        let downloads = download_dir.map_or_else(|| dir.join("downloads"), Path::to_path_buf);
        for d in [dir, downloads.as_path()] {
            std::fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
        }
        restrict_dir(dir);
        Ok(Self {
            dir: dir.to_owned(),
            downloads,
        })
    }

    /// The default profile folder: `<data dir>/peerchat/default`.
    ///
    /// # Errors
    /// [`ProfileError::NoDefaultLocation`].
    pub fn default_dir() -> Result<PathBuf, ProfileError> {
        dirs::data_dir()
            .map(|d| d.join("peerchat").join("default"))
            .ok_or(ProfileError::NoDefaultLocation)
    }

    /// The profile folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The RSA identity key (PKCS#8 PEM, mode 0600). Tests pre-seed it with a fixed key.
    pub fn identity_path(&self) -> PathBuf {
        self.dir.join("identity.pem")
    }

    /// Pinned server keys.
    pub fn known_servers_path(&self) -> PathBuf {
        self.dir.join("known_servers")
    }

    /// The friend cache (`friends::FriendBook::save`). The profile owns every file name of
    /// its folder, so it depends on no module that stores there (no `profile` ↔ `friends`
    /// cycle).
    pub fn friends_path(&self) -> PathBuf {
        self.dir.join("friends.json")
    }

    /// The SQLite history database.
    pub fn history_path(&self) -> PathBuf {
        self.dir.join("history.db")
    }

    /// The account this profile logs in as (written after register/login).
    pub fn account_path(&self) -> PathBuf {
        self.dir.join("account")
    }

    /// Where received files go: `downloads/<sender>/<name>`.
    pub fn downloads(&self) -> &Path {
        &self.downloads
    }

    /// Loads the identity key, generating a 3072-bit one on first use (slow: seconds).
    /// Returns the pair and whether it was just created.
    ///
    /// # Errors
    /// [`ProfileError::Identity`].
    pub fn load_identity(&self) -> Result<(IdentityKeyPair, bool), ProfileError> {
        let path = self.identity_path();
        let loaded = IdentityKeyPair::load_or_generate(&path, RSA_DEFAULT_BITS)?;
        restrict_file(&path);
        Ok(loaded)
    }

    /// The userid this profile belongs to, if it registered or logged in before.
    pub fn account(&self) -> Option<String> {
        let s = std::fs::read_to_string(self.account_path()).ok()?;
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    }

    /// Remembers the userid this profile belongs to.
    ///
    /// # Errors
    /// [`ProfileError::Io`].
    pub fn set_account(&self, userid: &str) -> Result<(), ProfileError> {
        let p = self.account_path();
        write_atomically(&p, format!("{userid}\n").as_bytes()).map_err(|e| io_err(&p, e))
    }
}

fn io_err(path: &Path, e: std::io::Error) -> ProfileError {
    ProfileError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// The profile holds a private key and private history: only its owner may enter it.
fn restrict_dir(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// A private key readable by others (copied in by hand, for example) is made owner-only.
fn restrict_file(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "identity key was readable by others; setting mode 0600");
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_key_is_used_and_account_round_trips() -> Result<(), ProfileError> {
        let dir = tempfile::tempdir().map_err(|e| io_err(Path::new("tmp"), e))?;
        let p = Profile::open(dir.path(), None)?;
        std::fs::write(p.identity_path(), peerchat_proto::test_keys::pem(3))
            .map_err(|e| io_err(dir.path(), e))?;
        let (pair, created) = p.load_identity()?;
        assert!(!created);
        assert_eq!(
            pair.public(),
            peerchat_proto::test_keys::identity(3).public()
        );
        assert_eq!(p.account(), None);
        p.set_account("Alice")?;
        assert_eq!(p.account().as_deref(), Some("Alice"));
        assert!(p.downloads().is_dir());
        Ok(())
    }
}
