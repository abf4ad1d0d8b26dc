//! The experiments end to end on tiny profiles: each writes a complete report into a temporary
//! folder, and a second run loads every run from the store instead of training again.
//!
//! The tiny profiles are the crate's own configs (`experiments/p3.toml`, `p4.toml`) with a
//! `tiny` profile added and the step budgets and test sets shrunk, so the code paths are the
//! real ones and each test takes a few seconds.

use std::path::{Path, PathBuf};

use anyhow::Result;
use experiments::e2e::common::RunOptions;
use experiments::runs::results_without_timing;
use transferlab_report::ExperimentReport;

fn config(id: &str) -> PathBuf {
    experiments::configs("e2e").join(format!("{id}.toml"))
}

/// The crate's config `id` with `edit` applied, written into `dir`.
fn tiny_config(dir: &Path, id: &str, edit: impl FnOnce(&mut toml::Table)) -> Result<PathBuf> {
    let mut t: toml::Table = toml::from_str(&std::fs::read_to_string(config(id))?)?;
    edit(&mut t);
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, toml::to_string(&t)?)?;
    Ok(path)
}

fn shrink_recipe(t: &mut toml::Table, name: &str, min_steps: i64) {
    let r = t[name].as_table_mut().unwrap();
    r.insert("min_steps".into(), min_steps.into());
    r.insert("max_epochs".into(), 3.into());
    let train = r["train"].as_table_mut().unwrap();
    train.insert("epochs".into(), 1.into());
}

fn options(dir: &Path) -> RunOptions {
    RunOptions::new("tiny", dir.join("runs"))
}

/// Runs `run` twice: the second time every run must come from the store and the numbers
/// must be the same.
fn twice(
    run: impl Fn(&mut dyn FnMut(&str, bool)) -> core_tensor::Result<ExperimentReport>,
) -> Result<ExperimentReport> {
    let mut first = Vec::new();
    let report = run(&mut |label, stored| first.push((label.to_string(), stored)))?;
    assert!(!first.is_empty() && first.iter().all(|(_, stored)| !stored));
    let mut second = Vec::new();
    let again = run(&mut |label, stored| second.push((label.to_string(), stored)))?;
    assert_eq!(second.len(), first.len());
    assert!(second.iter().all(|(_, stored)| *stored), "{second:?}");
    assert_eq!((again.runs, again.runs_stored), (first.len(), first.len()));
    // The same numbers (as shown: a stored float may differ from the computed one in the
    // last bit after the JSON round trip).
    let shown = |r: &ExperimentReport| r.tables.iter().map(|t| t.markdown()).collect::<Vec<_>>();
    assert_eq!(shown(&again), shown(&report));
    Ok(report)
}

fn check_written(report: &ExperimentReport, dir: &Path) -> Result<()> {
    let out = dir.join(report.id.to_lowercase());
    report.write(&out)?;
    for f in ["summary.json", "report.md"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let csvs = std::fs::read_dir(&out)?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "csv"))
        })
        .count();
    assert_eq!(csvs, report.tables.len());
    // Decided by declared contrasts only: no hand-written verdicts, and every claim the report
    // lists is decided by at least one contrast, each with its margin's justification.
    assert!(!report.contrasts.is_empty());
    for c in &report.contrasts {
        assert!(!c.contrast.margin.why.is_empty() && c.contrast.margin.delta > 0.0);
        assert!(c.contrast.claims.iter().all(|k| report.claims.contains(k)));
    }
    for claim in &report.claims {
        assert!(
            report
                .contrasts
                .iter()
                .any(|c| c.contrast.claims.contains(claim)),
            "{claim}"
        );
    }
    Ok(())
}

#[test]
fn p4_runs_end_to_end_and_resumes_from_the_store() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tiny_config(dir.path(), "p4", |t| {
        t.insert("test_examples".into(), 200.into());
        shrink_recipe(t, "recipe", 20);
        let profiles = t["profiles"].as_table_mut().unwrap();
        profiles.insert(
            "tiny".into(),
            toml::toml! { ks = [1, 2] train_examples = 64 seeds = 2 }.into(),
        );
    })?;
    let opts = options(dir.path());
    let report = twice(|f| experiments::e2e::p4::run(&path, &opts, f))?;
    assert_eq!((report.id.as_str(), report.seeds), ("P4", 2));
    assert_eq!(report.runs, 2 * 2 * 2);
    assert_eq!(report.claims, ["E-4"]);
    let ids: Vec<&str> = report
        .contrasts
        .iter()
        .map(|c| c.contrast.id.as_str())
        .collect();
    assert_eq!(ids, ["E-4"]);
    assert_eq!(report.tables[0].rows.len(), 2);
    let plot = &report.plots[0];
    assert_eq!(plot.series.len(), 2);
    assert!(plot.series.iter().all(|s| s.points.len() == 2));
    check_written(&report, dir.path())
}

