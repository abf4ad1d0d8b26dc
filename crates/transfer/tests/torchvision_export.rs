//! Export: a torchvision-layout ResNet adapted by a strategy and saved with `Adapted::save` is
//! a `state_dict` that torchvision's own model loads with `strict=True`, and torchvision then
//! computes the adapted network's outputs (`python/torchvision_parity.py load-and-run`).

use std::path::PathBuf;
use std::process::Command;

use core_tensor::checkpoint;
use core_tensor::data::TensorDataset;
use pretrained_zoo::arch::{ArchConfig, TorchvisionResNet, TorchvisionResNetConfig};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use transfer::finetune::FineTune;
use transfer::strategy::{SourceModel, Strategy};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn python() -> PathBuf {
    std::env::var_os("TRANSFERLAB_PYTHON_REF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/torch-venv/bin/python"))
}

/// 16x16 colour images whose class is which half holds a bright patch.
fn data(n: i64, seed: i64) -> TensorDataset {
    tch::manual_seed(seed);
    let y = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
    let x = Tensor::randn([n, 3, 16, 16], (Kind::Float, Device::Cpu)) * 0.3;
    for i in 0..n {
        let r = y.int64_value(&[i]) * 8;
        let _ = x.get(i).narrow(1, r, 8).g_add_scalar_(1.0);
    }
    TensorDataset::new(x, y).unwrap()
}

#[test]
fn an_adapted_resnet_loads_into_torchvision_strictly_with_the_same_outputs() {
    tch::set_num_threads(1);
    let cfg = TorchvisionResNetConfig::resnet18(10).small_input().width(8);
    tch::manual_seed(4);
    let vs = VarStore::new(Device::Cpu);
    TorchvisionResNet::new(&vs.root(), &cfg);
    let source = SourceModel::from_store("random", ArchConfig::TorchvisionResNet(cfg.clone()), &vs);
    let adapted = FineTune::new(&source)
        .strategy(Strategy::lp_ft())
        .min_steps(10)
        .max_epochs(3)
        .fit(&data(32, 1), &data(16, 2))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("adapted.safetensors");
    adapted.save(&weights).unwrap();
    let x = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
    let input = dir.path().join("input.safetensors");
    let output = dir.path().join("output.safetensors");
    checkpoint::save_tensors(&[("input", x.shallow_clone())], &input).unwrap();
    let ours = tch::no_grad(|| adapted.net.forward_t(&x, false));
    assert_eq!(ours.size(), [4, 2]);

    // The adapted network has a 2-class head: torchvision's model of that size loads it.
    let config = serde_json::to_string(&TorchvisionResNetConfig { classes: 2, ..cfg }).unwrap();
    let out = Command::new(python())
        .arg(root().join("python/torchvision_parity.py"))
        .args(["load-and-run", &config])
        .args([&weights, &input, &output])
        .output()
        .expect("run the reference Python (cargo xtask setup makes it)");
    assert!(
        out.status.success(),
        "torchvision refused the export:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = checkpoint::read_tensors(&output).unwrap().remove(0).1;
    let diff = (&ours - &theirs).abs().max().double_value(&[]);
    let scale = theirs.abs().max().double_value(&[]);
    assert!(
        diff <= 1e-4 * scale.max(1e-3),
        "torchvision computes {diff} away (scale {scale})"
    );
}
