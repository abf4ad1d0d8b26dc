//! Experiment X0, the chapter's own example of transfer learning (section 10.1): a network
//! trained on ordinary photographs, then fine-tuned on a few chest X-rays (claim T-1; not T-2:
//! CIFAR-10's 50,000 photographs always outnumber the X-ray target, so the source never has as
//! little data as the target).
//!
//! Target: PneumoniaMNIST (normal vs pneumonia, 28x28 grey, balanced splits), loaded through
//! the public NPZ loader as a user would. With N training images per class (and "all"), drawn
//! from the `train` split by seed, and a fifth of N per class (at least 1, at most 100) for
//! early stopping drawn from the `val` split, each source is adapted by each strategy; the test
//! split is used once per run, for accuracy and ROC AUC.
//!
//! Sources: the zoo's CIFAR-10 ResNet (natural photographs, cats among them; the first source,
//! "the photograph source"), the zoo's MNIST LeNet (a source of another kind of image), and an
//! untrained network of each architecture (the `scratch` strategy). The X-rays are mapped onto
//! each source's input explicitly by [`pretrained_zoo::registry::InputSpec::prepare`]: for the
//! ResNet grey replicated to RGB, resized bilinearly to 32x32 and normalised with CIFAR-10's
//! per-channel mean and std; for the LeNet normalised with MNIST's mean and std at 28x28.
//!
//! The contrasts that decide T-1 ([`contrasts`]) are declared from the config alone, before any
//! run; [`crate::driver::decide`] evaluates them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::driver::Plan;
use crate::runs::RunId;
use core_tensor::data::{TensorDataset, stratified_indices};
use core_tensor::loaders::npy::Npz;
use core_tensor::{Error, Result};
use pretrained_zoo::registry::Registry;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};
use transfer::strategy::{AdaptConfig, SourceModel, Strategy, adapt};
use transfer::target::validation_per_class;
use transferlab_report::contrast::{Contrast, Kind as ContrastKind};
use transferlab_report::stats::{Results, paired_difference, summarize_proportion};
use transferlab_report::{Cell as ReportCell, ExperimentReport, Plot, Point, Series, Table};

use crate::margins;

/// The dataset (as `cargo xtask fetch` knows it) and its file in the fixture cache.
const DATASET: &str = "pneumoniamnist";
const FILE: &str = "pneumoniamnist/pneumoniamnist.npz";
const CLASSES: usize = 2;

/// The experiment's configuration file (`configs/transfer/x0.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X0Config {
    /// Zoo entries used as sources; the first is the photograph source the rule is about.
    pub sources: Vec<String>,
    /// Strategies at every N below "all"; must include `scratch` and `fine_tune`.
    pub strategies: Vec<Strategy>,
    /// Strategies at N = all (a subset, to fit the budget); must include `scratch` and
    /// `fine_tune`.
    pub strategies_at_all: Vec<Strategy>,
    /// Settings shared by the strategies; `train.epochs` is the least number of epochs.
    pub adapt: AdaptConfig,
    /// Each run trains at least this many optimizer steps…
    pub min_steps: usize,
    /// … within this many epochs.
    pub max_epochs: usize,
    /// Profiles by name (`quick`, `full`).
    pub profiles: BTreeMap<String, Profile>,
}

/// Sizes and seeds of a profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Training images per class.
    pub per_class: Vec<usize>,
    /// Whether to run with every training image too (N = all).
    pub all: bool,
    /// Number of seeds (0, 1, …).
    pub seeds: u64,
}

/// One run's configuration, as stored with its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct X0Run {
    /// Source zoo entry.
    pub source: String,
    /// Training images per class; `None` for every training image.
    pub per_class: Option<usize>,
    /// Validation images per class (from the `val` split).
    pub val_per_class: usize,
    /// The strategy.
    pub strategy: Strategy,
    /// Settings, with epochs resolved for this N.
    pub adapt: AdaptConfig,
}

