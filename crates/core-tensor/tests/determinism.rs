//! Two runs with one seed give identical weights.
//!
//! libtorch's random generator is global to the process, so this test lives alone in its own
//! test binary: tests running in parallel threads of one process would draw from it between
//! the seeding and the initialisation.

#[path = "common/toy.rs"]
mod toy;

use core_tensor::train::Trainer;
use tch::nn::{Module, VarStore};
use tch::{Device, Tensor};
use toy::{config, mlp, toy_data};

fn train_once(seed: i64) -> Vec<(String, Tensor)> {
    let data = toy_data(100);
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let net = mlp(&vs);
    let mut trainer = Trainer::new(&vs, config(3)).unwrap();
    trainer
        .fit(
            &data,
            |x, y| net.forward(x).cross_entropy_for_logits(y),
            None,
        )
        .unwrap();
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

#[test]
fn one_seed_gives_identical_weights() {
    let (a, b, c) = (train_once(7), train_once(7), train_once(8));
    for ((na, ta), (_, tb)) in a.iter().zip(&b) {
        assert!(ta.equal(tb), "{na} differs between two runs with seed 7");
    }
    assert!(
        a.iter().zip(&c).any(|((_, ta), (_, tc))| !ta.equal(tc)),
        "seed 8 gave the same weights"
    );
}
