//! What every experiment crate shares: how an experiment is run ([`RunOptions`]), reading its
//! TOML config and profile, the ledger of its runs ([`RunLog`]), the plan of its runs
//! ([`Plan`]), the skeleton of its report and the command-line driver of the experiment
//! binaries ([`cli`], feature `cli`).
//!
//! **Plans and shards.** An experiment first lists its runs as a [`Plan`]: each run's spec,
//! seed and progress label, filed under the cell of the report it feeds (a target, a size, a
//! strategy…). The plan is then executed — each run loaded from the store or trained and
//! stored — and the report is a pure function of the plan's results. With
//! [`RunOptions::shard`], executing the plan is a filter over it: only the runs whose key falls
//! in the shard's slice (see [`crate::runs::Shard`]) are loaded or trained, nothing stands in
//! for the others, and a sharded experiment writes no report (the driver prints what the shard
//! ran); merging the shards' stores and running again builds the report from the store
//! without training.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::runs::{RunId, RunRecord, RunStore, Shard};
use core_tensor::device::DeviceSpec;
use core_tensor::{Error, Result};
use transferlab_report::ExperimentReport;

/// How an experiment is run (from the command line).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Profile name (`quick`, `full`, or one a config adds).
    pub profile: String,
    /// Number of seeds instead of the profile's.
    pub seeds: Option<u64>,
    /// Device.
    pub device: DeviceSpec,
    /// The run store's folder.
    pub store: PathBuf,
    /// Run only this slice of the runs (no report).
    pub shard: Option<Shard>,
    /// Train nothing: a run that is not in the store is an error naming it.
    pub stored_only: bool,
}

impl RunOptions {
    /// Options for `profile` on the CPU with the store in `store`, unsharded.
    pub fn new(profile: &str, store: impl Into<PathBuf>) -> Self {
        RunOptions {
            profile: profile.into(),
            seeds: None,
            device: DeviceSpec::Cpu,
            store: store.into(),
            shard: None,
            stored_only: false,
        }
    }

    /// The run store, sharded as asked.
    pub fn run_store(&self) -> RunStore {
        RunStore::new(&self.store)
            .with_shard(self.shard)
            .with_stored_only(self.stored_only)
    }

    /// The number of seeds to run: the option's, else the profile's; at least one.
    pub fn seeds_or(&self, profile_seeds: u64) -> Result<u64> {
        check_seeds(self.seeds.unwrap_or(profile_seeds))
    }
}

/// `seeds` if it is at least one.
pub fn check_seeds(seeds: u64) -> Result<u64> {
    if seeds == 0 {
        return Err(Error::InvalidArgument(
            "seeds: need at least 1 (2 or more for confidence intervals)".into(),
        ));
    }
    Ok(seeds)
}

/// Reads an experiment's TOML config; errors name the file and the field.
///
/// Before the typed parse, every size in the file is checked ([`check_sizes`]): no integer
/// field is 0 and no list is empty, except the fields [`zero_allowed`] names, so that a config
/// that would train or test on nothing is refused with the field's path instead of making runs.
///
/// A profile's `overrides` table (see [`load_config`]) is left out: this is the config as
/// every profile but those that override something sees it.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    load_config(path, None)
}

/// Reads an experiment's TOML config as profile `profile` sees it.
///
/// A profile may replace fields of the config outside its own section with a table
/// `[profiles.<name>.overrides]`: its tables are merged into the config's tables, its other
/// values replace the config's (`common = "common-tiny.toml"`, `min_steps = 5`,
/// `adapt.train.epochs = 1`). That is how a `tiny` smoke-test profile shrinks settings the
/// other profiles share; a profile without `overrides` reads the file exactly as written, so
/// its runs (and their keys in the store) do not depend on another profile's overrides.
/// Sizes are checked ([`check_sizes`]) in the file as written and again after the merge.
pub fn load_config<T: DeserializeOwned>(path: &Path, profile: Option<&str>) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut value: toml::Table =
        toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?;
    check_sizes(&value).map_err(|e| e.in_file(path))?;
    let mut chosen = None;
    let mut any = false;
    if let Some(toml::Value::Table(profiles)) = value.get_mut("profiles") {
        for (name, p) in profiles.iter_mut() {
            let Some(over) = p.as_table_mut().and_then(|t| t.remove("overrides")) else {
                continue;
            };
            any = true;
            let toml::Value::Table(over) = over else {
                return Err(Error::format(
                    path,
                    format!(
                        "profiles.{name}.overrides: must be a table of the config's fields to \
                         replace for this profile"
                    ),
                ));
            };
            if profile == Some(name.as_str()) {
                chosen = Some(over);
            }
        }
    }
    if !any {
        // Parsed again for the typed value: errors from the text keep their line and column.
        return toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()));
    }
    if let Some(over) = chosen {
        merge_into(&mut value, over);
        check_sizes(&value).map_err(|e| e.in_file(path))?;
    }
    let shown = match profile {
        Some(p) => format!("{p} profile's overrides applied"),
        None => "profile overrides left out".to_string(),
    };
    T::deserialize(toml::Value::Table(value))
        .map_err(|e| Error::format(path, format!("{e} ({shown})")))
}