/// One run's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct X0Result {
    /// Test accuracy, measured once.
    pub test_accuracy: f64,
    /// Test ROC AUC of the pneumonia class's probability.
    pub test_auc: Option<f64>,
    /// Best validation accuracy.
    pub validation_accuracy: Option<f64>,
    /// Epochs trained (all phases).
    pub epochs: usize,
}

/// Where the per-seed values of a cell are filed for the contrasts: test accuracy of `strategy`
/// adapted from `source` with N = `n` (a label, `5` … `all`) X-rays per class.
pub fn result_key(source: &str, n: &str, strategy: &str) -> String {
    format!("{source}/{n}/{strategy}")
}

/// The smallest and the largest N of a profile, as labels (`all` when the profile runs it).
fn size_range(profile: &Profile) -> (String, String) {
    let small = profile.per_class.iter().min().copied();
    let large = if profile.all {
        None
    } else {
        profile.per_class.iter().max().copied()
    };
    (n_label(small), n_label(large))
}

/// The contrasts that decide T-1 on X-rays, declared from the config before any run: with the
/// photograph source (the first), (fine_tune − scratch) at the smallest N is positive
/// (superiority, δ = [`margins::transfer_gain`]) and the gain is larger there than at the largest
/// N (trend on the per-seed gains, δ = [`margins::gain_shrinks`]). One zoo checkpoint is the
/// source of every seed, so both are marked shared.
pub fn contrasts(cfg: &X0Config, profile: &Profile) -> Vec<Contrast> {
    let Some(photo) = cfg.sources.first() else {
        return Vec::new();
    };
    if profile.per_class.is_empty() {
        return Vec::new();
    }
    let (small, large) = size_range(profile);
    let key = |n: &str, s: &str| result_key(photo, n, s);
    let shared = format!(
        "one zoo checkpoint ({photo}) is the source of every seed: the seeds replicate the \
         N-image draw, the validation draw and the initialisation, not pre-training"
    );
    let mut out = vec![
        Contrast::paired(
            "gain-smallest-n",
            &["T-1"],
            format!("fine_tune − scratch from {photo} at N = {small}/class"),
            margins::accuracy_points(),
            ContrastKind::Superiority,
            &key(&small, "fine_tune"),
            &key(&small, "scratch"),
            margins::transfer_gain(),
        )
        .shared(shared.clone()),
    ];
    if small != large {
        out.push(
            Contrast::trend(
                "gain-shrinks",
                &["T-1"],
                format!(
                    "(fine_tune − scratch) at N = {small} minus at N = {large}, from {photo}, \
                     paired by seed"
                ),
                margins::accuracy_points(),
                (&key(&small, "fine_tune"), &key(&small, "scratch")),
                (&key(&large, "fine_tune"), &key(&large, "scratch")),
                margins::gain_shrinks(),
            )
            .shared(shared),
        );
    }
    out
}

impl X0Config {
    /// Reads and checks a config file as `profile` sees it ([`crate::driver::load_config`]);
    /// errors name the field.
    pub fn load(path: &Path, profile: Option<&str>) -> Result<Self> {
        let cfg: X0Config = crate::driver::load_config(path, profile)?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        for (field, list) in [
            ("strategies", &self.strategies),
            ("strategies_at_all", &self.strategies_at_all),
        ] {
            if !list.contains(&Strategy::Scratch) || !list.contains(&Strategy::FineTune) {
                return Err(Error::InvalidArgument(format!(
                    "{field}: must include scratch and fine_tune (the rule compares them)"
                )));
            }
            for s in list {
                s.validate()?;
            }
        }
        if self.sources.is_empty() {
            return Err(Error::InvalidArgument("sources: name at least one".into()));
        }
        self.adapt.train.validate()?;
        for (name, p) in &self.profiles {
            if p.per_class.is_empty() || p.seeds == 0 || p.per_class.contains(&0) {
                return Err(Error::InvalidArgument(format!(
                    "profiles.{name}: per_class (each at least 1) and seeds must not be empty"
                )));
            }
        }
        Ok(())
    }
}

/// The label of an N.
fn n_label(n: Option<usize>) -> String {
    n.map_or_else(|| "all".to_owned(), |n| n.to_string())
}

