//! The experiments end to end on their `tiny` profiles: reports with the expected structure,
//! and a second invocation that loads every run from the store.

use std::path::PathBuf;

use experiments::mtl::common::RunOptions;
use experiments::runs::results_without_timing;
use transferlab_report::ExperimentReport;

fn config(id: &str) -> PathBuf {
    experiments::configs("multitask").join(format!("{id}.toml"))
}

fn options(store: &std::path::Path) -> RunOptions {
    RunOptions::new("tiny", store)
}

fn check_structure(rep: &ExperimentReport, id: &str) {
    assert_eq!(rep.id, id);
    assert_eq!(rep.seeds, 2);
    assert!(!rep.tables.is_empty() && !rep.plots.is_empty());
    for t in &rep.tables {
        assert!(!t.rows.is_empty(), "{id}: table {} is empty", t.name);
        assert!(t.rows.iter().all(|r| r.len() == t.columns.len()));
    }
    for p in &rep.plots {
        assert!(
            p.series.iter().all(|s| !s.points.is_empty()),
            "{id}: {}",
            p.id
        );
    }
}

#[test]
fn m1_runs_end_to_end_and_resumes_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir.path().join("runs"));
    let rep = experiments::mtl::m1::run(&config("m1"), &opts, |_, _| {}).unwrap();
    check_structure(&rep, "M1");
    // 2 seeds x (1 shared + 3 single-task networks).
    assert_eq!((rep.runs, rep.runs_stored), (8, 0));
    // One declared contrast (Δm > 0) decides both claims; no hand-written verdict is left.
    assert_eq!(rep.claims, ["M-1", "M-5"]);
    assert_eq!(rep.contrasts.len(), 1);
    assert_eq!(rep.contrasts[0].contrast.claims, ["M-1", "M-5"]);
    assert!(
        rep.contrasts
            .iter()
            .all(|c| c.estimate.as_ref().is_some_and(|e| e.n == 2))
    );
    rep.write(&dir.path().join("m1")).unwrap();
    for f in [
        "summary.json",
        "report.md",
        "m1-per-task.csv",
        "m1-delta-m.csv",
    ] {
        assert!(dir.path().join("m1").join(f).is_file(), "{f}");
    }
    let again =
        experiments::mtl::m1::run(&config("m1"), &opts, |_, stored| assert!(stored)).unwrap();
    assert_eq!((again.runs, again.runs_stored), (8, 8));
    // The same numbers (JSON may move a float by an ulp: compare them as printed).
    let printed = |r: &ExperimentReport| r.tables.iter().map(|t| t.markdown()).collect::<Vec<_>>();
    assert_eq!(printed(&again), printed(&rep));
    assert_eq!(
        again
            .contrasts
            .iter()
            .map(|c| c.outcome)
            .collect::<Vec<_>>(),
        rep.contrasts.iter().map(|c| c.outcome).collect::<Vec<_>>()
    );
}

#[test]
fn two_shards_hold_exactly_the_runs_of_one_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    experiments::mtl::m1::run(&config("m1"), &options(&whole), |_, _| {}).unwrap();
    let expected = results_without_timing(&whole).unwrap();
    assert_eq!(expected.len(), 8);
    let mut union = std::collections::BTreeMap::new();
    let mut ran = 0;
    for i in 0..2 {
        let mut opts = options(&dir.path().join(format!("shard{i}")));
        opts.shard = Some(format!("{i}/2").parse().unwrap());
        let rep =
            experiments::mtl::m1::run(&config("m1"), &opts, |_, stored| assert!(!stored)).unwrap();
        assert!(
            rep.notes
                .iter()
                .any(|n| n.contains("runs left to the other shards"))
        );
        ran += rep.runs;
        union.extend(results_without_timing(&opts.store).unwrap());
    }
    assert_eq!(ran, 8, "each run ran in exactly one shard");
    assert_eq!(
        union, expected,
        "the shards' stores together are the unsharded store"
    );
}

#[test]
fn every_other_experiment_runs_on_its_tiny_profile() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&dir.path().join("runs"));
    type Run = fn(
        &std::path::Path,
        &RunOptions,
        &mut dyn FnMut(&str, bool),
    ) -> core_tensor::Result<ExperimentReport>;
    let runs: [(&str, &str, Run); 5] = [
        ("m2", "M2", |c, o, f| experiments::mtl::m2::run(c, o, f)),
        ("m3", "M3", |c, o, f| experiments::mtl::m3::run(c, o, f)),
        ("m4", "M4", |c, o, f| experiments::mtl::m4::run(c, o, f)),
        ("m5", "M5", |c, o, f| experiments::mtl::m5::run(c, o, f)),
        ("m6", "M6", |c, o, f| experiments::mtl::m6::run(c, o, f)),
    ];
    for (file, id, run) in runs {
        let rep = run(&config(file), &opts, &mut |_, _| {}).unwrap();
        check_structure(&rep, id);
        // Declared contrasts decide every claim the report lists, and nothing else decides.
        let mut decided: Vec<&str> = rep
            .contrasts
            .iter()
            .flat_map(|c| c.contrast.claims.iter().map(String::as_str))
            .collect();
        decided.dedup();
        assert_eq!(decided, rep.claims, "{id}");
        let expected: &[&str] = match id {
            "M2" => &["M-2"],
            "M3" => &["M-3"],
            "M4" => &["M-4"],
            "M5" => &[],
            "M6" => &["M-1"],
            _ => unreachable!(),
        };
        assert_eq!(rep.claims, expected, "{id}");
    }
}

