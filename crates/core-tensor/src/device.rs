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
    /// The libtorch device, checking that a requested GPU exists.
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
    }
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
