//! Experiment P2, speech: hand-designed features vs end-to-end (claims E-2, E-3, E-6).
//!
//! FSDD spoken digits (every recording cut or zero-padded to `samples`), two splits: by take
//! (takes 0–4 of every speaker are the test set) and by speaker (one speaker held out as the
//! test set). From the training side, `k` recordings per digit train each contender (and
//! [`experiment::validation_size`]`(k)` more per digit validate it for early stopping), the
//! same recordings for every contender of a seed:
//!
//! - **pipeline**: MFCC ([`e2e_vs_pipeline::features`], checked against librosa) → per-coefficient
//!   standardisation (train statistics) → MLP;
//! - **intermediate**: log-mel spectrogram (standardised) → 2-D CNN (`spectrogram_cnn`):
//!   no hand-made cepstrum, still a hand-made time–frequency representation;
//! - **end-to-end**: raw waveform → M5-style 1-D CNN (`audio_cnn1d`, as the zoo's fsdd-m5).
//!
//! The claims are decided per split by the contrasts of [`contrasts`], declared from the
//! profile before any run.

use std::collections::BTreeMap;
use std::path::Path;

use core_tensor::data::{TensorDataset, permutation, splitmix64, stratified_indices};
use core_tensor::datasets::{Fsdd, Recording};
use core_tensor::train::{FitReport, Goal};
use core_tensor::{Error, Result};
use pretrained_zoo::arch::{ArchConfig, MlpConfig};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use transferlab_report::ExperimentReport;
use transferlab_report::contrast::{self, Contrast, Test};
use transferlab_report::stats::Results;

use crate::e2e::common::{self as experiment, Ctx, Recipe, RunOptions, stored};
use crate::margins;
use e2e_vs_pipeline::features::{FeatureConfig, FeatureExtractor, waveform_batch};
use e2e_vs_pipeline::pipeline::{EndToEnd, LearnedStage, Metric, Objective, evaluate};
use e2e_vs_pipeline::sweep::{CrossoverConfig, SweepPlan, SweepResult};

/// `experiments/p2.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2Config {
    /// Samples per recording (cut or zero-padded).
    pub samples: usize,
    /// Hidden widths of the MFCC classifier.
    pub mfcc_hidden: Vec<i64>,
    /// The log-mel CNN.
    pub log_mel_model: ArchConfig,
    /// The waveform CNN.
    pub waveform_model: ArchConfig,
    /// Recipe of the MFCC classifier.
    pub mfcc_recipe: Recipe,
    /// Recipe of the log-mel CNN.
    pub log_mel_recipe: Recipe,
    /// How the log-mel CNN's input is standardised (statistics of the training examples).
    pub log_mel_norm: LogMelNorm,
    /// Recipe of the waveform CNN.
    pub waveform_recipe: Recipe,
    /// Per-recording scaling of the waveform CNN's input.
    pub waveform_norm: WaveformNorm,
    /// Crossover estimate settings.
    pub crossover: CrossoverConfig,
    /// Profiles.
    pub profiles: BTreeMap<String, P2Profile>,
}

/// A split of FSDD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitSpec {
    /// Takes 0–4 of every speaker are the test set.
    Take,
    /// This speaker is the test set.
    Speaker {
        /// The held-out speaker.
        speaker: String,
    },
}

impl SplitSpec {
    fn name(&self) -> String {
        match self {
            SplitSpec::Take => "split by take".into(),
            SplitSpec::Speaker { speaker } => format!("held-out speaker {speaker}"),
        }
    }

    fn tag(&self) -> String {
        match self {
            SplitSpec::Take => "by-take".into(),
            SplitSpec::Speaker { speaker } => format!("speaker-{speaker}"),
        }
    }
}

/// What a profile varies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2Profile {
    /// The splits.
    pub splits: Vec<SplitSpec>,
    /// Training recordings per digit, increasing.
    pub per_class: Vec<usize>,
    /// Seeds.
    pub seeds: u64,
}

