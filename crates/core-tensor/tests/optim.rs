//! Optimizers against PyTorch: reference values from `reference/optim_reference.py`.

use core_tensor::optim::{GroupSpec, Optimizer, OptimizerKind, freeze};
use serde_json::Value;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn reference() -> Value {
    serde_json::from_str(include_str!("reference/optim.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// A VarStore with `w` [3,4] and `b` [3] set to the reference's initial values.
fn linear(r: &Value) -> (VarStore, Tensor, Tensor) {
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    let w = root.var_copy("w", &Tensor::from_slice(&floats(&r["w0"])).view([3, 4]));
    let b = root.var_copy("b", &Tensor::from_slice(&floats(&r["b0"])));
    (vs, w, b)
}

fn train(kind: OptimizerKind, lr: f64, wd: f64) -> (Vec<f32>, Vec<f32>) {
    let r = reference();
    let (vs, w, b) = linear(&r);
    train_on(kind, lr, wd, &r, vs, w, b)
}

fn train_on(
    kind: OptimizerKind,
    lr: f64,
    wd: f64,
    r: &Value,
    vs: VarStore,
    w: Tensor,
    b: Tensor,
) -> (Vec<f32>, Vec<f32>) {
    let x = Tensor::from_slice(&floats(&r["x"])).view([5, 4]);
    let y = Tensor::from_slice(&floats(&r["y"])).view([5, 3]);
    let mut opt = Optimizer::new(&vs, kind, lr, wd).unwrap();
    for _ in 0..r["steps"].as_u64().unwrap() {
        opt.zero_grad().unwrap();
        let loss = (x.matmul(&w.tr()) + &b - &y).square().mean(Kind::Float);
        loss.backward();
        opt.step().unwrap();
    }
    (
        Vec::try_from(w.flatten(0, -1)).unwrap(),
        Vec::try_from(b.to_kind(Kind::Float)).unwrap(),
    )
}

fn assert_close(case: &str, got: (Vec<f32>, Vec<f32>)) {
    let r = reference();
    let want_w = floats(&r["cases"][case]["w"]);
    let want_b = floats(&r["cases"][case]["b"]);
    for (g, w) in got.0.iter().chain(&got.1).zip(want_w.iter().chain(&want_b)) {
        assert!((g - w).abs() < 2e-6, "{case}: got {g}, PyTorch {w}");
    }
}

#[test]
fn sgd_matches_pytorch() {
    assert_close("sgd", train(OptimizerKind::sgd(0.0), 0.1, 0.0));
}

#[test]
fn sgd_momentum_with_weight_decay_matches_pytorch() {
    assert_close("sgd_momentum_wd", train(OptimizerKind::sgd(0.9), 0.1, 0.01));
}

#[test]
fn sgd_nesterov_matches_pytorch() {
    let kind = OptimizerKind::Sgd {
        momentum: 0.8,
        dampening: 0.0,
        nesterov: true,
    };
    assert_close("sgd_nesterov", train(kind, 0.05, 0.0));
}

#[test]
fn sgd_dampening_matches_pytorch() {
    let kind = OptimizerKind::Sgd {
        momentum: 0.9,
        dampening: 0.3,
        nesterov: false,
    };
    assert_close("sgd_dampening", train(kind, 0.1, 0.0));
}

#[test]
fn adam_matches_pytorch() {
    assert_close("adam", train(OptimizerKind::adam(), 0.01, 0.0));
}

#[test]
fn a_group_mixing_dtypes_is_stepped_per_dtype() {
    // The fused CUDA kernels take one dtype per call; a group with a float32 and a float64
    // variable is split (on the CPU too) and still gives PyTorch's Adam.
    let r = reference();
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    let w = root.var_copy("w", &Tensor::from_slice(&floats(&r["w0"])).view([3, 4]));
    let b0 = Tensor::from_slice(&floats(&r["b0"])).to_kind(Kind::Double);
    let b = root.add("b", b0, true);
    assert_eq!((w.kind(), b.kind()), (Kind::Float, Kind::Double));
    let got = train_on(OptimizerKind::adam(), 0.01, 0.0, &r, vs, w, b);
    assert_close("adam", got);
}

#[test]
fn adam_with_l2_weight_decay_matches_pytorch() {
    let kind = OptimizerKind::Adam {
        betas: (0.8, 0.99),
        eps: 1e-8,
    };
    assert_close("adam_wd", train(kind, 0.01, 0.05));
}

#[test]
fn adamw_matches_pytorch() {
    assert_close("adamw", train(OptimizerKind::adamw(), 0.01, 0.1));
}

#[test]
fn groups_have_their_own_learning_rates() {
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    let a = (&root / "backbone").var_copy("w", &Tensor::ones([4], (Kind::Float, Device::Cpu)));
    let b = (&root / "head").var_copy("w", &Tensor::ones([4], (Kind::Float, Device::Cpu)));
    let specs = [
        GroupSpec {
            name: "backbone".into(),
            prefixes: vec!["backbone".into()],
            lr: 0.01,
            weight_decay: 0.0,
        },
        GroupSpec {
            name: "head".into(),
            prefixes: vec![],
            lr: 0.1,
            weight_decay: 0.0,
        },
    ];
    let mut opt = Optimizer::with_groups(&vs, OptimizerKind::sgd(0.0), &specs).unwrap();
    assert_eq!(
        opt.group_members(),
        vec![
            ("backbone".into(), vec!["backbone.w".into()]),
            ("head".into(), vec!["head.w".into()])
        ]
    );
    opt.zero_grad().unwrap();
    (a.sum(Kind::Float) + b.sum(Kind::Float)).backward();
    opt.step().unwrap();
    // Gradient 1 everywhere: each weight moves by its group's learning rate.
    assert!((a.double_value(&[0]) - 0.99).abs() < 1e-7);
    assert!((b.double_value(&[0]) - 0.9).abs() < 1e-7);
    opt.set_lr_factor(0.5);
    assert_eq!(
        opt.learning_rates(),
        vec![("backbone".into(), 0.005), ("head".into(), 0.05)]
    );
}

#[test]
fn frozen_variables_are_not_optimised_and_do_not_change() {
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    let frozen = (&root / "layer1").var_copy("w", &Tensor::ones([3], (Kind::Float, Device::Cpu)));
    let _similar =
        (&root / "layer10").var_copy("w", &Tensor::ones([3], (Kind::Float, Device::Cpu)));
    assert_eq!(freeze(&vs, &["layer1"]), 1, "layer10 is not under layer1");
    let mut opt = Optimizer::new(&vs, OptimizerKind::adam(), 0.1, 0.0).unwrap();
    assert_eq!(opt.group_members()[0].1, vec!["layer10.w".to_string()]);
    for _ in 0..3 {
        opt.zero_grad().unwrap();
        let loss: Tensor = vs
            .variables()
            .values()
            .map(|v| v.square().sum(Kind::Float))
            .sum();
        loss.backward();
        opt.step().unwrap();
    }
    assert_eq!(Vec::<f32>::try_from(&frozen).unwrap(), vec![1.0; 3]);
}

#[test]
fn gradient_clipping_matches_the_closed_form() {
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var_copy("w", &Tensor::from_slice(&[3.0f32, 4.0]));
    let opt = Optimizer::new(&vs, OptimizerKind::sgd(0.0), 0.1, 0.0).unwrap();
    // d/dw (w·w / 2) = w: norm 5, clipped to 1 gives w / 5.
    (w.square().sum(Kind::Float) / 2.0).backward();
    let norm = opt.clip_grad_norm(1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-6);
    let g: Vec<f32> = Vec::try_from(w.grad()).unwrap();
    assert!(
        (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
        "{g:?}"
    );
}

#[test]
fn bad_hyper_parameters_name_the_field() {
    let vs = VarStore::new(Device::Cpu);
    let kind = OptimizerKind::Sgd {
        momentum: 0.0,
        dampening: 0.0,
        nesterov: true,
    };
    let err = Optimizer::new(&vs, kind, 0.1, 0.0).unwrap_err().to_string();
    assert!(err.contains("optimizer.nesterov"), "{err}");
    let err = Optimizer::new(&vs, OptimizerKind::adam(), -1.0, 0.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lr"), "{err}");
}
