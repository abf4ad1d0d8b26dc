//! `e2e-vs-pipeline`: staged pipelines against end-to-end networks across data sizes, and the
//! experiments P1–P4.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout (see
//! `docs/architecture.md`); its library and experiments are the subject of a later issue.