/// Names of the contenders.
pub const PIPELINE: &str = "MFCC → MLP";
/// See [`PIPELINE`].
pub const INTERMEDIATE: &str = "log-mel → CNN";
/// See [`PIPELINE`].
pub const END_TO_END: &str = "waveform → 1-D CNN";

/// The three inputs of one set of recordings.
struct Inputs {
    mfcc: Tensor,
    log_mel: Tensor,
    waveform: Tensor,
    labels: Tensor,
}

impl Inputs {
    fn new(
        recs: &[&Recording],
        fx: &FeatureExtractor,
        samples: usize,
        norm: WaveformNorm,
    ) -> Result<Self> {
        let audio: Vec<&[f32]> = recs.iter().map(|r| r.samples.as_slice()).collect();
        let labels: Vec<i64> = recs.iter().map(|r| i64::from(r.digit)).collect();
        Ok(Inputs {
            mfcc: fx.mfcc_batch(&audio, samples)?.to_kind(Kind::Float),
            log_mel: fx.log_mel_batch(&audio, samples)?.to_kind(Kind::Float),
            waveform: norm.apply(&waveform_batch(&audio, samples)?),
            labels: Tensor::from_slice(&labels),
        })
    }
}

/// How log-mel spectrograms are standardised with the training examples' statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogMelNorm {
    /// One mean and standard deviation over every value.
    Global,
    /// A mean and standard deviation per mel band (over examples and frames).
    PerBand,
    /// Each recording's decibels relative to its own maximum (a per-recording gain, as
    /// librosa's `ref=np.max`; the log-mel counterpart of [`WaveformNorm::Rms`]), then one
    /// mean and standard deviation over every value.
    PeakThenGlobal,
}

/// `x` `[N, …]` minus each example's maximum.
fn relative_to_peak(x: &Tensor) -> Tensor {
    let n = x.size()[0];
    let peak = x.reshape([n, -1]).amax(1, true);
    let mut shape = vec![n];
    shape.extend(std::iter::repeat_n(1, x.dim() - 1));
    x - peak.view(shape.as_slice())
}

/// How each raw waveform is scaled before the 1-D CNN (a per-recording gain, nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveformNorm {
    /// The samples as recorded, in `[-1, 1)`.
    None,
    /// Divided by the recording's root mean square over the samples kept (unit RMS; the
    /// zero padding counts), so loudness differences between speakers and takes vanish.
    Rms,
}

impl WaveformNorm {
    /// `x` `[N, 1, samples]` scaled per recording.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            WaveformNorm::None => x.shallow_clone(),
            WaveformNorm::Rms => {
                let rms = x
                    .square()
                    .mean_dim([1, 2].as_slice(), true, Kind::Float)
                    .sqrt()
                    .clamp_min(1e-4);
                x / rms
            }
        }
    }
}

/// Standardises `x` `[N, C, …]` per channel `C` with the statistics of `reference`.
fn standardise(x: &Tensor, reference: &Tensor, per_channel: bool) -> Tensor {
    if per_channel {
        let c = reference.size()[1];
        let r = reference.transpose(0, 1).reshape([c, -1]);
        let mut shape = vec![1, c];
        shape.extend(std::iter::repeat_n(1, x.dim() - 2));
        let mean = r.mean_dim(1, false, Kind::Float).view(shape.as_slice());
        let std = r
            .std_dim(1, false, false)
            .clamp_min(1e-6)
            .view(shape.as_slice());
        (x - mean) / std
    } else {
        (x - reference.mean(Kind::Float)) / reference.std(false).clamp_min(1e-6)
    }
}

/// The recordings of one split and their inputs.
struct SplitData {
    train: Inputs,
    test: Inputs,
}

