//! Trust on first use for the server's identity key.
//!
//! The first time a profile connects to a server address, the fingerprint of the key the
//! server proved in the handshake is written to `known_servers` in the profile. Every later
//! connection must present the same key; a different key is a hard error, because it means
//! either a reinstalled server or someone in the middle, and only a person can tell which.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use peerchat_proto::Fingerprint;

use crate::atomic_file::write_atomically;

/// The outcome of a successful check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// The key matches the pinned one.
    Known,
    /// First contact with this address: the key is now pinned.
    FirstUse,
}

/// Why a server key is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The server presents a different key than the one pinned for its address.
    #[error(
        "the server at {server} presented identity key {presented}, but this profile pinned {pinned} for it. \
         Either the server was reinstalled with a new key, or someone is intercepting the connection. \
         Ask the server operator for the server's fingerprint; only if it is {presented}, delete the line \
         for {server} in {file} (or the whole file) and connect again"
    )]
    Changed {
        /// The server address as configured.
        server: String,
        /// The pinned fingerprint.
        pinned: String,
        /// The fingerprint presented now.
        presented: String,
        /// The pin file.
        file: String,
    },
    /// The pin file could not be read or written.
    #[error("server pin file {file}: {detail}")]
    File {
        /// The pin file.
        file: String,
        /// What went wrong.
        detail: String,
    },
}

/// The pinned server keys of one profile: `address fingerprint` lines.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
    pins: BTreeMap<String, Fingerprint>,
}

impl KnownServers {
    /// Parses the pin file's text (sans-IO). Blank lines and `#` comments are skipped;
    /// malformed lines too (they pin nothing).
    pub fn parse(path: PathBuf, text: &str) -> Self {
        let pins = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (addr, fp) = l.split_once(char::is_whitespace)?;
                Some((addr.to_owned(), fp.trim().parse().ok()?))
            })
            .collect();
        Self { path, pins }
    }

    /// Loads the pin file (missing = nothing pinned yet).
    ///
    /// # Errors
    /// [`PinError::File`] if it exists but cannot be read.
    pub fn load(path: &Path) -> Result<Self, PinError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(path.to_owned(), &text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Self::parse(path.to_owned(), ""))
            }
            Err(e) => Err(PinError::File {
                file: path.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    /// The file's text (sans-IO).
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# Peerchat: server identity keys pinned on first use (address fingerprint)\n",
        );
        for (addr, fp) in &self.pins {
            s.push_str(&format!("{addr} {fp}\n"));
        }
        s
    }

    /// Checks `presented` for `server` and pins it on first use (in memory; see
    /// [`KnownServers::check_and_save`]).
    ///
    /// # Errors
    /// [`PinError::Changed`].
    pub fn check(&mut self, server: &str, presented: Fingerprint) -> Result<PinCheck, PinError> {
        match self.pins.get(server) {
            Some(p) if *p == presented => Ok(PinCheck::Known),
            Some(p) => Err(PinError::Changed {
                server: server.to_owned(),
                pinned: p.to_string(),
                presented: presented.to_string(),
                file: self.path.display().to_string(),
            }),
            None => {
                self.pins.insert(server.to_owned(), presented);
                Ok(PinCheck::FirstUse)
            }
        }
    }

    /// [`KnownServers::check`], writing the file on first use.
    ///
    /// # Errors
    /// [`PinError::Changed`] or [`PinError::File`].
    pub fn check_and_save(
        &mut self,
        server: &str,
        presented: Fingerprint,
    ) -> Result<PinCheck, PinError> {
        let r = self.check(server, presented)?;
        if r == PinCheck::FirstUse {
            write_atomically(&self.path, self.render().as_bytes()).map_err(|e| PinError::File {
                file: self.path.display().to_string(),
                detail: e.to_string(),
            })?;
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_pins_then_a_changed_key_is_refused_with_both_fingerprints() {
        let (a, b) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        let mut k = KnownServers::parse(PathBuf::from("/p/known_servers"), "");
        assert_eq!(k.check("srv:1", a), Ok(PinCheck::FirstUse));
        assert_eq!(k.check("srv:1", a), Ok(PinCheck::Known));
        let err = k
            .check("srv:1", b)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(&a.to_string()) && err.contains(&b.to_string()),
            "{err}"
        );
        assert!(
            err.contains("/p/known_servers") && err.contains("srv:1"),
            "{err}"
        );
        assert_eq!(
            k.check("other:2", b),
            Ok(PinCheck::FirstUse),
            "pins are per address"
        );
    }

    #[test]
    fn render_and_parse_round_trip() {
        let mut k = KnownServers::parse(PathBuf::from("x"), "");
        k.check("h:1", Fingerprint([3; 32])).ok();
        let text = k.render();
        let mut again = KnownServers::parse(PathBuf::from("x"), &format!("{text}\ngarbage line\n"));
        assert_eq!(
            again.check("h:1", Fingerprint([3; 32])),
            Ok(PinCheck::Known)
        );
    }

    #[test]
    fn saves_on_first_use() -> Result<(), PinError> {
        let dir = tempfile::tempdir().map_err(|e| PinError::File {
            file: String::new(),
            detail: e.to_string(),
        })?;
        let path = dir.path().join("known_servers");
        KnownServers::load(&path)?.check_and_save("h:1", Fingerprint([4; 32]))?;
        assert!(KnownServers::load(&path)?
            .check("h:1", Fingerprint([5; 32]))
            .is_err());
        Ok(())
    }
}
