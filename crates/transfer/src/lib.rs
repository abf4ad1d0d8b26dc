//! `transfer`: adapting a pre-trained network to a small dataset, and the transfer
//! experiments X1–X6 of `../shared/EXPERIMENTS.md`.
//!
//! - [`strategy`]: one call ([`strategy::adapt`]) adapts any zoo model to a target by one of
//!   eight strategies (scratch, linear probe, fine-tune, top-k, discriminative learning rates,
//!   L2-SP, LP-FT, layer transfer).
//! - [`input`] and [`target`]: explicit input adaptation (UCI 8x8 digits into MNIST's frame) and
//!   the target datasets with seeded, stratified samples.
//! - [`transferability`]: LogME, LEEP, H-score and rank correlations, to rank sources for a
//!   target without fine-tuning.
//! - [`runner`]: sources (zoo, pre-trained here on described data, untrained) and adaptations
//!   as stored, resumable runs; [`experiments`] what X2–X6 share.
//! - [`x1`] … [`x6`]: the experiments, each a TOML config in `experiments/`, with a verdict rule
//!   fixed in code; the `transfer` binary runs them (`transfer all --profile quick`).

pub mod experiments;
pub mod input;
pub mod runner;
pub mod strategy;
pub mod target;
pub mod transferability;
pub mod x1;
pub mod x2;
pub mod x3;
pub mod x4;
pub mod x5;
pub mod x6;
