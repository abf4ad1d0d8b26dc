//! Parity of `TorchvisionResNet` with torchvision 0.28's ResNet-18, ResNet-34 and ResNet-50
//! (and the small-input, quarter-width, one-channel variant built from torchvision's classes),
//! in both directions (`python/torchvision_parity.py` is the other side).
//!
//! torchvision → Rust: torchvision builds the network with random weights, moves its batch-norm
//! statistics and affine parameters off their initial values and saves its `state_dict`;
//! Rust loads it strictly and compares, on the same input, the evaluation-mode output, the
//! training-mode output, every parameter's gradient of cross-entropy after one backward pass,
//! and the batch-norm running statistics after that pass.
//! Rust → torchvision: Rust initialises and trains two SGD steps, saves; torchvision loads the
//! file with `strict=True` and its evaluation-mode output is compared with Rust's.
//!
//! Tolerances: outputs within 1e-4 of the output scale (max abs difference over the largest
//! magnitude), gradients within 1e-3 relative (L2 norm of the difference over the reference's)
//! per parameter, running statistics within 1e-4 relative. Both sides run libtorch 2.13's
//! kernels on one thread, and then agree bit for bit (measured: every difference 0). With two
//! threads on one side only, reductions run in another order: outputs then differ by about
//! 1e-5 of their scale, and the gradient of a bottleneck's last batch-norm bias, a sum of
//! terms that nearly cancel, by up to 8e-3 relative.

mod common;

use anyhow::{Context, Result, ensure};
use core_tensor::checkpoint::{self, LoadMode};
use pretrained_zoo::arch::{Classifier, TorchvisionResNet, TorchvisionResNetConfig};
use std::collections::HashMap;
use std::path::Path;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const OUTPUT_TOLERANCE: f64 = 1e-4;
const GRADIENT_TOLERANCE: f64 = 1e-3;

fn tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(checkpoint::read_tensors(path)?.into_iter().collect())
}

fn get<'a>(map: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    map.get(name).with_context(|| format!("no tensor `{name}`"))
}

/// Max abs difference over the reference's largest magnitude.
fn output_diff(ours: &Tensor, theirs: &Tensor) -> Result<f64> {
    ensure!(
        ours.size() == theirs.size(),
        "shapes {:?} and {:?}",
        ours.size(),
        theirs.size()
    );
    let scale = theirs.abs().max().double_value(&[]);
    ensure!(
        scale > 1e-3,
        "outputs are all near zero: the check would be vacuous"
    );
    Ok((ours - theirs).abs().max().double_value(&[]) / scale)
}

/// L2 norm of the difference over the reference's.
fn relative(ours: &Tensor, theirs: &Tensor) -> Result<f64> {
    ensure!(
        ours.size() == theirs.size(),
        "shapes {:?} and {:?}",
        ours.size(),
        theirs.size()
    );
    let norm = theirs.norm().double_value(&[]);
    let diff = (ours - theirs).norm().double_value(&[]);
    Ok(if norm == 0.0 { diff } else { diff / norm })
}

