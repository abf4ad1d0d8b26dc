//! The linear probe fitted to convergence, against scikit-learn (the project's reference
//! Python, `cargo xtask setup`), and the direct library path on a real target: the zoo's MNIST
//! LeNet adapted with the default settings to a few Fashion-MNIST shirts and T-shirts.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use core_tensor::data::TensorDataset;
use pretrained_zoo::registry::{self, Registry};
use serde_json::Value;
use tch::{Device, Kind, Tensor};
use transfer::finetune::FineTune;
use transfer::probe::fit_logistic;
use transfer::strategy::{SourceModel, Strategy, features, pretrained_with_new_head};
use transfer::target::{self, Target, TargetData};

/// The reference Python: `TRANSFERLAB_PYTHON_REF` if set, else the environment `cargo xtask
/// setup` creates. Missing is an error, never a skipped test.
fn python() -> Result<PathBuf> {
    let path = match std::env::var_os("TRANSFERLAB_PYTHON_REF") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/torch-venv/bin/python"),
    };
    if !path.exists() {
        bail!(
            "the reference Python {} does not exist: run `cargo xtask setup` (or set \
             TRANSFERLAB_PYTHON_REF to a Python with numpy, safetensors and scikit-learn)",
            path.display()
        );
    }
    Ok(path)
}

/// scikit-learn's `LogisticRegression(C = c)` fitted to convergence on `train`, scored on
/// `test` if given (`tests/reference/logistic.py`).
fn sklearn(train: (&Tensor, &Tensor), test: Option<(&Tensor, &Tensor)>, c: f64) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("features.safetensors");
    let out = dir.path().join("fit.json");
    let mut named = vec![
        ("train_x", train.0.to_kind(Kind::Float)),
        ("train_y", train.1.to_kind(Kind::Int64)),
    ];
    if let Some((x, y)) = test {
        named.push(("test_x", x.to_kind(Kind::Float)));
        named.push(("test_y", y.to_kind(Kind::Int64)));
    }
    Tensor::write_safetensors(&named, &input)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/logistic.py");
    let output = Command::new(python()?)
        .arg(&script)
        .arg(&input)
        .arg(c.to_string())
        .arg(&out)
        .output()
        .with_context(|| format!("starting {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "logistic.py exited with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_str(&std::fs::read_to_string(&out)?)?)
}

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Tensor> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r: Vec<f64> = r
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            Tensor::from_slice(&r)
        })
        .collect();
    Tensor::stack(&rows, 0)
}

