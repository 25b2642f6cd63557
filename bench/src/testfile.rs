//! The file sent in scenario 1: `size` bytes of pseudo-random content (not sparse, not
//! compressible, different in every block), written in 1 MiB blocks and hashed on the way.

use std::io::{Read as _, Write as _};
use std::path::Path;

use sha2::{Digest as _, Sha256};

const BLOCK: usize = 1 << 20;

/// Writes the file and returns its SHA-256.
///
/// # Errors
/// I/O errors.
pub fn create(path: &Path, size: u64) -> std::io::Result<[u8; 32]> {
    let mut f = std::io::BufWriter::with_capacity(BLOCK, std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; BLOCK];
    // xorshift64*: fast, and every 8-byte word differs, so the file is dense and its blocks
    // are all distinct (a misplaced chunk changes the hash).
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(BLOCK as u64) as usize;
        f.write_all(&block[..n])?;
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    f.flush()?;
    Ok(hasher.finalize().into())
}

/// SHA-256 of a file, streamed.
///
/// # Errors
/// I/O errors.
pub fn sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Free bytes in the file system holding `dir` (0 if unknown).
pub fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs writes only into the zeroed struct we pass; `c` is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return 0;
        }
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_is_dense_and_hash_matches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let h = create(&p, 3 * 1024 * 1024 + 5).unwrap();
        assert_eq!(sha256(&p).unwrap(), h);
        let data = std::fs::read(&p).unwrap();
        assert_eq!(data.len(), 3 * 1024 * 1024 + 5);
        assert!(data.iter().filter(|b| **b == 0).count() < data.len() / 100);
        assert_ne!(data[..BLOCK], data[BLOCK..2 * BLOCK]);
        assert!(free_bytes(dir.path()) > 0);
    }
}
