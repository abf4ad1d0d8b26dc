//! End-to-end: a multi-head network learns tasks of three kinds with missing labels, under
//! every balancer; single-task baselines and Δm come from the same recipe.

use core_tensor::data::{TensorDataset, augment};
use core_tensor::optim::OptimizerKind;
use core_tensor::train::{EarlyStopping, Goal, TrainConfig};
use multitask::balance::BalancerConfig;
use multitask::gain::{Comparison, delta_m_single_metric};
use multitask::net::MultiTaskNet;
use multitask::task::{MetricKind, TaskSpec, hide_labels};
use multitask::train::{
    MultiTaskConfig, MultiTaskTrainer, evaluate, select_tasks, train_and_evaluate,
};
use pretrained_zoo::arch::{ArchConfig, MlpConfig};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// `n` Gaussian inputs `[n, 8]` and targets `[n, 3]`: binary `x0 + x1 > 0`, 3-class
/// `argmax(x2, x3, x4)`, regression `10 (x5 − x6)` (a loss scale far from the others').
fn problem(n: i64, seed: u64) -> TensorDataset {
    let x = augment::gaussian_noise(
        &Tensor::zeros([n, 8], (Kind::Float, Device::Cpu)),
        1.0,
        seed,
    );
    let binary = (x.select(1, 0) + x.select(1, 1))
        .gt(0.0)
        .to_kind(Kind::Float);
    let class = x.narrow(1, 2, 3).argmax(1, false).to_kind(Kind::Float);
    let value = (x.select(1, 5) - x.select(1, 6)) * 10.0;
    TensorDataset::new(x, Tensor::stack(&[binary, class, value], 1)).unwrap()
}

fn tasks() -> Vec<TaskSpec> {
    vec![
        TaskSpec::binary("sign"),
        TaskSpec::multiclass("argmax", 3),
        TaskSpec::regression("diff"),
    ]
}

fn recipe(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        optimizer: OptimizerKind::adam(),
        lr: 3e-3,
        weight_decay: 0.0,
        schedule: Default::default(),
        grad_clip_norm: Some(50.0),
        early_stopping: None,
    }
}

fn mlp() -> ArchConfig {
    ArchConfig::Mlp(MlpConfig {
        inputs: 8,
        hidden: vec![32],
        classes: 1,
    })
}

#[test]
fn every_balancer_learns_three_task_kinds_with_half_the_labels_missing() {
    let mut train = problem(1200, 1);
    train.targets = hide_labels(&train.targets, 0.5, 2).unwrap();
    let test = problem(500, 3);
    let balancers = [
        BalancerConfig::Equal,
        BalancerConfig::Fixed {
            weights: vec![1.0, 1.0, 0.01],
        },
        BalancerConfig::Uncertainty {
            init_log_var: 0.0,
            lr: Some(1e-2),
        },
        BalancerConfig::GradNorm {
            alpha: 1.5,
            lr: Some(1e-2),
        },
        BalancerConfig::Dwa { temperature: 2.0 },
        BalancerConfig::PcGrad,
    ];
    for balancer in balancers {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let net = MultiTaskNet::new(&vs, &mlp(), &tasks()).unwrap();
        let mut trainer = MultiTaskTrainer::new(&vs, &net, &balancer, recipe(8), 5).unwrap();
        let before = evaluate(&net, &test, 256, None).unwrap();
        let report = trainer.fit(&train, None).unwrap();
        let after = evaluate(&net, &test, 256, None).unwrap();
        let name = balancer.name();
        let first = &report.epochs[0].task_losses;
        let last = &report.epochs.last().unwrap().task_losses;
        for t in 0..3 {
            assert!(
                last[t].unwrap() < first[t].unwrap(),
                "{name}: task {t} training loss {first:?} -> {last:?}"
            );
        }
        let acc = |e: &[multitask::train::TaskEval], t: usize, m| e[t].metrics[&m];
        assert!(
            acc(&after, 0, MetricKind::Accuracy) > 0.85,
            "{name}: {after:?}"
        );
        assert!(
            acc(&after, 1, MetricKind::Accuracy) > 0.6,
            "{name}: {after:?}"
        );
        // The target's MAE around its mean is about 11.3; a trained head does far better.
        assert!(
            acc(&after, 2, MetricKind::Mae) < 0.5 * acc(&before, 2, MetricKind::Mae),
            "{name}: {before:?} -> {after:?}"
        );
        assert_eq!(after[0].labelled, 500);
        assert!(report.seconds_per_step > 0.0);
        let w = &report.epochs.last().unwrap().weights;
        match name {
            // The regression loss is the largest: uncertainty gives it the smallest weight.
            "uncertainty" => assert!(w[2] < w[0] && w[2] < w[1], "{w:?}"),
            "gradnorm" | "dwa" => assert!((w.iter().sum::<f64>() - 3.0).abs() < 1e-4, "{w:?}"),
            "pcgrad" | "equal" => assert_eq!(w, &[1.0, 1.0, 1.0]),
            _ => {}
        }
    }
}

