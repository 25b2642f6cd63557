//! Plain file helpers for transfers, on `std::fs`: opening and creating `.part` files
//! without following links (SPEC.md §8.4), the bytes a resumed transfer holds, free space,
//! a source file's SHA-256. The threads that move the bytes live in the driver
//! (`driver/disk.rs`), which carries out the client machine's disk jobs.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::naming::final_for_part;

/// Opens a file inside the downloads folder without following a symbolic link at its name
/// (SPEC.md §8.4): `O_NOFOLLOW` where the system has it; `create_new` refuses any existing
/// name, links included, everywhere.
pub(crate) fn open_part(part: &Path, fresh: bool) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if fresh {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    let file = opts.open(part)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", part.display()),
        ));
    }
    Ok(file)
}

/// Creates an empty `.part` file exclusively (a new transfer, SPEC.md §8.4): an existing
/// name, a symbolic link included, is never opened.
///
/// # Errors
/// I/O errors; `AlreadyExists` if the name is taken.
pub fn create_part(part: &Path) -> std::io::Result<()> {
    open_part(part, true).map(drop)
}

/// Bytes free for an unprivileged user on the volume holding `path` (or its nearest existing
/// ancestor), if the system says; an offer larger than this is refused (SPEC.md §8.3 rule 3).
pub fn free_space(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
        // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs that the
        // call fills; nothing is kept past the call.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        #[allow(clippy::unnecessary_cast)]
        (r == 0).then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = existing;
        None
    }
}

/// The bytes a resumed transfer already holds: the `.part` file's length, or the whole size
/// when the `.part` is gone and its final file is there with the right length (finished just
/// before a restart; the writer checks its hash, SPEC.md §8.3 rule 8). A link is not ours:
/// 0, and the writer refuses to open it.
pub fn held_on_disk(part: &Path, size: u64) -> u64 {
    match std::fs::symlink_metadata(part) {
        Ok(m) if m.file_type().is_file() => m.len(),
        Ok(_) => 0,
        Err(_) => final_for_part(part)
            .and_then(|f| std::fs::symlink_metadata(f).ok())
            .filter(|m| m.file_type().is_file() && m.len() == size)
            .map_or(0, |_| size),
    }
}

/// SHA-256 and length of a whole file, streamed (for the offer).
///
/// # Errors
/// I/O errors.
pub fn hash_file(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finalize().into(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_known_and_finite() {
        let free = free_space(Path::new("/definitely/not/here/but/root/is"));
        if cfg!(unix) {
            assert!(free.is_some_and(|f| f < u64::MAX));
        }
    }

    #[test]
    fn held_bytes_after_a_restart() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let part = dir.path().join("f.bin.part");
        assert_eq!(held_on_disk(&part, 7), 0, "nothing there: from the start");
        std::fs::write(&part, b"pay")?;
        assert_eq!(held_on_disk(&part, 7), 3, "the .part's length");
        std::fs::remove_file(&part)?;
        std::fs::write(dir.path().join("f.bin"), b"payload")?;
        assert_eq!(held_on_disk(&part, 7), 7, "finished before the crash");
        assert_eq!(
            held_on_disk(&part, 8),
            0,
            "a final file of another size is not ours"
        );
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_part_file_is_never_opened() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("victim.txt");
        std::fs::write(&target, b"keep me")?;
        let part = dir.path().join("f.bin.part");
        std::os::unix::fs::symlink(&target, &part)?;
        assert!(open_part(&part, false).is_err(), "resume: not followed");
        assert!(create_part(&part).is_err(), "new transfer: not followed");
        assert_eq!(std::fs::read(&target)?, b"keep me");
        Ok(())
    }
}