/// Trains `arch` on (`train`, `val`) and scores it on `test`.
#[allow(clippy::too_many_arguments)]
fn fit_score(
    arch: &ArchConfig,
    recipe: &Recipe,
    train: TensorDataset,
    val: TensorDataset,
    test: &TensorDataset,
    seed: u64,
    device: Device,
    score_train: bool,
) -> Result<(f64, FitReport, Option<f64>)> {
    let examples = train.len();
    let mut m = EndToEnd::new(
        "model",
        LearnedStage::from_arch(device, arch, Objective::Classification, seed)?,
    );
    let report = m
        .stage
        .fit(&train, Some(&val), &recipe.resolve(examples), seed)?;
    let on_train = if score_train {
        Some(evaluate(&m, &train, 256, Metric::Accuracy)?)
    } else {
        None
    };
    Ok((evaluate(&m, test, 256, Metric::Accuracy)?, report, on_train))
}

/// The three contenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    /// [`PIPELINE`].
    Mfcc,
    /// [`INTERMEDIATE`].
    LogMel,
    /// [`END_TO_END`].
    Waveform,
}

fn one_run(
    cfg: &P2Config,
    data: &SplitData,
    which: Which,
    k: usize,
    seed: u64,
    device: Device,
    score_train: bool,
) -> Result<(f64, FitReport, Option<f64>)> {
    let v = experiment::validation_size(k);
    let idx: Vec<i64> = Vec::try_from(stratified_indices(&data.train.labels, 10, k + v, seed)?)?;
    // Per digit: k of its chosen recordings train, the other v validate, in a seeded order
    // (the chosen ones come sorted by position, i.e. by speaker: a plain cut would train on
    // the first speakers and validate on the last).
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for (digit, chunk) in idx.chunks(k + v).enumerate() {
        let order: Vec<i64> = Vec::try_from(permutation(
            (k + v) as i64,
            splitmix64(seed ^ (0xD161_7000 + digit as u64)),
            Device::Cpu,
        ))?;
        let chunk: Vec<i64> = order.iter().map(|&i| chunk[i as usize]).collect();
        tr.extend_from_slice(&chunk[..k]);
        va.extend_from_slice(&chunk[k..]);
    }
    let (tr, va) = (Tensor::from_slice(&tr), Tensor::from_slice(&va));
    let y = &data.train.labels;
    let sets =
        |x: &Tensor, test: &Tensor| -> Result<(TensorDataset, TensorDataset, TensorDataset)> {
            Ok((
                TensorDataset::new(x.index_select(0, &tr), y.index_select(0, &tr))?,
                TensorDataset::new(x.index_select(0, &va), y.index_select(0, &va))?,
                TensorDataset::new(test.shallow_clone(), data.test.labels.shallow_clone())?,
            ))
        };
    let (arch, recipe, (train, val, test)) = match which {
        Which::Mfcc => {
            let reference = data.train.mfcc.index_select(0, &tr);
            let flat = |x: &Tensor| standardise(x, &reference, true).flatten(1, -1);
            let inputs = flat(&data.train.mfcc).size()[1];
            let arch = ArchConfig::Mlp(MlpConfig {
                inputs,
                hidden: cfg.mfcc_hidden.clone(),
                classes: 10,
            });
            (
                arch,
                &cfg.mfcc_recipe,
                sets(&flat(&data.train.mfcc), &flat(&data.test.mfcc))?,
            )
        }
        Which::LogMel => {
            let reference = data.train.log_mel.index_select(0, &tr);
            let s = |x: &Tensor| match cfg.log_mel_norm {
                LogMelNorm::Global => standardise(x, &reference, false),
                LogMelNorm::PeakThenGlobal => {
                    standardise(&relative_to_peak(x), &relative_to_peak(&reference), false)
                }
                // [N, 1, mels, frames] → mels as channels and back.
                LogMelNorm::PerBand => {
                    standardise(&x.transpose(1, 2), &reference.transpose(1, 2), true)
                        .transpose(1, 2)
                }
            };
            (
                cfg.log_mel_model.clone(),
                &cfg.log_mel_recipe,
                sets(&s(&data.train.log_mel), &s(&data.test.log_mel))?,
            )
        }
        Which::Waveform => (
            cfg.waveform_model.clone(),
            &cfg.waveform_recipe,
            sets(&data.train.waveform, &data.test.waveform)?,
        ),
    };
    fit_score(&arch, recipe, train, val, &test, seed, device, score_train)
}

