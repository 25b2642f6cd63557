//! Turning a file name from the network into a safe file name in the downloads folder
//! (SPEC.md §8.4).
//!
//! The offered name is chosen by the remote user and is never trusted as a path: it is
//! reduced to one plain file name that cannot climb out of `downloads/<sender>/`, cannot
//! address a Windows device, and never replaces a file that is already there.

use std::path::{Path, PathBuf};

use peerchat_proto::limits::MAX_SAFE_NAME;

/// The name used when nothing usable is left of the offered one.
pub const FALLBACK_NAME: &str = "file";

/// Suffix of the file a download is written to until its hash is verified.
pub const PART_SUFFIX: &str = ".part";

const WINDOWS_DEVICES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Reduces an untrusted name to a single safe file name (SPEC.md §8.4).
///
/// In order: path separators, control characters, the characters Windows forbids
/// (`:*?"<>|`) and the bidirectional formatting characters (which can disguise an extension)
/// become `_`; leading dots are removed (never `.`, `..` or a hidden file); any `..` left
/// inside becomes `_` (decisions.md: "reject/replace .."); trailing dots and spaces (which
/// Windows drops) are removed; a Windows device name (`CON`, `com1.txt`, ...) gets a `_`
/// prefix; a name longer than [`MAX_SAFE_NAME`] bytes is shortened keeping an extension of
/// at most 16 bytes; an empty result becomes [`FALLBACK_NAME`].
pub fn sanitize_file_name(untrusted: &str) -> String {
    let mapped: String = untrusted
        .chars()
        .map(|c| match c {
            '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let mut name = mapped.trim_start_matches('.').to_owned();
    while name.contains("..") {
        name = name.replace("..", "_");
    }
    let mut name = name.trim_end_matches(['.', ' ']).to_owned();
    // The device prefix comes before shortening (SPEC.md §8.4 step 5), so the result never
    // exceeds MAX_SAFE_NAME and a second pass changes nothing.
    prefix_device_name(&mut name);
    // SPEC.md §8.4 step 6, a loop: the cut can join a '.' at the end of the stem to the
    // extension's '.', trimming the new end can eat back through dots and spaces to a bare
    // device name (`LPT6` + spaces + `. .` + ...), and the cut can remove the first '.' so
    // that `LPT9` + spaces becomes the part before the first '.'; so steps 3, 4 and 5 run
    // again, and a prefix they add (201 bytes) is cut once more. A prefixed name is never a
    // device name, so there are at most two rounds. All found by the fuzzer.
    while name.len() > MAX_SAFE_NAME {
        name = truncate_keeping_extension(&name, MAX_SAFE_NAME);
        while name.contains("..") {
            name = name.replace("..", "_");
        }
        name = name.trim_end_matches(['.', ' ']).to_owned();
        prefix_device_name(&mut name);
    }
    if name.is_empty() {
        name = FALLBACK_NAME.to_owned();
    }
    name
}

/// True if `name` would address a Windows device: the part before its first `.`, without
/// trailing spaces (which Windows ignores there), is `CON`, `COM1`, ... in any case.
fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default();
    let stem = stem.trim_end_matches(' ').to_ascii_uppercase();
    WINDOWS_DEVICES.contains(&stem.as_str())
}

/// SPEC.md §8.4 step 5: a device name gets a `_` prefix.
fn prefix_device_name(name: &mut String) {
    if is_device_name(name) {
        name.insert(0, '_');
    }
}

/// Fuzzing and corpus-replay entry point: sanitises `data` (as UTF-8, lossily) and panics
/// if the result breaks a promise of [`sanitize_file_name`]: one plain, non-empty path
/// component of bounded length with none of the forbidden characters, not a device name, and
/// unchanged by a second pass.
#[doc(hidden)]
pub fn check_sanitised(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let name = sanitize_file_name(&input);
    assert!(!name.is_empty());
    assert!(name.len() <= MAX_SAFE_NAME, "{} bytes", name.len());
    assert!(!name.starts_with('.') && !name.ends_with('.') && !name.ends_with(' '));
    assert!(!name.contains(".."));
    assert!(!name.chars().any(|c| c.is_control()
        || matches!(c, '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*')
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')));
    assert!(!is_device_name(&name), "{name:?} is a device name");
    let joined = Path::new("downloads").join(&name);
    let mut parts = joined.components().skip(1).collect::<Vec<_>>();
    assert!(
        matches!(parts.pop(), Some(std::path::Component::Normal(_))) && parts.is_empty(),
        "{name:?} is not one plain path component"
    );
    assert_eq!(sanitize_file_name(&name), name, "not idempotent");
}

/// The download folder name of a friend, `dir(X)` of SPEC.md §8.4: the userid itself when
/// the sanitiser leaves it alone, else the sanitised userid, `~` and the hexadecimal of the
/// case-folded userid.
///
/// It must be injective: the sanitiser alone maps `alice.` to `alice` and `a..b` to `a_b`
/// (both other valid userids), which would put one friend's files in another's folder. `~`
/// never occurs in a userid, so the escaped form cannot meet a plain one, and the hex makes
/// escaped forms distinct. Userids differing only in case are one account, so they may (and
/// on case-insensitive file systems do) share a folder.
pub fn sanitize_folder_name(userid: &str) -> String {
    let safe = sanitize_file_name(userid);
    if safe == userid {
        return safe;
    }
    format!("{safe}~{}", hex::encode(userid.to_lowercase().as_bytes()))
}

/// True if something (a file, a folder, a symbolic link, even a dangling one) is at `path`.
/// The link itself counts, never its target (SPEC.md §8.4 "Symbolic links").
pub fn occupied(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Makes sure `dir` (a friend's folder directly inside the downloads folder) is a real
/// folder, creating it if needed; a symbolic link or a file there is refused, so nothing a
/// friend sends is ever written through a link (SPEC.md §8.4).
///
/// # Errors
/// I/O errors, and [`std::io::ErrorKind::InvalidInput`] for a link or a non-folder.
pub fn ensure_real_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_dir() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is a symbolic link or not a folder; not writing through it",
                dir.display()
            ),
        ))
    }
}

