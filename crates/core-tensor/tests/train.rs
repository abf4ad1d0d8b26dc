//! The training engine: early stopping, divergence, determinism, freezing, hooks, configs.

#[path = "common/toy.rs"]
mod toy;

use std::cell::{Cell, RefCell};

use core_tensor::Error;
use core_tensor::optim::{OptimizerKind, freeze};
use core_tensor::train::{EarlyStopping, Goal, TrainConfig, Trainer, snapshot};
use tch::nn::{Module, VarStore};
use tch::{Device, Kind};
use toy::{config, mlp, toy_data};

#[test]
fn ties_of_the_metric_are_broken_by_the_tie_break_score() {
    // Scripted: the metric ties at epochs 2-4 with epoch 1; the tie-break score is lowest at
    // epoch 3 and worse again at 4; epoch 5 is worse on the metric.
    let metric = [0.5, 0.5, 0.5, 0.5, 0.25];
    let score = [0.9, 0.7, 0.4, 0.6, 0.1];
    let run = |break_ties: bool| {
        let data = toy_data(0);
        let vs = VarStore::new(Device::Cpu);
        let net = mlp(&vs);
        let mut cfg = config(5);
        cfg.early_stopping = Some(EarlyStopping {
            patience: 10,
            break_ties,
            ..EarlyStopping::default()
        });
        let (epoch, scored) = (Cell::new(0usize), Cell::new(0usize));
        let mut validate = || {
            epoch.set(epoch.get() + 1);
            Ok(metric[epoch.get() - 1])
        };
        let mut trainer = Trainer::new(&vs, cfg).unwrap().tie_break(|| {
            scored.set(scored.get() + 1);
            Ok(score[epoch.get() - 1])
        });
        let report = trainer
            .fit(
                &data,
                |x, y| net.forward(x).cross_entropy_for_logits(y),
                Some(&mut validate),
            )
            .unwrap();
        (report.final_epoch, scored.get())
    };
    // Scored after the first epoch and each tie (not after epoch 5, which is worse).
    assert_eq!(run(true), (3, 4));
    // Without tie-breaking a tie never improves: the first epoch stays the best.
    assert_eq!(run(false), (1, 0));
    // The default breaks ties; a config file that leaves the field out does not.
    assert!(EarlyStopping::default().break_ties);
    let parsed: EarlyStopping = toml::from_str("patience = 3\ngoal = \"maximize\"").unwrap();
    assert!(!parsed.break_ties);
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let data = toy_data(0);
    let vs = VarStore::new(Device::Cpu);
    let net = mlp(&vs);
    let mut cfg = config(10);
    cfg.early_stopping = Some(EarlyStopping {
        patience: 2,
        min_delta: 0.0,
        goal: Goal::Maximize,
        restore_best: true,
        min_epochs: 0,
        break_ties: false,
    });
    // A scripted validation curve peaking at epoch 2; remember the weights at each epoch.
    let script = [0.5, 0.9, 0.7, 0.6, 0.95];
    let epoch = Cell::new(0usize);
    let seen = RefCell::new(Vec::new());
    let mut validate = || {
        seen.borrow_mut().push(snapshot(&vs));
        let v = script[epoch.get()];
        epoch.set(epoch.get() + 1);
        Ok(v)
    };
    let mut trainer = Trainer::new(&vs, cfg).unwrap();
    let report = trainer
        .fit(
            &data,
            |x, y| net.forward(x).cross_entropy_for_logits(y),
            Some(&mut validate),
        )
        .unwrap();
    assert!(report.stopped_early);
    assert_eq!(
        report.epochs.len(),
        4,
        "stops after two epochs without improvement"
    );
    assert_eq!(report.final_epoch, 2);
    assert_eq!(report.best_validation, Some(0.9));
    let best = &seen.borrow()[1];
    for (name, var) in vs.variables() {
        assert!(var.equal(&best[&name]), "{name} is not the epoch-2 value");
    }
}

