//! A toy problem for the engine's tests: 64 points in 4-D labelled by the sign of their first
//! coordinate, a small MLP, and a training configuration.

use core_tensor::data::TensorDataset;
use core_tensor::optim::OptimizerKind;
use core_tensor::train::TrainConfig;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

/// Adam, lr 0.01, batches of 16, `epochs` epochs, nothing else.
pub fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        optimizer: OptimizerKind::adam(),
        lr: 1e-2,
        weight_decay: 0.0,
        schedule: Default::default(),
        grad_clip_norm: None,
        early_stopping: None,
    }
}

/// 64 random points in 4-D labelled by the sign of their first coordinate.
pub fn toy_data(seed: i64) -> TensorDataset {
    tch::manual_seed(seed);
    let x = Tensor::randn([64, 4], (Kind::Float, Device::Cpu));
    let y = x.select(1, 0).gt(0.0).to_kind(Kind::Int64);
    TensorDataset::new(x, y).unwrap()
}

/// `fc1` (4→8), ReLU, `fc2` (8→2).
pub fn mlp(vs: &VarStore) -> impl Module {
    let p = vs.root();
    nn::seq()
        .add(nn::linear(&p / "fc1", 4, 8, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&p / "fc2", 8, 2, Default::default()))
}