/// The final path a `.part` path stands for: the same path without the suffix (SPEC.md
/// §8.4: the final name is chosen, and recorded, when the transfer is accepted).
pub fn final_for_part(part: &Path) -> Option<PathBuf> {
    let s = part.to_str()?;
    s.strip_suffix(PART_SUFFIX).map(PathBuf::from)
}

/// Splits `name` into stem and extension (with its dot); a leading dot is not an extension.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    // SPEC.md §8.4 step 6: an "extension" over 16 bytes is no extension, and then the rest
    // is the whole name (it is shortened, not dropped).
    let (stem, ext) = match split_extension(name) {
        (_, ext) if ext.len() > 16 => (name, ""),
        split => split,
    };
    let mut end = max - ext.len();
    while !stem.is_char_boundary(end.min(stem.len())) {
        end -= 1;
    }
    format!("{}{}", &stem[..end.min(stem.len())], ext)
}

/// The `n`-th candidate for `name`: the name itself for 0, then `stem (n).ext`.
pub fn candidate(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    let (stem, ext) = split_extension(name);
    format!("{stem} ({n}){ext}")
}

/// The `.part` path that goes with a final path.
pub fn part_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(PART_SUFFIX);
    PathBuf::from(s)
}

/// The first free final path for `name` in `dir`: neither it nor its `.part` exists
/// according to `exists`. Returns `None` only after 10 000 taken candidates.
pub fn free_destination(dir: &Path, name: &str, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    (0..10_000)
        .map(|n| dir.join(candidate(name, n)))
        .find(|p| !exists(p) && !exists(&part_path(p)))
}

/// Moves a verified `.part` file to its final name, never overwriting: first the name the
/// `.part` path stands for ([`final_for_part`]), then the candidates of `name` in `dir`. The
/// link to a new name fails if the name exists, so a file that appeared meanwhile is skipped
/// rather than replaced.
///
/// Idempotent across a crash (SPEC.md §8.3 rule 8): if the process died between the link
/// and the removal of the `.part` file, the final name already is this very file, and
/// finishing again only removes the `.part` file instead of making `f (1).bin`.
///
/// # Errors
/// I/O errors other than "already exists".
pub fn finalize_part(part: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let intended = final_for_part(part).filter(|p| p.parent() == Some(dir));
    let candidates = intended
        .into_iter()
        .chain((0..10_000).map(|n| dir.join(candidate(name, n))));
    for dest in candidates {
        if same_file(part, &dest) {
            std::fs::remove_file(part)?;
            return Ok(dest);
        }
        match std::fs::hard_link(part, &dest) {
            Ok(()) => {
                std::fs::remove_file(part)?;
                return Ok(dest);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                // File systems without hard links: rename after checking (small race accepted).
                if occupied(&dest) {
                    continue;
                }
                std::fs::rename(part, &dest)?;
                return Ok(dest);
            }
        }
    }
    Err(std::io::Error::other("no free file name left"))
}

