//! Build-script helpers shared by the crates that link libtorch (included with `#[path]`).
//!
//! torch-sys tells its direct dependents where libtorch's shared libraries are (`links = "tch"`,
//! metadata key `libtorch_lib`, seen here as `DEP_TCH_LIBTORCH_LIB`) but adds no run-time search
//! path, so binaries and tests would need `LD_LIBRARY_PATH`.

use std::path::PathBuf;

/// libtorch's `lib/` folder, as torch-sys found it.
pub fn lib_dir() -> Option<PathBuf> {
    println!("cargo::rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from)
}

/// Records libtorch's `lib/` folder as an rpath of this crate's binaries, tests, examples and
/// benches, so they run with no environment set by hand.
pub fn emit_rpath() {
    if let Some(lib) = lib_dir() {
        if !cfg!(target_os = "windows") {
            println!("cargo::rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
}