#[test]
fn bad_configs_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&dir.path().join("runs"));
    opts.profile = "nope".into();
    let err = experiments::mtl::m1::run(&config("m1"), &opts, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope") && err.contains("quick"), "{err}");
    let bad = dir.path().join("m4.toml");
    std::fs::write(
        &bad,
        format!(
            "common = {:?}\n[profiles.tiny]\nhidden = [1.5]\nseeds = 2\n",
            config("common").display().to_string()
        ),
    )
    .unwrap();
    let err = experiments::mtl::m4::run(&bad, &options(&dir.path().join("runs")), |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("hidden"), "{err}");
}

/// A cache holding the real fixture files (links), with `corrupt` a damaged copy when given.
fn linked_cache(dir: &std::path::Path, corrupt: Option<&str>) -> PathBuf {
    let real = experiments::paths::cache_dir().join("mnist");
    let cache = dir.join("cache");
    let mnist = cache.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for e in std::fs::read_dir(&real).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let target = mnist.join(&name);
        let _ = std::fs::remove_file(&target);
        if Some(name.as_str()) == corrupt {
            // Every seventh byte flipped: still a well-formed IDX file, wrong pixels.
            let mut bytes = std::fs::read(e.path()).unwrap();
            for b in bytes.iter_mut().skip(16).step_by(7) {
                *b ^= 0xff;
            }
            std::fs::write(&target, bytes).unwrap();
        } else {
            std::os::unix::fs::symlink(e.path(), &target).unwrap();
        }
    }
    cache
}

fn stored_records(runs: &std::path::Path) -> Vec<serde_json::Value> {
    let mut v = Vec::new();
    for kind in std::fs::read_dir(runs).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(kind.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "json") {
                v.push(serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap());
            }
        }
    }
    v
}

#[test]
fn a_damaged_dataset_is_refused_before_training_and_its_checksum_keys_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let file = "t10k-images-idx3-ubyte";
    let cache = linked_cache(dir.path(), Some(file));
    let run = |cache: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_multitask"))
            .args(["m1", "--profile", "tiny", "--out"])
            .arg(&out)
            .env("TRANSFERLAB_CACHE", cache)
            .env("TRANSFERLAB_THREADS", "1")
            .output()
            .unwrap()
    };
    let o = run(&cache);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains(file)
            && stderr.contains("sha256")
            && stderr.contains("cargo xtask fetch mnist"),
        "{stderr}"
    );
    assert!(
        stored_records(&out.join("runs")).is_empty(),
        "nothing was trained on the damaged file"
    );
    // Repaired (as `cargo xtask fetch` does: a new file in its place): the runs are made, and
    // each key carries the manifest's checksum of every file it read.
    let cache = linked_cache(dir.path(), None);
    let o = run(&cache);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest =
        core_tensor::fixtures::Manifest::load(&experiments::paths::manifest_path()).unwrap();
    let want = manifest
        .dataset("mnist")
        .unwrap()
        .files
        .iter()
        .find(|f| f.name == file)
        .unwrap()
        .sha256
        .clone();
    let records = stored_records(&out.join("runs"));
    assert_eq!(records.len(), 8);
    for r in &records {
        assert_eq!(
            r["id"]["inputs"][format!("dataset:mnist/{file}")],
            serde_json::Value::String(want.clone()),
            "{r}"
        );
    }
}

#[test]
fn a_bad_config_is_reported_once_with_one_path_and_no_nested_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let common = std::fs::read_to_string(config("common")).unwrap().replace(
        "recipe = { train = { epochs = 2, batch_size = 64, lr = 3e-3",
        "recipe = { train = { epochs = 2, batch_size = 64, lr = -1.0",
    );
    assert!(common.contains("lr = -1.0"));
    std::fs::write(dir.path().join("common.toml"), common).unwrap();
    let bad = dir.path().join("m1.toml");
    std::fs::write(
        &bad,
        "common = \"common.toml\"\n[profiles.tiny]\nseeds = 2\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_multitask"))
        .args(["m1", "--profile", "tiny", "--config"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("setups.tiny.recipe.train.lr: must be a positive number"),
        "{stderr}"
    );
    assert!(!stderr.contains("invalid argument"), "{stderr}");
    let common_path = dir.path().join("common.toml").display().to_string();
    assert_eq!(stderr.matches(&common_path).count(), 1, "{stderr}");
    assert!(
        !stderr.contains(&bad.display().to_string()),
        "the error is common.toml's, not m1.toml's: {stderr}"
    );
}