#[test]
fn a_nan_loss_is_an_error_naming_epoch_and_step() {
    let data = toy_data(0);
    let vs = VarStore::new(Device::Cpu);
    let net = mlp(&vs);
    let calls = Cell::new(0);
    let mut trainer = Trainer::new(&vs, config(3)).unwrap();
    let err = trainer
        .fit(
            &data,
            |x, y| {
                calls.set(calls.get() + 1);
                let loss = net.forward(x).cross_entropy_for_logits(y);
                // 4 steps per epoch: the 7th call is epoch 2, step 2.
                if calls.get() == 7 {
                    loss * f64::NAN
                } else {
                    loss
                }
            },
            None,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Diverged {
                epoch: 2,
                step: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("epoch 2, step 2") && text.contains("learning"),
        "{text}"
    );
}

#[test]
fn frozen_layers_are_unchanged_by_training() {
    let data = toy_data(0);
    let vs = VarStore::new(Device::Cpu);
    let net = mlp(&vs);
    freeze(&vs, &["fc1"]);
    let before = snapshot(&vs);
    let mut trainer = Trainer::new(&vs, config(2)).unwrap();
    trainer
        .fit(
            &data,
            |x, y| net.forward(x).cross_entropy_for_logits(y),
            None,
        )
        .unwrap();
    let after = snapshot(&vs);
    assert!(after["fc1.weight"].equal(&before["fc1.weight"]));
    assert!(after["fc1.bias"].equal(&before["fc1.bias"]));
    assert!(
        !after["fc2.weight"].equal(&before["fc2.weight"]),
        "the head should train"
    );
}

#[test]
fn loss_terms_and_gradient_hooks_take_part_in_every_step() {
    let data = toy_data(0);
    let vs = VarStore::new(Device::Cpu);
    let net = mlp(&vs);
    let w = vs.variables()["fc2.weight"].shallow_clone();
    let hook_calls = Cell::new(0);
    let mut cfg = config(1);
    cfg.optimizer = OptimizerKind::sgd(0.0);
    // Plain SGD with lr 0.01: the penalty's gradient 20 w shrinks w by 0.8 per step.
    let mut trainer = Trainer::new(&vs, cfg)
        .unwrap()
        // A large penalty on the head's weights drives them towards zero.
        .add_loss_term(move || w.square().sum(Kind::Float) * 10.0)
        .on_gradients(|opt| {
            hook_calls.set(hook_calls.get() + 1);
            assert!(opt.parameters().all(|p| p.grad().defined()));
            Ok(())
        });
    let before = vs.variables()["fc2.weight"]
        .abs()
        .sum(Kind::Float)
        .double_value(&[]);
    trainer
        .fit(
            &data,
            |x, y| net.forward(x).cross_entropy_for_logits(y),
            None,
        )
        .unwrap();
    let after = vs.variables()["fc2.weight"]
        .abs()
        .sum(Kind::Float)
        .double_value(&[]);
    drop(trainer);
    assert_eq!(hook_calls.get(), 4);
    assert!(after < 0.5 * before, "penalty ignored: {before} -> {after}");
}

#[test]
fn configs_are_read_from_toml_and_bad_fields_are_named() {
    let cfg: TrainConfig = toml::from_str(
        r#"
        epochs = 5
        batch_size = 64
        lr = 0.1
        weight_decay = 5e-4
        grad_clip_norm = 1.0
        optimizer = { kind = "sgd", momentum = 0.9, nesterov = true }
        schedule = { warmup_steps = 10, decay = { kind = "cosine", total = 100 } }
        early_stopping = { patience = 3, goal = "maximize" }
        "#,
    )
    .unwrap();
    cfg.validate().unwrap();
    let err = toml::from_str::<TrainConfig>(
        "epochs = 1\nbatch_size = 1\nlr = 0.1\nlr_decay = 2\noptimizer = { kind = \"adam\" }",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lr_decay"), "{err}");
    let mut bad = cfg.clone();
    bad.batch_size = 0;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("train.batch_size")
    );
    let mut bad = cfg;
    bad.early_stopping.as_mut().unwrap().patience = 0;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("early_stopping.patience")
    );
}

#[test]
fn a_nan_validation_metric_or_gradient_norm_is_an_error_not_a_stale_epoch() {
    let data = toy_data(0);
    let vs = VarStore::new(Device::Cpu);
    let net = mlp(&vs);
    let mut cfg = config(3);
    cfg.early_stopping = Some(EarlyStopping::default());
    let mut validate = || Ok(f64::NAN);
    let err = Trainer::new(&vs, cfg)
        .unwrap()
        .fit(
            &data,
            |x, y| net.forward(x).cross_entropy_for_logits(y),
            Some(&mut validate),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("validation metric is NaN after epoch 1"),
        "{err}"
    );

    // A finite loss whose gradient is not (d√u/du at u = 0), under clipping.
    let mut cfg = config(1);
    cfg.grad_clip_norm = Some(1.0);
    let w = vs.variables()["fc1.weight"].shallow_clone();
    let err = Trainer::new(&vs, cfg)
        .unwrap()
        .fit(
            &data,
            |x, y| net.forward(x).cross_entropy_for_logits(y) + (&w * 0.0).sqrt().sum(Kind::Float),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Diverged { .. }), "{err}");
    let after = vs.variables()["fc1.weight"].shallow_clone();
    assert!(
        bool::try_from(after.isfinite().all()).unwrap(),
        "the NaN gradient reached the weights"
    );
}
