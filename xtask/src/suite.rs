//! `cargo xtask suite`: the project's main job. Sets up libtorch, fetches the datasets, builds
//! the zoo entries the experiments need, runs every experiment that exists (each a process of
//! an experiment crate's binary, all sharing one run store, so a rerun skips finished runs), and
//! writes the report (`report.html`, `report.md`, `plots/*.svg`, `results.jsonl`, CSV tables).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{cargo, project_root, run_status};

/// Options of `cargo xtask suite`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder: runs/ (the store), one folder per experiment, the report.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Profile of every experiment: quick (two CPU cores, minutes) or full.
    #[arg(long, default_value = "quick")]
    pub profile: String,
    /// Device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seeds instead of each profile's.
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Only these experiments (comma-separated IDs, e.g. X1,X3).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Experiments run in parallel (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// libtorch intra-op threads of each experiment process. Results are deterministic for a
    /// given thread count (reductions split differently with more threads), so the default of
    /// one keeps them independent of `--jobs` and of the machine; small models gain little
    /// from more threads, while processes in parallel use the cores.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Rebuild the report from the stored results without training.
    #[arg(long)]
    pub rebuild_report: bool,
    /// Run only the i-th of n disjoint slices of every experiment's runs (e.g. 0/4), for
    /// spreading the suite over machines; no report. Then `cargo xtask merge` the shards'
    /// folders and run the suite on the merged folder for the report (docs/cluster.md).
    #[arg(long)]
    pub shard: Option<String>,
}

/// An experiment of the registry `crates/experiments/experiments.toml` (the experiment
/// binaries read the same file): its ID, the binary whose subcommand (the ID in lower case)
/// runs it, the zoo entries it needs, the experiments whose runs it reuses.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Experiment {
    id: String,
    bin: String,
    /// Zoo entries needed (quick profile; `full` may need more, see `zoo_full`).
    #[serde(default)]
    zoo: Vec<String>,
    #[serde(default)]
    zoo_full: Vec<String>,
    /// Zoo entries the tiny (smoke-test) profile needs.
    #[serde(default)]
    zoo_tiny: Vec<String>,
    /// Run after these (they make runs this one reuses).
    #[serde(default)]
    after: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Registry {
    experiment: Vec<Experiment>,
}

/// The experiments crate's package name.
const PACKAGE: &str = "experiments";

