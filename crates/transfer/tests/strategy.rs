//! Mechanics of the fine-tuning strategies on small synthetic problems.

use std::collections::HashMap;

use core_tensor::data::TensorDataset;
use core_tensor::optim::OptimizerKind;
use core_tensor::train::{TrainConfig, snapshot};
use pretrained_zoo::arch::{ArchConfig, BatchNormPolicy, LeNetConfig, ResNetConfig};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use transfer::probe::ProbeFit;
use transfer::strategy::{
    AdaptConfig, SourceModel, Strategy, adapt, copy_stages, discriminative_groups, l2_sp_penalty,
    pretrained_with_new_head,
};

fn source(model: ArchConfig, seed: i64) -> SourceModel {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let _net = model.build(&vs.root()).unwrap();
    SourceModel::from_store("random-source", model, &vs)
}

fn lenet() -> ArchConfig {
    ArchConfig::LeNet(LeNetConfig {
        channels: [4, 8],
        hidden: [16, 12],
        classes: 10,
    })
}

fn resnet() -> ArchConfig {
    ArchConfig::ResNet(ResNetConfig {
        width: 4,
        blocks: [1, 1, 1],
        classes: 10,
    })
}

fn data(n: i64, classes: i64, seed: i64) -> TensorDataset {
    tch::manual_seed(seed);
    let x = Tensor::randn([n, 1, 28, 28], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(classes, [n], (Kind::Int64, Device::Cpu));
    TensorDataset::new(x, y).unwrap()
}

fn cfg(epochs: usize) -> AdaptConfig {
    AdaptConfig {
        train: TrainConfig {
            epochs,
            batch_size: 8,
            optimizer: OptimizerKind::sgd(0.9),
            lr: 0.05,
            weight_decay: 0.0,
            schedule: Default::default(),
            grad_clip_norm: None,
            early_stopping: None,
        },
        batch_norm: BatchNormPolicy::FrozenStagesEval,
        eval_batch: 16,
        probe: ProbeFit::Train,
    }
}

fn changed(
    before: &HashMap<String, Tensor>,
    after: &HashMap<String, Tensor>,
    prefix: &str,
) -> bool {
    before
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .any(|(k, v)| !v.equal(&after[k]))
}

#[test]
fn a_new_head_keeps_every_backbone_weight_of_the_source() {
    let src = source(lenet(), 1);
    let (vs, net) = pretrained_with_new_head(&src, 3, Device::Cpu).unwrap();
    assert_eq!(net.classes(), 3);
    for (name, var) in vs.variables() {
        if name.starts_with("head") {
            assert_eq!(var.size()[0], 3);
        } else {
            assert!(var.equal(&src.weights[&name]), "{name} not copied");
        }
    }
}

#[test]
fn layer_transfer_copies_exactly_n_stages() {
    let src = source(lenet(), 1);
    for n in 0..=4 {
        tch::manual_seed(100);
        let vs = VarStore::new(Device::Cpu);
        let net = lenet().build(&vs.root()).unwrap();
        let copied = copy_stages(&vs, &*net, &src, n).unwrap();
        let stages = net.stages();
        for (name, var) in vs.variables() {
            let stage = stages
                .iter()
                .position(|s| name.starts_with(&format!("{s}.")))
                .unwrap();
            let same = var.equal(&src.weights[&name]);
            assert_eq!(
                same,
                stage < n,
                "n = {n}: {name} (stage {stage}) copied = {same}"
            );
            assert_eq!(copied.contains(&name), stage < n);
        }
    }
    let vs = VarStore::new(Device::Cpu);
    let net = lenet().build(&vs.root()).unwrap();
    let err = copy_stages(&vs, &*net, &src, 5).unwrap_err().to_string();
    assert!(err.contains("4 backbone stages"), "{err}");
}

#[test]
fn fine_tuning_the_top_stage_leaves_the_frozen_backbone_and_its_statistics_unchanged() {
    let src = source(resnet(), 2);
    let train = data(32, 4, 3);
    let val = data(16, 4, 4);
    let adapted = adapt(
        &Strategy::FineTuneTop { stages: 2 },
        &src,
        4,
        &train,
        &val,
        &cfg(2),
        0,
    )
    .unwrap();
    let after = snapshot(&adapted.vs);
    // stem, layer1, layer2 frozen in evaluation mode: weights and running statistics intact.
    for (name, var) in &after {
        let frozen = ["stem.", "layer1.", "layer2."]
            .iter()
            .any(|p| name.starts_with(p));
        if frozen {
            assert!(var.equal(&src.weights[name]), "{name} changed");
        }
    }
    assert!(
        changed(&src.weights, &after, "layer3."),
        "layer3 should train"
    );
}

#[test]
fn linear_probe_trains_the_head_alone() {
    let src = source(lenet(), 5);
    let train = data(40, 3, 6);
    let val = data(16, 3, 7);
    let adapted = adapt(&Strategy::LinearProbe, &src, 3, &train, &val, &cfg(10), 0).unwrap();
    let after = snapshot(&adapted.vs);
    for (name, var) in &after {
        if !name.starts_with("head.") {
            assert!(var.equal(&src.weights[name]), "{name} changed");
        }
    }
    // The head was trained (its loss fell) and the trained head is the one in the network:
    // it differs from the fresh head the same seed gives.
    let log = &adapted.reports[0].epochs;
    assert!(
        log.last().unwrap().train_loss < log[0].train_loss,
        "{log:?}"
    );
    core_tensor::device::seed(0);
    let (fresh, _) = pretrained_with_new_head(&src, 3, Device::Cpu).unwrap();
    assert!(!fresh.variables()["head.weight"].equal(&after["head.weight"]));
}

#[test]
fn l2_sp_gradient_equals_its_closed_form() {
    let src = source(lenet(), 8);
    let (vs, net) = pretrained_with_new_head(&src, 3, Device::Cpu).unwrap();
    // Move the backbone away from the source so the pull is not zero.
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            if !name.starts_with("head.") {
                let _ = v.g_add_scalar_(0.25);
            }
        }
    });
    let (alpha, beta) = (0.3, 0.7);
    let penalty = l2_sp_penalty(&vs, &*net, &src, alpha, beta).unwrap();
    penalty().backward();
    for (name, v) in vs.variables() {
        let want = if name.starts_with("head.") {
            v.detach() * beta
        } else {
            (v.detach() - &src.weights[&name]) * alpha
        };
        let diff = (v.grad() - want).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{name}: gradient off by {diff}");
    }
}