/// A split's training side cut again for tuning recipes, so that no choice looks at the test
/// set: the training side of `split` is divided into a training pool and a **tuning set**
/// that plays the test set's part. Split by take: the tuning set is takes 5–9 of every
/// speaker (the training side's first five, as takes 0–4 are the test set); held-out
/// speaker: the tuning set is the next training speaker in alphabetical order (after the
/// last, the first).
pub struct Tuning {
    data: SplitData,
    /// What the tuning set is.
    pub description: String,
}

impl std::fmt::Debug for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tuning")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// What one tuning run did.
#[derive(Debug, Clone, Serialize)]
pub struct TuningRun {
    /// Accuracy on the tuning set.
    pub accuracy: f64,
    /// Accuracy on its own training examples (evaluation mode).
    pub train_accuracy: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch whose weights were kept.
    pub final_epoch: usize,
    /// Optimiser steps.
    pub steps: u64,
    /// Mean training loss of the first and the last epoch.
    pub train_loss: (f64, f64),
    /// Best validation accuracy (early-stopping set, from the training pool).
    pub best_validation: Option<f64>,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// Wall time of the fit.
    pub seconds: f64,
}

impl Tuning {
    /// The tuning cut of `split` with `cfg`'s input settings.
    pub fn new(cfg: &P2Config, split: &SplitSpec) -> Result<Self> {
        let fsdd = Fsdd::load(&crate::paths::cache_dir())?;
        let fx = FeatureExtractor::new(FeatureConfig::fsdd())?;
        let (train, _test) = match split {
            SplitSpec::Take => fsdd.split_by_take(),
            SplitSpec::Speaker { speaker } => fsdd.split_by_speaker(speaker)?,
        };
        let (pool, tuning, description): (Vec<&Recording>, Vec<&Recording>, String) = match split {
            SplitSpec::Take => {
                let (t, p) = train.iter().partition(|r| (5..=9).contains(&r.take));
                (p, t, "takes 5-9 of every speaker".into())
            }
            SplitSpec::Speaker { speaker } => {
                let others: Vec<&String> = fsdd.speakers.iter().filter(|s| *s != speaker).collect();
                let after = fsdd.speakers.iter().position(|s| s == speaker).unwrap_or(0);
                let next = fsdd.speakers[after + 1..]
                    .first()
                    .or(others.first().copied())
                    .ok_or_else(|| Error::InvalidArgument("FSDD has one speaker".into()))?;
                let (t, p) = train.iter().partition(|r| &r.speaker == next);
                (p, t, format!("speaker {next}"))
            }
        };
        Ok(Tuning {
            data: SplitData {
                train: Inputs::new(&pool, &fx, cfg.samples, cfg.waveform_norm)?,
                test: Inputs::new(&tuning, &fx, cfg.samples, cfg.waveform_norm)?,
            },
            description,
        })
    }

    /// Trains contender `which` with `cfg`'s model and recipe on `k` recordings per digit of
    /// the training pool (seed `seed`, as in the experiment) and scores it on the tuning set.
    pub fn run(
        &self,
        cfg: &P2Config,
        which: Which,
        k: usize,
        seed: u64,
        device: Device,
    ) -> Result<TuningRun> {
        let (accuracy, fit, on_train) = one_run(cfg, &self.data, which, k, seed, device, true)?;
        let loss = |e: Option<&core_tensor::train::EpochLog>| e.map_or(f64::NAN, |e| e.train_loss);
        Ok(TuningRun {
            accuracy,
            train_accuracy: on_train.unwrap_or(f64::NAN),
            epochs: fit.epochs.len(),
            final_epoch: fit.final_epoch,
            steps: fit.steps,
            train_loss: (loss(fit.epochs.first()), loss(fit.epochs.last())),
            best_validation: fit.best_validation,
            stopped_early: fit.stopped_early,
            seconds: fit.seconds,
        })
    }
}

