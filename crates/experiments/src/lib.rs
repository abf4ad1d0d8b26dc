//! `experiments`: the suite that measures the chapter's claims, on top of the five library
//! crates (`core-tensor`, `pretrained-zoo`, `transfer`, `multitask`, `e2e-vs-pipeline`).
//!
//! Nothing here is meant for a user's own workspace; it is what `cargo xtask suite` runs.
//!
//! - [`driver`]: how an experiment is run ([`driver::RunOptions`]), its TOML config and profile,
//!   the ledger of its runs, the report skeleton, and the command-line driver every experiment
//!   binary shares ([`driver::cli`]).
//! - [`runs`]: the store of finished runs, keyed by the hash of each run's resolved config, seed
//!   and inputs (dataset and weight checksums), so that a sweep resumes where it stopped.
//! - [`paths`]: where this repository's datasets, zoo weights and manifest are, passed to the
//!   libraries explicitly.
//! - [`progress`]: the binaries' progress bars and log output.
//! - [`xfer`]: the transfer experiments X1–X6 (configs in `configs/transfer/`), binary
//!   `transfer`.
//! - [`mtl`]: the multi-task experiments M1–M6 (`configs/multitask/`), binary `multitask`.
//! - [`e2e`]: the end-to-end-vs-pipeline experiments P1–P4 (`configs/e2e/`), binary `e2e`.
//!
//! The binaries `zoo` (build and verify the zoo's weights), `smoke` and `bench` serve
//! `cargo xtask zoo`, the smoke job and `cargo xtask bench`.

pub mod driver;
pub mod e2e;
pub mod finetune;
pub mod margins;
pub mod mtl;
pub mod paths;
pub mod progress;
pub mod registry;
pub mod runs;
pub mod xfer;

/// The folder of the experiment configs shipped with this crate: `configs/<group>` for the
/// groups `transfer`, `multitask` and `e2e`.
pub fn configs(group: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(group)
}