#[test]
fn discriminative_groups_decay_towards_the_input() {
    let train = cfg(1).train;
    let vs = VarStore::new(Device::Cpu);
    let net = lenet().build(&vs.root()).unwrap();
    assert_eq!(net.stages(), ["conv1", "conv2", "fc1", "fc2", "head"]);
    let g = discriminative_groups(&*net, &train, 0.1, 0.5);
    let lrs: Vec<f64> = g.iter().map(|g| g.lr).collect();
    let want = [
        0.05 * 0.1 * 0.125,
        0.05 * 0.1 * 0.25,
        0.05 * 0.1 * 0.5,
        0.05 * 0.1,
        0.05,
    ];
    assert_eq!(lrs.len(), want.len());
    assert_eq!(g[0].prefixes, ["conv1"]);
    for (a, b) in lrs.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{lrs:?}");
    }
    assert!(g.last().unwrap().prefixes.is_empty());
}

#[test]
fn every_strategy_runs_and_bad_parameters_are_named() {
    let src = source(lenet(), 9);
    let train = data(24, 3, 10);
    let val = data(12, 3, 11);
    let strategies = [
        Strategy::Scratch,
        Strategy::LinearProbe,
        Strategy::FineTune,
        Strategy::FineTuneTop { stages: 1 },
        Strategy::DiscriminativeLr {
            backbone_factor: 0.1,
            layer_decay: 0.8,
        },
        Strategy::L2Sp {
            alpha: 0.01,
            beta: 0.01,
        },
        Strategy::LpFt {
            probe_epochs: 1,
            lr_factor: 0.5,
        },
    ];
    for s in &strategies {
        let a = adapt(s, &src, 3, &train, &val, &cfg(1), 0).unwrap();
        assert_eq!(
            a.reports.len(),
            if matches!(s, Strategy::LpFt { .. }) {
                2
            } else {
                1
            },
            "{s:?}"
        );
    }
    let err = adapt(
        &Strategy::FineTuneTop { stages: 0 },
        &src,
        3,
        &train,
        &val,
        &cfg(1),
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("strategy.stages"), "{err}");
    let parsed: Strategy =
        toml::from_str("kind = \"discriminative_lr\"\nbackbone_factor = 0.1").unwrap();
    assert_eq!(
        parsed,
        Strategy::DiscriminativeLr {
            backbone_factor: 0.1,
            layer_decay: 1.0
        }
    );
    assert!(
        toml::from_str::<Strategy>("kind = \"l2_sp\"\nalpha = 1\nbeta = 1\ngamma = 2").is_err()
    );
}

#[test]
fn anb_keeps_its_n_copied_stages_frozen_and_anb_plus_trains_them() {
    let src = source(lenet(), 21);
    let train = data(32, 3, 22);
    let val = data(8, 3, 23);
    let n = 2;
    for frozen in [true, false] {
        let a = adapt(
            &Strategy::LayerTransfer { stages: n, frozen },
            &src,
            3,
            &train,
            &val,
            &cfg(2),
            5,
        )
        .unwrap();
        let after = snapshot(&a.vs);
        let stages = a.net.stages();
        for (name, var) in &after {
            let stage = stages
                .iter()
                .position(|s| name.starts_with(&format!("{s}.")))
                .unwrap();
            if stage == stages.len() - 1 {
                assert_eq!(
                    var.size()[0],
                    3,
                    "{name}: the head has the target's classes"
                );
                continue;
            }
            let same = var.equal(&src.weights[name]);
            // Copied and frozen: identical. Copied and trained, or re-initialised: different.
            assert_eq!(
                same,
                frozen && stage < n,
                "frozen = {frozen}: {name} (stage {stage})"
            );
        }
    }
}