#[test]
fn the_lbfgs_probe_is_scikit_learns_logistic_regression() -> Result<()> {
    // Three overlapping classes in 6 dimensions: the minimum is interior and unique.
    tch::manual_seed(11);
    let centres = Tensor::randn([3, 6], (Kind::Float, Device::Cpu));
    let y = Tensor::arange(3, (Kind::Int64, Device::Cpu)).repeat([40]);
    let x = centres.index_select(0, &y) + Tensor::randn([120, 6], (Kind::Float, Device::Cpu));
    for l2 in [0.5, 4.0] {
        let fit = fit_logistic(&x, &y, 3, l2, 1000, 1e-9, None)?;
        assert!(fit.converged, "{fit:?}");
        // Our objective Σ CE + l2/2 ‖W‖² has the minimiser of scikit-learn's C = 1/l2.
        let r = sklearn((&x, &y), None, 1.0 / l2)?;
        let coef = matrix(&r["coef"]);
        let intercept: Vec<f64> = r["intercept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let intercept = Tensor::from_slice(&intercept);
        // The intercept of a softmax is defined up to a constant: compare it centred.
        let centred =
            |b: &Tensor| b.to_kind(Kind::Double) - b.to_kind(Kind::Double).mean(Kind::Double);
        let dw = (fit.weight.to_kind(Kind::Double) - &coef)
            .abs()
            .max()
            .double_value(&[]);
        let db = (centred(&fit.bias) - centred(&intercept))
            .abs()
            .max()
            .double_value(&[]);
        let scale = coef.abs().max().double_value(&[]);
        assert!(
            dw < 1e-4 * scale.max(1.0) && db < 1e-4 * scale.max(1.0),
            "l2 = {l2}: weight off by {dw}, bias by {db} (coefficients up to {scale})"
        );
    }
    Ok(())
}

/// Fashion-MNIST T-shirt/top (0) vs shirt (6), relabelled 0 and 1, in the source's input
/// format.
fn shirts(input: &pretrained_zoo::registry::ImageInput) -> Result<TargetData> {
    let fashion = target::load(
        Target::FashionMnist,
        &core_tensor::fixtures::cache_dir(),
        input,
    )?;
    let two = |d: &TensorDataset| -> Result<TensorDataset> {
        let keep = d
            .targets
            .eq(0)
            .logical_or(&d.targets.eq(6))
            .nonzero()
            .squeeze_dim(1);
        let sub = d.subset(&keep)?;
        Ok(TensorDataset::new(
            sub.inputs,
            sub.targets.eq(6).to_kind(Kind::Int64),
        )?)
    };
    Ok(TargetData {
        train: two(&fashion.train)?,
        test: two(&fashion.test)?,
        classes: 2,
    })
}

/// The zoo's MNIST LeNet, built into the zoo folder first if it is not there (deterministic
/// from its recipe: the same weights `cargo xtask zoo build mnist-lenet` makes).
fn mnist_lenet(registry: &Registry) -> Result<SourceModel> {
    let zoo = registry::default_zoo_dir();
    let name = "mnist-lenet";
    if SourceModel::from_zoo(registry, &zoo, name).is_err() {
        let entry = registry.entry(name)?;
        registry::build(
            name,
            entry,
            &core_tensor::fixtures::cache_dir(),
            &zoo,
            Device::Cpu,
            None,
        )?;
    }
    Ok(SourceModel::from_zoo(registry, &zoo, name)?)
}

/// The regression test of the direct library path (issue 13): called with its defaults,
/// `FineTune` must not leave a linear probe or LP-FT far below what a logistic regression on
/// the same frozen features achieves (the failure was a head kept after a handful of steps,
/// predicting one class).
#[test]
fn the_default_probe_and_lp_ft_match_a_converged_logistic_regression() -> Result<()> {
    // Fixed before the runs: 3 seeds per size, a margin of 3 points, and the reference
    // scikit-learn LogisticRegression(C = 1): its default regularisation, ½‖w‖² + C Σ CE.
    const SEEDS: u64 = 3;
    const MARGIN: f64 = 0.03;
    const C: f64 = 1.0;
    let registry = Registry::builtin()?;
    let source = mnist_lenet(&registry)?;
    let input = target::source_image_input(&registry.entry("mnist-lenet")?.recipe.data)?;
    let data = shirts(&input)?;
    assert_eq!(data.test.len(), 2000);
    let (_vs, frozen) = pretrained_with_new_head(&source, 2, Device::Cpu)?;
    let f_test = features(&*frozen, &data.test.inputs, 256)?;
    for per_class in [5usize, 20] {
        let (mut reference, mut probe, mut lp_ft) = (0.0, 0.0, 0.0);
        for seed in 0..SEEDS {
            let (train, val) = target::sample(
                &data,
                per_class,
                target::validation_per_class(per_class),
                seed,
                Device::Cpu,
            )?;
            let f_train = features(&*frozen, &train.inputs, 256)?;
            let r = sklearn(
                (&f_train, &train.targets),
                Some((&f_test, &data.test.targets)),
                C,
            )?;
            reference += r["test_accuracy"].as_f64().unwrap() / SEEDS as f64;

            let lp = FineTune::new(&source)
                .strategy(Strategy::LinearProbe)
                .seed(seed)
                .fit(&train, &val)?;
            probe += lp.accuracy(&data.test, 256)? / SEEDS as f64;

            let ft = FineTune::new(&source)
                .strategy(Strategy::lp_ft())
                .seed(seed)
                .fit(&train, &val)?;
            lp_ft += ft.accuracy(&data.test, 256)? / SEEDS as f64;
            // The fine-tuning phase never stops before the short path's minimum step count.
            let steps = ft.reports[1].steps;
            assert!(
                steps >= FineTune::DEFAULT_MIN_STEPS as u64,
                "N = {per_class}, seed {seed}: LP-FT's fine-tuning stopped after {steps} steps"
            );
        }
        eprintln!(
            "N = {per_class}/class, mean of {SEEDS} seeds: logistic regression {:.1}%, \
             linear probe {:.1}%, LP-FT {:.1}%",
            100.0 * reference,
            100.0 * probe,
            100.0 * lp_ft
        );
        for (name, acc) in [("linear probe", probe), ("LP-FT", lp_ft)] {
            assert!(
                acc >= reference - MARGIN,
                "N = {per_class}: {name} {:.1}% is more than {:.0} points below the logistic \
                 regression's {:.1}%",
                100.0 * acc,
                100.0 * MARGIN,
                100.0 * reference
            );
        }
    }
    Ok(())
}
