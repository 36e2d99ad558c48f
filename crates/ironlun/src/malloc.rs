//! The daemon's allocator settings (glibc malloc, mallopt(3)), made before any thread starts.
//!
//! With glibc's defaults the daemon's RSS crept under a long mixed load while its live heap
//! stayed flat (heaptrack over a 600 s soak: live heap 38-40 MB from 150 s on, RSS still
//! rising): freed buffers of 128 KiB and more raise glibc's dynamic mmap threshold, after which
//! such buffers come from up to 8 arenas per CPU, one per thread that happens to allocate
//! them, and the free space they leave behind is rarely given back. Two settings make the
//! curve flat (docs/robustness.md "Soak"):
//! * `M_MMAP_THRESHOLD` fixed at 256 KiB (which also stops the dynamic adjustment of it and
//!   of the trim threshold): larger buffers are mapped and unmapped, smaller ones are reused;
//! * `M_ARENA_MAX` at the number of CPUs (at least 2): the blocking pool's threads share a
//!   few arenas instead of each growing its own.
//!
//! Each is left alone when its `MALLOC_*_` environment variable is set, so an administrator
//! can still tune glibc the usual way.

/// Apply the settings (a no-op off glibc).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let arenas = i32::try_from(cpus).unwrap_or(i32::MAX);
        for (var, param, value) in [
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 256 * 1024),
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, arenas),
        ] {
            if std::env::var_os(var).is_some() {
                continue;
            }
            // SAFETY: mallopt only changes the allocator's tunables; it is called before the
            // runtime starts any thread, and a refused value (returns 0) changes nothing.
            if unsafe { libc::mallopt(param, value) } == 0 {
                tracing::warn!("mallopt({var}, {value}) refused; glibc's default kept");
            }
        }
    }
}
