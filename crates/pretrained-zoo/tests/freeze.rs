//! Freezing the first stages of a network, and what batch norm does in them: with
//! `FrozenStagesEval` every variable of the frozen stages (weights and running statistics)
//! stays bit-identical through training; with `UpdateAll` the weights stay but the running
//! statistics move.

use std::collections::HashMap;

use anyhow::{Result, ensure};
use core_tensor::Error;
use core_tensor::optim::{Optimizer, OptimizerKind};
use pretrained_zoo::arch::{
    ArchConfig, AudioCnn1dConfig, BatchNormPolicy, Classifier, FaceCnnConfig, HEAD, LeNetConfig,
    MlpConfig, ResNetConfig, SpectrogramCnnConfig, freeze_stages, in_stage,
};
use tch::nn;
use tch::{Device, Kind, Tensor};

/// Architectures with batch norm.
const WITH_BATCH_NORM: [&str; 4] = ["resnet", "face_cnn", "audio_cnn1d", "spectrogram_cnn"];
/// Every architecture.
const ALL: [&str; 6] = [
    "mlp",
    "lenet",
    "resnet",
    "face_cnn",
    "audio_cnn1d",
    "spectrogram_cnn",
];

/// A small configuration of each architecture (at least three backbone stages) and an input
/// shape it takes.
fn case(arch: &str) -> (ArchConfig, Vec<i64>) {
    match arch {
        "mlp" => (
            ArchConfig::Mlp(MlpConfig {
                inputs: 12,
                hidden: vec![8, 8, 6],
                classes: 3,
            }),
            vec![8, 12],
        ),
        "lenet" => (
            ArchConfig::LeNet(LeNetConfig {
                channels: [4, 8],
                hidden: [16, 12],
                classes: 3,
            }),
            vec![8, 1, 28, 28],
        ),
        "resnet" => (
            ArchConfig::ResNet(ResNetConfig {
                width: 4,
                blocks: [1, 1, 1],
                classes: 3,
            }),
            vec![8, 1, 16, 16],
        ),
        "face_cnn" => (
            ArchConfig::FaceCnn(FaceCnnConfig {
                channels: vec![4, 6, 8],
                classes: 3,
            }),
            vec![8, 1, 24, 20],
        ),
        "audio_cnn1d" => (
            ArchConfig::AudioCnn1d(AudioCnn1dConfig {
                channels: vec![4, 6, 8],
                first_kernel: 16,
                first_stride: 4,
                kernel: 3,
                pool: 2,
                classes: 3,
            }),
            vec![8, 1, 800],
        ),
        "spectrogram_cnn" => (
            ArchConfig::SpectrogramCnn(SpectrogramCnnConfig {
                channels: vec![4, 6, 8],
                classes: 3,
            }),
            vec![8, 1, 16, 24],
        ),
        other => panic!("no test case for {other}"),
    }
}

/// A network of `arch` at the root of a fresh store, with a fixed seed, and an input for it
/// (mean and spread away from 0 and 1, so batch and running statistics differ).
fn build(arch: &str) -> Result<(nn::VarStore, Box<dyn Classifier>, Tensor)> {
    tch::manual_seed(11);
    let (cfg, shape) = case(arch);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = cfg.build(&vs.root())?;
    let x = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * 2.0 + 0.5;
    Ok((vs, net, x))
}

/// A copy of every variable, by name.
fn snapshot(vs: &nn::VarStore) -> HashMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(name, var)| (name, var.detach().copy()))
        .collect()
}

/// Whether the variable `name` is a batch-norm running statistic.
fn is_statistic(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// `steps` SGD steps (momentum 0.9, learning rate 0.1) on a fixed batch, with an optimizer
/// built now, after freezing.
fn train(vs: &nn::VarStore, net: &dyn Classifier, x: &Tensor, steps: usize) -> Result<()> {
    let mut opt = Optimizer::new(vs, OptimizerKind::sgd(0.9), 0.1, 0.0)?;
    let target = Tensor::arange(x.size()[0], (Kind::Int64, Device::Cpu)).remainder(3);
    for _ in 0..steps {
        opt.zero_grad()?;
        let loss = net.forward_t(x, true).cross_entropy_for_logits(&target);
        ensure!(loss.double_value(&[]).is_finite(), "the loss diverged");
        loss.backward();
        opt.step()?;
    }
    Ok(())
}

/// The stage of variable `name`.
fn stage_of<'a>(net: &'a dyn Classifier, name: &str) -> &'a str {
    net.stages()
        .into_iter()
        .find(|stage| in_stage(name, stage))
        .unwrap_or_else(|| panic!("{name} belongs to no stage"))
}

