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
    /// A line of the pin file is neither blank, a comment nor `address fingerprint`. The
    /// client connects to no server until it is repaired: the damaged line may have been the
    /// pin of the very server being contacted, and pinning anew over it would trust whatever
    /// key answers (SPEC.md §12.3).
    #[error(
        "server pin file {file}, line {line}, is damaged ({detail}): {text:?}. \
         Not connecting, because it may be the pin for this server. Repair the line as \
         `address SHA256:fingerprint` (ask the server operator for the fingerprint) or delete it"
    )]
    Damaged {
        /// The pin file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The line as found (at most 200 bytes of it).
        text: String,
        /// What is wrong with it.
        detail: String,
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
    /// Parses the pin file's text (sans-IO). Blank lines and `#` comments are skipped.
    ///
    /// # Errors
    /// [`PinError::Damaged`] for the first line that is not `address fingerprint`: the
    /// store fails closed (a skipped line would be pinned anew on the next connection).
    pub fn parse(path: PathBuf, text: &str) -> Result<Self, PinError> {
        let mut pins = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let damaged = |detail: String| PinError::Damaged {
                file: path.display().to_string(),
                line: n + 1,
                text: crate::text::truncate_at_boundary(l, 200).to_owned(),
                detail,
            };
            let Some((addr, fp)) = l.split_once(char::is_whitespace) else {
                return Err(damaged("no fingerprint after the address".into()));
            };
            let fp = fp.trim();
            if fp.contains(char::is_whitespace) {
                return Err(damaged("more than an address and a fingerprint".into()));
            }
            let fp: Fingerprint = fp
                .parse()
                .map_err(|e| damaged(format!("not a fingerprint: {e}")))?;
            if pins
                .insert(addr.to_owned(), fp)
                .is_some_and(|old| old != fp)
            {
                return Err(damaged(format!("a second, different pin for {addr}")));
            }
        }
        Ok(Self { path, pins })
    }

    /// An empty store at `path` (nothing pinned yet).
    pub fn empty(path: PathBuf) -> Self {
        Self {
            path,
            pins: BTreeMap::new(),
        }
    }

    /// Loads the pin file (missing = nothing pinned yet).
    ///
    /// # Errors
    /// [`PinError::File`] if it exists but cannot be read, [`PinError::Damaged`] if a line
    /// is damaged.
    pub fn load(path: &Path) -> Result<Self, PinError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path.to_owned(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::empty(path.to_owned())),
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
        let mut k = KnownServers::empty(PathBuf::from("/p/known_servers"));
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
    fn render_and_parse_round_trip() -> Result<(), PinError> {
        let mut k = KnownServers::empty(PathBuf::from("x"));
        k.check("h:1", Fingerprint([3; 32])).ok();
        let text = k.render();
        let mut again = KnownServers::parse(PathBuf::from("x"), &format!("{text}\n  \n# note\n"))?;
        assert_eq!(
            again.check("h:1", Fingerprint([3; 32])),
            Ok(PinCheck::Known)
        );
        Ok(())
    }

    /// Issue #10: a damaged line used to be skipped, so the next connection pinned whatever
    /// key answered (fail open). Now the file is refused, naming file and line.
    #[test]
    fn a_damaged_line_fails_closed_naming_file_and_line() {
        let good = format!("h:1 {}", Fingerprint([3; 32]));
        let truncated = format!("h:2 {}", &Fingerprint([4; 32]).to_string()[..20]);
        for (text, line) in [
            (format!("# pins\n{good}\n{truncated}\n"), 3),
            (format!("{good}\nh:2\n"), 2),
            (format!("garbage line\n{good}\n"), 1),
            (format!("{good} trailing\n"), 1),
            (format!("{good}\nh:1 {}\n", Fingerprint([5; 32])), 2),
        ] {
            match KnownServers::parse(PathBuf::from("/p/known_servers"), &text) {
                Err(e @ PinError::Damaged { line: l, .. }) => {
                    assert_eq!(l, line, "{text:?}");
                    let words = e.to_string();
                    assert!(
                        words.contains("/p/known_servers")
                            && words.contains(&format!("line {line}")),
                        "{words}"
                    );
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
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
