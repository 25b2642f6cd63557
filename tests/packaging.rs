//! The installable pieces in packaging/ are well-formed (#15): the desktop entry, the systemd
//! unit of the server, the icons, and the cargo-deb metadata that puts them in the .debs.
//! Fast (no build of the packages): the real tools check the files when they are installed
//! (`desktop-file-validate`, `systemd-analyze verify`), and a small parser checks what we
//! rely on in any case, so a machine without them still catches a broken file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// An INI-style file (desktop entry or systemd unit): section → key → values, in order.
/// Repeated keys (systemd allows them) keep every value.
type Ini = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_ini(text: &str, what: &str) -> Ini {
    let mut ini = Ini::new();
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(
                !ini.contains_key(name),
                "{what}:{}: section [{name}] twice",
                n + 1
            );
            ini.insert(name.to_owned(), BTreeMap::new());
            section = Some(name.to_owned());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{what}:{}: not KEY=VALUE: {raw:?}", n + 1));
        let key = key.trim();
        assert!(
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{what}:{}: bad key {key:?}",
            n + 1
        );
        let section = section
            .as_ref()
            .unwrap_or_else(|| panic!("{what}:{}: key before any section", n + 1));
        ini.get_mut(section)
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    ini
}

fn one<'a>(ini: &'a Ini, section: &str, key: &str) -> &'a str {
    let values = ini
        .get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("[{section}] has no {key}"));
    assert_eq!(
        values.len(),
        1,
        "[{section}] {key} given {} times",
        values.len()
    );
    &values[0]
}

/// The `[[bin]]` names a Cargo.toml declares.
fn bins(cargo_toml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_bin = false;
    for line in cargo_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(v) = line.strip_prefix("name = ") {
                out.push(v.trim_matches('"').to_owned());
            }
        }
    }
    out
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty())
}

#[test]
fn desktop_entry_is_valid_and_names_the_app() {
    let path = root().join("packaging/peerchat.desktop");
    let ini = parse_ini(&read("packaging/peerchat.desktop"), "peerchat.desktop");
    assert_eq!(one(&ini, "Desktop Entry", "Type"), "Application");
    assert_eq!(one(&ini, "Desktop Entry", "Name"), "Peerchat");
    assert_eq!(one(&ini, "Desktop Entry", "Terminal"), "false");
    let exec = one(&ini, "Desktop Entry", "Exec");
    let program = exec.split_whitespace().next().unwrap();
    assert!(
        bins(&read("client/Cargo.toml"))
            .iter()
            .any(|b| b == program),
        "Exec={exec}: no such binary in client/Cargo.toml"
    );
    // The window's class (login.rs `set_xclass`) ties the window to this entry.
    assert_eq!(one(&ini, "Desktop Entry", "StartupWMClass"), program);
    let icon = one(&ini, "Desktop Entry", "Icon");
    assert!(
        root().join(format!("packaging/icons/{icon}.svg")).is_file(),
        "Icon={icon}: packaging/icons/{icon}.svg is missing"
    );
    let categories = one(&ini, "Desktop Entry", "Categories");
    assert!(categories.ends_with(';'), "Categories must end with ';'");
    assert!(categories.split(';').any(|c| c == "InstantMessaging"));

    if tool("desktop-file-validate") {
        let out = Command::new("desktop-file-validate")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "desktop-file-validate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("desktop-file-validate not installed: parser checks only");
    }
}

#[test]
fn server_unit_is_hardened_and_verifies() {
    let text = read("packaging/peerchat-server.service");
    let ini = parse_ini(&text, "peerchat-server.service");
    for s in ["Unit", "Service", "Install"] {
        assert!(ini.contains_key(s), "no [{s}] section");
    }
    let exec = one(&ini, "Service", "ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/peerchat-server"));
    assert!(bins(&read("server/Cargo.toml")).contains(&"peerchat-server".to_owned()));
    let args: Vec<&str> = words.collect();
    let data_dir = args
        .windows(2)
        .find(|w| w[0] == "--data-dir")
        .map(|w| w[1])
        .expect("ExecStart gives --data-dir");
    // The server's state lives exactly in the directory systemd creates for the dynamic user.
    let state = one(&ini, "Service", "StateDirectory");
    assert_eq!(data_dir, format!("/var/lib/{state}"));
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(&ini, "Service", key), want, "[Service] {key}");
    }
    assert_eq!(one(&ini, "Install", "WantedBy"), "multi-user.target");

    if tool("systemd-analyze") {
        // `verify` insists that ExecStart's program exists: check a copy that runs /bin/true
        // with the same arguments (the program itself is checked against Cargo.toml above).
        let dir = std::env::temp_dir().join(format!("peerchat-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("peerchat-server.service");
        std::fs::write(&copy, text.replace("/usr/bin/peerchat-server", "/bin/true")).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success()
                && !stderr.contains("Unknown key")
                && !stderr.contains("Failed to parse"),
            "systemd-analyze verify: {}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        eprintln!("systemd-analyze not installed: parser checks only");
    }
}

/// (width, height) from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn deb_metadata_names_files_that_exist() {
    for (manifest, dir) in [
        ("client/Cargo.toml", "client"),
        ("server/Cargo.toml", "server"),
    ] {
        let text = read(manifest);
        let deb = text
            .split("[package.metadata.deb]")
            .nth(1)
            .unwrap_or_else(|| panic!("{manifest} has no [package.metadata.deb]"));
        // Every source path of an asset (and the unit/maintainer-script folder) that lies in
        // the repository, relative to the crate.
        for quoted in deb.split('"').skip(1).step_by(2) {
            if let Some(rel) = quoted.strip_prefix("../") {
                assert!(
                    root().join(rel).exists(),
                    "{manifest}: {quoted} does not exist"
                );
            } else if let Some(bin) = quoted.strip_prefix("target/release/") {
                assert!(
                    bins(&text).iter().any(|b| b == bin),
                    "{manifest}: asset {quoted} is not one of the crate's binaries"
                );
            }
        }
        assert!(root().join(dir).is_dir());
    }
    let client = read("client/Cargo.toml");
    for font in ["fonts-noto-cjk", "fonts-noto-color-emoji"] {
        assert!(
            client.contains(font),
            "the app's .deb must depend on {font}"
        );
    }
    for size in [16, 32, 48, 64, 128, 256] {
        let png = root().join(format!("packaging/icons/peerchat-{size}.png"));
        assert_eq!(png_size(&png), (size, size), "{}", png.display());
        assert!(
            client.contains(&format!("peerchat-{size}.png\", \"usr/share/icons/hicolor/{size}x{size}/apps/peerchat.png\"")),
            "icon {size}x{size} not installed by the .deb"
        );
    }
}
