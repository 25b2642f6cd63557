//! "No I/O in decision code" (issue #13): the sources of `client/src/machine/` must not read
//! a clock, touch files, use tokio or the database. The `Pair` harness under
//! `machine/tests/` is exempt (it creates the virtual clock's epoch once).

use std::path::{Path, PathBuf};

/// Forbidden in decision code. Built from pieces so that this file does not match itself.
fn forbidden() -> Vec<String> {
    [
        ("Instant", "::now"),
        ("SystemTime", "::now"),
        ("std::", "fs"),
        ("tokio", "::"),
        ("sea_", "orm"),
        ("std::", "net"),
        ("std::", "thread"),
    ]
    .iter()
    .map(|(a, b)| format!("{a}{b}"))
    .collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn machine_sources_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/machine");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() >= 5, "machine sources not found under {root:?}");
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            for word in forbidden() {
                if line.contains(&word) {
                    hits.push(format!("{}:{}: {word}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "I/O in decision code:\n{}",
        hits.join("\n")
    );
}
