//! The plumbing of the experiment runs: datasets restricted to classes, the selffer guarantee
//! (a source pre-trained on N per class with seed s sees exactly the adaptation's examples), the
//! resolved settings, and the run store's reuse of sources and adaptations.
//!
//! Needs the MNIST fixture (`cargo xtask fetch mnist`).

use core_tensor::optim::OptimizerKind;
use core_tensor::train::{EarlyStopping, Goal, TrainConfig};
use experiments::driver::{RunOptions, Session};
use experiments::xfer::runner::{
    AdaptRun, Context, DataSpec, InputSpec, LabelMode, PixelMode, Pretrain, PretrainRecipe,
    SourceSpec, load_data, resolve_adapt,
};
use pretrained_zoo::arch::{ArchConfig, BatchNormPolicy, LeNetConfig};
use tch::Device;
use transfer::strategy::{AdaptConfig, Strategy};
use transfer::target;

const INPUT: InputSpec = InputSpec::Image {
    mean: 0.1307,
    std: 0.3081,
};

fn train_cfg(epochs: usize, patience: Option<usize>) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        optimizer: OptimizerKind::adam(),
        lr: 1e-3,
        weight_decay: 0.0,
        schedule: Default::default(),
        grad_clip_norm: None,
        early_stopping: patience.map(|patience| EarlyStopping {
            patience,
            min_delta: 0.0,
            goal: Goal::Maximize,
            restore_best: true,
            min_epochs: 0,
            break_ties: false,
        }),
    }
}

fn lenet() -> ArchConfig {
    ArchConfig::LeNet(LeNetConfig {
        channels: [4, 8],
        hidden: [16, 12],
        classes: 10,
    })
}

#[test]
fn a_class_subset_is_relabelled_in_the_order_given() {
    let cache = experiments::paths::cache_dir();
    let all = load_data(&DataSpec::Mnist { classes: None }, INPUT, &cache).unwrap();
    let spec = DataSpec::Mnist {
        classes: Some(vec![7, 2]),
    };
    let sub = load_data(&spec, INPUT, &cache).unwrap();
    assert_eq!(sub.classes, 2);
    let labels: Vec<i64> = Vec::try_from(&sub.test.targets).unwrap();
    let all_labels: Vec<i64> = Vec::try_from(&all.test.targets).unwrap();
    let sevens = all_labels.iter().filter(|&&l| l == 7).count();
    let twos = all_labels.iter().filter(|&&l| l == 2).count();
    assert_eq!(labels.iter().filter(|&&l| l == 0).count(), sevens);
    assert_eq!(labels.iter().filter(|&&l| l == 1).count(), twos);
    assert_eq!(labels.len(), sevens + twos);
    // The first 7 of the test set is the first example of class 0.
    let first7 = all_labels.iter().position(|&l| l == 7).unwrap() as i64;
    assert!(sub.test.inputs.get(0).equal(&all.test.inputs.get(first7)));
    let err = load_data(
        &DataSpec::Mnist {
            classes: Some(vec![3, 10]),
        },
        INPUT,
        &cache,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("0..10"), "{err}");
    let err = load_data(
        &DataSpec::UciDigits,
        InputSpec::Audio { samples: 8000 },
        &cache,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("audio"), "{err}");
}

#[test]
fn patience_covers_a_quarter_of_the_step_budget_and_epochs_reach_it() {
    let a = AdaptConfig {
        train: train_cfg(10, Some(10)),
        batch_norm: BatchNormPolicy::FrozenStagesEval,
        eval_batch: 128,
        probe: transfer::probe::ProbeFit::Train,
    };
    // N = 1 per class, 10 classes, batch 32: one step per epoch.
    let r = resolve_adapt(&a, 1, 10, 300, 150);
    assert_eq!(r.train.epochs, 150);
    assert_eq!(r.train.early_stopping.unwrap().patience, 75);
    // N = 1000 per class: 313 steps per epoch, the configured values stand.
    let r = resolve_adapt(&a, 1000, 10, 300, 150);
    assert_eq!(r.train.epochs, 10);
    assert_eq!(r.train.early_stopping.unwrap().patience, 10);
}

