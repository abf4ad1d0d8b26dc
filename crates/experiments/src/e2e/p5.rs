//! Experiment P5, translation end to end (claim E-7: machine translation works end to end
//! because paired data is plentiful).
//!
//! The task ([`e2e_vs_pipeline::dates`]): human-readable dates in six formats and four
//! languages → ISO dates, so every output can be scored. Two worlds, fixed in the config before
//! any run: a *clean* one that the hand-written rules (tokenise → grammar → ISO) cover
//! completely, and a *messy* one where a share of the inputs are variants the rules do not know
//! (typos, ordinals, two-digit years, the year first, dotted numbers) — human knowledge that is
//! right versus partly wrong. Contenders at each N: the rule-based pipeline (no training; the
//! same at every N) and a character-level GRU encoder–decoder with attention
//! ([`e2e_vs_pipeline::seq2seq`]) trained on N pairs, decoded greedily. Metric: exact match on
//! a held-out test set whose inputs never appear in training; the character error rate is
//! reported beside it.
//!
//! The claim is decided by the contrast of [`contrasts`], declared from the profile before any
//! run.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{self, Contrast, Unit};
use transferlab_report::stats::{Results, summarize};
use transferlab_report::{Cell, ExperimentReport, Table};

use crate::e2e::common::{self as experiment, Ctx, RunOptions, stored_with};
use crate::margins;
use core_tensor::train::Goal;
use e2e_vs_pipeline::dates::{Corpus, Rules, World};
use e2e_vs_pipeline::seq2seq::{Seq2Seq, Seq2SeqConfig, char_error_rate};
use e2e_vs_pipeline::sweep::{CrossoverConfig, SweepPlan, SweepResult};

const PIPELINE: &str = "pipeline";
const END_TO_END: &str = "end-to-end";
/// The test set's seed (the same for every run).
const TEST_SEED: u64 = 1_000_003;

/// `configs/e2e/p5.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P5Config {
    /// The messy world's make-up (the clean world has no variants).
    pub messy: World,
    /// Test pairs per world.
    pub test_examples: usize,
    /// The network and its optimiser; `steps` is replaced per N by the budget below.
    pub net: Seq2SeqConfig,
    /// Steps per N: `epochs` passes over the N pairs, within `[min_steps, max_steps]`.
    pub epochs: usize,
    /// Least optimiser steps.
    pub min_steps: usize,
    /// Most optimiser steps.
    pub max_steps: usize,
    /// The crossover's bootstrap.
    pub crossover: CrossoverConfig,
    /// Profiles.
    pub profiles: BTreeMap<String, P5Profile>,
}

/// What a profile varies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P5Profile {
    /// Training pairs, increasing.
    pub sizes: Vec<usize>,
    /// Seeds.
    pub seeds: u64,
}

impl P5Config {
    /// The optimiser steps for `n` training pairs.
    pub fn steps(&self, n: usize) -> usize {
        (self.epochs * n)
            .div_ceil(self.net.batch_size.max(1))
            .clamp(self.min_steps, self.max_steps.max(self.min_steps))
    }
}

/// One run's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct P5Result {
    /// Exact-match accuracy on the test set.
    pub exact_match: f64,
    /// Mean character error rate on the test set.
    pub char_error_rate: f64,
}

fn score(outputs: &[String], corpus: &Corpus) -> P5Result {
    let n = corpus.test.len().max(1) as f64;
    let exact = outputs
        .iter()
        .zip(&corpus.test)
        .filter(|(o, e)| **o == e.target)
        .count() as f64;
    let cer: f64 = outputs
        .iter()
        .zip(&corpus.test)
        .map(|(o, e)| char_error_rate(o, &e.target))
        .sum();
    P5Result {
        exact_match: exact / n,
        char_error_rate: cer / n,
    }
}

/// The world whose contrast decides E-7 (the clean one is reported beside it).
const DECIDING_WORLD: &str = "messy";

/// The contrast that decides P5's claim, declared from the profile alone (nothing run), on the
/// keys [`experiment::key`]`(world, contender, N)`: `messy/E-7` (E-7, with at least two
/// sizes), in the messy world, a crossover in N of exact match (a fraction), paired by seed,
/// margin [`margins::design_accuracy`] — at the smallest N the rule-based pipeline is better
/// (superiority of pipeline − end-to-end: the network needs its paired data), at the largest
/// N end to end is better (superiority of end-to-end − pipeline: with plentiful pairs it
/// works end to end).
pub fn contrasts(p: &P5Profile) -> Vec<Contrast> {
    let (Some(&small), Some(&large)) = (p.sizes.first(), p.sizes.last()) else {
        return Vec::new();
    };
    if p.sizes.len() < 2 {
        return Vec::new();
    }
    let w = DECIDING_WORLD;
    let better = |id: &str, (a, b): (&str, &str), n: usize| {
        Contrast::paired(
            id,
            &[],
            format!("dates, {w} world: {a} − {b} exact match at N = {n}"),
            Unit::new("exact-match points", 100.0),
            contrast::Kind::Superiority,
            &experiment::key(w, a, n),
            &experiment::key(w, b, n),
            margins::design_accuracy(),
        )
    };
    vec![Contrast::crossover(
        &format!("{w}/E-7"),
        &["E-7"],
        format!(
            "dates, {w} world: the rules better at N = {small}, end to end better at N = {large}"
        ),
        better(&format!("{w}/E-7/smallest"), (PIPELINE, END_TO_END), small),
        better(&format!("{w}/E-7/largest"), (END_TO_END, PIPELINE), large),
    )]
}

