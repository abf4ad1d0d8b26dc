//! `cargo xtask bench`: Rust training steps against PyTorch eager on the same machine.
//!
//! Builds the Rust side (the `experiments` crate's `bench` binary) in release mode, then runs rounds.
//! A round runs every row (model, batch, optimizer; and the data path) once per side, each in a
//! fresh process (a row must not inherit the allocator state of another), the two sides back to
//! back and alternating which goes first, so a drift of the machine hits both alike. Before a
//! round it waits for the other processes to leave the CPUs nearly idle, and it repeats a run
//! during which they did not, keeping the quietest attempt. The table reports each side's median
//! time per step over the rounds and the ratio Rust / PyTorch of those medians; it is printed
//! and written to `out/bench/bench.md`, with every run's raw numbers in `out/bench/bench.json`.
//! What is measured, and why the numbers are what they are: `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::setup::Libtorch;
use crate::util::{cargo, project_root};

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rounds per side (each side runs every row once per round).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Intra-op threads on both sides.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Untimed steps per row before the timed ones.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Timed steps per row.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Timed steps for LeNet at batch 1024 (5 untimed before them).
    #[arg(long, default_value_t = 50)]
    pub large_steps: usize,
    /// Only the rows whose name (`model/batch/optimizer`, or `data/64`) starts with this
    /// (`lenet`, `mlp/64`, `lenet/1024/adam`).
    #[arg(long)]
    pub only: Option<String>,
    /// Before each round, wait up to this many seconds for other processes to leave the CPUs
    /// nearly idle (below 0.4 cores busy).
    #[arg(long, default_value_t = 600)]
    pub max_wait: u64,
    /// Repeat a run during which other processes kept more than 0.4 cores busy up to this
    /// many times, keeping the quietest attempt.
    #[arg(long, default_value_t = 2)]
    pub retries: usize,
    /// Leave glibc's malloc settings at their defaults in the Rust process.
    #[arg(long)]
    pub no_tune_malloc: bool,
    /// Give the Python process the same malloc settings as the Rust one (through glibc's
    /// `MALLOC_MMAP_MAX_` and `MALLOC_TRIM_THRESHOLD_`), to compare with the allocator held equal.
    #[arg(long)]
    pub tune_python_malloc: bool,
    /// The Python with torch 2.13.0 (default: the one libtorch comes from, or the project's
    /// environment).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Output folder (default: out/bench in the project root).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One side's report of one round, as both benchmark programs print it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Report {
    side: String,
    threads: i64,
    malloc_tuned: bool,
    optimizer_impl: String,
    rows: Vec<Row>,
    data: Option<DataRow>,
    /// CPU seconds (user + system, all threads) the process used.
    #[serde(default)]
    cpu_seconds: Option<f64>,
    /// Filled in here: the cores other processes kept busy on average while it ran.
    #[serde(default)]
    other_cores: Option<f64>,
    /// Filled in here: the wall-clock seconds of the whole process.
    #[serde(default)]
    wall_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    model: String,
    batch: u64,
    optimizer: String,
    warmup: u64,
    steps: u64,
    ms_per_step: f64,
    /// Minor page faults per timed step.
    #[serde(default)]
    faults_per_step: Option<f64>,
    final_loss: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DataRow {
    batch: u64,
    batches_per_epoch: u64,
    epochs: u64,
    ms_per_epoch: f64,
}

/// One line of the comparison.
#[derive(Debug, Serialize)]
struct Line {
    model: String,
    batch: u64,
    optimizer: String,
    rust_ms: f64,
    pytorch_ms: f64,
    ratio: f64,
    /// Median minor page faults per step, Rust and PyTorch (training rows).
    rust_faults: Option<f64>,
    pytorch_faults: Option<f64>,
}

/// Everything written to `bench.json`.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    threads: usize,
    rounds: usize,
    rust_optimizer: &'a str,
    pytorch_optimizer: &'a str,
    rust_malloc_tuned: bool,
    lines: &'a [Line],
    raw: &'a [Report],
}

/// The rows, as both programs name them; each runs in a fresh process of its own.
const ROWS: [&str; 9] = [
    "mlp/64/sgd",
    "mlp/64/adam",
    "mlp/1024/sgd",
    "mlp/1024/adam",
    "lenet/64/sgd",
    "lenet/64/adam",
    "lenet/1024/sgd",
    "lenet/1024/adam",
    "data/64",
];