/// Merges `over` into `base`: tables recursively, any other value replaced.
fn merge_into(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_into(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Whether the integer field `name` of an experiment config may be 0: seeds (`seed`,
/// `partition_seed`, …), lower bounds (`min_items`, `min_steps`) and `clutter` (a scene
/// without clutter). Every other integer of a config is a size or a count, for which 0 means
/// training, validating or testing on nothing.
pub fn zero_allowed(name: &str) -> bool {
    name.ends_with("seed") || name.starts_with("min_") || name == "clutter"
}

/// Refuses, naming its path (`profiles.quick.train_examples`), any integer field of `config`
/// that is 0 unless [`zero_allowed`] says it may be, and any empty list. Lists of numbers are
/// values, not sizes (`classes = [0, 1]`); lists of tables are checked inside.
pub fn check_sizes(config: &toml::Table) -> Result<()> {
    fn walk(value: &toml::Value, at: &str, name: &str) -> Result<()> {
        match value {
            toml::Value::Integer(0) if !zero_allowed(name) => Err(Error::InvalidArgument(format!(
                "{at}: must be at least 1 (0 would leave nothing to train, validate or test on)"
            ))),
            toml::Value::Array(items) if items.is_empty() => {
                Err(Error::InvalidArgument(format!("{at}: must not be empty")))
            }
            toml::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    if v.is_table() {
                        walk(v, &format!("{at}[{i}]"), name)?;
                    }
                }
                Ok(())
            }
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let path = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    walk(v, &path, k)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(&toml::Value::Table(config.clone()), "", "")
}

/// The profile `name` of `profiles`, or an error listing the profiles there are.
pub fn profile<'p, P>(profiles: &'p BTreeMap<String, P>, name: &str) -> Result<&'p P> {
    profiles.get(name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "no profile {name:?}; the config has {:?} (choose one with --profile)",
            profiles.keys().collect::<Vec<_>>()
        ))
    })
}

type OnRun<'a> = Box<dyn FnMut(&str, bool) + 'a>;

/// The ledger of one experiment's runs: how many ran, came from the store or were left to
/// other shards, the seconds they took, and the progress callback `on_run(label, stored)`
/// called after each. Interior mutability so that contexts lent as `&self` can record.
pub struct RunLog<'a> {
    on_run: RefCell<OnRun<'a>>,
    runs: Cell<usize>,
    stored: Cell<usize>,
    skipped: Cell<usize>,
    run_seconds: Cell<f64>,
}

impl std::fmt::Debug for RunLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLog")
            .field("runs", &self.runs.get())
            .field("stored", &self.stored.get())
            .field("skipped", &self.skipped.get())
            .field("run_seconds", &self.run_seconds.get())
            .finish_non_exhaustive()
    }
}

impl<'a> RunLog<'a> {
    /// An empty ledger reporting to `on_run`.
    pub fn new(on_run: impl FnMut(&str, bool) + 'a) -> Self {
        RunLog {
            on_run: RefCell::new(Box::new(on_run)),
            runs: Cell::new(0),
            stored: Cell::new(0),
            skipped: Cell::new(0),
            run_seconds: Cell::new(0.0),
        }
    }

    /// Records a finished run (`stored`: loaded from the store) that took `seconds` when it
    /// was trained.
    pub fn record(&self, label: &str, stored: bool, seconds: f64) {
        self.runs.set(self.runs.get() + 1);
        self.stored.set(self.stored.get() + usize::from(stored));
        self.run_seconds.set(self.run_seconds.get() + seconds);
        (self.on_run.borrow_mut())(label, stored);
    }

