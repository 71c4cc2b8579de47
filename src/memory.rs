//! How relais keeps its memory small and flat: one allocator arena for all
//! its threads, and the memory a registry load frees handed back to the
//! system.
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
