//! Experiment X5, audio transfer across speakers (claim T-1 on sound).
//!
//! An M5-style 1-D CNN is pre-trained on the raw waveforms of five FSDD speakers and adapted
//! to the sixth with k recordings per digit, against training on the sixth speaker alone. The
//! held-out speaker's takes 0..`test_takes` are its test set; the k examples (and a validation
//! share) come from its other takes. T-1 is decided by the contrasts declared in
//! [`contrasts`] before any run, on per-seed values averaged over the held-out speakers.

use std::collections::BTreeMap;
use std::path::Path;

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::Plan;
use crate::margins;
use crate::xfer::common::{self as experiments, Adaptation, Results, RunOptions};
use crate::xfer::runner::{DataSpec, LabelMode, PixelMode, Pretrain, PretrainRecipe, SourceSpec};
use transfer::strategy::Strategy;

/// `experiments/x5.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X5Config {
    /// All speakers of the dataset (the source is every speaker but the held-out one).
    pub speakers: Vec<String>,
    /// Takes `0..test_takes` of the held-out speaker are its test set.
    pub test_takes: u32,
    /// How the source is pre-trained.
    pub recipe: PretrainRecipe,
    /// How it is adapted.
    pub adapt: Adaptation,
    /// Profiles.
    pub profiles: BTreeMap<String, X5Profile>,
}

/// Speakers, sizes, strategies and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X5Profile {
    /// Speakers held out in turn.
    pub held_out: Vec<String>,
    /// Recordings per digit of the held-out speaker.
    pub per_class: Vec<usize>,
    /// Strategies; `scratch` and `fine_tune` must be among them.
    pub strategies: Vec<Strategy>,
    /// Seeds.
    pub seeds: u64,
    /// Pre-train one source per held-out speaker (seed 0) shared by every seed, instead of
    /// one per seed (cheaper; the interval then leaves out the source's own variance).
    pub shared_source: bool,
}

/// Where the per-seed test accuracy is filed for the contrasts: `{k}/{strategy}`, the mean over
/// the held-out speakers of each seed's accuracy (one value per seed).
pub fn result_key(k: usize, strategy: &str) -> String {
    format!("{k}/{strategy}")
}

/// Where one held-out speaker's per-seed test accuracy is filed: `{speaker}/{k}/{strategy}`.
pub fn speaker_key(speaker: &str, k: usize, strategy: &str) -> String {
    format!("{speaker}/{}", result_key(k, strategy))
}

/// The contrasts that decide T-1 on sound, declared from the profile before any run:
/// (fine_tune − scratch) at the smallest k is positive (superiority, δ =
/// [`margins::transfer_gain`]) and larger than at the largest k (trend on the per-seed gains, δ
/// = [`margins::gain_shrinks`]), on the speaker-averaged values of [`result_key`]. With
/// `shared_source` one source per held-out speaker serves every seed, so both are marked shared.
pub fn contrasts(p: &X5Profile) -> Vec<Contrast> {
    let (Some(&small), Some(&large)) = (p.per_class.iter().min(), p.per_class.iter().max()) else {
        return Vec::new();
    };
    let speakers = p.held_out.join(", ");
    let mark = |c: Contrast| {
        if p.shared_source {
            c.shared(
                "one source per held-out speaker (pre-trained with seed 0) serves every seed: the \
                 seeds replicate the k-recording draw and the adaptation, not pre-training",
            )
        } else {
            c
        }
    };
    let mut out = vec![mark(Contrast::paired(
        "gain-smallest-k",
        &["T-1"],
        format!(
            "fine_tune − scratch at k = {small}/digit, mean over held-out speakers ({speakers})"
        ),
        margins::accuracy_points(),
        Kind::Superiority,
        &result_key(small, "fine_tune"),
        &result_key(small, "scratch"),
        margins::transfer_gain(),
    ))];
    if small != large {
        out.push(mark(Contrast::trend(
            "gain-shrinks",
            &["T-1"],
            format!(
                "(fine_tune − scratch) at k = {small} minus at k = {large}, mean over held-out \
                 speakers ({speakers}), paired by seed"
            ),
            margins::accuracy_points(),
            (
                &result_key(small, "fine_tune"),
                &result_key(small, "scratch"),
            ),
            (
                &result_key(large, "fine_tune"),
                &result_key(large, "scratch"),
            ),
            margins::gain_shrinks(),
        )));
    }
    out
}

/// The per-seed accuracies averaged over the held-out speakers, filed by [`result_key`]: each
/// value is one seed (the speakers are a fixed set, not replicates). With `test_size` (the
/// recordings of all the held-out speakers' test sets), each is filed as a proportion of them,
/// so that its summary's interval stays in [0, 1].
fn speaker_means(p: &X5Profile, by_speaker: &Results, test_size: Option<usize>) -> Result<Results> {
    let mut out = Results::default();
    for &k in &p.per_class {
        for strategy in &p.strategies {
            let per: Vec<&[f64]> = p
                .held_out
                .iter()
                .map(|h| by_speaker.get(&speaker_key(h, k, strategy.name())))
                .collect::<transferlab_report::Result<_>>()?;
            let seeds = per.first().map_or(0, |v| v.len());
            if per.iter().any(|v| v.len() != seeds) {
                return Err(core_tensor::Error::InvalidArgument(format!(
                    "x5: the held-out speakers have different numbers of seeds at k = {k}, {}",
                    strategy.name()
                )));
            }
            for seed in 0..seeds {
                let sum: f64 = per.iter().map(|v| v[seed]).sum();
                let mean = sum / per.len() as f64;
                match test_size {
                    Some(n) => out.push_proportion(result_key(k, strategy.name()), mean, n),
                    None => out.push(result_key(k, strategy.name()), mean),
                }
            }
        }
    }
    Ok(out)
}

