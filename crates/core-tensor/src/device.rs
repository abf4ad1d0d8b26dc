//! Devices, seeding and threads.
//!
//! A device is named as on the command line: `cpu`, `cuda`, `cuda:N` or `auto` (the first
//! GPU when libtorch sees one, else the CPU). Asking for CUDA where there is none is an error
//! that says so, never a silent fall back to the CPU.

use std::fmt;
use std::str::FromStr;

use tch::Device;

use crate::{Error, Result};

/// A device as the user asked for it, before checking that it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// The GPU with this ordinal.
    Cuda(usize),
    /// The first GPU if libtorch sees one, else the CPU.
    Auto,
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            "auto" => Ok(DeviceSpec::Auto),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| {
                    Error::Device(format!(
                        "unknown device {s:?}; use one of cpu, cuda, cuda:N, auto"
                    ))
                }),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Auto => f.write_str("auto"),
        }
    }
}

impl DeviceSpec {
    /// The libtorch device, checking that a requested GPU exists. Picking a GPU makes its
    /// numerics reproducible ([`set_reproducible_cuda`]).
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto => Ok(Device::cuda_if_available()),
            DeviceSpec::Cuda(i) => {
                if !tch::Cuda::is_available() {
                    return Err(Error::Device(format!(
                        "cuda:{i} was requested but libtorch sees no CUDA GPU (no GPU, no driver, \
                         or a CPU-only libtorch); use --device cpu, or --device auto to take a GPU \
                         only when there is one"
                    )));
                }
                let count = tch::Cuda::device_count() as usize;
                if i >= count {
                    return Err(Error::Device(format!(
                        "cuda:{i} was requested but this machine has {count} GPU(s) (cuda:0..cuda:{})",
                        count - 1
                    )));
                }
                Ok(Device::Cuda(i))
            }
        }
        .and_then(|d| {
            if d.is_cuda() {
                reproducible_cuda()?;
            }
            Ok(d)
        })
    }
}

unsafe extern "C" {
    fn tl_cuda_reproducible(on: i32, state: *mut i32) -> *mut std::ffi::c_char;
    fn tl_free_error(msg: *mut std::ffi::c_char);
}

/// Sets libtorch's CUDA numerics to reproducible (`on`) or to its defaults: deterministic
/// cuDNN algorithms, no cuDNN autotuning, and no TF32 in cuDNN convolutions or cuBLAS matrix
/// products (on Ampere and later GPUs libtorch otherwise uses TF32 for convolutions, which
/// moves results by about 1e-3 relative from the CPU's). Process-wide; returns the flags now in
/// force as `(deterministic, benchmark, tf32_cudnn, tf32_cublas)`. [`DeviceSpec::resolve`]
/// turns it on whenever it picks a GPU.
pub fn set_reproducible_cuda(on: bool) -> Result<(bool, bool, bool, bool)> {
    let mut state = 0i32;
    // SAFETY: the shim takes a plain int and writes one int; errors come back as a malloc'd
    // string that tl_free_error releases.
    let err = unsafe { tl_cuda_reproducible(i32::from(on), &mut state) };
    if !err.is_null() {
        // SAFETY: a NUL-terminated string from the shim, freed once below.
        let msg = unsafe { std::ffi::CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned();
        unsafe { tl_free_error(err) };
        return Err(Error::Device(format!("setting CUDA numerics: {msg}")));
    }
    Ok((
        state & 1 != 0,
        state & 2 != 0,
        state & 4 != 0,
        state & 8 != 0,
    ))
}

fn reproducible_cuda() -> Result<()> {
    set_reproducible_cuda(true).map(|_| ())
}

/// Seeds libtorch's generators (CPU and CUDA). With a seed, CPU runs repeat bit for bit.
///
/// libtorch has one generator per process (tch exposes no per-run generator), so a seeded run
/// is repeatable only when nothing else in the process draws from it meanwhile: independent
/// runs in parallel are separate processes, never threads of one. Batch order does not depend
/// on it ([`crate::data::permutation`]).
pub fn seed(seed: u64) {
    tch::manual_seed(seed as i64);
}

/// Sets libtorch's intra-op thread count for the calling OS thread's pool.
pub fn set_threads(n: usize) {
    tch::set_num_threads(n.max(1) as i32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_cuda_flags_are_set_and_reset() {
        // Context flags only: they can be set on a machine without a GPU.
        assert_eq!(
            set_reproducible_cuda(true).unwrap(),
            (true, false, false, false)
        );
        let (det, _, tf32_cudnn, tf32_cublas) = set_reproducible_cuda(false).unwrap();
        assert!(!det && tf32_cudnn && tf32_cublas);
        set_reproducible_cuda(true).unwrap();
    }

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        let err = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn cuda_without_a_gpu_is_a_clear_error() {
        if tch::Cuda::is_available() {
            return; // this check is about machines without a GPU
        }
        let err = DeviceSpec::Cuda(0).resolve().unwrap_err().to_string();
        assert!(
            err.contains("no CUDA GPU") && err.contains("--device cpu"),
            "{err}"
        );
        assert_eq!(DeviceSpec::Auto.resolve().unwrap(), Device::Cpu);
    }
}