/// The suite's experiments, in order, from the registry file.
fn registry() -> Result<Vec<Experiment>> {
    let path = project_root().join("crates/experiments/experiments.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let r: Registry = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    Ok(r.experiment)
}

impl Experiment {
    /// The binary's subcommand.
    fn sub(&self) -> String {
        self.id.to_lowercase()
    }

    /// Whether the experiments crate has its binary yet (experiments land group by group).
    fn exists(&self) -> bool {
        project_root()
            .join("crates")
            .join(PACKAGE)
            .join("src/bin")
            .join(format!("{}.rs", self.bin))
            .is_file()
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// Runs the suite.
pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| project_root().join("out").join("suite"));
    if args.jobs == Some(0) || args.threads == 0 {
        bail!("--jobs and --threads must be at least 1");
    }
    if let Some(s) = &args.shard {
        let ok = parse_shard(Some(s)).is_some_and(|(i, n)| n > 0 && i < n);
        if !ok {
            bail!("--shard {s:?}: expected i/n with 0 <= i < n, e.g. 0/4 for the first of four");
        }
        if args.rebuild_report {
            bail!(
                "--shard runs a slice of the runs; --rebuild-report needs them all (merge first)"
            );
        }
    }
    let all = registry()?;
    let known: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    for id in &args.only {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(id)) {
            bail!(
                "--only: unknown experiment {id:?}; known: {}",
                known.join(", ")
            );
        }
    }
    let selected: Vec<&Experiment> = all
        .iter()
        .filter(|e| args.only.is_empty() || args.only.iter().any(|o| o.eq_ignore_ascii_case(&e.id)))
        .collect();
    let (runnable, missing): (Vec<&Experiment>, Vec<&Experiment>) =
        selected.into_iter().partition(|e| e.exists());
    if !missing.is_empty() {
        eprintln!(
            "not implemented yet, so not run (the report marks their claims \"not measured\"): {}",
            missing
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // One suite per output folder: two would garble the shared logs and race on the report.
    // The experiment processes it starts do not take the lock.
    let _lock = lock_out(&out, !args.rebuild_report)?;
    let mut failed = Vec::new();
    if !args.rebuild_report {
        crate::setup::ensure(false)?;
        crate::fetch::run(&crate::fetch::Args {
            datasets: Vec::new(),
            offline: false,
        })?;
        let mut zoo: Vec<String> = Vec::new();
        for e in &runnable {
            let need = match args.profile.as_str() {
                "full" => &e.zoo_full,
                "tiny" => &e.zoo_tiny,
                _ => &e.zoo,
            };
            for z in need {
                if !zoo.contains(z) {
                    zoo.push(z.to_string());
                }
            }
        }
        if !zoo.is_empty() {
            let mut a = vec!["build".to_string()];
            a.extend(zoo);
            crate::zoo::run_zoo(&a)?;
        }
        let packages = [PACKAGE];
        let mut build = cargo();
        build
            .current_dir(project_root())
            .args(["build", "--release", "--quiet"]);
        for p in &packages {
            build.args(["--package", p]);
        }
        run_status(&mut build)?;
        failed = run_all(&runnable, args, &out, &target_dir().join("release"))?;
    }
    if let Some(s) = &args.shard {
        fail_if_any(&failed)?;
        eprintln!(
            "shard {s} done in {:.0} s: stores in {}; merge the shards with `cargo xtask merge \
             --out DIR <shard folders>`, then `cargo xtask suite --out DIR` for the report",
            started.elapsed().as_secs_f64(),
            out.join("runs").display()
        );
        return Ok(());
    }
    let ids: Vec<&str> = runnable.iter().map(|e| e.id.as_str()).collect();
    finish(&out, &ids, &environment(args, started), &failed, started)
}

/// Writes the report of what finished, then fails if any experiment did: scripts, CI and a
/// scheduler's `afterok` must not carry on as if every result were there.
fn finish(
    out: &Path,
    expected: &[&str],
    env: &crate::report::Environment,
    failed: &[String],
    started: Instant,
) -> Result<()> {
    let claims = crate::report::load_claims(&project_root().join("fixtures").join("claims.toml"))?;
    let written = crate::report::write(out, &claims, env, expected)?;
    for p in &written.stale_plots {
        eprintln!(
            "removed a stale plot no experiment draws any more: {}",
            p.display()
        );
    }
    if !written.missing.is_empty() {
        eprintln!(
            "warning: no summary for {} in {}: the report marks their claims \"results missing\"",
            written.missing.join(", "),
            out.display()
        );
    }
    eprintln!(
        "report: {} ({} files written, {:.0} s in all)",
        out.join("report.html").display(),
        written.files.len(),
        started.elapsed().as_secs_f64()
    );
    fail_if_any(failed)
}

fn fail_if_any(failed: &[String]) -> Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    bail!(
        "{} experiment(s) failed (the report shows the others):\n  {}",
        failed.len(),
        failed.join("\n  ")
    )
}

/// The suite's lock on `out` (`<out>/.suite.lock`, held while the returned file is open): a
/// second suite on the same folder is refused with a message rather than let loose on the same
/// logs and report. `create`: make the folder if needed (a report rebuild does not).
fn lock_out(out: &Path, create: bool) -> Result<Option<std::fs::File>> {
    if create {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    } else if !out.is_dir() {
        // The report says what is wrong with it.
        return Ok(None);
    }
    let path = out.join(".suite.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `cargo xtask suite` is using {} (it holds {}); wait for it to finish or \
             choose another --out",
            out.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Runs the experiments in a pool of `args.jobs` processes, respecting `after`; returns the
/// failures, one line each.
fn run_all(exps: &[&Experiment], args: &Args, out: &Path, bin_dir: &Path) -> Result<Vec<String>> {
    let jobs = jobs(args);
    let threads = args.threads;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let bars = indicatif::MultiProgress::new();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let total = exps.len();
    let overall = bars.add(indicatif::ProgressBar::new(total as u64));
    overall.set_style(
        indicatif::ProgressStyle::with_template(
            "suite [{elapsed_precise}] {bar:30} {pos}/{len} experiments, ~{eta} left",
        )
        .expect("a valid template"),
    );
    let done: Arc<Mutex<Vec<&str>>> = Arc::new(Mutex::new(Vec::new()));
    let failed: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let queue: Arc<Mutex<Vec<&Experiment>>> = Arc::new(Mutex::new(exps.to_vec()));
    let ids: Vec<&str> = exps.iter().map(|e| e.id.as_str()).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(total.max(1)) {
            let (queue, done, failed, bars, overall, logs, ids) = (
                queue.clone(),
                done.clone(),
                failed.clone(),
                &bars,
                &overall,
                &logs,
                &ids,
            );
            scope.spawn(move || {
                loop {
                    // The next experiment whose predecessors (if selected) are done.
                    let next = {
                        let mut q = queue.lock().expect("no poisoned lock");
                        if q.is_empty() {
                            break;
                        }
                        let d = done.lock().expect("no poisoned lock");
                        let pos = q.iter().position(|e| {
                            e.after
                                .iter()
                                .all(|a| !ids.contains(&a.as_str()) || d.contains(&a.as_str()))
                        });
                        pos.map(|i| q.remove(i))
                    };
                    let Some(e) = next else {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        continue;
                    };
                    let bar = bars.add(indicatif::ProgressBar::new_spinner());
                    bar.enable_steady_tick(std::time::Duration::from_millis(250));
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("  {prefix} [{elapsed}] {msg}")
                            .expect("a valid template"),
                    );
                    bar.set_prefix(e.id.clone());
                    let result = run_one(e, args, out, bin_dir, logs, threads, &bar);
                    bar.finish_and_clear();
                    match result {
                        Ok(secs) => eprintln!("{} done in {secs:.0} s", e.id),
                        Err(err) => {
                            eprintln!("{} failed: {err:#}", e.id);
                            failed
                                .lock()
                                .expect("no poisoned lock")
                                .push(format!("{}: {err:#}", e.id));
                        }
                    }
                    done.lock().expect("no poisoned lock").push(e.id.as_str());
                    overall.inc(1);
                }
            });
        }
    });
    overall.finish_and_clear();
    let failed = failed.lock().expect("no poisoned lock").clone();
    Ok(failed)
}

