//! Experiment P4, decomposition vs end-to-end on a hard composite task (claim E-4, with E-2's
//! "separately supervised stages" read at a fixed N; Shalev-Shwartz, Shamir & Shammah 2017).
//!
//! An example is `k` images of a random line ([`e2e_vs_pipeline::lines`]); its label is the parity of
//! the number of steep lines. One network, [`LinesNet`]: a per-image MLP (`per_image.fc1`,
//! `per_image.fc2`) shared by the `k` images gives one "steep" logit each, and a combiner MLP
//! (`combiner.fc1`, `combiner.fc2`) maps the `k` logits to the parity's two logits. Two
//! contenders train it from the same initialisation on the same `N` examples:
//!
//! - **end-to-end**: cross-entropy of the parity only;
//! - **per-image supervision** (decomposition): the same loss plus the binary cross-entropy
//!   of each image's logit against its steep bit (the sub-task labels).
//!
//! Accuracy on a fresh test set, against `k`. The validation set (early stopping on parity
//! accuracy) is generated from the training seed, next to the training examples.
//!
//! The claim is decided by the contrast of [`contrasts`], declared from the profile before any
//! run.

use std::collections::BTreeMap;
use std::path::Path;

use core_tensor::data::TensorDataset;
use core_tensor::train::Trainer;
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use transferlab_report::contrast::{self, Contrast};
use transferlab_report::stats::{Results, paired_difference, summarize_proportion};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::e2e::common::{self as experiment, Ctx, Recipe, RunOptions, fmt};
use crate::margins;
use e2e_vs_pipeline::lines::{self, LinesConfig};

/// `experiments/p4.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P4Config {
    /// Side of each image, pixels.
    pub size: i64,
    /// Angles within this many degrees of 45° are never drawn.
    pub margin_degrees: f64,
    /// The network.
    pub net: LinesNetConfig,
    /// Weight of the per-image loss in the decomposed contender.
    pub per_image_weight: f64,
    /// Training recipe (the same for both contenders).
    pub recipe: Recipe,
    /// Test examples per k.
    pub test_examples: usize,
    /// Profiles.
    pub profiles: BTreeMap<String, P4Profile>,
}

/// What a profile varies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P4Profile {
    /// Images per example, increasing.
    pub ks: Vec<usize>,
    /// Training examples (each of `k` images).
    pub train_examples: usize,
    /// Seeds.
    pub seeds: u64,
}

/// Widths of [`LinesNet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinesNetConfig {
    /// Hidden width of the per-image MLP.
    pub per_image_hidden: i64,
    /// Hidden width of the combiner MLP.
    pub combiner_hidden: i64,
}

/// The network of P4; see the module documentation.
#[derive(Debug)]
pub struct LinesNet {
    k: i64,
    pixels: i64,
    fc1: nn::Linear,
    fc2: nn::Linear,
    comb1: nn::Linear,
    comb2: nn::Linear,
}

impl LinesNet {
    /// The layers under `p` for `k` images of `size x size`.
    pub fn new(p: &nn::Path, cfg: &LinesNetConfig, k: usize, size: i64) -> Self {
        let (k, pixels) = (k as i64, size * size);
        let d = Default::default();
        LinesNet {
            k,
            pixels,
            fc1: nn::linear(p / "per_image" / "fc1", pixels, cfg.per_image_hidden, d),
            fc2: nn::linear(p / "per_image" / "fc2", cfg.per_image_hidden, 1, d),
            comb1: nn::linear(p / "combiner" / "fc1", k, cfg.combiner_hidden, d),
            comb2: nn::linear(p / "combiner" / "fc2", cfg.combiner_hidden, 2, d),
        }
    }

    /// Per-image steep logits `[N, k]` and parity logits `[N, 2]` of images `[N, k, s, s]`.
    pub fn forward_both(&self, xs: &Tensor) -> (Tensor, Tensor) {
        let n = xs.size()[0];
        let steep = xs
            .view([n * self.k, self.pixels])
            .apply(&self.fc1)
            .relu()
            .apply(&self.fc2)
            .view([n, self.k]);
        let parity = steep.apply(&self.comb1).relu().apply(&self.comb2);
        (steep, parity)
    }
}

impl Module for LinesNet {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_both(xs).1
    }
}