/// Cores kept busy by other processes during a run above which it is repeated. Short runs read
/// about 0.2 on an idle machine (process start-up and kernel threads), a concurrent build 1 or
/// more.
const QUIET_OTHER_CORES: f64 = 0.4;

/// Sets up, builds, runs the rounds and writes the table.
pub fn run(args: &Args) -> Result<()> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let libtorch = crate::setup::ensure(false)?;
    crate::fetch::run(&crate::fetch::Args {
        datasets: vec!["mnist".into()],
        offline: false,
    })?;
    let python = match (&args.python, &libtorch) {
        (Some(p), _) => p.clone(),
        (None, Libtorch::UserPython(p)) => p.clone(),
        (None, _) => crate::setup::venv_python(),
    };
    anyhow::ensure!(
        python.exists() || args.python.is_some(),
        "no Python with torch at {}; pass --python",
        python.display()
    );

    let root = project_root();
    let status = cargo()
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "experiments",
            "--bin",
            "bench",
        ])
        .status()
        .context("could not start cargo")?;
    anyhow::ensure!(
        status.success(),
        "building the Rust benchmark failed ({status})"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_relative() { root.join(d) } else { d })
        .unwrap_or_else(|| root.join("target"));
    let rust_bin = target
        .join("release")
        .join(format!("bench{}", std::env::consts::EXE_SUFFIX));

    let rows: Vec<&str> = ROWS
        .iter()
        .copied()
        .filter(|r| args.only.as_deref().is_none_or(|o| r.starts_with(o)))
        .collect();
    anyhow::ensure!(!rows.is_empty(), "--only matches none of {ROWS:?}");
    let common: Vec<String> = vec![
        format!("--threads={}", args.threads),
        format!("--warmup={}", args.warmup),
        format!("--steps={}", args.steps),
        format!("--large-steps={}", args.large_steps),
    ];
    let side_cmd = |is_rust: bool, row: &str| {
        let mut cmd = if is_rust {
            Command::new(&rust_bin)
        } else {
            let mut c = Command::new(&python);
            c.arg(root.join("python").join("bench_train.py"));
            c
        };
        cmd.args(&common).arg(format!("--only={row}"));
        if is_rust && args.no_tune_malloc {
            cmd.arg("--no-tune-malloc");
        }
        if !is_rust && args.tune_python_malloc {
            cmd.env("MALLOC_MMAP_MAX_", "0")
                .env("MALLOC_TRIM_THRESHOLD_", "1073741824");
        }
        cmd
    };

    let mut rust = Vec::new();
    let mut pytorch = Vec::new();
    for round in 0..args.rounds {
        wait_until_quiet(args.max_wait);
        for (i, row) in rows.iter().enumerate() {
            // Who goes first alternates from row to row and from round to round.
            let order = if (round + i) % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_rust in order {
                let name = if is_rust { "rust" } else { "pytorch" };
                let mut report = None::<Report>;
                for attempt in 0..=args.retries {
                    if attempt > 0 {
                        wait_until_quiet(args.max_wait);
                    }
                    eprint!("bench: round {}/{} {row} {name}", round + 1, args.rounds);
                    if attempt > 0 {
                        eprint!(" (again, {attempt} of {})", args.retries);
                    }
                    let run = timed_run(&mut side_cmd(is_rust, row))?;
                    let others = run.other_cores.unwrap_or(0.0);
                    if report
                        .as_ref()
                        .is_none_or(|best| others < best.other_cores.unwrap_or(0.0))
                    {
                        report = Some(run);
                    }
                    if others <= QUIET_OTHER_CORES {
                        break;
                    }
                }
                let report = report.expect("at least one attempt ran");
                if is_rust {
                    rust.push(report);
                } else {
                    pytorch.push(report);
                }
            }
        }
    }

    let lines = compare(&rust, &pytorch);
    // Average over all runs, weighted by their length.
    let (busy, wall) = rust
        .iter()
        .chain(&pytorch)
        .filter_map(|r| r.other_cores.map(|c| (c * r.wall_seconds, r.wall_seconds)))
        .fold((0.0, 0.0), |(b, w), (cb, cw)| (b + cb, w + cw));
    let noisy = if wall > 0.0 { busy / wall } else { 0.0 };
    // The first report of a training row names the optimizer implementation.
    let first = |reports: &[Report]| -> Report {
        let r = reports.iter().find(|r| !r.rows.is_empty());
        r.unwrap_or(&reports[0]).clone()
    };
    let (rust_ref, pytorch_ref) = (first(&rust), first(&pytorch));
    let md = table(args, &lines, &rust_ref, &pytorch_ref, noisy);
    print!("{md}");

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("out").join("bench"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let raw: Vec<Report> = rust.iter().chain(&pytorch).cloned().collect();
    let summary = Summary {
        threads: args.threads,
        rounds: args.rounds,
        rust_optimizer: &rust_ref.optimizer_impl,
        pytorch_optimizer: &pytorch_ref.optimizer_impl,
        rust_malloc_tuned: rust_ref.malloc_tuned,
        lines: &lines,
        raw: &raw,
    };
    write_atomic(&out.join("bench.md"), md.as_bytes())?;
    write_atomic(
        &out.join("bench.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("bench: wrote {}", out.join("bench.md").display());
    Ok(())
}

/// Runs one benchmark process and measures how busy other processes kept the CPUs meanwhile.
fn timed_run(cmd: &mut Command) -> Result<Report> {
    let (busy0, start) = (cpu_busy_seconds(), Instant::now());
    let mut report = run_side(cmd)?;
    let wall = start.elapsed().as_secs_f64();
    report.wall_seconds = wall;
    report.other_cores = busy0
        .zip(cpu_busy_seconds())
        .zip(report.cpu_seconds)
        .map(|((b0, b1), own)| ((b1 - b0 - own) / wall).max(0.0));
    match report.other_cores {
        Some(c) => eprintln!(": {wall:.1} s, other processes used {c:.2} cores"),
        None => eprintln!(": {wall:.1} s"),
    }
    Ok(report)
}

/// Waits, up to `max_wait` seconds, until other processes use less than [`QUIET_OTHER_CORES`]
/// cores over a 2-second sample (nothing of ours runs meanwhile).
fn wait_until_quiet(max_wait: u64) {
    let start = Instant::now();
    let mut said = false;
    loop {
        let Some(b0) = cpu_busy_seconds() else { return };
        std::thread::sleep(Duration::from_secs(2));
        let Some(b1) = cpu_busy_seconds() else { return };
        let busy = (b1 - b0) / 2.0;
        if busy < QUIET_OTHER_CORES || start.elapsed().as_secs() >= max_wait {
            return;
        }
        if !said {
            eprintln!("bench: waiting for a quiet machine ({busy:.2} cores busy)");
            said = true;
        }
    }
}

/// Runs one side's round and parses its JSON (stderr passes through).
fn run_side(cmd: &mut Command) -> Result<Report> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{'));
    serde_json::from_str(line.unwrap_or_default())
        .with_context(|| format!("{cmd:?} printed no report: {text}"))
}

/// Median per row over the rounds of each side, and the ratio of the medians.
fn compare(rust: &[Report], pytorch: &[Report]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut seen: Vec<&Row> = Vec::new();
    for row in rust.iter().flat_map(|r| &r.rows) {
        if seen
            .iter()
            .any(|s| s.model == row.model && s.batch == row.batch && s.optimizer == row.optimizer)
        {
            continue;
        }
        seen.push(row);
        let same =
            |r: &&Row| r.model == row.model && r.batch == row.batch && r.optimizer == row.optimizer;
        let times = |reports: &[Report]| -> Vec<f64> {
            reports
                .iter()
                .filter_map(|rep| rep.rows.iter().find(same).map(|r| r.ms_per_step))
                .collect()
        };
        let faults = |reports: &[Report]| -> Option<f64> {
            let f: Vec<f64> = reports
                .iter()
                .filter_map(|rep| rep.rows.iter().find(same).and_then(|r| r.faults_per_step))
                .collect();
            (!f.is_empty()).then(|| median(f))
        };
        let (r, p) = (median(times(rust)), median(times(pytorch)));
        lines.push(Line {
            model: row.model.clone(),
            batch: row.batch,
            optimizer: row.optimizer.clone(),
            rust_ms: r,
            pytorch_ms: p,
            ratio: r / p,
            rust_faults: faults(rust),
            pytorch_faults: faults(pytorch),
        });
    }
    if let Some(d) = rust.iter().find_map(|r| r.data.as_ref()) {
        let epochs = |reports: &[Report]| -> Vec<f64> {
            reports
                .iter()
                .filter_map(|rep| rep.data.as_ref().map(|d| d.ms_per_epoch))
                .collect()
        };
        let (r, p) = (median(epochs(rust)), median(epochs(pytorch)));
        lines.push(Line {
            model: "data path (epoch)".into(),
            batch: d.batch,
            optimizer: "-".into(),
            rust_ms: r,
            pytorch_ms: p,
            ratio: r / p,
            rust_faults: None,
            pytorch_faults: None,
        });
    }
    lines
}

/// The markdown table with a short header saying how it was measured.
fn table(args: &Args, lines: &[Line], rust: &Report, pytorch: &Report, others: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Medians of {} rounds; each row of each side runs in a fresh process, the two sides \
         alternating; {} intra-op thread(s); {} timed steps after {} warm-up (LeNet at batch \
         1024: {} after 5). The data-path row is ms per epoch (938 shuffled batches of 64).\n",
        args.rounds, args.threads, args.steps, args.warmup, args.large_steps
    );
    let _ = writeln!(
        s,
        "Rust: {}, malloc tuned: {}. PyTorch: {}, malloc tuned: {}.\n",
        rust.optimizer_impl, rust.malloc_tuned, pytorch.optimizer_impl, pytorch.malloc_tuned
    );
    let _ = writeln!(
        s,
        "| model | batch | optimizer | Rust ms/step | PyTorch ms/step | ratio |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|");
    for l in lines {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} | {:.3} | {:.2} |",
            l.model, l.batch, l.optimizer, l.rust_ms, l.pytorch_ms, l.ratio
        );
    }
    if others > QUIET_OTHER_CORES {
        let _ = writeln!(
            s,
            "\nWarning: other processes kept {others:.2} cores busy on average (quiet: below \
             {QUIET_OTHER_CORES}); these numbers are noisy, run again on a quiet machine."
        );
    } else {
        let _ = writeln!(
            s,
            "\nOther processes kept {others:.2} cores busy on average during the runs."
        );
    }
    s
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// Busy time of all CPUs since boot in seconds (the `cpu` line of `/proc/stat`, in USER_HZ =
/// 100 ticks per second, less idle and iowait), on Linux.
fn cpu_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy as f64 / 100.0)
}

