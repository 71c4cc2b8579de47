//! How relais keeps its memory small and flat: one allocator arena for all
//! its threads, the memory a registry load frees handed back to the
//! system, and so are the pages of the built-in geography's text once
//! parsed.
//!
//! glibc gives each thread that allocates its own arena and keeps freed
//! memory in each; relais's threads (the runtime's workers, the store's,
//! lapin's) would each hold some. With one arena, small allocations are
//! still served without a lock by each thread's cache. A no-op elsewhere
//! than on glibc.

/// Call first thing in `main`, before any thread starts.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the memory freed by a registry load back to the system: parsing a
/// national registry's file takes several times what the registry keeps,
/// and the allocator would otherwise hold on to it.
pub fn return_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; it
    // touches nothing in use and has no precondition.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands back to the system the pages of `text`, a part of the binary read
/// once at start-up (the built-in geography): they stay in the system's
/// page cache, and any later read of them brings the page back in. Only
/// the pages wholly inside `text` are handed back. A no-op elsewhere than
/// on Linux.
pub fn release_pages(text: &'static [u8]) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no precondition.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let start = (text.as_ptr() as usize).next_multiple_of(page);
        let end = (text.as_ptr() as usize + text.len()) / page * page;
        if end > start {
            // SAFETY: the range lies wholly inside a read-only part of the
            // binary's own mapping; MADV_DONTNEED on a file-backed private
            // mapping that was never written drops the pages, and a later
            // read faults them in again from the file, unchanged.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
}