#[test]
fn two_shards_hold_exactly_the_runs_of_one_unsharded_run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tiny_config(dir.path(), "p4", |t| {
        t.insert("test_examples".into(), 100.into());
        shrink_recipe(t, "recipe", 10);
        let profiles = t["profiles"].as_table_mut().unwrap();
        profiles.insert(
            "tiny".into(),
            toml::toml! { ks = [1, 2] train_examples = 32 seeds = 2 }.into(),
        );
    })?;
    let whole = options(&dir.path().join("whole"));
    let whole_report = experiments::e2e::p4::run(&path, &whole, &mut |_: &str, _| {})?;
    let expected = results_without_timing(&whole.store)?;
    assert_eq!(expected.len(), 8);
    let mut union = std::collections::BTreeMap::new();
    let mut ran = 0;
    for i in 0..2 {
        let mut opts = options(&dir.path().join(format!("shard{i}")));
        opts.shard = Some(format!("{i}/2").parse().unwrap());
        let rep =
            experiments::e2e::p4::run(&path, &opts, &mut |_: &str, stored: bool| assert!(!stored))?;
        assert!(
            rep.notes
                .iter()
                .any(|n| n.contains("runs left to the other shards"))
        );
        ran += rep.runs;
        union.extend(results_without_timing(&opts.store)?);
    }
    assert_eq!(ran, 8, "each run ran in exactly one shard");
    assert_eq!(
        union, expected,
        "the shards' stores together are the unsharded store"
    );
    // The shards' stores merged: the report comes from the store alone, without training,
    // and says what the unsharded run's report says.
    let merged = options(&dir.path().join("merged"));
    for i in 0..2 {
        let from = dir.path().join(format!("shard{i}/runs/p4-lines-parity"));
        let to = merged.store.join("p4-lines-parity");
        std::fs::create_dir_all(&to)?;
        for f in std::fs::read_dir(&from)? {
            let f = f?.path();
            std::fs::copy(&f, to.join(f.file_name().unwrap()))?;
        }
    }
    let rep = experiments::e2e::p4::run(&path, &merged, &mut |l: &str, stored: bool| {
        assert!(stored, "{l} trained again after the merge")
    })?;
    assert_eq!((rep.runs, rep.runs_stored), (8, 8));
    let strip =
        |r: &ExperimentReport| serde_json::to_string(&(&r.contrasts, &r.tables, &r.plots)).unwrap();
    assert_eq!(strip(&rep), strip(&whole_report));
    Ok(())
}

#[test]
fn p3_sweeps_both_worlds_with_crossovers_and_resumes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tiny_config(dir.path(), "p3", |t| {
        t.insert("test_examples".into(), 64.into());
        t.insert("measure_examples".into(), 64.into());
        t.insert("cnn_channels".into(), toml::Value::Array(vec![4.into()]));
        t.insert(
            "crossover".into(),
            toml::toml! { bootstrap = 50 seed = 0 }.into(),
        );
        for r in ["measure_recipe", "regressor_recipe", "end_to_end_recipe"] {
            shrink_recipe(t, r, 10);
        }
        let profiles = t["profiles"].as_table_mut().unwrap();
        profiles.insert(
            "tiny".into(),
            toml::toml! {
                worlds = ["lengths_suffice", "lengths_partial"]
                sizes = [10, 20]
                seeds = 2
            }
            .into(),
        );
    })?;
    let opts = options(dir.path());
    let report = twice(|f| experiments::e2e::p3::run(&path, &opts, f))?;
    assert_eq!(report.runs, 2 * 3 * 2 * 2);
    assert_eq!(report.claims, ["E-4", "E-5", "E-6"]);
    let ids: Vec<&str> = report
        .contrasts
        .iter()
        .map(|c| c.contrast.id.as_str())
        .collect();
    assert_eq!(ids, ["lengths-suffice/E-4", "lengths-partial/E-5", "E-6"]);
    // Per world: learning curves, crossovers, advantages; one plot per world, log N.
    assert_eq!(report.tables.len(), 6);
    assert_eq!(report.tables[1].rows.len(), 3);
    assert_eq!(report.plots.len(), 2);
    assert!(report.plots.iter().all(|p| p.log_x && p.series.len() == 3));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("overtakes") || n.contains("no crossover in range"))
    );
    check_written(&report, dir.path())
}

