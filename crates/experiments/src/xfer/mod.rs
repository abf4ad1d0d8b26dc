//! The transfer experiments X0–X6 (claims T-1…T-3, and X6's own), each a TOML config in
//! `configs/transfer/` with the contrasts that decide its claims declared in code before any
//! run (each experiment's `contrasts`, margins from [`crate::margins`]); the `transfer` binary
//! runs them (`transfer all --profile quick`).
//!
//! - [`runner`]: sources (zoo, pre-trained here on described data, untrained) and adaptations
//!   as stored, resumable runs; [`common`] what X2–X6 share.
//! - [`x0`]: the chapter's own example, photographs to chest X-rays.
//! - [`x1`] … [`x6`]: the experiments.

pub mod common;
pub mod runner;
pub mod x0;
pub mod x1;
pub mod x2;
pub mod x3;
pub mod x4;
pub mod x5;
pub mod x6;