    /// Records a run left to another shard.
    pub fn skip(&self, label: &str) {
        self.skipped.set(self.skipped.get() + 1);
        tracing::debug!(run = label, "left to another shard");
    }

    /// Runs finished here or loaded.
    pub fn runs(&self) -> usize {
        self.runs.get()
    }

    /// Runs loaded from the store.
    pub fn stored(&self) -> usize {
        self.stored.get()
    }

    /// Runs left to other shards.
    pub fn skipped(&self) -> usize {
        self.skipped.get()
    }

    /// Seconds of the runs as they were trained (stored runs count their original time).
    pub fn run_seconds(&self) -> f64 {
        self.run_seconds.get()
    }
}

/// One run of a [`Plan`]: the cell of the report its result is filed under, what the run is
/// (the experiment's spec, from which its [`crate::runs::RunId`] is made), its seed and the
/// label of its progress line.
#[derive(Debug, Clone)]
pub struct Planned<C, S> {
    /// Where the result goes in the report.
    pub cell: C,
    /// The run.
    pub spec: S,
    /// Its seed.
    pub seed: u64,
    /// Its progress label.
    pub label: String,
}

/// The runs of an experiment, in the order they are trained (see the module's docs). The same
/// run may be planned twice (a scratch baseline shared by several comparisons): it is trained
/// once, and loaded from the store the second time.
#[derive(Debug, Clone)]
pub struct Plan<C, S> {
    runs: Vec<Planned<C, S>>,
}

impl<C, S> Default for Plan<C, S> {
    fn default() -> Self {
        Plan { runs: Vec::new() }
    }
}

impl<C, S> Plan<C, S> {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the run `spec` with `seed`, filed under `cell`.
    pub fn push(&mut self, cell: C, spec: S, seed: u64, label: impl Into<String>) {
        self.runs.push(Planned {
            cell,
            spec,
            seed,
            label: label.into(),
        });
    }

    /// The planned runs, in order.
    pub fn runs(&self) -> &[Planned<C, S>] {
        &self.runs
    }

    /// Number of planned runs.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The runs of `shard`'s slice of the plan (every run, unsharded), where `key(spec, seed)`
    /// gives a run's store key; the runs left to other shards are counted in `log`.
    pub fn in_shard(
        self,
        shard: Option<Shard>,
        log: &RunLog<'_>,
        mut key: impl FnMut(&S, u64) -> Result<String>,
    ) -> Result<Vec<Planned<C, S>>> {
        let Some(s) = shard else {
            return Ok(self.runs);
        };
        let mut mine = Vec::new();
        for p in self.runs {
            if Shard::of_key(&key(&p.spec, p.seed)?, s.of) == s.index {
                mine.push(p);
            } else {
                log.skip(&p.label);
            }
        }
        Ok(mine)
    }
}

/// Runs `runs` (a plan's, after [`Plan::in_shard`]) with `run(spec, seed, label)`: the results
/// in order with their cells, or `None` when `shard` is set (a shard has no report).
fn execute<C, S, R>(
    runs: Vec<Planned<C, S>>,
    shard: Option<Shard>,
    mut run: impl FnMut(&S, u64, &str) -> Result<R>,
) -> Result<Option<Vec<(C, R)>>> {
    let mut out = Vec::with_capacity(runs.len());
    for p in runs {
        let r = run(&p.spec, p.seed, &p.label)?;
        out.push((p.cell, r));
    }
    Ok(shard.is_none().then_some(out))
}

/// What an experiment is, for its report's skeleton.
#[derive(Debug, Clone, Copy)]
pub struct About<'s> {
    /// Its id (`X1`, `M3`, …).
    pub id: &'s str,
    /// A title.
    pub title: &'s str,
    /// The claims it tests.
    pub claims: &'s [&'s str],
}