#[test]
fn p1_runs_both_variants_with_their_own_tables_and_resumes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tiny_config(dir.path(), "p1", |t| {
        for v in ["digits", "faces"] {
            let vt = t[v].as_table_mut().unwrap();
            vt.insert("localiser_examples".into(), 64.into());
            vt.insert("classifier_examples".into(), 64.into());
            vt.insert("test_examples".into(), 64.into());
            for r in ["localiser_recipe", "classifier_recipe", "end_to_end_recipe"] {
                shrink_recipe(vt, r, 4);
            }
        }
        t.insert(
            "crossover".into(),
            toml::toml! { bootstrap = 50 seed = 0 }.into(),
        );
        let profiles = t["profiles"].as_table_mut().unwrap();
        profiles.insert(
            "tiny".into(),
            toml::toml! { digits = [8, 16] faces = [40, 80] seeds = 2 }.into(),
        );
    })?;
    let opts = options(dir.path());
    let report = twice(|f| experiments::e2e::p1::run(&path, &opts, f))?;
    assert_eq!(report.id, "P1");
    // Per variant: 2 contenders x 2 sizes x 2 seeds, and 2 component diagnostics.
    assert_eq!(report.runs, 2 * (2 * 2 * 2 + 2));
    // Per variant: E-4 at the smallest N and E-2's crossover.
    assert_eq!(report.claims, ["E-2", "E-4"]);
    let ids: Vec<&str> = report
        .contrasts
        .iter()
        .map(|c| c.contrast.id.as_str())
        .collect();
    assert_eq!(ids, ["digits/E-4", "digits/E-2", "faces/E-4", "faces/E-2"]);
    // Per variant: accuracy, crossover, advantage and components tables; one plot each.
    let names: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 8);
    assert!(names[4].starts_with("p1-faces-accuracy"), "{names:?}");
    assert_eq!(report.tables[4].rows.len(), 2);
    assert_eq!(report.plots.len(), 2);
    assert!(report.plots.iter().all(|p| p.log_x && p.series.len() == 2));
    assert!(report.description.contains("ORL face shrunk to 28x23"));
    check_written(&report, dir.path())
}

#[test]
fn a_zero_size_is_refused_with_its_field_before_any_run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = tiny_config(dir.path(), "p4", |t| {
        let profiles = t["profiles"].as_table_mut().unwrap();
        profiles.insert(
            "tiny".into(),
            toml::toml! { ks = [1, 2] train_examples = 0 seeds = 2 }.into(),
        );
    })?;
    let opts = options(dir.path());
    let err = experiments::e2e::p4::run(&path, &opts, |_: &str, _: bool| panic!("a run was made"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("profiles.tiny.train_examples: must be at least 1"),
        "{err}"
    );
    assert!(err.contains(&path.display().to_string()), "{err}");
    let path = tiny_config(dir.path(), "p4", |t| {
        let profiles = t["profiles"].as_table_mut().unwrap();
        profiles.insert(
            "tiny".into(),
            toml::toml! { ks = [] train_examples = 8 seeds = 2 }.into(),
        );
    })?;
    let err = experiments::e2e::p4::run(&path, &opts, |_: &str, _: bool| panic!("a run was made"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("profiles.tiny.ks: must not be empty"), "{err}");
    assert!(!opts.store.exists(), "nothing stored");
    Ok(())
}

#[test]
fn zero_seeds_is_refused_by_every_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new("quick", dir.path().join("runs"));
    opts.seeds = Some(0);
    type Run =
        fn(&Path, &RunOptions, &mut dyn FnMut(&str, bool)) -> core_tensor::Result<ExperimentReport>;
    let runs: [(&str, Run); 4] = [
        ("p1", |c, o, f| experiments::e2e::p1::run(c, o, f)),
        ("p2", |c, o, f| experiments::e2e::p2::run(c, o, f)),
        ("p3", |c, o, f| experiments::e2e::p3::run(c, o, f)),
        ("p4", |c, o, f| experiments::e2e::p4::run(c, o, f)),
    ];
    for (id, run) in runs {
        let err = run(&config(id), &opts, &mut |_: &str, _: bool| {
            panic!("{id}: a run was made")
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("seeds: need at least 1"), "{id}: {err}");
    }
}
