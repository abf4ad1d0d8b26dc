//! `transferlab-report`: what an experiment reports, without libtorch.
//!
//! Summaries of a result over seeds with 95% intervals ([`stats`]), the verdicts on claims from
//! contrasts declared before the runs and their decisions ([`contrast`]), the ledger that combines
//! them per claim ([`ledger`]), tables ([`Table`], [`Cell`]), the data of plots
//! ([`Plot`], [`Series`], [`Point`]) and one experiment's whole report ([`ExperimentReport`]),
//! with one number format ([`format_summary`]). The experiment binaries write reports with it
//! and the suite's report builder (which links no libtorch) reads them with the same types.
//!
//! ```
//! use transferlab_report::stats::paired_difference;
//! use transferlab_report::{Cell, Table};
//! // The same seeds in both arms: compare per seed.
//! let d = paired_difference(&[0.91, 0.93, 0.92], &[0.88, 0.90, 0.90])?;
//! assert!(d.above(0.0));
//! let mut t = Table::new("gain", &["N", "fine-tune − scratch (points)"]);
//! t.push(vec![Cell::int(10), Cell::pct(d)]);
//! assert!(t.markdown().contains("| 10 | 2.7 ["));
//! # Ok::<(), transferlab_report::Error>(())
//! ```

pub mod contrast;
mod fs;
pub mod ledger;
mod model;
pub mod stats;
pub mod svg;

pub use fs::{write_atomic, write_json};
pub use model::*;

/// What can go wrong here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument (too few values, mismatched lengths, a probability outside (0, 1)).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
