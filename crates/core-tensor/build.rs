//! Build script of core-tensor: the rpath to libtorch, and the C++ shim `csrc/fused_optim.cpp`
//! that calls libtorch's fused optimizer kernels (tch 0.26 exposes neither `_fused_adam_` nor
//! the `_foreach_` operations).

#[path = "build/libtorch.rs"]
mod libtorch;

fn main() {
    libtorch::emit_rpath();
    println!("cargo::rerun-if-changed=csrc/fused_optim.cpp");
    println!("cargo::rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = libtorch::lib_dir().expect("torch-sys reports libtorch's lib folder");
    // For tests/cuda_backend.rs.
    println!(
        "cargo::rustc-env=TRANSFERLAB_LIBTORCH_LIB={}",
        lib.display()
    );
    // Every libtorch layout (zip, wheel, system) keeps headers in ../include beside lib/.
    let include = lib.parent().expect("lib has a parent").join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/fused_optim.cpp")
        .compile("transferlab_fused_optim");
}