/// Runs X5 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: X5Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    for needed in [Strategy::Scratch, Strategy::FineTune] {
        if !p.strategies.contains(&needed) {
            return Err(core_tensor::Error::format(
                config_path,
                format!(
                    "profiles.{}.strategies must include {}",
                    opts.profile,
                    needed.name()
                ),
            ));
        }
    }
    let seeds = opts.seeds_or(p.seeds)?;
    // The held-out speaker of each planned run, in plan order (its cell leaves it out).
    let mut speaker_of: Vec<String> = Vec::new();
    let (mut rep, done) = experiments::with_context(opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for held in &p.held_out {
            let others: Vec<String> = cfg
                .speakers
                .iter()
                .filter(|s| *s != held)
                .cloned()
                .collect();
            let source = SourceSpec::Pretrain(Pretrain {
                data: DataSpec::Fsdd {
                    speakers: others,
                    test_takes: 5,
                },
                per_class: None,
                labels: LabelMode::True,
                pixels: PixelMode::Original,
                recipe: cfg.recipe.clone(),
            });
            let target = DataSpec::Fsdd {
                speakers: vec![held.clone()],
                test_takes: cfg.test_takes,
            };
            for &k in &p.per_class {
                for seed in 0..seeds {
                    let source_seed = if p.shared_source { 0 } else { seed };
                    for strategy in &p.strategies {
                        let run = cfg.adapt.run(
                            source.clone(),
                            source_seed,
                            target.clone(),
                            10,
                            k,
                            strategy.clone(),
                        );
                        let label = format!("x5 {held} k={k} {} seed {seed}", strategy.name());
                        plan.push(format!("{k}/{}", strategy.name()), run, seed, label);
                        speaker_of.push(held.clone());
                    }
                }
            }
        }
        let done = ctx.execute(plan)?;
        let rep = ctx.session().report(
            crate::driver::About {
                id: "X5",
                title: "audio transfer across speakers",
                claims: &["T-1"],
            },
            format!(
                "FSDD raw waveforms (M5-style 1-D CNN). Source: pre-trained on the other five \
                 speakers; target: held-out speaker(s) {} with k = {:?} recordings per digit \
                 (test: its takes 0–{}); strategies {}; {} source{}.",
                p.held_out.join(", "),
                p.per_class,
                cfg.test_takes - 1,
                p.strategies
                    .iter()
                    .map(Strategy::name)
                    .collect::<Vec<_>>()
                    .join(", "),
                if p.shared_source { "one" } else { "a" },
                if p.shared_source {
                    " per held-out speaker (seed 0), shared by the seeds"
                } else {
                    " per seed"
                }
            ),
            seeds,
            &cfg,
        );
        Ok((rep, done))
    })?;
    let Some(done) = done else {
        return Ok(rep);
    };
    // Per held-out speaker, one value per seed (the plan runs speaker by speaker, each in seed
    // order); then the mean over the speakers per seed, which the contrasts read.
    if done.len() != speaker_of.len() {
        return Err(core_tensor::Error::InvalidArgument(format!(
            "x5: {} results for {} planned runs",
            done.len(),
            speaker_of.len()
        )));
    }
    let mut by_speaker = Results::default();
    for ((cell, r), held) in done.into_iter().zip(&speaker_of) {
        by_speaker.push(format!("{held}/{cell}"), r.test_accuracy);
    }
    // Each held-out speaker's test set: takes 0..test_takes of each of the 10 digits.
    let tested = cfg.test_takes as usize * 10 * p.held_out.len();
    let results = speaker_means(p, &by_speaker, Some(tested))?;

    let mut table = Table::new(
        "x5-speaker-transfer",
        &[
            "k/digit",
            "strategy",
            "accuracy (%)",
            "gain over scratch (points)",
        ],
    );
    let mut acc_plot = Plot {
        id: "x5-accuracy".into(),
        title: "X5: accuracy on a new speaker vs recordings per digit".into(),
        x_label: "recordings per digit of the new speaker (k)".into(),
        y_label: "test accuracy (%)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: false,
        series: Vec::new(),
        reference: Some(
            "T-1: the gain of transfer is largest when the target has little data".into(),
        ),
    };
    for strategy in &p.strategies {
        let mut series = Series {
            name: strategy.name().into(),
            points: Vec::new(),
        };
        for &k in &p.per_class {
            let key = format!("{k}/{}", strategy.name());
            let acc = results.summary(&key)?;
            let gain = if *strategy == Strategy::Scratch {
                Cell::text("—")
            } else {
                Cell::pct(results.gain(&key, &format!("{k}/scratch"))?)
            };
            table.push(vec![
                Cell::int(k as i64),
                Cell::text(strategy.name()),
                Cell::pct(acc),
                gain,
            ]);
            series.points.push(Point {
                x: k as f64,
                y: acc,
            });
        }
        acc_plot.series.push(series);
    }
    rep.plots.push(acc_plot);
    rep.tables.push(table);
    if p.held_out.len() > 1 {
        let mut per_speaker = Table::new(
            "x5-per-speaker",
            &[
                "held-out speaker",
                "k/digit",
                "fine_tune − scratch (points)",
            ],
        );
        for held in &p.held_out {
            for &k in &p.per_class {
                per_speaker.push(vec![
                    Cell::text(held),
                    Cell::int(k as i64),
                    Cell::pct(by_speaker.gain(
                        &speaker_key(held, k, "fine_tune"),
                        &speaker_key(held, k, "scratch"),
                    )?),
                ]);
            }
        }
        rep.tables.push(per_speaker);
    }
    crate::driver::decide(&mut rep, &results, contrasts(p))?;
    rep.notes.push(format!(
        "Each value the accuracy table and the contrasts read is one seed: the mean over the \
         held-out speaker{} ({}) of that seed's test accuracy. The speakers are a fixed set, \
         not replicates, so they are averaged rather than pooled as if they were seeds.{}",
        if p.held_out.len() > 1 { "s" } else { "" },
        p.held_out.join(", "),
        if p.held_out.len() > 1 {
            " The per-speaker table shows each speaker's gain over its seeds."
        } else {
            ""
        }
    ));
    Ok(rep)
}
#[cfg(test)]
mod tests {
    use transferlab_report::contrast::Outcome;

