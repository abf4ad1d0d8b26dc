//! Process-wide tuning of the C allocator for training loops on the CPU.
//!
//! libtorch takes every CPU tensor from `malloc` (`posix_memalign`). A training step allocates
//! and frees the same large activation and gradient buffers again and again, and glibc's
//! defaults hand big blocks back to the kernel on every `free`: a block above the mmap threshold
//! (128 KiB at first, raised dynamically up to 32 MiB) is `mmap`ed and `munmap`ed each time, and
//! free memory at the top of the heap above the trim threshold is returned with `brk`. The next
//! step then touches fresh pages, one page fault per 4 KiB, which costs about a fifth of a
//! LeNet-sized training step on two cores. PyTorch has the same problem and the same cure.
//!
//! [`tune_malloc`] fixes both thresholds, so large blocks come from the heap and freed memory
//! stays mapped for the next step. The price is resident memory: the process keeps its peak
//! heap instead of shrinking after it. Call it once, first thing in `main`, before any thread
//! starts; it changes nothing but allocator parameters and never fails the program.
//!
//! ```
//! let tuned = core_tensor::alloc::tune_malloc();
//! // `true` on Linux with glibc, `false` (and nothing done) elsewhere.
//! # let _ = tuned;
//! ```

/// The largest mmap threshold glibc accepts on 64-bit systems (`DEFAULT_MMAP_THRESHOLD_MAX`):
/// blocks up to this size are served from the heap.
pub const MMAP_THRESHOLD: i32 = 32 * 1024 * 1024;

/// Free memory at the top of the heap is returned to the kernel only above this size.
pub const TRIM_THRESHOLD: i32 = 1024 * 1024 * 1024;

/// Sets glibc's `M_MMAP_THRESHOLD` to [`MMAP_THRESHOLD`] and `M_TRIM_THRESHOLD` to
/// [`TRIM_THRESHOLD`] with `mallopt`, for the whole process.
///
/// Returns whether both settings were applied: `false` on systems without glibc (musl, macOS,
/// Windows), where it does nothing, or if glibc refused a value. Setting either threshold
/// also turns off glibc's dynamic adjustment of the mmap threshold. The same effect without
/// code: `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824` in the environment
/// of the process.
pub fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called with valid
        // parameter numbers and in-range values, and is thread-safe in glibc.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
        let ok = mmap == 1 && trim == 1;
        tracing::debug!(ok, "glibc malloc thresholds set");
        ok
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_applies_on_glibc_and_is_idempotent() {
        let expected = cfg!(all(target_os = "linux", target_env = "gnu"));
        assert_eq!(tune_malloc(), expected);
        assert_eq!(tune_malloc(), expected);
        // Allocation still works across the old and new thresholds.
        let big = vec![1u8; 40 * 1024 * 1024];
        let mid = vec![2u8; 1024 * 1024];
        assert_eq!(big[big.len() - 1] as usize + mid[0] as usize, 3);
    }
}