#[test]
fn a_task_without_any_label_stays_untouched_and_finite() {
    let train = problem(256, 4);
    let _ = train.targets.select(1, 1).fill_(f64::NAN);
    for balancer in [
        BalancerConfig::Equal,
        BalancerConfig::Uncertainty {
            init_log_var: 0.0,
            lr: None,
        },
        BalancerConfig::GradNorm {
            alpha: 1.5,
            lr: None,
        },
        BalancerConfig::PcGrad,
    ] {
        let vs = VarStore::new(Device::Cpu);
        let net = MultiTaskNet::new(&vs, &mlp(), &tasks()).unwrap();
        let head = vs.variables()["task_heads.argmax.weight"].copy();
        let mut trainer = MultiTaskTrainer::new(&vs, &net, &balancer, recipe(2), 1).unwrap();
        let report = trainer.fit(&train, None).unwrap();
        let name = balancer.name();
        assert!(
            report.epochs.iter().all(|e| e.train_loss.is_finite()),
            "{name}"
        );
        assert_eq!(report.epochs[0].task_losses[1], None, "{name}");
        assert!(
            vs.variables()["task_heads.argmax.weight"].equal(&head),
            "{name}: the unlabelled task's head moved"
        );
        for (k, v) in vs.variables() {
            assert_eq!(v.isfinite().all().int64_value(&[]), 1, "{name}: {k}");
        }
        let eval = evaluate(&net, &train, 64, None).unwrap();
        assert_eq!(eval[1].labelled, 0);
        assert!(eval[1].metrics.is_empty());
    }
}

#[test]
fn nan_inputs_are_reported_with_epoch_and_step() {
    let train = problem(64, 5);
    let _ = train.inputs.get(40).fill_(f64::NAN);
    let vs = VarStore::new(Device::Cpu);
    let net = MultiTaskNet::new(&vs, &mlp(), &tasks()).unwrap();
    let mut trainer =
        MultiTaskTrainer::new(&vs, &net, &BalancerConfig::Equal, recipe(1), 1).unwrap();
    let err = trainer.fit(&train, None).unwrap_err();
    assert!(
        matches!(err, core_tensor::Error::Diverged { epoch: 1, .. }),
        "{err}"
    );
}

#[test]
fn single_task_baselines_share_the_recipe_and_give_delta_m() {
    let train = problem(600, 6);
    let val = problem(200, 7);
    let test = problem(400, 8);
    let mut train_cfg = recipe(6);
    train_cfg.early_stopping = Some(EarlyStopping {
        patience: 2,
        min_delta: 0.0,
        goal: Goal::Minimize,
        restore_best: true,
        min_epochs: 0,
        break_ties: false,
    });
    let cfg = MultiTaskConfig {
        model: mlp(),
        tasks: tasks(),
        balancer: BalancerConfig::Equal,
        train: train_cfg,
    };
    let multi = train_and_evaluate(&cfg, &train, Some(&val), &test, 1, Device::Cpu).unwrap();
    let mut comparisons = Vec::new();
    for t in 0..3 {
        let single_cfg = cfg.single_task(t).unwrap();
        assert_eq!(single_cfg.train, cfg.train);
        let pick = |d: &TensorDataset| {
            TensorDataset::new(
                d.inputs.shallow_clone(),
                select_tasks(&d.targets, &[t]).unwrap(),
            )
            .unwrap()
        };
        let single = train_and_evaluate(
            &single_cfg,
            &pick(&train),
            Some(&pick(&val)),
            &pick(&test),
            1,
            Device::Cpu,
        )
        .unwrap();
        assert_eq!(single.test.len(), 1);
        let primary = multi.test[t].primary;
        comparisons.push(Comparison {
            multi: multi.test[t].primary_value().unwrap(),
            single: single.test[0].primary_value().unwrap(),
            goal: primary.goal(),
        });
    }
    let d = delta_m_single_metric(&comparisons).unwrap();
    assert!(d.is_finite(), "{d}");
}

