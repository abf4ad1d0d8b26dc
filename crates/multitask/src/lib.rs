//! `multitask`: one network trained on several tasks at once (hard parameter sharing, missing
//! labels, loss balancing) and the multi-task experiments M1–M6.

pub mod balance;
pub mod gain;
pub mod net;
pub mod scenes;
pub mod task;
pub mod train;