/// The skeleton of a report; the experiment fills in verdicts, tables and plots. A sharded
/// run's skeleton carries a note of what was left to the other shards.
#[allow(clippy::too_many_arguments)]
fn report_skeleton(
    about: About<'_>,
    description: String,
    opts: &RunOptions,
    seeds: u64,
    device: tch::Device,
    log: &RunLog<'_>,
    started: std::time::Instant,
    config: &impl Serialize,
) -> ExperimentReport {
    let notes = match opts.shard {
        Some(s) => vec![format!(
            "Shard {}/{}: {} runs left to the other shards; no verdicts or tables (merge the \
             shards' stores and run again for the report).",
            s.index,
            s.of,
            log.skipped()
        )],
        None => Vec::new(),
    };
    ExperimentReport {
        id: about.id.into(),
        title: about.title.into(),
        claims: about.claims.iter().map(|c| c.to_string()).collect(),
        description,
        profile: opts.profile.clone(),
        seeds,
        device: format!("{device:?}"),
        runs: log.runs(),
        runs_stored: log.stored(),
        seconds: started.elapsed().as_secs_f64(),
        run_seconds: log.run_seconds(),
        config: serde_json::to_value(config).unwrap_or_default(),
        contrasts: Vec::new(),
        tables: Vec::new(),
        plots: Vec::new(),
        notes,
    }
}

/// One experiment being run: the one context every experiment runs through, whatever its
/// domain. It holds the options, the run store (sharded, stored-only or neither), the device,
/// the ledger of runs with its progress callback and the clock, and it is the only code that
/// loads, trains and stores runs ([`Session::run`], [`Session::stored`]), decides which runs a
/// shard owns ([`Session::in_shard`], [`Session::execute`]) and writes a report's skeleton
/// ([`Session::report`]): sharding, resuming, timing and progress are the driver's, never an
/// experiment's. The domain contexts (multi-task, transfer, end-to-end) wrap one with their
/// data caches.
pub struct Session<'a> {
    opts: RunOptions,
    store: RunStore,
    device: tch::Device,
    log: RunLog<'a>,
    started: std::time::Instant,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("store", &self.store.dir())
            .field("device", &self.device)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl<'a> Session<'a> {
    /// A session with `opts` (the device resolved now: a CUDA request without a GPU is an
    /// error here) that calls `on_run(label, stored)` after each run.
    pub fn new(opts: &RunOptions, on_run: impl FnMut(&str, bool) + 'a) -> Result<Self> {
        Ok(Session {
            opts: opts.clone(),
            store: opts.run_store(),
            device: opts.device.resolve()?,
            log: RunLog::new(on_run),
            started: std::time::Instant::now(),
        })
    }

    /// The device runs train on.
    pub fn device(&self) -> tch::Device {
        self.device
    }

    /// The options.
    pub fn options(&self) -> &RunOptions {
        &self.opts
    }

    /// The run store's folder (where a run may keep files beside its record).
    pub fn store_dir(&self) -> &Path {
        self.store.dir()
    }

    /// The ledger of runs so far.
    pub fn log(&self) -> &RunLog<'a> {
        &self.log
    }

    /// Whether only a shard's slice of the runs runs here (then there is no report).
    pub fn sharded(&self) -> bool {
        self.store.shard().is_some()
    }

    /// Whether the run with `key` is this session's to run (always, unless sharded); one
    /// that is not is counted as left to another shard under `label`.
    pub fn in_shard(&self, key: &str, label: &str) -> bool {
        let mine = self.store.in_shard(key);
        if !mine {
            self.log.skip(label);
        }
        mine
    }

    /// The stored result of `id`, counted as loaded under `label`, if it is stored.
    pub fn stored<T: Serialize + DeserializeOwned>(
        &self,
        id: &RunId,
        label: &str,
    ) -> Result<Option<T>> {
        let rec = self.lookup::<T>(id)?;
        if let Some(r) = &rec {
            self.loaded(label, r.seconds);
        }
        Ok(rec.map(|r| r.result))
    }

    /// The stored record of `id`, if any, not yet counted: a context that must check what
    /// the record points to (a weights file beside it) counts it with [`Session::loaded`] or
    /// runs it again with [`Session::rerun`].
    pub fn lookup<T: DeserializeOwned>(&self, id: &RunId) -> Result<Option<RunRecord<T>>> {
        self.store.get::<T>(id)
    }

    /// Counts a run as loaded from the store under `label` (it took `seconds` when trained).
    pub fn loaded(&self, label: &str, seconds: f64) {
        self.log.record(label, true, seconds);
    }

    /// Replaces the stored record of a run whose result was completed without training it
    /// again (a field added since it was stored).
    pub fn restore<T: Serialize>(&self, record: &RunRecord<T>) -> Result<()> {
        self.store.put(record)
    }

    /// Runs `f` and stores its record in place of any stored one (a record whose files are
    /// missing or altered, or a dependency of a run of this shard whatever its slice);
    /// counted under `label`. Refused with `--stored-only`.
    pub fn rerun<T: Serialize + DeserializeOwned>(
        &self,
        id: &RunId,
        label: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<RunRecord<T>> {
        let device = format!("{:?}", self.device);
        let rec = self.store.rerun(id, &device, f)?;
        self.log.record(label, false, rec.seconds);
        Ok(rec)
    }

    /// The stored result of `id`, or `f()` run, stored and returned; counted under `label`.
    /// In a sharded store, a run of another slice is refused ([`Error::OutOfShard`]); with
    /// `--stored-only`, a run that is not stored is an error naming it.
    pub fn run<T: Serialize + DeserializeOwned>(
        &self,
        id: &RunId,
        label: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let device = format!("{:?}", self.device);
        let (rec, stored) = self.store.run_or_load(id, &device, f)?;
        self.log.record(label, stored, rec.seconds);
        Ok(rec.result)
    }

    /// The runs of `plan` this session runs: every run, unsharded; in a shard, those whose key
    /// (`key(spec, seed)`, asked only when sharded) falls in its slice, the others counted as
    /// left to other shards. A context that runs them itself returns no results when
    /// [`Session::sharded`].
    pub fn mine<C, S>(
        &self,
        plan: Plan<C, S>,
        key: impl FnMut(&S, u64) -> Result<String>,
    ) -> Result<Vec<Planned<C, S>>> {
        plan.in_shard(self.store.shard(), &self.log, key)
    }

    /// Executes `plan`: the runs of this session's slice (every run, unsharded; `key(spec,
    /// seed)` gives a run's store key, asked only when sharded) each given to
    /// `run(spec, seed, label)`, the results in plan order with their cells; `None` when
    /// sharded (a shard has no report).
    pub fn execute<C, S, R>(
        &self,
        plan: Plan<C, S>,
        key: impl FnMut(&S, u64) -> Result<String>,
        run: impl FnMut(&S, u64, &str) -> Result<R>,
    ) -> Result<Option<Vec<(C, R)>>> {
        let shard = self.store.shard();
        let runs = plan.in_shard(shard, &self.log, key)?;
        execute(runs, shard, run)
    }

    /// The skeleton of the report of experiment `about` over `seeds` seeds from `config`,
    /// with the session's runs and times; the experiment adds contrasts, tables and plots. A
    /// sharded session's skeleton says what was left to the other shards.
    pub fn report(
        &self,
        about: About<'_>,
        description: String,
        seeds: u64,
        config: &impl Serialize,
    ) -> ExperimentReport {
        report_skeleton(
            about,
            description,
            &self.opts,
            seeds,
            self.device,
            &self.log,
            self.started,
            config,
        )
    }
}