#[test]
fn configs_read_from_toml_and_name_bad_fields() {
    let text = r#"
        model = { arch = "mlp", inputs = 8, hidden = [16], classes = 1 }
        tasks = [{ name = "a", kind = "binary" }, { name = "b", kind = "regression" }]
        balancer = { kind = "fixed", weights = [1.0, 0.5] }
        [train]
        epochs = 2
        batch_size = 16
        optimizer = { kind = "adam" }
        lr = 1e-3
    "#;
    let cfg: MultiTaskConfig = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    let bad = text.replace("[1.0, 0.5]", "[1.0]");
    let cfg: MultiTaskConfig = toml::from_str(&bad).unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("balancer.weights"), "{err}");
    let bad = text.replace("balancer =", "balancr =");
    let err = toml::from_str::<MultiTaskConfig>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("balancr"), "{err}");
}

/// Scenes of three 6x6 "objects" on 12x12 canvases; one presence task per class, half of the
/// labels hidden; a small MLP learns every task well above the majority rate.
#[test]
fn presence_tasks_on_scenes_learn_with_missing_labels() {
    use core_tensor::datasets::ImageDataset;
    use multitask::scenes::{SceneConfig, generate};
    // Class 0: a horizontal bar, 1: a vertical bar, 2: a filled square; two variants each.
    let mut px = vec![0u8; 6 * 36];
    for item in 0..6usize {
        for r in 0..6usize {
            for c in 0..6usize {
                let on = match item % 3 {
                    0 => r == 2 + item / 3,
                    1 => c == 2 + item / 3,
                    _ => (1..5).contains(&r) && (1..5).contains(&c) && (r + c + item) % 2 == 0,
                };
                px[item * 36 + r * 6 + c] = if on { 255 } else { 0 };
            }
        }
    }
    let source = ImageDataset {
        images: Tensor::from_slice(&px).view([6, 1, 6, 6]),
        labels: Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]),
        classes: 3,
        max_value: 255,
    };
    let cfg = SceneConfig {
        height: 12,
        width: 12,
        min_items: 0,
        max_items: 2,
    };
    let make = |n, seed, hide: f64| {
        let s = generate(&source, n, &cfg, seed).unwrap();
        let targets = hide_labels(&s.presence, hide, seed + 100).unwrap();
        TensorDataset::new(s.images_f32(), targets).unwrap()
    };
    let (train, test) = (make(1500, 1, 0.5), make(500, 2, 0.0));
    let tasks: Vec<TaskSpec> = (0..3)
        .map(|c| TaskSpec::binary(&format!("has{c}")))
        .collect();
    let arch = ArchConfig::Mlp(MlpConfig {
        inputs: 144,
        hidden: vec![64],
        classes: 1,
    });
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = MultiTaskNet::new(&vs, &arch, &tasks).unwrap();
    let mut trainer =
        MultiTaskTrainer::new(&vs, &net, &BalancerConfig::Equal, recipe(10), 3).unwrap();
    trainer.fit(&train, None).unwrap();
    let evals = evaluate(&net, &test, 256, None).unwrap();
    for (t, e) in evals.iter().enumerate() {
        let positive = test
            .targets
            .select(1, t as i64)
            .mean(Kind::Float)
            .double_value(&[]);
        let majority = positive.max(1.0 - positive);
        let acc = e.metrics[&MetricKind::Accuracy];
        assert!(
            acc > majority + 0.1 && acc > 0.8,
            "task {t}: {acc} vs majority {majority}"
        );
    }
}
