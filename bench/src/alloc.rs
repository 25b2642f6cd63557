//! The benchmark's allocator: each child runs on the allocator of the binary it stands for.
//!
//! Why: one executable plays several parts. Its `__peer` children stand for `peerchat-cli`,
//! which runs on mimalloc; its `__server` child stands for `peerchat-server`, which keeps the
//! system allocator; the parent runs the baselines. A figure taken on the wrong allocator
//! would not be the shipped binary's figure (the chat flood's CPU per message moved by ~18 %
//! between the two).
//!
//! The parent sets [`ENV`] for the `__peer` children (`child.rs`). The choice is made at the
//! first allocation, from the environment as the process started (read with `getenv`, which
//! does not allocate), and never changes, so every block is freed by the allocator that gave
//! it out.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// Set to `mimalloc` in a child's environment to run it on mimalloc.
pub const ENV: &str = "PEERCHAT_BENCH_ALLOCATOR";
/// [`ENV`] as a C string, for `getenv`.
const ENV_C: &std::ffi::CStr = c"PEERCHAT_BENCH_ALLOCATOR";

const UNDECIDED: u8 = 0;
const SYSTEM: u8 = 1;
const MIMALLOC: u8 = 2;

static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// System or mimalloc, as [`ENV`] says.
pub struct Dispatch;

fn mimalloc_chosen() -> bool {
    match CHOICE.load(Ordering::Relaxed) {
        UNDECIDED => {
            // SAFETY: getenv with a NUL-terminated name; the result is only read, before any
            // thread of ours could change the environment (the first allocation is in the
            // runtime's start-up, on the main thread). Every racing caller computes the
            // same answer.
            let chosen = unsafe {
                let v = libc::getenv(ENV_C.as_ptr());
                !v.is_null() && std::ffi::CStr::from_ptr(v).to_bytes() == b"mimalloc"
            };
            CHOICE.store(if chosen { MIMALLOC } else { SYSTEM }, Ordering::Relaxed);
            chosen
        }
        c => c == MIMALLOC,
    }
}

/// The allocator this process chose.
fn chosen() -> &'static dyn GlobalAlloc {
    if mimalloc_chosen() {
        &MiMalloc
    } else {
        &System
    }
}

// SAFETY: every call goes to one of two sound allocators, the same one for the whole life of
// the process, so a block is always freed or resized by the allocator that allocated it.
unsafe impl GlobalAlloc for Dispatch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { chosen().alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { chosen().alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { chosen().dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { chosen().realloc(ptr, layout, new_size) }
    }
}