    use super::*;

    fn config() -> X5Config {
        // The file as the profiles without overrides read it.
        crate::driver::load_toml(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/transfer/x5.toml"),
        )
        .unwrap()
    }

    /// Per-speaker results as the run collects them: fine_tune `gain(k)` above the others; seed
    /// noise differs between cells and speakers.
    fn by_speaker(p: &X5Profile, gain: impl Fn(usize) -> f64) -> Results {
        let mut r = Results::default();
        for (h, held) in p.held_out.iter().enumerate() {
            for &k in &p.per_class {
                for strategy in &p.strategies {
                    let g = if *strategy == Strategy::FineTune {
                        gain(k)
                    } else {
                        0.0
                    };
                    let key = speaker_key(held, k, strategy.name());
                    for seed in 0..3 {
                        let noise = ((key.len() * 7 + seed * 13 + h + k * seed) % 5) as f64 * 0.003;
                        r.push(key.clone(), 0.5 + g + noise);
                    }
                }
            }
        }
        r
    }

    #[test]
    fn the_contrasts_read_one_value_per_seed_from_keys_the_run_files() {
        let cfg = config();
        for p in cfg.profiles.values() {
            let means = speaker_means(p, &by_speaker(p, |_| 0.0), None).unwrap();
            let cs = contrasts(p);
            assert_eq!(cs.len(), 2);
            for c in &cs {
                assert_eq!(c.claims, ["T-1"]);
                assert_eq!(c.replication.is_some(), p.shared_source);
                for k in c.keys() {
                    // Every key is filed, with one value per seed whatever the speakers.
                    assert_eq!(means.get(k).unwrap().len(), 3, "{k}");
                }
            }
        }
    }

    #[test]
    fn a_gain_that_shrinks_is_supported_and_a_loss_is_contradicted() {
        let cfg = config();
        for p in cfg.profiles.values() {
            let small = *p.per_class.iter().min().unwrap();
            let cs = contrasts(p);
            let shrinks = speaker_means(
                p,
                &by_speaker(p, |k| if k == small { 0.3 } else { 0.02 }),
                None,
            )
            .unwrap();
            let hurts = speaker_means(
                p,
                &by_speaker(p, |k| if k == small { -0.1 } else { 0.05 }),
                None,
            )
            .unwrap();
            for c in &cs {
                assert_eq!(c.evaluate(&shrinks).unwrap().outcome, Outcome::Supported);
                assert_eq!(c.evaluate(&hurts).unwrap().outcome, Outcome::Contradicted);
            }
        }
    }

    #[test]
    fn speakers_are_averaged_per_seed() {
        let p = X5Profile {
            held_out: vec!["a".into(), "b".into()],
            per_class: vec![1],
            strategies: vec![Strategy::Scratch],
            seeds: 2,
            shared_source: false,
        };
        let mut r = Results::default();
        for (h, v) in [("a", [0.2, 0.4]), ("b", [0.6, 0.8])] {
            for x in v {
                r.push(speaker_key(h, 1, "scratch"), x);
            }
        }
        let m = speaker_means(&p, &r, None).unwrap();
        let v = m.get(&result_key(1, "scratch")).unwrap();
        assert!(
            (v[0] - 0.4).abs() < 1e-12 && (v[1] - 0.6).abs() < 1e-12,
            "{v:?}"
        );
    }
}
