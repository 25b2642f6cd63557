//! Durable whole-file replacement for the small profile files (friend cache, server-key pins).
//!
//! Its own module so that the modules owning those files do not depend on each other for it
//! (the profile knows where the friend cache lives; the friend cache only needs to write).

use std::path::{Path, PathBuf};

/// Writes a file atomically: a temporary file in the same folder, fsynced, then a rename and an
/// fsync of the folder, so a crash leaves either the old or the new file, never half of one,
/// and a completed call survives a power loss.
///
/// # Errors
/// I/O errors.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename is durable only once the folder entry is: fsync the parent.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f.txt");
        write_atomically(&p, b"first, longer contents")?;
        write_atomically(&p, b"second")?;
        assert_eq!(std::fs::read(&p)?, b"second");
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }
}