fn sweep(
    cfg: &P5Config,
    p: &P5Profile,
    world_name: &str,
    world: World,
    seeds: u64,
    ctx: &Ctx<'_>,
    cer: &RefCell<BTreeMap<(String, usize), Vec<f64>>>,
) -> Result<Option<SweepResult>> {
    let test = Corpus::generate(&world, 0, cfg.test_examples, TEST_SEED);
    let inputs: Vec<&str> = test.test.iter().map(|e| e.input.as_str()).collect();
    let held: std::collections::HashSet<&str> = inputs.iter().copied().collect();
    let rules = Rules::new();
    let scope = serde_json::json!({
        "world": world, "test_examples": cfg.test_examples, "net": cfg.net,
        "epochs": cfg.epochs, "min_steps": cfg.min_steps, "max_steps": cfg.max_steps,
    });
    let label = format!("p5 {world_name}");
    let device = ctx.device;
    let record = |name: &str, n: usize, r: &P5Result| {
        cer.borrow_mut()
            .entry((format!("{world_name}/{name}"), n))
            .or_default()
            .push(r.char_error_rate);
    };
    let contenders = vec![
        stored_with(
            ctx,
            "p5-translation",
            &label,
            &scope,
            PIPELINE,
            |_n, _seed| {
                let outputs: Vec<String> = inputs
                    .iter()
                    .map(|t| rules.translate(t).unwrap_or_default())
                    .collect();
                Ok(score(&outputs, &test))
            },
            |r: &P5Result| r.exact_match,
            |n, r| record(PIPELINE, n, r),
        ),
        stored_with(
            ctx,
            "p5-translation",
            &label,
            &scope,
            END_TO_END,
            |n, seed| {
                // The first n pairs of this seed's stream whose input is not a test input.
                let mut train = Corpus::generate(&world, n + n / 4 + 64, 0, seed).train;
                train.retain(|e| !held.contains(e.input.as_str()));
                if train.len() < n {
                    return Err(Error::InvalidArgument(format!(
                        "p5: fewer than {n} training pairs outside the test set"
                    )));
                }
                train.truncate(n);
                let pairs: Vec<(String, String)> =
                    train.into_iter().map(|e| (e.input, e.target)).collect();
                let net_cfg = Seq2SeqConfig {
                    steps: cfg.steps(n),
                    ..cfg.net.clone()
                };
                let net = Seq2Seq::fit(&pairs, &net_cfg, seed, device)?;
                Ok(score(&net.translate(&inputs), &test))
            },
            |r: &P5Result| r.exact_match,
            |n, r| record(END_TO_END, n, r),
        ),
    ];
    let plan = SweepPlan {
        sizes: p.sizes.clone(),
        seeds: experiment::seeds(seeds),
        goal: Goal::Maximize,
    };
    // Exact-match rates: proportions of the test sentences.
    Ok(experiment::sweep(ctx, contenders, &plan)?.map(|r| r.proportions_of(cfg.test_examples)))
}

