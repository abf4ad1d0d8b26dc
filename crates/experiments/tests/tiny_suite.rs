//! Every experiment of the registry, end to end on its shipped `tiny` profile, through the
//! binaries the suite runs (`transfer`, `multitask`, `e2e`), twice: the first run trains and
//! writes a complete report; the second trains nothing (every run comes from the store) and
//! writes the same decisions. The sources the tiny profiles name are made inside the test: the
//! zoo entry `mnist-lenet-tiny` is built (seconds) into a temporary zoo folder; nothing reads
//! the project's zoo, so the CIFAR entry is never needed.
//!
//! Then every stored summary of the run is read back and each interval checked against the
//! range of its quantity (proportions in [0, 1], correlations in [−1, 1]).

use std::path::{Path, PathBuf};
use std::process::Command;

use experiments::registry;
use transferlab_report::ExperimentReport;
use transferlab_report::stats::Summary;

fn bin(name: &str) -> PathBuf {
    // Every experiment binary sits beside the zoo binary in the target folder.
    Path::new(env!("CARGO_BIN_EXE_zoo")).with_file_name(name)
}

/// Runs experiment `id` of binary `bin` on the tiny profile into `out`; its progress lines.
fn run(bin_name: &str, id: &str, out: &Path, zoo: &Path) -> Vec<String> {
    let output = Command::new(bin(bin_name))
        .arg(id.to_lowercase())
        .args(["--profile", "tiny", "--out"])
        .arg(out)
        .env(pretrained_zoo::registry::ZOO_ENV, zoo)
        // Other tests run beside this one: one thread each keeps the cores from thrashing.
        .env("TRANSFERLAB_THREADS", "1")
        .output()
        .unwrap_or_else(|e| panic!("starting {bin_name}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{bin_name} {id} --profile tiny failed:\n{stderr}"
    );
    stderr
        .lines()
        .filter(|l| l.starts_with('['))
        .map(str::to_string)
        .collect()
}

/// Every summary a report holds: table cells, plot points, contrast estimates and their
/// components, each with where it sits.
fn summaries(rep: &ExperimentReport) -> Vec<(String, Summary)> {
    let mut out = Vec::new();
    for t in &rep.tables {
        for (i, row) in t.rows.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                if let transferlab_report::Cell::Stat { summary, .. } = cell {
                    out.push((
                        format!("table {} row {i} {}", t.name, t.columns[j]),
                        *summary,
                    ));
                }
            }
        }
    }
    for p in &rep.plots {
        for s in &p.series {
            for pt in &s.points {
                out.push((format!("plot {} {} x={}", p.id, s.name, pt.x), pt.y));
            }
        }
    }
    fn contrast(
        c: &transferlab_report::contrast::ContrastResult,
        out: &mut Vec<(String, Summary)>,
    ) {
        if let Some(e) = c.estimate {
            out.push((format!("contrast {}", c.contrast.id), e));
        }
        for k in &c.components {
            contrast(k, out);
        }
    }
    for c in &rep.contrasts {
        contrast(c, &mut out);
    }
    out
}

#[test]
fn every_experiment_runs_its_tiny_profile_end_to_end_twice_and_the_second_trains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (zoo, out) = (dir.path().join("zoo"), dir.path().join("out"));
    let started = std::time::Instant::now();
    let reg = pretrained_zoo::registry::Registry::builtin().unwrap();
    let entry = reg.entry("mnist-lenet-tiny").unwrap();
    pretrained_zoo::registry::build(
        "mnist-lenet-tiny",
        entry,
        &experiments::paths::cache_dir(),
        &zoo,
        tch::Device::Cpu,
        None,
    )
    .unwrap();

    let entries = registry::entries().unwrap();
    assert_eq!(entries.len(), 18);
    let mut seconds = Vec::new();
    let mut checked = 0;
    for e in &entries {
        for z in &e.zoo_tiny {
            assert_eq!(
                z, "mnist-lenet-tiny",
                "{}: its tiny zoo entry is built here",
                e.id
            );
        }
        let t = std::time::Instant::now();
        let first = run(&e.bin, &e.id, &out, &zoo);
        let summary = out.join(e.id.to_lowercase()).join("summary.json");
        let read = || -> ExperimentReport {
            serde_json::from_str(&std::fs::read_to_string(&summary).unwrap())
                .unwrap_or_else(|err| panic!("{}: {err}", summary.display()))
        };
        let rep1 = read();
        let t1 = t.elapsed().as_secs_f64();
        let second = run(&e.bin, &e.id, &out, &zoo);
        let rep2 = read();
        seconds.push(format!(
            "{} {t1:.1}+{:.1} s",
            e.id,
            t.elapsed().as_secs_f64() - t1
        ));

        assert!(!first.is_empty(), "{}: no run", e.id);
        // (A source network pre-trained for a stored adaptation is not even loaded the second
        // time, so the second run may list fewer runs.)
        assert!(
            !second.is_empty(),
            "{}: the second run loaded nothing",
            e.id
        );
        let trained: Vec<&String> = second.iter().filter(|l| !l.contains(": stored")).collect();
        assert!(
            trained.is_empty(),
            "{}: the second run trained {trained:?}",
            e.id
        );
        assert_eq!(rep2.runs, rep2.runs_stored, "{}", e.id);
        assert!(
            rep1.runs > rep1.runs_stored,
            "{}: the first run trained",
            e.id
        );
        assert_eq!(rep1.profile, "tiny");
        assert!(!rep1.tables.is_empty(), "{}: no table", e.id);
        // The same decisions from the stored runs.
        let decided = |r: &ExperimentReport| {
            r.contrasts
                .iter()
                .map(|c| (c.contrast.id.clone(), c.outcome, c.estimate.map(|s| s.mean)))
                .collect::<Vec<_>>()
        };
        assert_eq!(decided(&rep1), decided(&rep2), "{}", e.id);
        // Declared contrasts decide every claim the report lists, and only those.
        let mut decides: Vec<&str> = rep1
            .contrasts
            .iter()
            .flat_map(|c| c.contrast.claims.iter().map(String::as_str))
            .collect();
        decides.sort_unstable();
        decides.dedup();
        let mut claims: Vec<&str> = rep1.claims.iter().map(String::as_str).collect();
        claims.sort_unstable();
        assert_eq!(decides, claims, "{}", e.id);

        // Every interval inside its quantity's range.
        for (at, s) in summaries(&rep1) {
            let Some((lo, hi)) = s.ci95 else { continue };
            assert!(
                lo <= s.mean + 1e-12 && s.mean <= hi + 1e-12,
                "{}: {at}: {s:?}",
                e.id
            );
            if let Some((min, max)) = s.range {
                assert!(
                    lo >= min - 1e-12 && hi <= max + 1e-12,
                    "{}: {at}: [{lo}, {hi}] leaves [{min}, {max}]",
                    e.id
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} bounded intervals");
    let total = started.elapsed().as_secs_f64();
    eprintln!("tiny suite: {total:.0} s ({})", seconds.join(", "));
}
