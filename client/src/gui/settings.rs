//! The app's settings (issue #15, "settings page"): where received files go, up to which
//! size offered files are taken without asking, and the colour theme. Kept as JSON in the
//! profile (`gui-settings.json`); a missing or unreadable file means the defaults, so a
//! damaged file never stops the app.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file in the profile folder.
pub const FILE: &str = "gui-settings.json";

/// Light or dark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Dark text on light grey.
    #[default]
    Light,
    /// Light text on dark grey.
    Dark,
}

/// What the user set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Received files go to `<this>/<sender>/`; None: [`default_download_dir`].
    pub download_dir: Option<PathBuf>,
    /// Offered files of at most this many bytes are accepted without asking; 0 asks for
    /// every file (the default: SPEC.md §8.3 rule 3).
    pub auto_accept_max: u64,
    /// The colours.
    pub theme: Theme,
    /// The friends whose key the user compared and marked verified: friend key (lower-case
    /// userid) -> the fingerprint compared. Only that key counts (`Model::set_verified`).
    pub verified: std::collections::BTreeMap<String, String>,
}

impl Settings {
    /// Reads the settings of a profile (defaults when missing or unreadable).
    pub fn load(profile: &Path) -> Self {
        std::fs::read(profile.join(FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes them (atomically: a crash leaves the old file).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, profile: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let tmp = profile.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, profile.join(FILE))
    }

    /// The folder received files go to (one folder per sender inside it).
    pub fn downloads(&self) -> PathBuf {
        self.download_dir.clone().unwrap_or_else(|| {
            default_download_dir(
                std::env::var_os("XDG_DOWNLOAD_DIR").map(PathBuf::from),
                dirs::download_dir(),
                dirs::home_dir(),
            )
        })
    }

    /// The core's rule for offers.
    pub fn auto_accept(&self) -> peerchat_client::AutoAccept {
        match self.auto_accept_max {
            0 => peerchat_client::AutoAccept::Never,
            n => peerchat_client::AutoAccept::UpTo(n),
        }
    }
}

/// `Peerchat` inside the user's Downloads folder: `$XDG_DOWNLOAD_DIR`, else the one the
/// desktop names (user-dirs.dirs), else `~/Downloads`; files stay out of the profile, where
/// nobody looks for them (issue #15 item 8).
pub fn default_download_dir(
    env: Option<PathBuf>,
    desktop: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    env.filter(|p| p.is_absolute())
        .or(desktop)
        .or_else(|| home.map(|h| h.join("Downloads")))
        .unwrap_or_else(|| PathBuf::from("Downloads"))
        .join("Peerchat")
}

/// Parses a size limit typed by the user: `0`, `50 MB`, `2GB`, `500k` (decimal units, as
/// the app shows sizes). None for anything else.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim().trim_end_matches('b') {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && (0.0..1e18).contains(&v)).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_default_to_the_users_downloads_folder() {
        let home = Some(PathBuf::from("/home/a"));
        assert_eq!(
            default_download_dir(None, None, home.clone()),
            PathBuf::from("/home/a/Downloads/Peerchat")
        );
        assert_eq!(
            default_download_dir(None, Some("/home/a/Téléchargements".into()), home.clone()),
            PathBuf::from("/home/a/Téléchargements/Peerchat")
        );
        assert_eq!(
            default_download_dir(Some("/data/dl".into()), Some("/x".into()), home.clone()),
            PathBuf::from("/data/dl/Peerchat")
        );
        assert_eq!(
            default_download_dir(Some("relative".into()), None, home),
            PathBuf::from("/home/a/Downloads/Peerchat"),
            "a relative XDG_DOWNLOAD_DIR is ignored"
        );
    }

    #[test]
    fn sizes_typed_by_a_person() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("50 MB"), Some(50_000_000));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("1.5g"), Some(1_500_000_000));
        assert_eq!(parse_size("500k"), Some(500_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5 TB"), None);
    }

    #[test]
    fn settings_round_trip_and_damage_means_defaults() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Settings::load(dir.path()), Settings::default());
        let s = Settings {
            download_dir: Some("/x/dl".into()),
            auto_accept_max: 10_000_000,
            theme: Theme::Dark,
            verified: [("bob".to_owned(), "SHA256:abc".to_owned())].into(),
        };
        s.save(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Settings::load(dir.path()), s);
        assert_eq!(
            s.auto_accept(),
            peerchat_client::AutoAccept::UpTo(10_000_000)
        );
        // A file from before the verified marks loads, with none.
        std::fs::write(
            dir.path().join(FILE),
            br#"{"download_dir":null,"auto_accept_max":5,"theme":"dark"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let old = Settings::load(dir.path());
        assert_eq!((old.auto_accept_max, old.verified.len()), (5, 0));
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Settings::load(dir.path()), Settings::default());
        assert_eq!(
            Settings::default().auto_accept(),
            peerchat_client::AutoAccept::Never
        );
    }
}