fn torchvision_to_rust(cfg: &TorchvisionResNetConfig, shape: [i64; 4]) -> Result<()> {
    // One thread, as the Python side: the same kernels then reduce in the same order.
    tch::set_num_threads(1);
    let dir = tempfile::tempdir()?;
    let config = serde_json::to_string(cfg)?;
    let shape_arg = shape.map(|s| s.to_string()).join(",");
    common::script(
        "torchvision_parity.py",
        [
            "reference".as_ref(),
            config.as_ref(),
            "5".as_ref(),
            shape_arg.as_ref(),
            dir.path().as_os_str(),
        ],
    )?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = TorchvisionResNet::new(&vs.root(), cfg);
    let report = checkpoint::load(
        &mut vs,
        &dir.path().join("weights.safetensors"),
        LoadMode::Strict,
    )?;
    ensure!(
        report.is_exact() && report.loaded.len() == vs.len(),
        "{report}"
    );

    let input = tensors(&dir.path().join("input.safetensors"))?;
    let (x, y) = (get(&input, "input")?, get(&input, "target")?);
    let eval = tensors(&dir.path().join("eval.safetensors"))?;
    let ours = tch::no_grad(|| net.forward_t(x, false));
    let eval_diff = output_diff(&ours, get(&eval, "output")?)?;

    let step = tensors(&dir.path().join("step.safetensors"))?;
    let out = net.forward_t(x, true);
    let train_diff = output_diff(&out.detach(), get(&step, "output")?)?;
    out.cross_entropy_for_logits(y).backward();
    let vars = vs.variables();
    let (mut grad_worst, mut worst_name) = (0.0f64, String::new());
    let mut stat_worst = 0.0f64;
    let mut grads = 0;
    for (name, var) in &vars {
        if var.requires_grad() {
            let d = relative(&var.grad(), get(&step, &format!("grad.{name}"))?)?;
            grads += 1;
            if d > grad_worst {
                (grad_worst, worst_name) = (d, name.clone());
            }
        } else {
            stat_worst = stat_worst.max(relative(var, get(&step, name)?)?);
        }
    }
    let name = cfg.torchvision_name();
    eprintln!(
        "{name} {cfg:?} torchvision -> Rust: eval {eval_diff:.2e}, train {train_diff:.2e} \
         (relative to the output scale), worst gradient {grad_worst:.2e} ({worst_name}) over \
         {grads} parameters, worst running statistic {stat_worst:.2e}"
    );
    ensure!(
        grads == vs.trainable_variables().len() && grads > 0,
        "compared {grads} gradients"
    );
    ensure!(
        eval_diff <= OUTPUT_TOLERANCE,
        "{name}: evaluation output differs by {eval_diff}"
    );
    ensure!(
        train_diff <= OUTPUT_TOLERANCE,
        "{name}: training output differs by {train_diff}"
    );
    ensure!(
        grad_worst <= GRADIENT_TOLERANCE,
        "{name}: gradient of {worst_name} differs by {grad_worst}"
    );
    ensure!(
        stat_worst <= OUTPUT_TOLERANCE,
        "{name}: running statistics differ by {stat_worst}"
    );
    Ok(())
}

fn rust_to_torchvision(cfg: &TorchvisionResNetConfig, shape: [i64; 4]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    tch::manual_seed(9);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = TorchvisionResNet::new(&vs.root(), cfg);
    let mut opt = nn::Sgd::default().build(&vs, 0.01)?;
    for _ in 0..2 {
        let x = Tensor::randn(shape, tch::kind::FLOAT_CPU) * 2.0 + 0.5;
        let y = Tensor::randint(cfg.classes, [shape[0]], tch::kind::INT64_CPU);
        opt.backward_step(&net.forward_t(&x, true).cross_entropy_for_logits(&y));
    }
    let stat = vs.variables()["bn1.running_var"].shallow_clone();
    ensure!(
        (stat - 1.0).abs().max().double_value(&[]) > 1e-3,
        "statistics did not move"
    );
    let weights = dir.path().join("weights.safetensors");
    let input = dir.path().join("input.safetensors");
    let output = dir.path().join("output.safetensors");
    checkpoint::save(&vs, &weights)?;
    let x = Tensor::randn(shape, tch::kind::FLOAT_CPU);
    checkpoint::save_tensors(&[("input", x.shallow_clone())], &input)?;
    let ours = tch::no_grad(|| net.forward_t(&x, false));
    let config = serde_json::to_string(cfg)?;
    common::script(
        "torchvision_parity.py",
        [
            "load-and-run".as_ref(),
            config.as_ref(),
            weights.as_os_str(),
            input.as_os_str(),
            output.as_os_str(),
        ],
    )?;
    let theirs = tensors(&output)?;
    let diff = output_diff(&ours, get(&theirs, "output")?)?;
    eprintln!(
        "{} {cfg:?} Rust -> torchvision: eval {diff:.2e}",
        cfg.torchvision_name()
    );
    ensure!(
        diff <= OUTPUT_TOLERANCE,
        "Rust -> torchvision output differs by {diff}"
    );
    ensure!(ours.kind() == Kind::Float);
    Ok(())
}

/// 64x64 inputs reach `layer4` as 2x2 maps: every layer runs, at a fraction of 224x224's cost.
const PHOTO: [i64; 4] = [4, 3, 64, 64];

#[test]
fn resnet18_matches_torchvision_both_ways() -> Result<()> {
    let cfg = TorchvisionResNetConfig::resnet18(10);
    torchvision_to_rust(&cfg, PHOTO)?;
    rust_to_torchvision(&cfg, PHOTO)
}

#[test]
fn resnet34_matches_torchvision_both_ways() -> Result<()> {
    let cfg = TorchvisionResNetConfig::resnet34(10);
    torchvision_to_rust(&cfg, PHOTO)?;
    rust_to_torchvision(&cfg, PHOTO)
}

