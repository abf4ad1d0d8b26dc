//! The end-to-end-vs-pipeline experiments P1–P5 (claims E-2…E-7), each a TOML config in
//! `configs/e2e/`, built from `e2e_vs_pipeline`'s pipelines, sweeps, features, localiser and
//! generators; [`common`] holds their stored-run context. The `e2e` binary runs them.

pub mod common;
pub mod p1;
pub mod p2;
pub mod p3;
pub mod p4;
pub mod p5;