/// Runs P5 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: P5Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let p = experiment::profile(&cfg.profiles, &opts.profile)?;
    if p.sizes.is_empty() || p.sizes.windows(2).any(|w| w[0] >= w[1]) || p.sizes[0] == 0 {
        return Err(Error::format(
            config_path,
            format!("profiles.{}.sizes must be increasing, from 1", opts.profile),
        ));
    }
    let seeds = opts.seeds_or(p.seeds)?;
    let declared = contrasts(p);
    let claims = experiment::claims_of(&declared);
    let ctx = Ctx::new(opts, on_run)?;
    let cer = RefCell::new(BTreeMap::new());
    let worlds = [(DECIDING_WORLD, cfg.messy), ("clean", World::clean())];
    let mut results = Vec::new();
    for (name, world) in worlds {
        if let Some(r) = sweep(&cfg, p, name, world, seeds, &ctx, &cer)? {
            results.push((name, r));
        }
    }
    if ctx.sharded() {
        return Ok(ctx.shard_report("P5", "translation", &experiment::as_strs(&claims), seeds));
    }
    let mut rep = ctx.report(
        "P5",
        "translation end to end: dates to ISO",
        &experiment::as_strs(&claims),
        format!(
            "Dates (1950-2049) in six formats and four languages translated to ISO. Clean \
             world: every input a clean format, which the rules (tokenise, grammar, generate) \
             cover completely. Messy world: {:.0}% of inputs in variants the rules do not know \
             (typo, ordinal day, two-digit year, year first, dotted numbers), {:.0}% in variants \
             they know. Contenders: the rule-based pipeline, and a character GRU \
             encoder-decoder with attention ({} embedding, {} hidden) trained on N pairs \
             ({} passes, {}-{} Adam steps of {}), greedy decoding. Test: {} held-out pairs per \
             world, never among the training inputs; exact match (and character error rate).",
            100.0 * cfg.messy.unknown_share,
            100.0 * cfg.messy.known_share,
            cfg.net.embed,
            cfg.net.hidden,
            cfg.epochs,
            cfg.min_steps,
            cfg.max_steps,
            cfg.net.batch_size,
            cfg.test_examples,
        ),
        seeds,
        &cfg,
    );
    let pairs = [(END_TO_END, PIPELINE)];
    let mut values = Results::default();
    for (name, r) in &results {
        experiment::file_sweep(&mut values, name, r);
        rep.plots.push(experiment::curve_plot(
            &format!("p5-{name}"),
            &format!("P5: exact match vs training pairs, {name} world"),
            r,
            "training pairs (N)",
            "exact match (%)",
            true,
            Some("E-7: end to end works where paired data is plentiful"),
        )?);
        let (t, crossovers) = experiment::crossover_table(
            &format!("p5-{name}-crossover"),
            r,
            &pairs,
            &cfg.crossover,
        )?;
        rep.tables
            .push(r.table(&format!("p5-{name}-exact-match"), true)?);
        rep.tables.push(experiment::advantage_table(
            &format!("p5-{name}-advantage"),
            r,
            &pairs,
            &crossovers,
            true,
        ));
        rep.tables.push(t);
        rep.notes.push(format!(
            "{name} world: {}.",
            experiment::describe_crossover(END_TO_END, PIPELINE, &crossovers[0])
        ));
    }
    crate::driver::decide(&mut rep, &values, declared)?;
    let mut t = Table::new("p5-char-error-rate", &["world / contender", "N", "CER (%)"]);
    for ((who, n), v) in cer.borrow().iter() {
        t.push(vec![
            Cell::text(who),
            Cell::int(*n as i64),
            Cell::pct(summarize(v)?),
        ]);
    }
    rep.tables.push(t);
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contrast_needs_a_crossover_in_the_messy_world() {
        use transferlab_report::contrast::Outcome;
        let p = P5Profile {
            sizes: vec![100, 1000, 10000],
            seeds: 3,
        };
        let declared = contrasts(&p);
        assert_eq!(experiment::claims_of(&declared), ["E-7"]);
        let keys = experiment::sweep_keys(DECIDING_WORLD, &[PIPELINE, END_TO_END], &p.sizes);
        for k in declared[0].keys() {
            assert!(keys.contains(k), "{k}");
        }
        let outcome = |e2e: &dyn Fn(usize, usize) -> f64| {
            // The rules: the same exact match at every N and seed (deterministic).
            let sweep = experiment::test_sweep(
                &p.sizes,
                3,
                Goal::Maximize,
                &[(PIPELINE, &|_, _| 0.80), (END_TO_END, e2e)],
            );
            let mut r = Results::default();
            experiment::file_sweep(&mut r, DECIDING_WORLD, &sweep);
            declared[0].evaluate(&r).unwrap().outcome
        };
        let jitter = |s: usize| 0.01 * s as f64;
        let crossing = |n: usize, s: usize| (if n == 100 { 0.30 } else { 0.95 }) + jitter(s);
        assert_eq!(outcome(&crossing), Outcome::Supported);
        // Behind at every N: plentiful pairs do not make the network better than the rules.
        assert_eq!(outcome(&|_, s| 0.30 + jitter(s)), Outcome::Contradicted);
        // Ahead already at the smallest N: no crossover in range.
        assert_eq!(outcome(&|_, s| 0.95 + jitter(s)), Outcome::Contradicted);
        // One size: no crossover to test.
        assert!(
            contrasts(&P5Profile {
                sizes: vec![100],
                seeds: 3
            })
            .is_empty()
        );
    }

    #[test]
    fn the_config_parses_and_the_budget_grows_with_n() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/e2e/p5.toml");
        let cfg: P5Config = experiment::load_toml(&path).unwrap();
        assert!(cfg.messy.unknown_share > 0.0);
        let quick = &cfg.profiles["quick"];
        let steps: Vec<usize> = quick.sizes.iter().map(|&n| cfg.steps(n)).collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
        assert!(
            steps
                .iter()
                .all(|&s| s >= cfg.min_steps && s <= cfg.max_steps)
        );
    }
}
