//! The experiment binary on a tiny X2 profile: killed mid-run and started again it completes
//! without redoing finished runs and gives the results of an uninterrupted run; its shards are
//! disjoint and together hold exactly the unsharded run's records.
//!
//! Needs the UCI digits and MNIST fixtures (`cargo xtask fetch`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const COMMON: &str = r#"
[recipe]
model = { arch = "lenet", channels = [4, 8], hidden = [16, 12], classes = 10 }
input = { kind = "image", mean = 0.1307, std = 0.3081 }
train = { epochs = 1, batch_size = 32, lr = 1e-3, optimizer = { kind = "adam" } }
min_steps = 10
max_epochs = 5

[adapt]
batch_norm = "frozen_stages_eval"
eval_batch = 128
train = { epochs = 2, batch_size = 16, lr = 1e-3, optimizer = { kind = "adam" } }
min_steps = 10
max_epochs = 10
"#;

const X2: &str = r#"
common = "common.toml"
source = { dataset = "mnist" }
targets = [{ dataset = "uci-digits" }]
strategy = { kind = "fine_tune" }

[profiles.tiny]
per_class = 2
ratios = [0.5, 1, 5, 20]
include_all = false
seeds = 2
"#;

fn config() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("common.toml"), COMMON).unwrap();
    let x2 = dir.path().join("x2.toml");
    std::fs::write(&x2, X2).unwrap();
    (dir, x2)
}

fn transfer(config: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_transfer"));
    cmd.arg("x2")
        .arg("--config")
        .arg(config)
        .args(["--profile", "tiny", "--out"])
        .arg(out)
        .args(extra)
        .env("TRANSFERLAB_THREADS", "1");
    cmd
}

/// Every stored record under `dir` (a store or one kind's folder of it): key → (result, mtime).
fn stored(dir: &Path) -> BTreeMap<String, (serde_json::Value, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(d) = folders.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                folders.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
                out.insert(
                    v["key"].as_str().unwrap().to_string(),
                    (v["result"].clone(), mtime),
                );
            }
        }
    }
    out
}

/// Key → result.
fn records(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    stored(dir).into_iter().map(|(k, (v, _))| (k, v)).collect()
}

fn run_to_end(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn killed_and_restarted_it_redoes_no_finished_run_and_matches_an_uninterrupted_run() {
    let (dir, x2) = config();
    let whole = dir.path().join("whole");
    run_to_end(&mut transfer(&x2, &whole, &[]));
    let expected = records(&whole.join("runs"));
    // 2 seeds x (scratch + 4 sizes) adaptations + 4 sizes x 2 seeds sources.
    assert_eq!(expected.len(), 18);

    let out = dir.path().join("killed");
    let mut child = transfer(&x2, &out, &[])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut finished = 0;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        if line.unwrap().contains(": ran (") {
            finished += 1;
            if finished == 5 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = stored(&out.join("runs"));
    assert!(
        (5..18).contains(&before.len()),
        "killed after 5 runs, {} stored",
        before.len()
    );

    let stderr = run_to_end(&mut transfer(&x2, &out, &[]));
    assert_eq!(
        stderr.matches(": ran (").count(),
        18 - before.len(),
        "exactly the runs not stored before ran\n{stderr}"
    );
    let after = stored(&out.join("runs"));
    for (k, v) in &before {
        assert_eq!(&after[k], v, "{k}: a finished run was rewritten");
    }
    let after = records(&out.join("runs"));
    assert_eq!(after, expected, "same results as the uninterrupted run");
    assert!(out.join("x2/summary.json").is_file());
}

#[test]
fn two_shards_hold_exactly_the_runs_of_one_unsharded_run() {
    let (dir, x2) = config();
    let whole = dir.path().join("whole");
    run_to_end(&mut transfer(&x2, &whole, &[]));
    let expected = records(&whole.join("runs"));
    let mut union = BTreeMap::new();
    let mut adapt_keys = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("shard{i}"));
        let shard = format!("{i}/2");
        let stderr = run_to_end(&mut transfer(&x2, &out, &["--shard", &shard]));
        assert!(stderr.contains("runs left to the other shards"), "{stderr}");
        assert!(
            !out.join("x2/summary.json").exists(),
            "a shard writes no report"
        );
        let adapt = records(&out.join("runs/transfer-adapt"));
        adapt_keys.extend(adapt.keys().cloned());
        union.extend(records(&out.join("runs")));
    }
    let n = adapt_keys.len();
    adapt_keys.sort();
    adapt_keys.dedup();
    assert_eq!(adapt_keys.len(), n, "no adaptation ran in both shards");
    assert_eq!(
        union, expected,
        "the shards' stores together are the unsharded store"
    );
}