/// The contenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Supervision {
    /// Parity labels only.
    EndToEnd,
    /// Parity labels and the per-image steep bits.
    PerImage,
}

impl Supervision {
    /// Name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Supervision::EndToEnd => "end-to-end",
            Supervision::PerImage => "per-image supervision",
        }
    }

    /// The result key of its test accuracies at `k` images per example: `"{name}/{k}"`.
    pub fn key(self, k: usize) -> String {
        format!("{}/{k}", self.name())
    }
}

const TEST_SEED: u64 = 0x7E57_0004;

fn dataset(set: &lines::LinesParity) -> Result<TensorDataset> {
    // Targets: the k steep bits, then the parity.
    let targets = Tensor::cat(&[&set.steep, &set.labels.view([-1, 1])], 1);
    TensorDataset::new(set.images.shallow_clone(), targets)
}

fn accuracy(net: &LinesNet, data: &TensorDataset, device: Device) -> Result<f64> {
    let mut correct = 0.0;
    for (xs, ys) in data.batches(512) {
        let k = ys.size()[1] - 1;
        let out = tch::no_grad(|| net.forward(&xs.to_device(device)));
        correct += out
            .f_argmax(-1, false)?
            .f_eq_tensor(&ys.select(1, k).to_device(device))?
            .f_sum(Kind::Float)?
            .f_double_value(&[])?;
    }
    Ok(correct / data.len() as f64)
}

/// One run: trains the network for `k` images with `supervision` on `n` examples from `seed`
/// and returns its test accuracy.
pub fn run_one(
    cfg: &P4Config,
    k: usize,
    n: usize,
    supervision: Supervision,
    seed: u64,
    device: Device,
) -> Result<f64> {
    let task = LinesConfig {
        k,
        size: cfg.size,
        margin_degrees: cfg.margin_degrees,
    };
    let v = experiment::validation_size(n);
    let all = dataset(&lines::generate(&task, n + v, 1000 + seed)?)?;
    let train = all
        .subset(&Tensor::arange(n as i64, (Kind::Int64, Device::Cpu)))?
        .to_device(device);
    let val = all.subset(&Tensor::arange_start(
        n as i64,
        (n + v) as i64,
        (Kind::Int64, Device::Cpu),
    ))?;
    let test = dataset(&lines::generate(&task, cfg.test_examples, TEST_SEED)?)?;

    let vs = nn::VarStore::new(device);
    core_tensor::device::seed(seed);
    let net = LinesNet::new(&vs.root(), &cfg.net, k, cfg.size);
    let weight = match supervision {
        Supervision::EndToEnd => 0.0,
        Supervision::PerImage => cfg.per_image_weight,
    };
    let ki = k as i64;
    let train_cfg = cfg.recipe.resolve(n);
    let mut trainer = Trainer::new(&vs, train_cfg)?.shuffle_seed(seed);
    let mut validate = || accuracy(&net, &val, device);
    trainer.fit(
        &train,
        |xs, ys| {
            let (steep, parity) = net.forward_both(xs);
            let loss = parity.cross_entropy_for_logits(&ys.select(1, ki));
            if weight > 0.0 {
                let bits = ys.narrow(1, 0, ki).to_kind(Kind::Float);
                loss + steep.binary_cross_entropy_with_logits::<Tensor>(
                    &bits,
                    None,
                    None,
                    tch::Reduction::Mean,
                ) * weight
            } else {
                loss
            }
        },
        Some(&mut validate),
    )?;
    accuracy(&net, &test, device)
}

/// The contrast that decides P4's claim, declared from the profile alone (nothing run), on the
/// keys [`Supervision::key`]: `E-4`, at the largest k (where the whole task is hardest and
/// each image's sub-task has k times the whole task's labels), superiority of per-image
/// supervision over end to end in test accuracy, paired by seed, margin
/// [`margins::design_accuracy`]. An interval inside ±δ is "no effect worth having" (the old
/// rule's ±2-point band: no difference worth the sub-task labels).
pub fn contrasts(p: &P4Profile) -> Vec<Contrast> {
    let Some(&k) = p.ks.last() else {
        return Vec::new();
    };
    vec![Contrast::paired(
        "E-4",
        &["E-4"],
        format!(
            "lines and parity: {} − {} at k = {k}",
            Supervision::PerImage.name(),
            Supervision::EndToEnd.name()
        ),
        margins::accuracy_points(),
        contrast::Kind::Superiority,
        &Supervision::PerImage.key(k),
        &Supervision::EndToEnd.key(k),
        margins::design_accuracy(),
    )]
}