/// Evaluates an experiment's declared contrasts on its per-seed results and files them in its
/// report: the only way an experiment comes to a decision (the rules live in
/// [`transferlab_report::contrast`]; the margins in [`crate::margins`]).
///
/// Errors as [`evaluate_contrasts`] does.
pub fn decide(
    rep: &mut ExperimentReport,
    results: &transferlab_report::stats::Results,
    contrasts: impl IntoIterator<Item = transferlab_report::contrast::Contrast>,
) -> Result<()> {
    let claims: Vec<&str> = rep.claims.iter().map(String::as_str).collect();
    let decided = evaluate_contrasts(&rep.id, &claims, results, contrasts)?;
    rep.contrasts.extend(decided);
    Ok(())
}

/// Evaluates the contrasts of experiment `id`, whose claims are `claims`, on its per-seed
/// results ([`decide`] files them in a report).
///
/// Errors when a contrast reads a result key that is missing or has the wrong number of seeds,
/// or names none of the experiment's claims (a contrast that decides nothing is a bug).
pub fn evaluate_contrasts(
    id: &str,
    claims: &[&str],
    results: &transferlab_report::stats::Results,
    contrasts: impl IntoIterator<Item = transferlab_report::contrast::Contrast>,
) -> Result<Vec<transferlab_report::contrast::ContrastResult>> {
    contrasts
        .into_iter()
        .map(|c| {
            if c.claims.is_empty() || c.claims.iter().any(|k| !claims.contains(&k.as_str())) {
                return Err(Error::InvalidArgument(format!(
                    "{id}: contrast {} decides {:?}, but the experiment's claims are {claims:?}",
                    c.id, c.claims
                )));
            }
            c.evaluate(results)
                .map_err(|e| Error::InvalidArgument(format!("{id}: contrast {}: {e}", c.id)))
        })
        .collect()
}