use crate::util::write_atomic;

#[cfg(test)]
mod tests {
    use super::*;

    fn report(side: &str, ms: f64) -> Report {
        Report {
            side: side.into(),
            threads: 2,
            malloc_tuned: false,
            optimizer_impl: "x".into(),
            rows: vec![Row {
                model: "mlp".into(),
                batch: 64,
                optimizer: "adam".into(),
                warmup: 1,
                steps: 1,
                ms_per_step: ms,
                faults_per_step: None,
                final_loss: 0.0,
            }],
            data: None,
            cpu_seconds: None,
            other_cores: None,
            wall_seconds: 0.0,
        }
    }

    #[test]
    fn the_ratio_is_of_the_medians() {
        let rust = [
            report("rust", 1.0),
            report("rust", 9.0),
            report("rust", 2.0),
        ];
        let py = [
            report("pytorch", 4.0),
            report("pytorch", 4.0),
            report("pytorch", 1.0),
        ];
        let lines = compare(&rust, &py);
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].rust_ms, lines[0].pytorch_ms), (2.0, 4.0));
        assert_eq!(lines[0].ratio, 0.5);
    }

    #[test]
    fn both_programs_reports_parse() {
        let json = r#"{"side": "pytorch", "torch": "2.13.0", "threads": 2, "malloc_tuned": false,
            "optimizer_impl": "for-loop", "rows": [{"model": "mlp", "batch": 64,
            "optimizer": "sgd", "warmup": 20, "steps": 200, "ms_per_step": 1.5,
            "final_loss": 0.2}], "data": {"batch": 64, "batches_per_epoch": 938, "epochs": 5,
            "ms_per_epoch": 40.0}}"#;
        let r: Report = serde_json::from_str(json).unwrap();
        assert_eq!(r.rows[0].ms_per_step, 1.5);
        assert_eq!(r.data.unwrap().batches_per_epoch, 938);
    }
}