/// The contrasts that decide P2's claims, declared from the profile alone (nothing run), per
/// split, on the keys [`experiment::key`]`(split tag, contender, k)`; accuracy differences
/// paired by seed, margin [`margins::design_accuracy`] unless said:
///
/// - `{tag}/E-2` (E-2, with at least two sizes): a crossover — at the smallest k the MFCC
///   pipeline is as good or better than the waveform network (non-inferiority of MFCC −
///   waveform), at the largest k the waveform network is better (superiority of waveform −
///   MFCC);
/// - `{tag}/E-3` (E-3): at the middle k of the sweep (`per_class[len / 2]`) the log-mel
///   network lies strictly between the two, whichever of them is ahead: any of two (Holm)
///   all-of-two contrasts, log-mel − MFCC > 0 and waveform − log-mel > 0, or log-mel −
///   waveform > 0 and MFCC − log-mel > 0, each a superiority (no comparator chosen by its
///   observed mean);
/// - `{tag}/E-6` (E-6, with at least two sizes): all of two — the MFCC pipeline ahead of the
///   waveform network at the smallest k (superiority, [`margins::design_accuracy`]), and a
///   trend: that advantage at the smallest k minus that at the largest k, paired by seed, is
///   positive ([`margins::gain_shrinks`]).
pub fn contrasts(p: &P2Profile) -> Vec<Contrast> {
    let sizes = &p.per_class;
    let (Some(&small), Some(&large)) = (sizes.first(), sizes.last()) else {
        return Vec::new();
    };
    let mid = sizes[sizes.len() / 2];
    let unit = margins::accuracy_points;
    let mut out = Vec::new();
    for split in &p.splits {
        let tag = split.tag();
        let name = split.name();
        let key = |c: &str, k: usize| experiment::key(&tag, c, k);
        let diff = |id: String, kind, (a, b): (&str, &str), k: usize| {
            Contrast::paired(
                &id,
                &[],
                format!("{a} − {b} at k = {k}"),
                unit(),
                kind,
                &key(a, k),
                &key(b, k),
                margins::design_accuracy(),
            )
        };
        if sizes.len() >= 2 {
            out.push(Contrast::crossover(
                &format!("{tag}/E-2"),
                &["E-2"],
                format!(
                    "FSDD, {name}: {PIPELINE} as good or better at k = {small}, {END_TO_END} \
                     better at k = {large}"
                ),
                diff(
                    format!("{tag}/E-2/smallest"),
                    contrast::Kind::NonInferiority,
                    (PIPELINE, END_TO_END),
                    small,
                ),
                diff(
                    format!("{tag}/E-2/largest"),
                    contrast::Kind::Superiority,
                    (END_TO_END, PIPELINE),
                    large,
                ),
            ));
        }
        let between = |low: &str, high: &str| {
            let id = format!("{tag}/E-3/{low} < {INTERMEDIATE} < {high}");
            experiment::composite(
                &id,
                &[],
                format!("{low} < {INTERMEDIATE} < {high} at k = {mid}"),
                unit(),
                margins::design_accuracy(),
                Test::AllOf(vec![
                    diff(
                        format!("{id}/above"),
                        contrast::Kind::Superiority,
                        (INTERMEDIATE, low),
                        mid,
                    ),
                    diff(
                        format!("{id}/below"),
                        contrast::Kind::Superiority,
                        (high, INTERMEDIATE),
                        mid,
                    ),
                ]),
            )
        };
        out.push(experiment::composite(
            &format!("{tag}/E-3"),
            &["E-3"],
            format!("FSDD, {name}: {INTERMEDIATE} between the other two at k = {mid}"),
            unit(),
            margins::design_accuracy(),
            Test::AnyOf(vec![
                between(PIPELINE, END_TO_END),
                between(END_TO_END, PIPELINE),
            ]),
        ));
        if sizes.len() >= 2 {
            // "They help most with a small training set": they help at the smallest k, and
            // their advantage there exceeds that at the largest k (both needed).
            let mut trend = Contrast::trend(
                "shrinks",
                &[],
                format!("({PIPELINE} − {END_TO_END}) at k = {small} minus at k = {large}"),
                unit(),
                (&key(PIPELINE, small), &key(END_TO_END, small)),
                (&key(PIPELINE, large), &key(END_TO_END, large)),
                margins::gain_shrinks(),
            );
            trend.claims.clear();
            out.push(experiment::composite(
                &format!("{tag}/E-6"),
                &["E-6"],
                format!(
                    "FSDD, {name}: the hand-designed features help at k = {small}, and more \
                     than at k = {large}"
                ),
                unit(),
                margins::design_accuracy(),
                Test::AllOf(vec![
                    diff(
                        "helps".into(),
                        contrast::Kind::Superiority,
                        (PIPELINE, END_TO_END),
                        small,
                    ),
                    trend,
                ]),
            ));
        }
    }
    out
}