/// The splits of PneumoniaMNIST as images in `[0, 1]`.
struct Splits {
    train: TensorDataset,
    val: TensorDataset,
    test: TensorDataset,
}

fn load_splits(cache: &Path) -> Result<Splits> {
    let mut npz = Npz::open(&cache.join(FILE))?;
    Ok(Splits {
        train: npz.split("train")?,
        val: npz.split("val")?,
        test: npz.split("test")?,
    })
}

/// The per-class count of the smaller class (what "all" means per class).
fn smallest_class(d: &TensorDataset) -> Result<usize> {
    let counts: Vec<i64> = Vec::try_from(d.targets.bincount::<Tensor>(None, CLASSES as i64))?;
    Ok(counts.into_iter().min().unwrap_or(0) as usize)
}

/// ROC AUC of the class-1 probability of `logits` against binary `targets`.
fn auc(logits: &Tensor, targets: &Tensor) -> Result<Option<f64>> {
    crate::finetune::binary_auc(logits, targets)
}

/// Runs X0 from its config file (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &crate::xfer::common::RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let session = crate::driver::Session::new(opts, on_run)?;
    let cfg = X0Config::load(config_path, Some(&opts.profile))?;
    let profile = crate::driver::profile(&cfg.profiles, &opts.profile)?;
    let seeds = crate::driver::check_seeds(opts.seeds.unwrap_or(profile.seeds))?;
    let dev = session.device();
    let cache = crate::paths::cache_dir();
    let zoo = crate::paths::zoo_dir();
    let registry = Registry::builtin()?;
    let data_inputs = crate::paths::verified_inputs(&cache, &[DATASET])?;
    let splits = load_splits(&cache)?;
    let all_per_class = smallest_class(&splits.train)?;
    let mut sizes: Vec<Option<usize>> = profile.per_class.iter().map(|&n| Some(n)).collect();
    if profile.all {
        sizes.push(None);
    }
    // The plan: every (source, N, strategy, seed), filed under (source, N, strategy).
    let mut plan = Plan::new();
    for (source_index, source_name) in cfg.sources.iter().enumerate() {
        let weights_sha = registry.expected_sha256(&zoo, source_name)?;
        for &n in &sizes {
            let per_class = n.unwrap_or(all_per_class);
            let val_n = validation_per_class(per_class);
            let strategies = if n.is_some() {
                &cfg.strategies
            } else {
                &cfg.strategies_at_all
            };
            for strategy in strategies {
                for seed in 0..seeds {
                    let run = X0Run {
                        source: source_name.clone(),
                        per_class: n,
                        val_per_class: val_n,
                        strategy: strategy.clone(),
                        adapt: crate::xfer::runner::resolve_adapt(
                            &cfg.adapt,
                            per_class,
                            CLASSES,
                            cfg.min_steps,
                            cfg.max_epochs,
                        ),
                    };
                    let mut inputs = data_inputs.clone();
                    inputs.insert("source_weights".to_string(), weights_sha.clone());
                    let id = RunId::new("x0", &run, seed, inputs)?;
                    let label = format!(
                        "{source_name} N={} {} seed {seed}",
                        n_label(n),
                        strategy.name()
                    );
                    plan.push(
                        (source_name.clone(), n_label(n), strategy.name().to_string()),
                        (source_index, run, id),
                        seed,
                        label,
                    );
                }
            }
        }
    }
    // Each source with the X-rays as its input (channels, size, normalisation), made when a
    // run of it first trains.
    let mut prepared: BTreeMap<usize, Prepared> = BTreeMap::new();
    let done = session.execute(
        plan,
        |(_, _, id), _| Ok(id.key()),
        |(source_index, run, id), seed, label| {
            session.run(id, label, || {
                if !prepared.contains_key(source_index) {
                    let p = prepare_source(&registry, &zoo, &run.source, &splits, dev)?;
                    prepared.insert(*source_index, p);
                }
                let p = &prepared[source_index];
                train_one(p, run, seed, dev)
            })
        },
    )?;
    let mut report = session.report(
        crate::driver::About {
            id: "X0",
            title: "ordinary photographs to chest X-rays",
            claims: &["T-1"],
        },
        description(&cfg, all_per_class),
        seeds,
        &cfg,
    );
    let Some(done) = done else {
        return Ok(report);
    };
    // results[(source, N, strategy)] = (accuracy, auc) per seed
    let mut results: Cells = BTreeMap::new();
    // The same accuracies by result key, for the contrasts.
    let mut per_seed = Results::default();
    for ((source, n, strategy), r) in done {
        per_seed.push(result_key(&source, &n, &strategy), r.test_accuracy);
        results
            .entry((source, n, strategy))
            .or_default()
            .push((r.test_accuracy, r.test_auc.unwrap_or(f64::NAN)));
    }
    summarise(
        &cfg,
        &sizes,
        all_per_class,
        splits.test.len(),
        &results,
        &mut report,
    )?;
    crate::driver::decide(&mut report, &per_seed, contrasts(&cfg, profile))?;
    Ok(report)
}