/// True if `a` and `b` are the same regular file (two hard links), neither a link.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
            (Ok(x), Ok(y)) => {
                x.file_type().is_file()
                    && y.file_type().is_file()
                    && x.dev() == y.dev()
                    && x.ino() == y.ino()
            }
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer (fuzz/corpus/file_name): a device name at the length limit grew
    /// past MAX_SAFE_NAME when the prefix was added last, and a second pass shortened it.
    #[test]
    fn trimming_after_the_cut_cannot_uncover_a_device_name() {
        // Found by the fuzzer: the cut leaves `LPT6` + spaces + `. .`, and trimming trailing
        // dots and spaces then leaves the bare device name.
        let name = format!("LPT6{}. .{}+. ", " ".repeat(67), " ".repeat(160));
        assert_eq!(sanitize_file_name(&name), "_LPT6");
        check_sanitised(name.as_bytes());
        assert_eq!(sanitize_file_name("nul .txt"), "_nul .txt");
        check_sanitised(b"nul .txt");
    }

    #[test]
    fn a_cut_that_removes_the_first_dot_and_uncovers_a_device_is_cut_again() {
        // Found by the fuzzer: the cut leaves `LPT9` + 194 spaces + `.1`, whose part before
        // the first dot is a device name; the prefix makes 201 bytes, so it is cut again.
        let name = format!("LPT9{}..+.1 ", " ".repeat(200));
        let safe = sanitize_file_name(&name);
        assert_eq!(safe, format!("_LPT9{}.1", " ".repeat(193)));
        check_sanitised(name.as_bytes());
    }

    #[test]
    fn a_long_device_name_stays_within_the_limit_and_is_stable() {
        let long = format!("COM9.{}", "x".repeat(300));
        let once = sanitize_file_name(&long);
        assert!(once.starts_with("_COM9."));
        assert_eq!(once.len(), MAX_SAFE_NAME);
        assert_eq!(sanitize_file_name(&once), once);
        check_sanitised(long.as_bytes());
    }

    /// Found by the fuzzer: shortening joined the stem's final '.' to the extension.
    #[test]
    fn shortening_never_forms_a_double_dot() {
        let name = format!("{}..txt", "a".repeat(300));
        let safe = sanitize_file_name(&name);
        assert!(!safe.contains(".."), "{safe}");
        let name = format!("x.{}.{}", "\u{FFFD}".repeat(70), "y");
        check_sanitised(name.as_bytes());
        check_sanitised(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../fuzz/corpus/file_name/crash-fba299c4963de96da0d671ade5dfe3d967cf9f8c"
            ))
            .unwrap_or_default(),
        );
    }

    #[test]
    fn hostile_names_are_neutralised() {
        let cases = [
            ("../../etc/passwd", "___etc_passwd"),
            ("a/b\\c", "a_b_c"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("LPT9.tar.gz", "_LPT9.tar.gz"),
            ("..", "file"),
            (".", "file"),
            ("", "file"),
            ("   ", "file"),
            ("invoice\u{202E}fdp.exe", "invoice_fdp.exe"),
            (".bashrc", "bashrc"),
            (".../x", "_x"),
            ("report. ", "report"),
            ("bell\u{7}.txt", "bell_.txt"),
            ("C:\\Windows\\x.dll", "C__Windows_x.dll"),
            ("/etc/shadow", "_etc_shadow"),
            ("ok name (2).pdf", "ok name (2).pdf"),
            ("COM10", "COM10"),
            ("a....b", "a__b"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_file_name(input), want, "input {input:?}");
        }
    }

    #[test]
    fn sanitised_names_are_single_components() {
        for input in [
            "../../etc/passwd",
            "a/b\\c",
            "..\\..\\x",
            "/",
            "\\\\server\\share",
            "x/../../y",
        ] {
            let out = sanitize_file_name(input);
            let p = Path::new(&out);
            assert_eq!(p.components().count(), 1, "{input:?} -> {out:?}");
            assert!(!out.contains(".."), "{out}");
            assert!(!p.is_absolute());
        }
    }

    #[test]
    fn long_names_are_cut_on_char_boundaries_keeping_the_extension() {
        let long = format!("{}.txt", "é".repeat(300));
        let out = sanitize_file_name(&long);
        assert!(out.len() <= MAX_SAFE_NAME);
        assert!(out.ends_with(".txt"));
    }

    #[test]
    fn candidates_number_before_the_extension() {
        assert_eq!(candidate("a.txt", 0), "a.txt");
        assert_eq!(candidate("a.txt", 1), "a (1).txt");
        assert_eq!(candidate("noext", 2), "noext (2)");
        assert_eq!(candidate("bashrc", 1), "bashrc (1)");
    }

    #[test]
    fn free_destination_skips_existing_finals_and_parts() {
        let dir = Path::new("/d");
        let taken = [
            PathBuf::from("/d/a.txt"),
            PathBuf::from("/d/a (1).txt.part"),
        ];
        let got = free_destination(dir, "a.txt", |p| taken.iter().any(|t| t == p));
        assert_eq!(got, Some(PathBuf::from("/d/a (2).txt")));
    }

    #[test]
    fn folder_names_are_injective() {
        let users = [
            "alice",
            "alice.",
            "alice..",
            "alice_",
            "a..b",
            "a_b",
            "a.b",
            "con",
            "_con",
            "CON",
            "con.x",
            "Alice",
            "bob-smith",
            "lpt1",
            "nul.",
        ];
        let mut seen = std::collections::HashMap::new();
        for u in users {
            let dir = sanitize_folder_name(u);
            assert_eq!(
                Path::new(&dir).components().count(),
                1,
                "{u:?} -> {dir:?} is one component"
            );
            assert_eq!(sanitize_file_name(&dir), dir, "{u:?} -> {dir:?} is safe");
            // Case variants of one userid are one account; everything else must differ,
            // also on a case-insensitive file system.
            if let Some(other) = seen.insert(dir.to_lowercase(), u) {
                assert!(
                    other.eq_ignore_ascii_case(u),
                    "{other:?} and {u:?} share {dir:?}"
                );
            }
        }
        assert_eq!(sanitize_folder_name("alice"), "alice");
        assert_eq!(sanitize_folder_name("Bob.Smith"), "Bob.Smith");
        assert_eq!(sanitize_folder_name("alice."), "alice~616c6963652e");
        assert_eq!(sanitize_folder_name("a..b"), "a_b~612e2e62");
        assert_eq!(sanitize_folder_name("con"), "_con~636f6e");
    }

    #[test]
    fn finalize_after_a_crash_between_link_and_unlink_keeps_one_copy() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let part = dir.path().join("f.bin.part");
        std::fs::write(&part, b"done")?;
        // The crash left both names on the same file.
        std::fs::hard_link(&part, dir.path().join("f.bin"))?;
        let dest = finalize_part(&part, dir.path(), "f.bin")?;
        assert_eq!(dest, dir.path().join("f.bin"));
        assert!(!part.exists());
        assert!(!dir.path().join("f (1).bin").exists(), "no second copy");
        Ok(())
    }

    #[test]
    fn finalize_prefers_the_name_the_part_stands_for() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let part = dir.path().join("f (1).bin.part");
        std::fs::write(&part, b"second")?;
        // f.bin became free meanwhile; the recorded name f (1).bin is still the one used.
        let dest = finalize_part(&part, dir.path(), "f.bin")?;
        assert_eq!(dest, dir.path().join("f (1).bin"));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_friend_folder_is_refused_and_links_count_as_taken() -> std::io::Result<()> {
        let root = tempfile::tempdir()?;
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere)?;
        let downloads = root.path().join("downloads");
        std::fs::create_dir(&downloads)?;
        std::os::unix::fs::symlink(&elsewhere, downloads.join("alice"))?;
        let err = ensure_real_dir(&downloads.join("alice")).err();
        assert_eq!(
            err.map(|e| e.kind()),
            Some(std::io::ErrorKind::InvalidInput)
        );
        ensure_real_dir(&downloads.join("bob"))?;
        ensure_real_dir(&downloads.join("bob"))?;
        std::os::unix::fs::symlink(root.path().join("nowhere"), downloads.join("bob/x.txt"))?;
        assert!(
            occupied(&downloads.join("bob/x.txt")),
            "a dangling link is taken"
        );
        assert_eq!(
            free_destination(&downloads.join("bob"), "x.txt", occupied),
            Some(downloads.join("bob/x (1).txt"))
        );
        Ok(())
    }

    #[test]
    fn finalize_never_overwrites() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a.txt"), b"old")?;
        let part = dir.path().join("a.txt.part");
        std::fs::write(&part, b"new")?;
        let dest = finalize_part(&part, dir.path(), "a.txt")?;
        assert_eq!(dest, dir.path().join("a (1).txt"));
        assert_eq!(std::fs::read(dir.path().join("a.txt"))?, b"old");
        assert_eq!(std::fs::read(&dest)?, b"new");
        assert!(!part.exists());
        Ok(())
    }
}