fn sweep_split(
    cfg: &P2Config,
    p: &P2Profile,
    data: &SplitData,
    split: &SplitSpec,
    seeds: u64,
    ctx: &Ctx<'_>,
) -> Result<Option<SweepResult>> {
    let scope = serde_json::json!({
        "split": split, "samples": cfg.samples, "features": FeatureConfig::fsdd(),
        "mfcc_hidden": cfg.mfcc_hidden, "log_mel_model": cfg.log_mel_model,
        "waveform_model": cfg.waveform_model, "waveform_norm": cfg.waveform_norm,
        "log_mel_norm": cfg.log_mel_norm,
        "mfcc_recipe": cfg.mfcc_recipe,
        "log_mel_recipe": cfg.log_mel_recipe, "waveform_recipe": cfg.waveform_recipe,
    });
    let label = format!("p2 {}", split.name());
    let device = ctx.device;
    let contenders = vec![
        stored(ctx, "p2-speech", &label, &scope, PIPELINE, |k, seed| {
            Ok(one_run(cfg, data, Which::Mfcc, k, seed, device, false)?.0)
        }),
        stored(ctx, "p2-speech", &label, &scope, INTERMEDIATE, |k, seed| {
            Ok(one_run(cfg, data, Which::LogMel, k, seed, device, false)?.0)
        }),
        stored(ctx, "p2-speech", &label, &scope, END_TO_END, |k, seed| {
            Ok(one_run(cfg, data, Which::Waveform, k, seed, device, false)?.0)
        }),
    ];
    let plan = SweepPlan {
        sizes: p.per_class.clone(),
        seeds: experiment::seeds(seeds),
        goal: Goal::Maximize,
    };
    // Accuracies: proportions of the split's test recordings.
    let tested = data.test.labels.size()[0].max(1) as usize;
    Ok(experiment::sweep(ctx, contenders, &plan)?.map(|r| r.proportions_of(tested)))
}

