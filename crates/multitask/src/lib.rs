//! `multitask`: one network trained on several tasks at once (hard parameter sharing, missing
//! labels, loss balancing) and the multi-task experiments M1–M6.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout (see
//! `docs/architecture.md`); its library and experiments are the subject of a later issue.