#[test]
fn frozen_stages_in_eval_mode_keep_weights_and_statistics_bit_identical() -> Result<()> {
    for arch in ALL {
        let (vs, mut net, x) = build(arch)?;
        let frozen = freeze_stages(net.as_mut(), &vs, 2, BatchNormPolicy::FrozenStagesEval)?;
        assert_eq!(frozen, net.stages()[..2], "{arch}");
        assert_eq!(net.eval_stages(), frozen, "{arch}");
        let before = snapshot(&vs);
        train(&vs, net.as_ref(), &x, 3)?;
        let after = snapshot(&vs);
        for (name, old) in &before {
            let unchanged = after[name].equal(old);
            if frozen.iter().any(|s| s == stage_of(net.as_ref(), name)) {
                assert!(unchanged, "{arch}: frozen {name} changed");
                assert!(!after[name].requires_grad(), "{arch}: {name} is not frozen");
            } else {
                assert!(
                    !unchanged,
                    "{arch}: {name} of a trained stage did not change"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn update_all_keeps_frozen_weights_but_their_statistics_move() -> Result<()> {
    for arch in WITH_BATCH_NORM {
        let (vs, mut net, x) = build(arch)?;
        // Evaluation stages set before are cleared by the policy.
        let first = net.stages()[0].to_string();
        net.set_eval_stages(&[first.as_str()])?;
        let frozen = freeze_stages(net.as_mut(), &vs, 2, BatchNormPolicy::UpdateAll)?;
        assert!(net.eval_stages().is_empty(), "{arch}");
        let before = snapshot(&vs);
        train(&vs, net.as_ref(), &x, 3)?;
        let after = snapshot(&vs);
        let mut statistics = 0;
        for (name, old) in &before {
            let unchanged = after[name].equal(old);
            let is_frozen = frozen.iter().any(|s| s == stage_of(net.as_ref(), name));
            if is_frozen && !is_statistic(name) {
                assert!(unchanged, "{arch}: frozen weight {name} changed");
            } else {
                assert!(!unchanged, "{arch}: {name} did not change");
            }
            statistics += usize::from(is_frozen && is_statistic(name));
        }
        assert!(
            statistics >= 4,
            "{arch}: only {statistics} frozen statistics"
        );
    }
    Ok(())
}

#[test]
fn stages_in_eval_mode_compute_what_a_full_eval_pass_computes() -> Result<()> {
    for arch in ALL {
        let (vs, mut net, x) = build(arch)?;
        // Two training passes move the running statistics away from their initial values.
        for _ in 0..2 {
            let _ = tch::no_grad(|| net.forward_t(&x, true));
        }
        let eval_features = tch::no_grad(|| net.features(&x, false));
        let eval_output = tch::no_grad(|| net.forward_t(&x, false));
        let stages = net.stages();
        let backbone: Vec<String> = stages[..stages.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let frozen = freeze_stages(
            net.as_mut(),
            &vs,
            backbone.len(),
            BatchNormPolicy::FrozenStagesEval,
        )?;
        assert_eq!(frozen, backbone, "{arch}");
        let before = snapshot(&vs);
        let features = tch::no_grad(|| net.features(&x, true));
        let output = net.forward_t(&x, true);
        assert!(features.equal(&eval_features), "{arch}: features differ");
        assert!(output.equal(&eval_output), "{arch}: outputs differ");
        for (name, old) in &before {
            assert!(vs.variables()[name].equal(old), "{arch}: {name} changed");
        }
        // The evaluation stages do not change what `train = false` computes.
        assert!(tch::no_grad(|| net.features(&x, false)).equal(&eval_features));
        // Only the head learns: gradients reach it and nothing else.
        output.sum(Kind::Float).backward();
        for (name, var) in vs.variables() {
            assert_eq!(
                var.grad().defined(),
                in_stage(&name, HEAD),
                "{arch}: gradient of {name}"
            );
        }
    }
    Ok(())
}

#[test]
fn with_batch_norm_the_policy_changes_the_training_forward_pass() -> Result<()> {
    for arch in WITH_BATCH_NORM {
        let (vs, mut net, x) = build(arch)?;
        freeze_stages(net.as_mut(), &vs, 1, BatchNormPolicy::UpdateAll)?;
        let updating = tch::no_grad(|| net.forward_t(&x, true));
        freeze_stages(net.as_mut(), &vs, 1, BatchNormPolicy::FrozenStagesEval)?;
        let eval = tch::no_grad(|| net.forward_t(&x, true));
        assert!(!updating.allclose(&eval, 1e-4, 1e-4, false), "{arch}");
    }
    Ok(())
}

#[test]
fn unknown_stage_names_are_refused_with_the_valid_ones() -> Result<()> {
    for arch in ALL {
        let (_vs, mut net, _x) = build(arch)?;
        let first = net.stages()[0].to_string();
        net.set_eval_stages(&[first.as_str()])?;
        let err = net
            .set_eval_stages(&[first.as_str(), "layer9"])
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{arch}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("layer9"), "{arch}: {msg}");
        for stage in net.stages() {
            assert!(msg.contains(stage), "{arch}: {msg} does not list {stage}");
        }
        assert_eq!(net.eval_stages(), [first.as_str()], "{arch}: set changed");
        // The head is a stage like any other here (it has no batch norm).
        net.set_eval_stages(&[HEAD, first.as_str()])?;
        assert_eq!(net.eval_stages(), [first.as_str(), HEAD], "{arch}");
        net.set_eval_stages(&[])?;
        assert!(net.eval_stages().is_empty(), "{arch}");
    }
    Ok(())
}

#[test]
fn freezing_the_head_is_refused_and_changes_nothing() -> Result<()> {
    for arch in ALL {
        let (vs, mut net, _x) = build(arch)?;
        let backbone = net.stages().len() - 1;
        let trainable = vs.trainable_variables().len();
        for n in [backbone + 1, backbone + 5] {
            let err =
                freeze_stages(net.as_mut(), &vs, n, BatchNormPolicy::FrozenStagesEval).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{arch}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains("head cannot be frozen"), "{arch}: {msg}");
            assert!(
                msg.contains(&format!("at most {backbone}")),
                "{arch}: {msg}"
            );
        }
        assert_eq!(vs.trainable_variables().len(), trainable, "{arch}");
        assert!(net.eval_stages().is_empty(), "{arch}");
        // Zero stages: nothing frozen.
        let frozen = freeze_stages(net.as_mut(), &vs, 0, BatchNormPolicy::FrozenStagesEval)?;
        assert!(frozen.is_empty() && net.eval_stages().is_empty(), "{arch}");
        assert_eq!(vs.trainable_variables().len(), trainable, "{arch}");
    }
    Ok(())
}

#[test]
fn a_network_below_the_store_root_is_refused() -> Result<()> {
    let vs = nn::VarStore::new(Device::Cpu);
    let (cfg, _) = case("resnet");
    let mut net = cfg.build(&(vs.root() / "backbone"))?;
    let trainable = vs.trainable_variables().len();
    let err = freeze_stages(net.as_mut(), &vs, 2, BatchNormPolicy::FrozenStagesEval).unwrap_err();
    assert!(err.to_string().contains("vs.root()"), "{err}");
    assert_eq!(vs.trainable_variables().len(), trainable);
    assert!(net.eval_stages().is_empty());
    Ok(())
}

#[test]
fn the_policy_reads_from_configuration_text() -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Cfg {
        batch_norm: BatchNormPolicy,
    }
    let cfg: Cfg = toml::from_str(r#"batch_norm = "frozen_stages_eval""#)?;
    assert_eq!(cfg.batch_norm, BatchNormPolicy::FrozenStagesEval);
    let cfg: Cfg = toml::from_str(r#"batch_norm = "update_all""#)?;
    assert_eq!(cfg.batch_norm, BatchNormPolicy::UpdateAll);
    assert!(toml::from_str::<Cfg>(r#"batch_norm = "eval""#).is_err());
    Ok(())
}