/// An experiment as the binaries run it: `(config, options, on_run) -> report`.
pub type ExperimentFn =
    fn(&Path, &RunOptions, &mut dyn FnMut(&str, bool)) -> Result<ExperimentReport>;

/// The command-line side of the experiment binaries (`transfer`, `multitask`, `e2e`): one set
/// of options and one driver, so that every experiment is run, resumed, sharded and reported
/// the same way.
pub mod cli {
    use std::path::{Path, PathBuf};

    use super::{ExperimentFn, RunOptions};
    use crate::runs::Shard;
    use core_tensor::device::DeviceSpec;

    /// Options of every experiment.
    #[derive(clap::Args, Debug, Clone)]
    pub struct ExpArgs {
        /// The experiment config (default: the crate's experiments/<id>.toml).
        #[arg(long)]
        pub config: Option<PathBuf>,
        /// Profile: quick or full (tiny: a smoke test).
        #[arg(long, default_value = "quick")]
        pub profile: String,
        /// Seeds (default: the profile's).
        #[arg(long)]
        pub seeds: Option<u64>,
        /// Output folder: runs/ (the store) and <id>/ (summary.json, report.md, CSV).
        #[arg(long, default_value = "out/suite")]
        pub out: PathBuf,
        /// cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        pub device: DeviceSpec,
        /// Run only the i-th of n disjoint slices of the runs (e.g. 0/4); no report is
        /// written. Merge the shards' stores with `cargo xtask merge`, then run again for the
        /// report.
        #[arg(long)]
        pub shard: Option<Shard>,
        /// Train nothing: every run must be in the store (a merged store, a copied one);
        /// one that is not is an error naming its key.
        #[arg(long)]
        pub stored_only: bool,
    }

    impl ExpArgs {
        /// The run options these arguments give.
        pub fn options(&self) -> RunOptions {
            RunOptions {
                profile: self.profile.clone(),
                seeds: self.seeds,
                device: self.device,
                store: self.out.join("runs"),
                shard: self.shard,
                stored_only: self.stored_only,
            }
        }
    }

    /// Runs experiment `id` (lower case) with `args`: its config is `--config` or
    /// `<configs>/<id>.toml`; one progress line per run on standard error; the report goes to
    /// `<out>/<id>/` and its Markdown to standard output, unless sharded (then a line says what
    /// the shard ran).
    pub fn run_experiment(
        id: &str,
        args: &ExpArgs,
        f: ExperimentFn,
        configs: &Path,
    ) -> anyhow::Result<()> {
        let config = args
            .config
            .clone()
            .unwrap_or_else(|| configs.join(format!("{id}.toml")));
        if !config.is_file() {
            anyhow::bail!(
                "no experiment config at {}; pass one with --config FILE",
                config.display()
            );
        }
        let opts = args.options();
        let start = std::time::Instant::now();
        let mut n = 0;
        let mut on_run = |label: &str, stored: bool| {
            n += 1;
            let how = if stored { "stored" } else { "ran" };
            eprintln!(
                "[{n}] {label}: {how} ({:.0} s)",
                start.elapsed().as_secs_f64()
            );
        };
        let report = f(&config, &opts, &mut on_run).map_err(|e| {
            // An error about a file (the config, a file it includes, a dataset) names that
            // file already: say it once. Others get the config the run came from.
            use core_tensor::Error;
            let names_a_file = matches!(
                e,
                Error::Format { .. } | Error::Io { .. } | Error::MissingFixture { .. }
            ) || e.to_string().contains(&config.display().to_string());
            if names_a_file {
                anyhow::anyhow!("{id}: {e}")
            } else {
                anyhow::anyhow!("{id} ({}): {e}", config.display())
            }
        })?;
        if let Some(s) = args.shard {
            eprintln!(
                "{id} shard {}/{}: {} runs here ({} from the store); {}",
                s.index,
                s.of,
                report.runs,
                report.runs_stored,
                report.notes.join(" ")
            );
            return Ok(());
        }
        report.write(&args.out.join(id))?;
        println!("{}", report.markdown());
        Ok(())
    }