/// Runs one experiment's process; its standard error goes to `logs/<id>.log` and its last
/// run label to the spinner.
fn run_one(
    e: &Experiment,
    args: &Args,
    out: &Path,
    bin_dir: &Path,
    logs: &Path,
    threads: usize,
    bar: &indicatif::ProgressBar,
) -> Result<f64> {
    let start = Instant::now();
    let exe = bin_dir.join(&e.bin);
    let mut cmd = Command::new(&exe);
    cmd.arg(e.sub())
        .args(["--profile", &args.profile, "--device", &args.device])
        .arg("--out")
        .arg(out)
        .env("TRANSFERLAB_THREADS", threads.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(s) = args.seeds {
        cmd.args(["--seeds", &s.to_string()]);
    }
    if let Some(s) = &args.shard {
        cmd.args(["--shard", s]);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {}", exe.display()))?;
    let log_path = logs.join(format!("{}.log", e.id.to_lowercase()));
    let mut log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let mut last_error = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap_or_default();
        use std::io::Write;
        let _ = writeln!(log, "{line}");
        if line.starts_with('[') {
            bar.set_message(line.clone());
            if !bar.is_hidden() {
                continue;
            }
            tracing_line(&e.id, &line);
        } else if line.starts_with("error") {
            last_error = line;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "{status}: {} (log: {})",
            if last_error.is_empty() {
                "see the log"
            } else {
                &last_error
            },
            log_path.display()
        );
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Without a terminal, progress goes out as plain lines.
fn tracing_line(id: &str, line: &str) {
    eprintln!("{id} {line}");
}

/// `i/n` as numbers (validated earlier).
fn parse_shard(s: Option<&str>) -> Option<(u64, u64)> {
    let (i, n) = s?.split_once('/')?;
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// Processes in parallel: `--jobs`, or one per core.
fn jobs(args: &Args) -> usize {
    args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

fn environment(args: &Args, started: Instant) -> crate::report::Environment {
    let git = |a: &[&str]| {
        Command::new("git")
            .current_dir(project_root())
            .args(a)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let libtorch = std::fs::read_to_string(project_root().join(".cache/libtorch/version.py"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("__version__"))
                .map(|l| l.split('\'').nth(1).unwrap_or(l).to_string())
        })
        .or_else(|| std::env::var("LIBTORCH").ok())
        .unwrap_or_else(|| "see `cargo xtask setup`".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    crate::report::Environment {
        items: vec![
            (
                "commit".into(),
                format!(
                    "{commit}{}",
                    if dirty {
                        " (with uncommitted changes)"
                    } else {
                        ""
                    }
                ),
            ),
            ("libtorch".into(), libtorch),
            ("device".into(), args.device.clone()),
            ("profile".into(), args.profile.clone()),
            ("cores".into(), cores.to_string()),
            (
                "jobs".into(),
                format!(
                    "{} processes, {} libtorch thread(s) each",
                    jobs(args),
                    args.threads
                ),
            ),
            (
                "time".into(),
                if args.rebuild_report {
                    "report rebuilt from stored results (no training)".into()
                } else {
                    format!(
                        "{:.1} min for this invocation",
                        started.elapsed().as_secs_f64() / 60.0
                    )
                },
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: &Path) -> Args {
        Args {
            out: Some(out.to_path_buf()),
            profile: "tiny".into(),
            device: "cpu".into(),
            seeds: None,
            only: Vec::new(),
            jobs: Some(2),
            threads: 1,
            rebuild_report: false,
            shard: None,
        }
    }

    fn script(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_failed_experiment_fails_the_suite_after_the_report_of_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let (bins, out) = (dir.path().join("bin"), dir.path().join("out"));
        std::fs::create_dir_all(&bins).unwrap();
        // Stand-ins for the experiment binaries: `transfer x1 … --out DIR` writes a summary,
        // `multitask m1 …` fails as a run does.
        let contrast = {
            use transferlab_report::contrast::{Contrast, Kind, Margin, Unit};
            let mut r = transferlab_report::stats::Results::default();
            for (a, b) in [(0.6, 0.5), (0.62, 0.5)] {
                r.push("ft", a);
                r.push("sc", b);
            }
            let c = Contrast::paired(
                "gain",
                &["T-1"],
                "ft - sc",
                Unit::accuracy_points(),
                Kind::Superiority,
                "ft",
                "sc",
                Margin::new(0.02, "test"),
            );
            serde_json::to_string(&c.evaluate(&r).unwrap()).unwrap()
        };
        let summary = format!(
            r#"{{"id":"X1","title":"t","claims":["T-1"],"description":"d","profile":"tiny","seeds":2,"device":"Cpu","runs":1,"runs_stored":0,"seconds":1.0,"run_seconds":1.0,"config":{{}},"contrasts":[{contrast}],"tables":[],"plots":[],"notes":[]}}"#
        );
        assert!(!summary.contains('\''));
        script(
            &bins,
            "transfer",
            &format!(
                "while [ \"$1\" != --out ]; do shift; done; mkdir -p \"$2/x1\"; echo '{summary}' > \"$2/x1/summary.json\""
            ),
        );
        script(
            &bins,
            "multitask",
            "echo 'error: m1: training diverged' >&2; exit 1",
        );
        let all = registry().unwrap();
        let exps: Vec<&Experiment> = all
            .iter()
            .filter(|e| e.id == "X1" || e.id == "M1")
            .collect();
        let a = args(&out);
        let _lock = lock_out(&out, true).unwrap();
        let failed = run_all(&exps, &a, &out, &bins).unwrap();
        assert_eq!(failed.len(), 1, "{failed:?}");
        let err = finish(
            &out,
            &["X1", "M1"],
            &crate::report::Environment::default(),
            &failed,
            Instant::now(),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("1 experiment(s) failed"), "{msg}");
        assert!(
            msg.contains("M1") && msg.contains("training diverged"),
            "{msg}"
        );
        assert!(msg.contains("m1.log"), "{msg}");
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            md.contains("## X1 t"),
            "the finished experiment is reported"
        );
        assert!(md.contains("Results missing: M1"), "{md}");
        assert!(
            md.contains("**incomplete**"),
            "M-1's ledger row says why it is empty"
        );
    }

    #[test]
    fn the_registry_lists_every_experiment_once_with_its_binary() {
        let all = registry().unwrap();
        let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 18, "{ids:?}");
        for e in &all {
            assert!(e.exists(), "{}: no binary {}", e.id, e.bin);
            assert_eq!(
                ids.iter().filter(|i| **i == e.id).count(),
                1,
                "{} twice",
                e.id
            );
        }
    }

    #[test]
    fn a_second_suite_on_one_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_out(dir.path(), true).unwrap();
        assert!(first.is_some());
        let msg = format!("{:#}", lock_out(dir.path(), true).unwrap_err());
        assert!(
            msg.contains("another `cargo xtask suite` is using"),
            "{msg}"
        );
        drop(first);
        assert!(lock_out(dir.path(), true).unwrap().is_some(), "free again");
    }

    #[test]
    fn shards_parse() {
        assert_eq!(parse_shard(Some("1/4")), Some((1, 4)));
        assert_eq!(parse_shard(None), None);
        assert_eq!(parse_shard(Some("1-4")), None);
    }
}
