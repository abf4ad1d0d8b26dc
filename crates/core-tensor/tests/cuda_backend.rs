//! The binaries link libtorch so that its CUDA backend loads where libtorch has one: without
//! it `tch::Cuda::is_available()` is false even on a GPU machine (`build/libtorch.rs`). Checked
//! on any machine, GPU or not, by looking at what this test process has loaded.

#[test]
fn a_cuda_libtorch_loads_its_cuda_backend() {
    let Some(lib) = option_env!("TRANSFERLAB_LIBTORCH_LIB") else {
        return;
    };
    let lib = std::path::Path::new(lib);
    if !lib.join("libtorch_cuda.so").exists() {
        // A CPU-only libtorch: nothing to load.
        return;
    }
    // Touch libtorch so that the process is initialised as the binaries are.
    let _ = tch::Cuda::is_available();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("Linux has /proc/self/maps");
    assert!(
        maps.contains("libtorch_cuda.so"),
        "libtorch_cuda.so is not loaded: the CUDA backend would be missing on a GPU machine \
         (see build/libtorch.rs)"
    );
}
