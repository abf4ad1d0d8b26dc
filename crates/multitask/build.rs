//! An rpath to libtorch for this crate's tests, examples and binaries (see build/libtorch.rs).
#[path = "build/libtorch.rs"]
mod libtorch;

fn main() {
    libtorch::emit_rpath();
}