#[test]
fn resnet50_matches_torchvision_both_ways() -> Result<()> {
    let cfg = TorchvisionResNetConfig::resnet50(10);
    torchvision_to_rust(&cfg, PHOTO)?;
    rust_to_torchvision(&cfg, PHOTO)
}

#[test]
fn small_input_quarter_width_grey_resnet18_matches_torchvisions_classes() -> Result<()> {
    let cfg = TorchvisionResNetConfig::resnet18(2)
        .small_input()
        .width(16)
        .in_channels(1);
    torchvision_to_rust(&cfg, [4, 1, 32, 32])?;
    rust_to_torchvision(&cfg, [4, 1, 32, 32])
}

#[test]
fn a_torchvision_state_dict_has_the_stages_every_strategy_uses() -> Result<()> {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = TorchvisionResNet::new(&vs.root(), &TorchvisionResNetConfig::resnet18(3));
    pretrained_zoo::arch::check_stage_membership(&net, &vs)?;
    assert_eq!(
        net.stages(),
        ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    );
    assert_eq!(net.stage_members("head"), ["fc"]);
    Ok(())
}

/// A `.pth` written by torchvision (`torch.save(model.state_dict())`), converted with the safe
/// loader (`python/pth_to_safetensors.py`, `weights_only=True`) and imported, computes what
/// torchvision computes; a checkpoint with a missing key, an extra key and a wrong shape is
/// refused with each name listed.
#[test]
fn a_torchvision_pth_imports_and_a_mismatched_checkpoint_is_refused_by_name() -> Result<()> {
    use pretrained_zoo::arch::ArchConfig;
    use pretrained_zoo::import::import_state_dict;
    tch::set_num_threads(1);
    let dir = tempfile::tempdir()?;
    let cfg = TorchvisionResNetConfig::resnet18(5);
    let config = serde_json::to_string(&cfg)?;
    let (pth, input, output) = (
        dir.path().join("model.pth"),
        dir.path().join("input.safetensors"),
        dir.path().join("output.safetensors"),
    );
    let x = Tensor::randn([2, 3, 64, 64], tch::kind::FLOAT_CPU);
    checkpoint::save_tensors(&[("input", x.shallow_clone())], &input)?;
    common::script(
        "torchvision_parity.py",
        [
            "save-pth".as_ref(),
            config.as_ref(),
            "3".as_ref(),
            pth.as_os_str(),
            input.as_os_str(),
            output.as_os_str(),
        ],
    )?;
    let converted = dir.path().join("model.safetensors");
    common::script(
        "pth_to_safetensors.py",
        [pth.as_os_str(), converted.as_os_str()],
    )?;
    let arch = ArchConfig::TorchvisionResNet(cfg.clone());
    let model = import_state_dict(&converted, &arch, Device::Cpu)?;
    ensure!(model.report.ignored.len() == 20, "{}", model.report);
    let ours = tch::no_grad(|| model.net.forward_t(&x, false));
    let diff = output_diff(&ours, get(&tensors(&output)?, "output")?)?;
    ensure!(
        diff <= OUTPUT_TOLERANCE,
        "imported .pth output differs by {diff}"
    );

    // Drop one key, add one, reshape one.
    let mut broken: Vec<(String, Tensor)> = checkpoint::read_tensors(&converted)?
        .into_iter()
        .filter(|(n, _)| n != "layer2.1.bn2.running_var")
        .map(|(n, t)| {
            if n == "fc.weight" {
                (n, Tensor::zeros([7, 512], tch::kind::FLOAT_CPU))
            } else {
                (n, t)
            }
        })
        .collect();
    broken.push((
        "layer5.0.conv1.weight".into(),
        Tensor::zeros([1], tch::kind::FLOAT_CPU),
    ));
    let bad = dir.path().join("broken.safetensors");
    checkpoint::save_tensors(&broken, &bad)?;
    let err = import_state_dict(&bad, &arch, Device::Cpu)
        .err()
        .context("a broken checkpoint was accepted")?
        .to_string();
    for needle in [
        "broken.safetensors",
        "layer2.1.bn2.running_var",
        "layer5.0.conv1.weight",
        "fc.weight",
        "[7, 512]",
        "[5, 512]",
    ] {
        ensure!(
            err.contains(needle),
            "the error does not name {needle}: {err}"
        );
    }
    Ok(())
}