    /// Runs experiment `id` of `experiments`, or all of them in order when `id` is `all`
    /// (then `--config` is refused: it names one experiment's file).
    pub fn dispatch(
        id: &str,
        args: &ExpArgs,
        experiments: &[(&str, ExperimentFn)],
        configs: &Path,
    ) -> anyhow::Result<()> {
        if id == "all" {
            if args.config.is_some() {
                anyhow::bail!(
                    "--config names one experiment's file; `all` takes each from {}",
                    configs.display()
                );
            }
            for (id, f) in experiments {
                run_experiment(id, args, *f, configs)?;
            }
            return Ok(());
        }
        let f = experiments
            .iter()
            .find(|(name, _)| *name == id)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let ids: Vec<&str> = experiments.iter().map(|(n, _)| *n).collect();
                anyhow::anyhow!("no experiment {id:?}; there are {ids:?} and all")
            })?;
        run_experiment(id, args, f, configs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_counts_runs_stored_and_skipped() {
        let mut lines = Vec::new();
        {
            let log = RunLog::new(|l: &str, s: bool| lines.push(format!("{l}:{s}")));
            log.record("a", false, 2.0);
            log.record("b", true, 3.0);
            log.skip("c");
            assert_eq!((log.runs(), log.stored(), log.skipped()), (2, 1, 1));
            assert_eq!(log.run_seconds(), 5.0);
        }
        assert_eq!(lines, ["a:false", "b:true"]);
    }

    /// Where a value sits in a TOML document: keys and list indices.
    #[derive(Clone, Debug)]
    enum Seg {
        Key(String),
        Index(usize),
    }

    fn shown(path: &[Seg]) -> String {
        let mut s = String::new();
        for seg in path {
            match seg {
                Seg::Key(k) if s.is_empty() => s.push_str(k),
                Seg::Key(k) => s.push_str(&format!(".{k}")),
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }

    /// Every size (integer not allowed to be 0) and every list of a document.
    fn sizes(v: &toml::Value, path: &mut Vec<Seg>, found: &mut Vec<(Vec<Seg>, bool)>) {
        match v {
            toml::Value::Integer(_) => {
                if let Some(Seg::Key(k)) = path.last()
                    && !zero_allowed(k)
                {
                    found.push((path.clone(), false));
                }
            }
            toml::Value::Array(items) => {
                found.push((path.clone(), true));
                for (i, x) in items.iter().enumerate() {
                    if x.is_table() {
                        path.push(Seg::Index(i));
                        sizes(x, path, found);
                        path.pop();
                    }
                }
            }
            toml::Value::Table(t) => {
                for (k, x) in t {
                    path.push(Seg::Key(k.clone()));
                    sizes(x, path, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn at<'v>(v: &'v mut toml::Value, path: &[Seg]) -> &'v mut toml::Value {
        path.iter().fold(v, |v, seg| match seg {
            Seg::Key(k) => &mut v.as_table_mut().unwrap()[k.as_str()],
            Seg::Index(i) => &mut v.as_array_mut().unwrap()[*i],
        })
    }

    #[test]
    fn every_size_of_every_shipped_config_is_refused_at_zero_with_its_path() {
        let root = crate::configs("");
        let mut files = Vec::new();
        for krate in std::fs::read_dir(&root).unwrap().flatten() {
            if let Ok(dir) = std::fs::read_dir(krate.path()) {
                files.extend(
                    dir.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "toml")),
                );
            }
        }
        assert!(files.len() >= 16, "{files:?}");
        let mut checked = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let doc: toml::Value = toml::from_str(&text).unwrap();
            check_sizes(doc.as_table().unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let mut found = Vec::new();
            sizes(&doc, &mut Vec::new(), &mut found);
            for (path, list) in found {
                let mut bad = doc.clone();
                *at(&mut bad, &path) = if list {
                    toml::Value::Array(Vec::new())
                } else {
                    toml::Value::Integer(0)
                };
                let msg = check_sizes(bad.as_table().unwrap())
                    .unwrap_err()
                    .in_file(&file)
                    .to_string();
                let want = format!("{}: {}: must ", file.display(), shown(&path));
                assert!(msg.starts_with(&want), "{msg} (wanted {want}…)");
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} sizes found");
    }

    #[test]
    fn zeros_that_mean_something_stay_allowed() {
        let t: toml::Table =
            toml::from_str("seed = 0\npartition_seed = 0\nscenes = { min_items = 0, clutter = 0 }\nclasses = [0, 1]")
                .unwrap();
        check_sizes(&t).unwrap();
    }

    #[test]
    fn seeds_and_profiles_are_checked() {
        let mut o = RunOptions::new("quick", "/nonexistent");
        assert_eq!(o.seeds_or(3).unwrap(), 3);
        o.seeds = Some(0);
        assert!(
            o.seeds_or(3)
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
        let profiles: BTreeMap<String, u32> = [("quick".to_string(), 1)].into();
        assert_eq!(*profile(&profiles, "quick").unwrap(), 1);
        let msg = profile(&profiles, "ful").unwrap_err().to_string();
        assert!(msg.contains("\"ful\"") && msg.contains("quick"), "{msg}");
    }

    #[test]
    fn shards_filter_the_plan_into_disjoint_slices_that_cover_it() {
        let plan = || {
            let mut p = Plan::new();
            for i in 0..60u64 {
                p.push(format!("cell{}", i % 7), i, i % 3, format!("run {i}"));
            }
            p
        };
        let key = |spec: &u64, seed: u64| -> Result<String> {
            use sha2::Digest;
            Ok(format!(
                "{:x}",
                sha2::Sha256::digest(format!("{spec}/{seed}"))
            ))
        };
        let log = RunLog::new(|_: &str, _: bool| {});
        let all = plan().in_shard(None, &log, key).unwrap();
        assert_eq!(all.len(), 60);
        assert_eq!(log.skipped(), 0);
        let mut seen = Vec::new();
        for index in 0..3 {
            let log = RunLog::new(|_: &str, _: bool| {});
            let shard = Some(Shard { index, of: 3 });
            let mine = plan().in_shard(shard, &log, key).unwrap();
            assert_eq!(mine.len() + log.skipped(), 60);
            assert!(!mine.is_empty() && mine.len() < 60, "{}", mine.len());
            // A shard executes its runs and has no result to report.
            let out = execute(mine.clone(), shard, |s, _, _| Ok(*s)).unwrap();
            assert!(out.is_none());
            seen.extend(mine.into_iter().map(|p| p.spec));
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..60).collect::<Vec<_>>(),
            "each run in exactly one shard"
        );
        // Unsharded, the results come back in plan order with their cells.
        let out = execute(all, None, |s, seed, label| {
            assert_eq!(label, format!("run {s}"));
            Ok(s * 10 + seed)
        })
        .unwrap()
        .unwrap();
        assert_eq!(out[4], ("cell4".to_string(), 41));
        assert_eq!(out.len(), 60);
    }

    /// The one path, enforced: no experiment file loads or stores a run, owns a ledger of
    /// runs, or writes a report's skeleton itself; the [`Session`] does (through the domain
    /// contexts of `mtl/common.rs`, `xfer/runner.rs` and `e2e/common.rs`).
    #[test]
    fn experiments_run_only_through_the_session() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = 0;
        for group in ["xfer", "mtl", "e2e"] {
            for entry in std::fs::read_dir(src.join(group)).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let is_experiment = name.len() == 5
                    && name.ends_with(".rs")
                    && ["x", "m", "p"].iter().any(|p| name.starts_with(p));
                if !is_experiment {
                    continue;
                }
                files += 1;
                let text = std::fs::read_to_string(entry.path()).unwrap();
                for forbidden in [
                    "run_or_load",
                    "ExperimentReport {",
                    "RunLog",
                    "RunStore",
                    "report_skeleton",
                    ".in_shard(shard",
                ] {
                    assert!(
                        !text.contains(forbidden),
                        "{group}/{name} uses {forbidden:?}: runs, shards and reports go through \
                         driver::Session"
                    );
                }
            }
        }
        assert_eq!(files, 18);
    }

    #[test]
    fn sharded_skeleton_says_what_was_left() {
        let mut o = RunOptions::new("tiny", "/nonexistent");
        o.shard = Some("1/3".parse().unwrap());
        let log = RunLog::new(|_: &str, _: bool| {});
        log.skip("x");
        let about = About {
            id: "M1",
            title: "t",
            claims: &["M-1"],
        };
        let r = report_skeleton(
            about,
            String::new(),
            &o,
            2,
            tch::Device::Cpu,
            &log,
            std::time::Instant::now(),
            &(),
        );
        assert!(
            r.notes[0].starts_with("Shard 1/3: 1 runs left"),
            "{:?}",
            r.notes
        );
    }
}
