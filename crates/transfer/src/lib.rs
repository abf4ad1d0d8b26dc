//! `transfer`: adapting a pre-trained network to a small dataset (fine-tuning strategies,
//! layer transfer, transferability estimates) and the transfer experiments X1–X6.
//!
//! Work in progress: the transferability estimators are here; the strategies, layer transfer,
//! command-line entry and experiments are not implemented yet.

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