/// A source with the X-rays prepared as its input.
struct Prepared {
    source: SourceModel,
    train: TensorDataset,
    val: TensorDataset,
    test: TensorDataset,
}

/// The zoo entry `name` and the X-ray splits in its input format (the test split on `dev`).
fn prepare_source(
    registry: &Registry,
    zoo: &Path,
    name: &str,
    splits: &Splits,
    dev: Device,
) -> Result<Prepared> {
    let spec = registry.entry(name)?.recipe.data.input_spec()?;
    let prepare = |d: &TensorDataset| -> Result<TensorDataset> {
        TensorDataset::new(spec.prepare(&d.inputs)?, d.targets.shallow_clone())
    };
    Ok(Prepared {
        source: SourceModel::from_zoo(registry, zoo, name)?,
        train: prepare(&splits.train)?,
        val: prepare(&splits.val)?,
        test: prepare(&splits.test)?.to_device(dev),
    })
}

/// Trains one run of X0 and measures it on the test split.
fn train_one(p: &Prepared, run: &X0Run, seed: u64, dev: Device) -> Result<X0Result> {
    let train = match run.per_class {
        Some(n) => p
            .train
            .subset(&stratified_indices(&p.train.targets, CLASSES, n, seed)?)?,
        None => TensorDataset::new(
            p.train.inputs.shallow_clone(),
            p.train.targets.shallow_clone(),
        )?,
    };
    let val = p.val.subset(&stratified_indices(
        &p.val.targets,
        CLASSES,
        run.val_per_class,
        seed ^ 0x5A5A,
    )?)?;
    let adapted = adapt(
        &run.strategy,
        &p.source,
        CLASSES as i64,
        &train.to_device(dev),
        &val.to_device(dev),
        &run.adapt,
        seed,
    )?;
    let logits = adapted
        .logits(&p.test.inputs, run.adapt.eval_batch)?
        .to_device(Device::Cpu);
    let targets = p.test.targets.to_device(Device::Cpu);
    Ok(X0Result {
        test_accuracy: core_tensor::metrics::accuracy(&logits, &targets)?,
        test_auc: auc(&logits, &targets)?,
        validation_accuracy: adapted.reports.last().and_then(|r| r.best_validation),
        epochs: adapted.reports.iter().map(|r| r.epochs.len()).sum(),
    })
}

