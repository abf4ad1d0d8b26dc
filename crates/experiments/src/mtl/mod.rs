//! The multi-task experiments M1–M6 (claims M-1…M-5), each a TOML config in
//! `configs/multitask/` with `quick`, `full` and `tiny` profiles, made of one kind of stored run
//! ([`common::RunSpec`], keyed by its resolved spec and seed in a [`crate::runs::RunStore`],
//! shared between experiments) and reported with the contrasts each experiment declares in code
//! (its `contrasts` function, margins from [`crate::margins`]), evaluated by
//! [`crate::driver::decide`].
//! The `multitask` binary runs them (`multitask all --profile quick --out out/suite`).

pub mod common;
pub mod m1;
pub mod m2;
pub mod m3;
pub mod m4;
pub mod m5;
pub mod m6;