/// Runs P2 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: P2Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let check = || -> Result<()> {
        cfg.log_mel_model.validate()?;
        cfg.waveform_model.validate()?;
        cfg.mfcc_recipe.validate("mfcc_recipe")?;
        cfg.log_mel_recipe.validate("log_mel_recipe")?;
        cfg.waveform_recipe.validate("waveform_recipe")
    };
    check().map_err(|e| e.in_file(config_path))?;
    let p = experiment::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let ctx = Ctx::new(opts, on_run)?;
    ctx.reads(&["fsdd"])?;
    let fsdd = Fsdd::load(&crate::paths::cache_dir())?;
    let fx = FeatureExtractor::new(FeatureConfig::fsdd())?;

    let mut results = Vec::new();
    for split in &p.splits {
        let (train, test) = match split {
            SplitSpec::Take => fsdd.split_by_take(),
            SplitSpec::Speaker { speaker } => fsdd.split_by_speaker(speaker)?,
        };
        let data = SplitData {
            train: Inputs::new(&train, &fx, cfg.samples, cfg.waveform_norm)?,
            test: Inputs::new(&test, &fx, cfg.samples, cfg.waveform_norm)?,
        };
        if let Some(r) = sweep_split(&cfg, p, &data, split, seeds, &ctx)? {
            results.push((split.clone(), r));
        }
    }
    let declared = contrasts(p);
    let claims = experiment::claims_of(&declared);
    if ctx.sharded() {
        return Ok(ctx.shard_report("P2", "speech", &experiment::as_strs(&claims), seeds));
    }

    let mut rep = ctx.report(
        "P2",
        "speech: MFCC pipeline vs log-mel CNN vs raw-waveform CNN",
        &experiment::as_strs(&claims),
        format!(
            "FSDD, {} samples per recording; splits: {}. k ∈ {:?} training recordings per digit \
             (+ a fifth per digit for validation, from the training side). {PIPELINE}: 13 MFCC \
             (our implementation, matching librosa) standardised per coefficient → MLP {:?}; \
             {INTERMEDIATE}: 40-band log-mel → {}; {END_TO_END}: raw waveform → {}.",
            cfg.samples,
            p.splits
                .iter()
                .map(SplitSpec::name)
                .collect::<Vec<_>>()
                .join(", "),
            p.per_class,
            cfg.mfcc_hidden,
            serde_json::to_string(&cfg.log_mel_model).unwrap_or_default(),
            serde_json::to_string(&cfg.waveform_model).unwrap_or_default(),
        ),
        seeds,
        &cfg,
    );
    let pairs = [
        (END_TO_END, PIPELINE),
        (INTERMEDIATE, PIPELINE),
        (END_TO_END, INTERMEDIATE),
    ];
    let mut values = Results::default();
    for (split, result) in &results {
        let tag = split.tag();
        experiment::file_sweep(&mut values, &tag, result);
        rep.tables
            .push(result.table(&format!("p2-{tag}-accuracy (%)"), true)?);
        let (t, crossovers) = experiment::crossover_table(
            &format!("p2-{tag}-crossovers"),
            result,
            &pairs,
            &cfg.crossover,
        )?;
        rep.tables.push(t);
        rep.tables.push(experiment::advantage_table(
            &format!("p2-{tag}-advantage (accuracy points)"),
            result,
            &pairs,
            &crossovers,
            true,
        ));
        rep.plots.push(experiment::curve_plot(
            &format!("p2-{tag}"),
            &format!("P2 ({}): test accuracy vs recordings per digit", split.name()),
            result,
            "training recordings per digit (k)",
            "test accuracy (%)",
            true,
            Some("E-2: pipeline ahead with little data, end-to-end ahead with a lot (speech: 3,000 h vs 10,000–100,000 h)"),
        )?);
        for ((a, b), c) in pairs.iter().zip(&crossovers) {
            rep.notes.push(format!(
                "{}: {}.",
                split.name(),
                experiment::describe_crossover(a, b, c)
            ));
        }
    }
    crate::driver::decide(&mut rep, &values, declared)?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use transferlab_report::contrast::Outcome;

    fn profile() -> P2Profile {
        P2Profile {
            splits: vec![
                SplitSpec::Take,
                SplitSpec::Speaker {
                    speaker: "theo".into(),
                },
            ],
            per_class: vec![4, 16, 64],
            seeds: 3,
        }
    }

    #[test]
    fn the_contrasts_read_only_keys_the_sweeps_file() {
        let p = profile();
        let declared = contrasts(&p);
        let ids: Vec<&str> = declared.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "by-take/E-2",
                "by-take/E-3",
                "by-take/E-6",
                "speaker-theo/E-2",
                "speaker-theo/E-3",
                "speaker-theo/E-6"
            ]
        );
        assert_eq!(experiment::claims_of(&declared), ["E-2", "E-3", "E-6"]);
        let mut keys = std::collections::BTreeSet::new();
        for split in &p.splits {
            keys.extend(experiment::sweep_keys(
                &split.tag(),
                &[PIPELINE, INTERMEDIATE, END_TO_END],
                &p.per_class,
            ));
        }
        for c in &declared {
            for k in c.keys() {
                assert!(keys.contains(k), "{}: {k}", c.id);
            }
        }
        // E-3 reads the middle k only.
        assert!(declared[1].keys().iter().all(|k| k.ends_with("/16")));
    }

    /// The outcomes of the contrasts of one split (`[E-2, E-3, E-6]`) on curves `f(contender,
    /// k, seed)`.
    fn outcomes(f: &dyn Fn(&str, usize, usize) -> f64) -> Vec<Outcome> {
        let p = P2Profile {
            splits: vec![SplitSpec::Take],
            ..profile()
        };
        let curve = |c: &'static str| move |k: usize, s: usize| f(c, k, s);
        let (a, b, c) = (curve(PIPELINE), curve(INTERMEDIATE), curve(END_TO_END));
        let sweep = experiment::test_sweep(
            &p.per_class,
            3,
            Goal::Maximize,
            &[(PIPELINE, &a), (INTERMEDIATE, &b), (END_TO_END, &c)],
        );
        let mut r = Results::default();
        experiment::file_sweep(&mut r, "by-take", &sweep);
        contrasts(&p)
            .iter()
            .map(|c| c.evaluate(&r).unwrap().outcome)
            .collect()
    }

    #[test]
    fn the_contrasts_decide_on_the_swept_values() {
        // MFCC flat at 80%; waveform from 40% to 95%; log-mel halfway at every k.
        let crossing = |c: &str, k: usize, s: usize| {
            let wave = match k {
                4 => 0.40,
                16 => 0.60,
                _ => 0.95,
            };
            let jitter = 0.004 * s as f64;
            match c {
                PIPELINE => 0.80 + jitter,
                END_TO_END => wave + 1.5 * jitter,
                _ => (0.80 + wave) / 2.0 + 1.2 * jitter,
            }
        };
        assert_eq!(outcomes(&crossing), [Outcome::Supported; 3]);
        // The other order at the middle k (waveform ahead, MFCC behind) also lies between.
        let swapped = |c: &str, k: usize, s: usize| match (c, k) {
            (PIPELINE, 16) => 0.60 + 0.003 * s as f64,
            (END_TO_END, 16) => 0.80 + 0.005 * s as f64,
            _ => crossing(c, k, s),
        };
        assert_eq!(outcomes(&swapped)[1], Outcome::Supported);
        // Waveform ahead everywhere by a constant margin, log-mel below both: no crossover,
        // nothing between, no shrinking advantage.
        let flat = |c: &str, k: usize, s: usize| {
            let base = 0.5 + 0.1 * (k as f64).log2() / 6.0;
            let jitter = 0.004 * s as f64;
            match c {
                PIPELINE => base + jitter,
                END_TO_END => base + 0.2 + 1.5 * jitter,
                _ => base - 0.2 + 1.2 * jitter,
            }
        };
        let o = outcomes(&flat);
        assert_eq!(o[..2], [Outcome::Contradicted, Outcome::Contradicted]);
        assert_ne!(o[2], Outcome::Supported);
    }

    #[test]
    fn standardising_uses_the_reference_statistics_per_channel() {
        let r = Tensor::from_slice(&[0.0f32, 2.0, 10.0, 30.0]).view([2, 2, 1]);
        let z = standardise(&r, &r, true);
        let m = z.mean_dim([0, 2].as_slice(), false, Kind::Float);
        assert!(m.abs().max().double_value(&[]) < 1e-6);
        let one = standardise(&r, &r, false);
        assert!(one.mean(Kind::Float).double_value(&[]).abs() < 1e-6);
    }
}