/// Runs P4 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: P4Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    cfg.recipe
        .validate("recipe")
        .map_err(|e| e.in_file(config_path))?;
    let p = experiment::profile(&cfg.profiles, &opts.profile)?;
    if p.ks.is_empty() || p.ks.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::format(
            config_path,
            format!(
                "profiles.{}.ks must be increasing and not empty",
                opts.profile
            ),
        ));
    }
    let seeds = opts.seeds_or(p.seeds)?;
    let declared = contrasts(p);
    let claims = experiment::claims_of(&declared);
    let ctx = Ctx::new(opts, on_run)?;
    let contenders = [Supervision::EndToEnd, Supervision::PerImage];
    // acc[k index][contender] = one value per seed.
    let mut acc = vec![vec![Vec::new(); contenders.len()]; p.ks.len()];
    for (i, &k) in p.ks.iter().enumerate() {
        for seed in experiment::seeds(seeds) {
            for (j, &sup) in contenders.iter().enumerate() {
                let key = serde_json::json!({
                    "size": cfg.size, "margin_degrees": cfg.margin_degrees, "net": cfg.net,
                    "per_image_weight": cfg.per_image_weight, "recipe": cfg.recipe,
                    "test_examples": cfg.test_examples, "k": k, "n": p.train_examples,
                    "supervision": sup,
                });
                let label = format!("p4 k={k} {} seed {seed}", sup.name());
                if !ctx.in_shard("p4-lines-parity", &key, seed, &label)? {
                    continue;
                }
                let a = ctx.run("p4-lines-parity", &key, seed, &label, || {
                    run_one(&cfg, k, p.train_examples, sup, seed, ctx.device)
                })?;
                acc[i][j].push(a);
            }
        }
    }
    if ctx.sharded() {
        return Ok(ctx.shard_report(
            "P4",
            "lines and parity",
            &experiment::as_strs(&claims),
            seeds,
        ));
    }
    let mut rep = ctx.report(
        "P4",
        "lines and parity: decomposition vs end-to-end",
        &experiment::as_strs(&claims),
        format!(
            "k ∈ {:?} images of {s}x{s} pixels, each with one random line (no angle within \
             {}° of 45°); label = parity of the steep lines. One network (a shared per-image MLP \
             with {} hidden units → one logit per image → a combiner MLP with {} hidden units → \
             parity), trained on {} examples (+{} validation from the training seed) with the \
             parity label only (end-to-end) or with the per-image steep bits added to the loss \
             (weight {}); test: {} fresh examples per k.",
            p.ks,
            cfg.margin_degrees,
            cfg.net.per_image_hidden,
            cfg.net.combiner_hidden,
            p.train_examples,
            experiment::validation_size(p.train_examples),
            cfg.per_image_weight,
            cfg.test_examples,
            s = cfg.size,
        ),
        seeds,
        &cfg,
    );
    let mut table = Table::new(
        "p4-accuracy-vs-k",
        &[
            "k",
            "end-to-end (%)",
            "per-image supervision (%)",
            "gain of per-image supervision (points)",
        ],
    );
    let mut plot = Plot {
        id: "p4-accuracy".into(),
        title: "P4: parity accuracy vs number of images k".into(),
        x_label: "images per example (k)".into(),
        y_label: "test accuracy (%)".into(),
        log_x: false,
        y_scale: 100.0,
        zero_line: false,
        series: contenders
            .iter()
            .map(|c| Series {
                name: c.name().into(),
                points: Vec::new(),
            })
            .collect(),
        reference: Some(
            "Shalev-Shwartz et al. 2017: end-to-end stalls near chance as k grows (k = 4), \
             decomposition learns quickly"
                .into(),
        ),
    };
    let mut gains = Vec::new();
    let mut values = Results::default();
    for (i, &k) in p.ks.iter().enumerate() {
        for (j, sup) in contenders.iter().enumerate() {
            for &a in &acc[i][j] {
                values.push(sup.key(k), a);
            }
        }
        // Accuracies: proportions of the test examples, intervals inside [0, 1].
        let e2e = summarize_proportion(&acc[i][0], cfg.test_examples)?;
        let dec = summarize_proportion(&acc[i][1], cfg.test_examples)?;
        let gain = paired_difference(&acc[i][1], &acc[i][0])?;
        table.push(vec![
            Cell::int(k as i64),
            Cell::pct(e2e),
            Cell::pct(dec),
            Cell::pct(gain),
        ]);
        for (series, y) in plot.series.iter_mut().zip([e2e, dec]) {
            series.points.push(Point { x: k as f64, y });
        }
        gains.push(gain);
    }
    let (k_small, k_large) = (p.ks[0], *p.ks.last().expect("not empty"));
    let e2e_large = summarize_proportion(
        acc.last().expect("not empty")[0].as_slice(),
        cfg.test_examples,
    )?;
    rep.notes.push(format!(
        "At k = {k_small} the gain of per-image supervision is {} points; end-to-end accuracy \
         at k = {k_large}: {}% (chance 50%).",
        fmt(&gains[0], 100.0),
        fmt(&e2e_large, 100.0)
    ));
    crate::driver::decide(&mut rep, &values, declared)?;
    rep.tables.push(table);
    rep.plots.push(plot);
    rep.notes.push(format!(
        "N is fixed at {} training examples for every k: P4 varies the difficulty of the \
         composite task, not the data size.",
        p.train_examples
    ));
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contrast_reads_the_largest_k_and_decides() {
        use transferlab_report::contrast::Outcome;
        let p = P4Profile {
            ks: vec![1, 2, 4],
            train_examples: 64,
            seeds: 3,
        };
        let declared = contrasts(&p);
        assert_eq!(experiment::claims_of(&declared), ["E-4"]);
        // Every key it reads is one the report files: a supervision at a k of the profile.
        let keys: Vec<String> =
            p.ks.iter()
                .flat_map(|&k| [Supervision::EndToEnd.key(k), Supervision::PerImage.key(k)])
                .collect();
        let read = declared[0].keys();
        assert_eq!(read, ["per-image supervision/4", "end-to-end/4"]);
        assert!(read.iter().all(|k| keys.iter().any(|x| x == k)));
        let outcome = |per_image: [f64; 3], e2e: [f64; 3]| {
            let mut r = Results::default();
            for (a, b) in per_image.into_iter().zip(e2e) {
                r.push(Supervision::PerImage.key(4), a);
                r.push(Supervision::EndToEnd.key(4), b);
            }
            declared[0].evaluate(&r).unwrap().outcome
        };
        // End to end near chance, per-image supervision far above it.
        assert_eq!(
            outcome([0.85, 0.90, 0.88], [0.50, 0.52, 0.51]),
            Outcome::Supported
        );
        assert_eq!(
            outcome([0.40, 0.41, 0.42], [0.50, 0.52, 0.51]),
            Outcome::Contradicted
        );
        // A tight tie: the sub-task labels buy nothing worth having.
        assert_eq!(
            outcome([0.901, 0.898, 0.900], [0.900, 0.900, 0.900]),
            Outcome::NoEffectWorthHaving
        );
        assert_eq!(
            outcome([0.70, 0.40, 0.55], [0.50, 0.50, 0.50]),
            Outcome::Inconclusive
        );
    }

    #[test]
    fn the_network_names_its_layers_and_shapes_its_outputs() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LinesNetConfig {
            per_image_hidden: 8,
            combiner_hidden: 4,
        };
        let net = LinesNet::new(&vs.root(), &cfg, 3, 10);
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "combiner.fc1.bias",
                "combiner.fc1.weight",
                "combiner.fc2.bias",
                "combiner.fc2.weight",
                "per_image.fc1.bias",
                "per_image.fc1.weight",
                "per_image.fc2.bias",
                "per_image.fc2.weight"
            ]
        );
        let (steep, parity) =
            net.forward_both(&Tensor::zeros([5, 3, 10, 10], (Kind::Float, Device::Cpu)));
        assert_eq!((steep.size(), parity.size()), (vec![5, 3], vec![5, 2]));
    }
}
