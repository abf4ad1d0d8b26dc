//! Build script of the crates that link libtorch and need nothing else: an rpath to libtorch.
//! See `libtorch.rs` beside this file.

#[path = "libtorch.rs"]
mod libtorch;

fn main() {
    libtorch::emit_rpath();
}
