//! `transfer`: adapting a pre-trained network to a small dataset (fine-tuning strategies,
//! layer transfer, transferability estimates) and the transfer experiments X1–X6.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout (see
//! `docs/architecture.md`); its library and experiments are the subject of a later issue.