#[test]
fn sources_and_adaptations_are_stored_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions::new("quick", dir.path());
    let recipe = PretrainRecipe {
        model: lenet(),
        input: INPUT,
        train: train_cfg(1, None),
        min_steps: 20,
        max_epochs: 5,
    };
    let data = DataSpec::Mnist {
        classes: Some(vec![5, 6, 7, 8, 9]),
    };
    let source = SourceSpec::Pretrain(Pretrain {
        data: data.clone(),
        per_class: Some(20),
        labels: LabelMode::Shuffled,
        pixels: PixelMode::Permuted,
        recipe,
    });
    let run = AdaptRun {
        source: source.clone(),
        source_seed: 3,
        target: data.clone(),
        per_class: 20,
        val_per_class: target::validation_per_class(20),
        strategy: Strategy::LayerTransfer {
            stages: 2,
            frozen: true,
        },
        adapt: AdaptConfig {
            train: train_cfg(2, Some(2)),
            batch_norm: BatchNormPolicy::FrozenStagesEval,
            eval_batch: 64,
            probe: transfer::probe::ProbeFit::Train,
        },
    };
    let mut labels = Vec::new();
    let first = {
        let mut ctx = Context::new(
            Session::new(&opts, |l: &str, s| labels.push((l.to_string(), s))).unwrap(),
        );
        let r = ctx.adapt(&run, 3, "adapt").unwrap();
        assert_eq!(
            (ctx.session().log().runs(), ctx.session().log().stored()),
            (2, 0),
            "a source and an adaptation ran"
        );
        r
    };
    assert!(first.estimates.is_some());
    assert!((0.0..=1.0).contains(&first.test_accuracy));
    // The source head has B's five classes.
    let src = {
        let mut ctx = Context::new(Session::new(&opts, |_: &str, _| {}).unwrap());
        ctx.source(&source, 3).unwrap()
    };
    assert_eq!(src.weights["head.weight"].size(), [5, 12]);
    let mut ctx = Context::new(Session::new(&opts, |_: &str, _| {}).unwrap());
    let again = ctx.adapt(&run, 3, "adapt").unwrap();
    assert_eq!(
        (ctx.session().log().runs(), ctx.session().log().stored()),
        (1, 1),
        "the adaptation came from the store"
    );
    assert_eq!(again.test_accuracy, first.test_accuracy);
    // A record stored before the shrunk H-score existed gets it added from the same sample,
    // without training: the same value as a fresh run's, and the record is rewritten.
    let record = std::fs::read_dir(dir.path().join("transfer-adapt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let fresh = json["result"]["estimates"]["h_score_shrunk"]
        .as_f64()
        .unwrap();
    json["result"]["estimates"]
        .as_object_mut()
        .unwrap()
        .remove("h_score_shrunk");
    std::fs::write(&record, json.to_string()).unwrap();
    let mut ctx = Context::new(Session::new(&opts, |_: &str, _| {}).unwrap());
    let old = ctx.adapt(&run, 3, "adapt").unwrap();
    // The source and the adaptation both came from the store.
    assert_eq!(
        (ctx.session().log().runs(), ctx.session().log().stored()),
        (2, 2),
        "nothing trained"
    );
    assert_eq!(old.estimates.unwrap().h_score_shrunk, Some(fresh));
    assert!(
        std::fs::read_to_string(&record)
            .unwrap()
            .contains("h_score_shrunk")
    );
    // A source whose weights file was altered is trained again, not trusted.
    let weights = std::fs::read_dir(dir.path().join("transfer-source"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let mut ctx = Context::new(Session::new(&opts, |_: &str, _| {}).unwrap());
    let retrained = ctx.source(&source, 3).unwrap();
    assert_eq!(
        (ctx.session().log().runs(), ctx.session().log().stored()),
        (1, 0)
    );
    for (k, v) in &retrained.weights {
        assert!(v.equal(&src.weights[k]), "{k}: retraining is deterministic");
    }
}

#[test]
fn a_selffer_source_sees_exactly_the_adaptation_examples() {
    // Pre-training on per_class = n with seed s draws through target::sample with the
    // adaptation's validation share, so its training set is the adaptation's.
    let cache = experiments::paths::cache_dir();
    let d = load_data(&DataSpec::Mnist { classes: None }, INPUT, &cache).unwrap();
    let n = 7;
    let (a, _) = target::sample(&d, n, target::validation_per_class(n), 4, Device::Cpu).unwrap();
    let (b, _) = target::sample(&d, n, target::validation_per_class(n), 4, Device::Cpu).unwrap();
    assert!(a.inputs.equal(&b.inputs) && a.targets.equal(&b.targets));
    let (c, _) = target::sample(&d, n, target::validation_per_class(n), 5, Device::Cpu).unwrap();
    assert!(!a.inputs.equal(&c.inputs));
}

#[test]
fn zero_seeds_is_refused_by_every_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = experiments::xfer::common::RunOptions::new("quick", dir.path().join("runs"));
    opts.seeds = Some(0);
    type Run = fn(
        &std::path::Path,
        &experiments::xfer::common::RunOptions,
        &mut dyn FnMut(&str, bool),
    ) -> core_tensor::Result<transferlab_report::ExperimentReport>;
    let runs: [(&str, Run); 6] = [
        ("x1", |c, o, f| experiments::xfer::x1::run_report(c, o, f)),
        ("x2", |c, o, f| experiments::xfer::x2::run(c, o, f)),
        ("x3", |c, o, f| experiments::xfer::x3::run(c, o, f)),
        ("x4", |c, o, f| experiments::xfer::x4::run(c, o, f)),
        ("x5", |c, o, f| experiments::xfer::x5::run(c, o, f)),
        ("x6", |c, o, f| experiments::xfer::x6::run(c, o, f)),
    ];
    let configs = experiments::configs("transfer");
    for (id, run) in runs {
        let err = run(
            &configs.join(format!("{id}.toml")),
            &opts,
            &mut |_: &str, _: bool| panic!("{id}: a run was made"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("seeds: need at least 1"), "{id}: {err}");
    }
}
