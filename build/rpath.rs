//! Shared build script of every crate that links libtorch.
//!
//! torch-sys tells cargo where libtorch's shared libraries are (`links = "tch"`, metadata key
//! `libtorch_lib`) but adds no run-time search path, so binaries and tests would need
//! `LD_LIBRARY_PATH`. This script records that folder as an rpath in this crate's own
//! binaries, tests, examples and benches, so they run with no environment set by hand.

fn main() {
    println!("cargo::rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        if !cfg!(target_os = "windows") {
            println!("cargo::rustc-link-arg=-Wl,-rpath,{lib}");
        }
    }
}
