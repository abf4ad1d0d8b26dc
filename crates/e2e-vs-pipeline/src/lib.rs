//! `e2e-vs-pipeline`: staged pipelines against end-to-end networks across data sizes.

pub mod features;
pub mod localise;
