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

use std::collections::BTreeMap;
use std::path::Path;

use core_tensor::data::TensorDataset;
use core_tensor::train::Trainer;
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use transferlab_report::stats::{Summary, paired_difference, summarize};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table, Verdict};

use crate::e2e::common::{self as experiment, Ctx, Recipe, RunOptions, claim, fmt};
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

/// The rule for E-4 on the composite task, fixed before any run.
pub const RULE: &str = "supported if the 95% CI of (per-image supervision − end-to-end) test accuracy at the \
     largest k is above 0; not supported if it is below 0, or lies entirely within ±2 points \
     (no difference worth the sub-task labels); otherwise inconclusive";

/// The verdict from the gain of per-image supervision at the largest k.
pub fn verdict(gain_at_largest_k: &Summary) -> Verdict {
    let within = gain_at_largest_k
        .ci95
        .is_some_and(|(lo, hi)| lo > -0.02 && hi < 0.02);
    if gain_at_largest_k.above(0.0) {
        Verdict::Supported
    } else if gain_at_largest_k.below(0.0) || within {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    }
}

/// Runs P4 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: P4Config = experiment::load_toml(config_path)?;
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
        return Ok(ctx.shard_report("P4", "lines and parity", &["E-4"], opts, seeds, started));
    }
    let mut rep = ctx.report(
        "P4",
        "lines and parity: decomposition vs end-to-end",
        &["E-4"],
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
        opts,
        seeds,
        started,
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
    for (i, &k) in p.ks.iter().enumerate() {
        let e2e = summarize(&acc[i][0])?;
        let dec = summarize(&acc[i][1])?;
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
    let (g_small, g_large) = (gains[0], *gains.last().expect("not empty"));
    let e2e_large = summarize(acc.last().expect("not empty")[0].as_slice())?;
    let detail = format!(
        "At k = {k_small} the gain is {} points; end-to-end accuracy at k = {k_large}: {}% \
         (chance 50%).",
        fmt(&g_small, 100.0),
        fmt(&e2e_large, 100.0)
    );
    rep.verdicts.push(claim(
        "E-4",
        "P4",
        "lines and parity",
        verdict(&g_large),
        RULE,
        format!("per-image supervision − end-to-end at k = {k_large}, accuracy points"),
        g_large,
        detail,
    ));
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
    fn the_rule_reads_the_interval_at_the_largest_k() {
        let s = |v: &[f64]| summarize(v).unwrap();
        assert_eq!(verdict(&s(&[0.30, 0.35, 0.32])), Verdict::Supported);
        assert_eq!(verdict(&s(&[-0.10, -0.12, -0.11])), Verdict::NotSupported);
        // A tight tie: the sub-task labels buy nothing.
        assert_eq!(verdict(&s(&[0.001, -0.002, 0.0])), Verdict::NotSupported);
        assert_eq!(verdict(&s(&[0.2, -0.1, 0.05])), Verdict::Inconclusive);
        // One seed has no interval.
        assert_eq!(verdict(&s(&[0.3])), Verdict::Inconclusive);
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