fn description(cfg: &X0Config, all: usize) -> String {
    format!(
        "Sources: {} (the first: natural photographs, CIFAR-10), each also untrained (scratch). \
         Target: PneumoniaMNIST, normal vs pneumonia, N X-rays per class from the train split \
         (all = {all} per class), validation a fifth of N per class (1 to 100) from the val split, \
         the 468 test images used once per run. The X-rays are mapped onto each source's input \
         (grey replicated to RGB and resized to 32x32 for the ResNet; each source's own mean and \
         std). Strategies: {}; at N = all: {}. Literature: Raghu et al. 2019 (\"Transfusion\") \
         found little benefit of ImageNet pre-training on large medical image tasks, where \
         small networks from scratch matched it, with more benefit when data is small; He et \
         al. 2019 found that pre-training's gain shrinks as the target grows. Compare with the \
         measured shape, whatever it is.",
        cfg.sources.join(", "),
        cfg.strategies
            .iter()
            .map(Strategy::name)
            .collect::<Vec<_>>()
            .join(", "),
        cfg.strategies_at_all
            .iter()
            .map(Strategy::name)
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// (source, N label, strategy) → (accuracy, AUC) per seed.
type Cells = BTreeMap<(String, String, String), Vec<(f64, f64)>>;

fn column(results: &Cells, source: &str, n: &str, strategy: &str, auc: bool) -> Result<Vec<f64>> {
    results
        .get(&(source.to_owned(), n.to_owned(), strategy.to_owned()))
        .map(|v| v.iter().map(|p| if auc { p.1 } else { p.0 }).collect())
        .ok_or_else(|| Error::InvalidArgument(format!("X0: no runs for {source} N={n} {strategy}")))
}

fn summarise(
    cfg: &X0Config,
    sizes: &[Option<usize>],
    all_per_class: usize,
    test_size: usize,
    results: &Cells,
    report: &mut ExperimentReport,
) -> Result<()> {
    let x_of = |n: &Option<usize>| n.unwrap_or(all_per_class) as f64;
    let mut table = Table::new(
        "x0-xray",
        &[
            "source",
            "N/class",
            "strategy",
            "accuracy (%)",
            "ROC AUC (x100)",
            "gain over scratch (points)",
        ],
    );
    let mut acc_plot = Plot {
        id: "x0-accuracy".into(),
        title: "X0: test accuracy on chest X-rays vs N, per source and strategy".into(),
        x_label: format!("X-rays per class (N; all = {all_per_class})"),
        y_label: "test accuracy (%)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: false,
        series: Vec::new(),
        reference: None,
    };
    let mut gain_plot = Plot {
        id: "x0-gain".into(),
        title: "X0: fine_tune − scratch vs N, per source".into(),
        x_label: acc_plot.x_label.clone(),
        y_label: "fine_tune − scratch (accuracy points)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: true,
        series: Vec::new(),
        reference: Some(
            "Raghu et al. 2019; He et al. 2019: the gain of pre-training shrinks as the target grows"
                .into(),
        ),
    };
    for source in &cfg.sources {
        let mut gains = Vec::new();
        for strategy in &cfg.strategies {
            let mut points = Vec::new();
            for n in sizes {
                let label = n_label(*n);
                let Ok(acc) = column(results, source, &label, strategy.name(), false) else {
                    continue; // not run at this N (strategies_at_all)
                };
                let auc = column(results, source, &label, strategy.name(), true)?;
                let scratch = column(results, source, &label, "scratch", false)?;
                let gain = (*strategy != Strategy::Scratch)
                    .then(|| paired_difference(&acc, &scratch))
                    .transpose()?;
                // Proportions of the X-ray test set: intervals inside [0, 1].
                let acc_s = summarize_proportion(&acc, test_size)?;
                table.push(vec![
                    ReportCell::text(source),
                    ReportCell::text(&label),
                    ReportCell::text(strategy.name()),
                    ReportCell::pct(acc_s),
                    ReportCell::pct(summarize_proportion(&auc, test_size)?),
                    gain.map(ReportCell::pct)
                        .unwrap_or_else(|| ReportCell::text("—")),
                ]);
                points.push(Point {
                    x: x_of(n),
                    y: acc_s,
                });
                if *strategy == Strategy::FineTune
                    && let Some(g) = gain
                {
                    gains.push(Point { x: x_of(n), y: g });
                }
            }
            acc_plot.series.push(Series {
                name: format!("{source}: {}", strategy.name()),
                points,
            });
        }
        gain_plot.series.push(Series {
            name: source.clone(),
            points: gains,
        });
    }
    // The photograph source against the other sources: fine_tune, paired by seed.
    let photo = &cfg.sources[0];
    let mut contrast = Table::new(
        "x0-source-contrast",
        &[
            "N/class",
            "contrast",
            "fine_tune accuracy difference (points)",
        ],
    );
    for other in &cfg.sources[1..] {
        for n in sizes {
            let label = n_label(*n);
            let d = paired_difference(
                &column(results, photo, &label, "fine_tune", false)?,
                &column(results, other, &label, "fine_tune", false)?,
            )?;
            contrast.push(vec![
                ReportCell::text(&label),
                ReportCell::text(format!("{photo} − {other}")),
                ReportCell::pct(d),
            ]);
        }
    }
    report.tables = vec![table, contrast];
    report.plots = vec![acc_plot, gain_plot];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use transferlab_report::contrast::Outcome;

    fn config() -> X0Config {
        // The file as the profiles without overrides read it.
        crate::driver::load_toml(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/transfer/x0.toml"),
        )
        .unwrap()
    }

    /// Every result key the run files, as its plan does: (source, N, strategy).
    fn planned_keys(cfg: &X0Config, profile: &Profile) -> Vec<String> {
        let mut sizes: Vec<Option<usize>> = profile.per_class.iter().map(|&n| Some(n)).collect();
        if profile.all {
            sizes.push(None);
        }
        let mut keys = Vec::new();
        for source in &cfg.sources {
            for n in &sizes {
                let strategies = if n.is_some() {
                    &cfg.strategies
                } else {
                    &cfg.strategies_at_all
                };
                for s in strategies {
                    keys.push(result_key(source, &n_label(*n), s.name()));
                }
            }
        }
        keys
    }

    /// Results for every planned key: accuracy `base` plus `gain(N label)` for fine_tune, with
    /// a little seed noise.
    fn results(cfg: &X0Config, profile: &Profile, gain: impl Fn(&str) -> f64) -> Results {
        let mut r = Results::default();
        for key in planned_keys(cfg, profile) {
            let mut parts = key.split('/');
            let (_, n, strategy) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            for seed in 0..3 {
                // Seed noise that differs between cells, so that no difference is constant.
                let noise = ((key.len() * 7 + seed * 13) % 5) as f64 * 0.003;
                let g = if strategy == "fine_tune" {
                    gain(n)
                } else {
                    0.0
                };
                r.push(key.clone(), 0.6 + g + noise);
            }
        }
        r
    }

    #[test]
    fn the_contrasts_read_only_keys_the_runs_file() {
        let cfg = config();
        for profile in cfg.profiles.values() {
            let planned = planned_keys(&cfg, profile);
            let cs = contrasts(&cfg, profile);
            assert_eq!(cs.len(), 2);
            for c in &cs {
                assert_eq!(c.claims, ["T-1"]);
                assert!(c.replication.is_some(), "one zoo source: shared");
                for k in c.keys() {
                    assert!(planned.iter().any(|p| p == k), "{k} is not a result key");
                }
            }
            // The photograph source at the smallest N and at all (the tiny profile stops at
            // its largest N).
            if profile.all {
                assert!(cs[1].keys().contains(&"cifar10-resnet18-w16/all/scratch"));
            }
        }
    }

    #[test]
    fn a_gain_that_shrinks_is_supported_and_a_loss_is_contradicted() {
        let cfg = config();
        let profile = &cfg.profiles["quick"];
        let cs = contrasts(&cfg, profile);
        let shrinks = results(&cfg, profile, |n| if n == "5" { 0.2 } else { 0.01 });
        for c in &cs {
            assert_eq!(
                c.evaluate(&shrinks).unwrap().outcome,
                Outcome::Supported,
                "{}",
                c.id
            );
        }
        let hurts = results(&cfg, profile, |n| if n == "5" { -0.1 } else { 0.05 });
        for c in &cs {
            assert_eq!(
                c.evaluate(&hurts).unwrap().outcome,
                Outcome::Contradicted,
                "{}",
                c.id
            );
        }
    }

    #[test]
    fn the_config_must_compare_fine_tune_with_scratch() {
        let mut cfg = config();
        cfg.validate().unwrap();
        assert_eq!(cfg.sources[0], "cifar10-resnet18-w16");
        cfg.strategies_at_all.retain(|s| *s != Strategy::FineTune);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("strategies_at_all"), "{e}");
    }
}
