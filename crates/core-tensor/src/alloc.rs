//! Process-wide tuning of the C allocator for training loops on the CPU.
//!
//! libtorch takes every CPU tensor from `malloc` (`posix_memalign`). A training step allocates
//! and frees the same large activation, gradient and convolution work buffers again and again,
//! and glibc's defaults hand big blocks back to the kernel on every `free`: a block above the
//! mmap threshold (128 KiB at first, raised dynamically up to at most 32 MiB) is `mmap`ed and
//! `munmap`ed each time, and free memory at the top of the heap beyond the trim threshold is
//! returned with `brk`. The next step touches fresh pages, one page fault (and a zeroed page)
//! per 4 KiB: about 33,000 faults per step for the LeNet-style CNN at batch 1024, a large part
//! of its step time on two cores. PyTorch processes have the same problem and the same cure.
//!
//! [`tune_malloc`] stops both: large blocks come from the heap, and freed memory stays mapped
//! for the next step, so a training loop in steady state takes no page faults. Raising the
//! mmap threshold alone is not enough, because glibc caps it at 32 MiB and im2col buffers of a
//! batch of 1024 are larger (13,000 faults per step remain). The price is resident memory: the
//! process keeps its peak heap instead of shrinking after it, so call it in programs that
//! train (binaries), not in libraries. Call it once, first thing in `main`; it changes nothing
//! but allocator parameters and never fails the program.
//!
//! ```
//! let tuned = core_tensor::alloc::tune_malloc();
//! // `true` on Linux with glibc, `false` (and nothing done) elsewhere.
//! # let _ = tuned;
//! ```

/// Free memory at the top of the heap is returned to the kernel only beyond this size (bytes).
pub const TRIM_THRESHOLD: i32 = 1 << 30;

/// Turns off glibc's use of `mmap` for large blocks (`M_MMAP_MAX = 0`) and sets its trim
/// threshold (`M_TRIM_THRESHOLD`) to [`TRIM_THRESHOLD`], for the whole process, with `mallopt`.
///
/// Returns whether both settings were applied: `false` on systems without glibc (musl, macOS,
/// Windows), where it does nothing, or if glibc refused a value. The same effect without code:
/// `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824` in the environment of the process
/// (which also works for a Python process running PyTorch).
pub fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called with valid parameter
        // numbers and in-range values, and takes glibc's arena lock itself.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
        let ok = mmap == 1 && trim == 1;
        tracing::debug!(ok, "glibc malloc: mmap off, trim threshold raised");
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
    fn tuning_applies_on_glibc_and_large_blocks_still_work() {
        let expected = cfg!(all(target_os = "linux", target_env = "gnu"));
        assert_eq!(tune_malloc(), expected);
        assert_eq!(tune_malloc(), expected, "calling it twice is harmless");
        // Blocks far above glibc's largest mmap threshold now come from the heap.
        let big = vec![1u8; 80 << 20];
        let again = tch::Tensor::ones([20 << 20], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(big[big.len() - 1], 1);
        assert_eq!(
            again.sum(tch::Kind::Double).double_value(&[]),
            (20 << 20) as f64
        );
    }
}
