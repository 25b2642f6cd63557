//! Replays the cargo-fuzz corpus of the file-name sanitiser (fuzz/corpus/file_name/) through
//! the same check the fuzz target runs (SPEC.md §8.4), on the ordinary stable test run.

use std::path::Path;

#[test]
fn file_name_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/file_name");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r =
            std::panic::catch_unwind(|| peerchat_client::transfer::naming::check_sanitised(&data));
        assert!(r.is_ok(), "file_name fails on {}", path.display());
        n += 1;
    }
    assert!(n > 0, "corpus {} is empty", dir.display());
}
