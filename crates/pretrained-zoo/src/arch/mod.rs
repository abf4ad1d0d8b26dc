//! Architectures. Every layer has an explicit name equal to its PyTorch `state_dict` prefix.

pub mod lenet;
