//! Weights move between every Rust architecture and its PyTorch twin (`python/zoo_models.py`)
//! through safetensors files, and both compute the same outputs in eval mode.
//!
//! Rust → PyTorch: Rust initialises, trains two SGD steps on random inputs (so batch-norm
//! statistics and weights move away from their initial values), saves, and
//! `python/interop.py load-and-run` loads the file strictly into the twin and runs it.
//! PyTorch → Rust: `interop.py init-and-save` initialises the twin, runs two train-mode passes,
//! saves weights, an input and its output; Rust loads the weights strictly and runs it.

mod common;

use anyhow::{Context, Result, ensure};
use core_tensor::checkpoint::{self, LoadMode};
use pretrained_zoo::arch::{
    ArchConfig, AudioCnn1dConfig, Classifier, FaceCnnConfig, LeNetConfig, MlpConfig, ResNetConfig,
    SpectrogramCnnConfig,
};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Twins agree to float rounding; both run the same libtorch kernels.
const TOLERANCE: f64 = 1e-5;

/// A small configuration of each architecture and an input shape it takes.
fn case(arch: &str) -> (ArchConfig, Vec<i64>) {
    match arch {
        "mlp" => (
            ArchConfig::Mlp(MlpConfig {
                inputs: 784,
                hidden: vec![64, 32],
                classes: 10,
            }),
            // Images: the network flattens them.
            vec![4, 1, 28, 28],
        ),
        "lenet" => (
            ArchConfig::LeNet(LeNetConfig::default()),
            vec![4, 1, 28, 28],
        ),
        "resnet" => (
            ArchConfig::ResNet(ResNetConfig {
                width: 8,
                blocks: [2, 1, 1],
                classes: 10,
            }),
            vec![4, 1, 28, 28],
        ),
        "face_cnn" => (
            ArchConfig::FaceCnn(FaceCnnConfig {
                channels: vec![8, 16, 32, 32],
                classes: 40,
            }),
            vec![3, 1, 112, 92],
        ),
        "audio_cnn1d" => (
            ArchConfig::AudioCnn1d(AudioCnn1dConfig {
                channels: vec![8, 8, 16, 16],
                ..AudioCnn1dConfig::default()
            }),
            vec![3, 1, 4000],
        ),
        "spectrogram_cnn" => (
            ArchConfig::SpectrogramCnn(SpectrogramCnnConfig {
                channels: vec![8, 16, 32],
                classes: 10,
            }),
            vec![3, 1, 40, 101],
        ),
        other => panic!("no test case for {other}"),
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    ensure!(
        a.size() == b.size(),
        "shapes {:?} and {:?}",
        a.size(),
        b.size()
    );
    Ok((a - b).abs().max().double_value(&[]))
}

/// Two SGD steps on shifted, scaled random inputs in train mode.
fn train_a_little(net: &dyn Classifier, vs: &nn::VarStore, shape: &[i64]) -> Result<()> {
    let mut opt = nn::Sgd::default().build(vs, 0.05)?;
    for _ in 0..2 {
        let x = Tensor::randn(shape, tch::kind::FLOAT_CPU) * 2.0 + 0.5;
        let y = Tensor::randint(net.classes(), [shape[0]], tch::kind::INT64_CPU);
        let loss = net.forward_t(&x, true).cross_entropy_for_logits(&y);
        opt.backward_step(&loss);
    }
    Ok(())
}

fn rust_to_pytorch(arch: &str) -> Result<()> {
    let (cfg, shape) = case(arch);
    let dir = tempfile::tempdir()?;
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = cfg.build(&vs.root())?;
    train_a_little(net.as_ref(), &vs, &shape)?;
    // Batch-norm statistics moved away from their initial 0 and 1.
    for (name, t) in vs.variables() {
        if name.ends_with("running_var") {
            let off = (t - 1.0).abs().max().double_value(&[]);
            ensure!(off > 1e-3, "{name} did not move");
        }
    }

    let weights = dir.path().join("weights.safetensors");
    let input = dir.path().join("input.safetensors");
    let output = dir.path().join("output.safetensors");
    checkpoint::save(&vs, &weights)?;
    let x = Tensor::randn(shape.as_slice(), tch::kind::FLOAT_CPU);
    checkpoint::save_tensors(&[("input", x.shallow_clone())], &input)?;
    let ours = tch::no_grad(|| net.forward_t(&x, false));

    let config = cfg.inner_json().to_string();
    common::interop([
        "load-and-run".as_ref(),
        arch.as_ref(),
        config.as_ref(),
        weights.as_os_str(),
        input.as_os_str(),
        output.as_os_str(),
    ])?;
    let theirs = checkpoint::read_tensors(&output)?
        .into_iter()
        .find(|(n, _)| n == "output")
        .context("no tensor `output`")?
        .1;
    let diff = max_abs_diff(&ours, &theirs)?;
    let scale = ours.abs().max().double_value(&[]);
    eprintln!("{arch}: Rust -> PyTorch max abs difference {diff:e} (outputs up to {scale:.3})");
    ensure!(
        scale > 1e-3,
        "{arch}: outputs are all near zero, the check would be vacuous"
    );
    ensure!(
        diff < TOLERANCE,
        "{arch}: Rust -> PyTorch max abs difference {diff}"
    );
    Ok(())
}

/// Has Python initialise and save the twin; returns (weights, input, output) paths.
fn pytorch_init(
    arch: &str,
    cfg: &ArchConfig,
    dir: &std::path::Path,
) -> Result<[std::path::PathBuf; 3]> {
    let paths = ["weights", "input", "output"].map(|n| dir.join(format!("{n}.safetensors")));
    let config = cfg.inner_json().to_string();
    common::interop([
        "init-and-save".as_ref(),
        arch.as_ref(),
        config.as_ref(),
        "11".as_ref(),
        paths[0].as_os_str(),
        paths[1].as_os_str(),
        paths[2].as_os_str(),
    ])?;
    Ok(paths)
}

fn single(path: &std::path::Path, name: &str) -> Result<Tensor> {
    Ok(checkpoint::read_tensors(path)?
        .into_iter()
        .find(|(n, _)| n == name)
        .with_context(|| format!("no tensor `{name}` in {}", path.display()))?
        .1)
}

fn pytorch_to_rust(arch: &str) -> Result<()> {
    let (cfg, _) = case(arch);
    let dir = tempfile::tempdir()?;
    let [weights, input, output] = pytorch_init(arch, &cfg, dir.path())?;

    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = cfg.build(&vs.root())?;
    let report = checkpoint::load(&mut vs, &weights, LoadMode::Strict)?;
    ensure!(report.loaded.len() == vs.len(), "{report}");
    // Every PyTorch batch norm's counter, and nothing else, was set aside.
    let bns = vs
        .variables()
        .keys()
        .filter(|k| k.ends_with(".running_mean"))
        .count();
    ensure!(report.ignored.len() == bns, "{report}");

    let x = single(&input, "input")?;
    let theirs = single(&output, "output")?;
    let ours = tch::no_grad(|| net.forward_t(&x, false));
    let diff = max_abs_diff(&ours, &theirs)?;
    eprintln!("{arch}: PyTorch -> Rust max abs difference {diff:e}");
    ensure!(
        diff < TOLERANCE,
        "{arch}: PyTorch -> Rust max abs difference {diff}"
    );
    Ok(())
}

#[test]
fn mlp_rust_to_pytorch() -> Result<()> {
    rust_to_pytorch("mlp")
}

#[test]
fn mlp_pytorch_to_rust() -> Result<()> {
    pytorch_to_rust("mlp")
}

#[test]
fn lenet_rust_to_pytorch() -> Result<()> {
    rust_to_pytorch("lenet")
}

#[test]
fn lenet_pytorch_to_rust() -> Result<()> {
    pytorch_to_rust("lenet")
}

#[test]
fn resnet_rust_to_pytorch() -> Result<()> {
    rust_to_pytorch("resnet")
}

#[test]
fn resnet_pytorch_to_rust() -> Result<()> {
    pytorch_to_rust("resnet")
}

#[test]
fn face_cnn_rust_to_pytorch() -> Result<()> {
    rust_to_pytorch("face_cnn")
}

#[test]
fn face_cnn_pytorch_to_rust() -> Result<()> {
    pytorch_to_rust("face_cnn")
}

#[test]
fn audio_cnn1d_rust_to_pytorch() -> Result<()> {
    rust_to_pytorch("audio_cnn1d")
}

#[test]
fn audio_cnn1d_pytorch_to_rust() -> Result<()> {
    pytorch_to_rust("audio_cnn1d")
}

#[test]
fn spectrogram_cnn_rust_to_pytorch() -> Result<()> {
    rust_to_pytorch("spectrogram_cnn")
}

#[test]
fn spectrogram_cnn_pytorch_to_rust() -> Result<()> {
    pytorch_to_rust("spectrogram_cnn")
}

/// A `torch.save`d plain dict loads like the safetensors file; the `OrderedDict` that
/// `torch.save(model.state_dict())` writes is refused with a message saying how to convert it.
#[test]
fn pytorch_pt_files_load_when_they_hold_a_plain_dict() -> Result<()> {
    let (cfg, _) = case("resnet");
    let dir = tempfile::tempdir()?;
    let [weights, _, _] = pytorch_init("resnet", &cfg, dir.path())?;
    let plain = dir.path().join("plain.pt");
    let ordered = dir.path().join("ordered.pt");
    common::interop(["to-pt".as_ref(), weights.as_os_str(), plain.as_os_str()])?;
    common::interop([
        "to-pt".as_ref(),
        weights.as_os_str(),
        ordered.as_os_str(),
        "--ordered".as_ref(),
    ])?;

    let mut from_st = nn::VarStore::new(Device::Cpu);
    let _a = cfg.build(&from_st.root())?;
    checkpoint::load(&mut from_st, &weights, LoadMode::Strict)?;
    let mut from_pt = nn::VarStore::new(Device::Cpu);
    let _b = cfg.build(&from_pt.root())?;
    let report = checkpoint::load(&mut from_pt, &plain, LoadMode::Strict)?;
    ensure!(report.is_exact(), "{report}");
    let pt = from_pt.variables();
    for (name, t) in from_st.variables() {
        ensure!(
            t.equal(&pt[&name]),
            "{name} differs between .pt and .safetensors"
        );
    }

    let err = checkpoint::load(&mut from_pt, &ordered, LoadMode::Strict)
        .err()
        .context("an OrderedDict .pt file loaded")?
        .to_string();
    ensure!(
        err.contains("ordered.pt") && err.contains("safetensors.torch.save_file"),
        "{err}"
    );
    Ok(())
}

/// A network whose head was replaced saves under the same keys, and a PyTorch twin built with
/// the new number of classes loads it strictly and agrees.
#[test]
fn a_replaced_head_round_trips_through_pytorch() -> Result<()> {
    let (cfg, shape) = case("resnet");
    let dir = tempfile::tempdir()?;
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = cfg.build(&vs.root())?;
    train_a_little(net.as_ref(), &vs, &shape)?;
    net.replace_head(3)?;
    let weights = dir.path().join("weights.safetensors");
    let input = dir.path().join("input.safetensors");
    let output = dir.path().join("output.safetensors");
    checkpoint::save(&vs, &weights)?;
    let x = Tensor::randn(shape.as_slice(), tch::kind::FLOAT_CPU);
    checkpoint::save_tensors(&[("input", x.shallow_clone())], &input)?;
    let ours = tch::no_grad(|| net.forward_t(&x, false));
    ensure!(ours.size() == [shape[0], 3]);

    let ArchConfig::ResNet(mut resnet) = cfg else {
        unreachable!("the case is a ResNet")
    };
    resnet.classes = 3;
    let config = serde_json::to_string(&resnet)?;
    common::interop([
        "load-and-run".as_ref(),
        "resnet".as_ref(),
        config.as_ref(),
        weights.as_os_str(),
        input.as_os_str(),
        output.as_os_str(),
    ])?;
    let diff = max_abs_diff(&ours, &single(&output, "output")?)?;
    ensure!(diff < TOLERANCE, "max abs difference {diff}");
    ensure!(ours.kind() == Kind::Float);
    Ok(())
}
