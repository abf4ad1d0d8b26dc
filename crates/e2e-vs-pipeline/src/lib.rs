//! `e2e-vs-pipeline`: staged pipelines against end-to-end networks across data sizes.

pub mod bone_age;
pub mod features;
pub mod lines;
pub mod localise;
pub mod scenes;
pub mod sweep;
