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
/// benches, so they run with no environment set by hand; on Linux also links `libtorch.so`
/// whether or not a symbol of it is used (see below).
///
/// The folder is canonicalised: a PyPI wheel's `libtorch_cuda.so` finds the CUDA libraries
/// through `$ORIGIN/../../nvidia/…`, which must be resolved from the wheel's real folder, not
/// from a link to it (`.cache/libtorch`).
///
/// **CUDA.** No Rust symbol refers to `libtorch_cuda.so`, so a linker that drops unused
/// libraries (`--as-needed`, the default) leaves it out, libtorch never registers its CUDA
/// backend, and `tch::Cuda::is_available()` is false even on a GPU machine (tch-rs issue 980).
/// `libtorch.so` depends on `libtorch_cuda.so` in a CUDA build (and on `libtorch_cpu.so` only
/// in a CPU build), so linking it with `--no-as-needed` loads the CUDA backend where there is
/// one; tested by core-tensor's `tests/cuda_backend.rs`.
pub fn emit_rpath() {
    let Some(lib) = lib_dir() else { return };
    if cfg!(target_os = "windows") {
        return;
    }
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo::rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && lib.join("libtorch.so").exists()
    {
        println!("cargo::rustc-link-arg=-L{}", lib.display());
        println!("cargo::rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo::rustc-link-arg=-ltorch");
        println!("cargo::rustc-link-arg=-Wl,--as-needed");
    }
}
