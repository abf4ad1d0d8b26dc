//! `transfer`: adapting a pre-trained network to a small dataset.
//!
//! - [`strategy`]: one call ([`strategy::adapt`]) adapts any zoo model to a target by one of
//!   eight strategies (scratch, linear probe, fine-tune, top-k, discriminative learning rates,
//!   L2-SP, LP-FT, layer transfer).
//! - [`input`] and [`target`]: explicit input adaptation (UCI 8x8 digits into MNIST's frame) and
//!   the target datasets with seeded, stratified samples.
//! - [`transferability`]: LogME, LEEP, H-score and rank correlations, to rank sources for a
//!   target without fine-tuning.
//!
//! The project's transfer experiments (X1–X6) are built on this crate in the workspace's
//! `experiments` crate; nothing here depends on them.

pub mod input;
pub mod strategy;
pub mod target;
pub mod transferability;
