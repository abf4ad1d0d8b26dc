//! A store of finished experiment runs, so that an interrupted sweep resumes where it stopped.
//!
//! A run is one (experiment, resolved configuration, seed) with its inputs (dataset checksums,
//! pre-trained weights' checksums). Its key is the sha256 of all of that as canonical JSON, so
//! changing any of it makes a new run and leaves the old result alone. Each finished run is one
//! JSON file `<store>/<experiment>/<key>.json`, written atomically when the run ends: killing a
//! sweep loses at most the run in progress, and the store is never half-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use core_tensor::persist::write_json;
use core_tensor::{Error, Result};

/// What identifies a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunId {
    /// Experiment name, e.g. `x1-target-size`.
    pub experiment: String,
    /// The resolved configuration of this run (variant, sizes, training settings).
    pub config: serde_json::Value,
    /// The seed.
    pub seed: u64,
    /// Inputs the result depends on beyond the code: name → checksum (datasets, weights).
    pub inputs: std::collections::BTreeMap<String, String>,
}

impl RunId {
    /// A run id from any serialisable configuration.
    pub fn new(
        experiment: &str,
        config: &impl Serialize,
        seed: u64,
        inputs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let config = serde_json::to_value(config)
            .map_err(|e| Error::InvalidArgument(format!("run config is not serialisable: {e}")))?;
        Ok(RunId {
            experiment: experiment.to_string(),
            config,
            seed,
            inputs: inputs.into_iter().collect(),
        })
    }

    /// The run's key: sha256 of the id as canonical JSON (object keys sorted).
    pub fn key(&self) -> String {
        // serde_json's Value keeps object keys sorted (BTreeMap), so this is canonical.
        let value = serde_json::to_value(self).expect("a RunId always serialises");
        format!("{:x}", Sha256::digest(value.to_string().as_bytes()))
    }
}

/// A finished run as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord<T> {
    /// The key ([`RunId::key`]).
    pub key: String,
    /// What the run was.
    pub id: RunId,
    /// What it measured.
    pub result: T,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// The device it ran on.
    pub device: String,
}

/// A folder of finished runs.
#[derive(Debug, Clone)]
pub struct RunStore {
    dir: PathBuf,
    shard: Option<Shard>,
    stored_only: bool,
}

/// The i-th of n disjoint slices of every sweep's runs (`--shard i/n`): a run belongs to the
/// slice given by its key, so the slices do not depend on the order runs are met in, and the
/// stores of all n slices together hold exactly the runs of one unsharded sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This slice, `0..of`.
    pub index: u64,
    /// Number of slices.
    pub of: u64,
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// `i/n` with 0 ≤ i < n (`1/2` is the second of two).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "shard {s:?}: expected i/n with 0 <= i < n, e.g. 0/4 for the first of four"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, of) = (
            i.trim().parse::<u64>().map_err(|_| bad())?,
            n.trim().parse::<u64>().map_err(|_| bad())?,
        );
        if of == 0 || index >= of {
            return Err(bad());
        }
        Ok(Shard { index, of })
    }
}

impl Shard {
    /// The slice a run key belongs to.
    pub fn of_key(key: &str, of: u64) -> u64 {
        // Keys are sha256 hex digits: the first 15 are a uniform 60-bit number.
        u64::from_str_radix(&key[..15.min(key.len())], 16).unwrap_or(0) % of
    }
}

impl RunStore {
    /// The store in `dir` (created when the first run is written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunStore {
            dir: dir.into(),
            shard: None,
            stored_only: false,
        }
    }

    /// The same store, training nothing when `stored_only`: a run that is not stored is an
    /// error naming the run and its key (`--stored-only`: rebuild a report from a merged store
    /// and be sure that nothing trains).
    pub fn with_stored_only(mut self, stored_only: bool) -> Self {
        self.stored_only = stored_only;
        self
    }

    /// The same store, running only the runs of `shard` (see [`Shard`]).
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Whether the run with `key` is this store's to run (always, unless sharded).
    pub fn in_shard(&self, key: &str) -> bool {
        self.shard
            .is_none_or(|s| Shard::of_key(key, s.of) == s.index)
    }

    /// The slice this store runs, if sharded.
    pub fn shard(&self) -> Option<Shard> {
        self.shard
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &RunId) -> PathBuf {
        self.dir
            .join(&id.experiment)
            .join(format!("{}.json", id.key()))
    }

    /// The stored record of `id`, if it finished before. A file that cannot be read as a
    /// record is an error naming it (delete it to rerun that run).
    pub fn get<T: DeserializeOwned>(&self, id: &RunId) -> Result<Option<RunRecord<T>>> {
        let path = self.path(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let record: RunRecord<T> = serde_json::from_str(&text).map_err(|e| {
            Error::format(
                &path,
                format!("not a run record ({e}); delete it to rerun the run"),
            )
        })?;
        Ok(Some(record))
    }

    /// Stores a finished run atomically.
    pub fn put<T: Serialize>(&self, record: &RunRecord<T>) -> Result<()> {
        write_json(&self.path(&record.id), record)
    }

    /// Returns the stored result of `id`, or runs `f`, stores its result and returns it.
    /// The flag is true when the result came from the store. In a sharded store, a run of
    /// another slice that is not stored yet is [`Error::OutOfShard`] (and `f` is not called).
    pub fn run_or_load<T, F>(&self, id: &RunId, device: &str, f: F) -> Result<(RunRecord<T>, bool)>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T>,
    {
        if let Some(rec) = self.get(id)? {
            return Ok((rec, true));
        }
        if let Some(s) = self.shard {
            let key = id.key();
            let shard = Shard::of_key(&key, s.of);
            if shard != s.index {
                return Err(Error::OutOfShard {
                    key,
                    shard,
                    of: s.of,
                });
            }
        }
        if self.stored_only {
            return Err(Error::InvalidArgument(format!(
                "run {}/{} is not in the store {} and --stored-only forbids training it (run \
                 without --stored-only to train it, or merge the store that holds it)",
                id.experiment,
                id.key(),
                self.dir.display()
            )));
        }
        let start = std::time::Instant::now();
        let result = f()?;
        let record = RunRecord {
            key: id.key(),
            id: id.clone(),
            result,
            seconds: start.elapsed().as_secs_f64(),
            device: device.to_string(),
        };
        self.put(&record)?;
        Ok((record, false))
    }

    /// Runs `f` and stores its record in place of any stored one of `id` (a record whose
    /// files beside it are missing or altered, or a source network a run of this shard needs:
    /// such a dependency is trained wherever it is needed, whatever slice its key falls in;
    /// shards that both train it store the same record). Refused with `--stored-only`.
    pub fn rerun<T, F>(&self, id: &RunId, device: &str, f: F) -> Result<RunRecord<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T>,
    {
        let key = id.key();
        if self.stored_only {
            return Err(Error::InvalidArgument(format!(
                "run {}/{key} must be run again (its stored files are missing or altered) and \
                 --stored-only forbids training it",
                id.experiment
            )));
        }
        let start = std::time::Instant::now();
        let result = f()?;
        let record = RunRecord {
            key,
            id: id.clone(),
            result,
            seconds: start.elapsed().as_secs_f64(),
            device: device.to_string(),
        };
        self.put(&record)?;
        Ok(record)
    }

    /// Every stored record of `experiment`, sorted by key.
    pub fn records<T: DeserializeOwned>(&self, experiment: &str) -> Result<Vec<RunRecord<T>>> {
        let dir = self.dir.join(experiment);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                serde_json::from_str(&text).map_err(|e| Error::format(p, e.to_string()))
            })
            .collect()
    }
}

/// Every record under the store folder `dir` as `experiment/key` → its result, without the
/// fields that measure time (`seconds`, `seconds_per_step`, …), which differ between two
/// trainings of the same run. Two stores with equal maps hold the same results; tests of
/// resuming and sharding compare stores this way (as `cargo xtask merge` does).
pub fn results_without_timing(dir: &Path) -> Result<BTreeMap<String, serde_json::Value>> {
    fn strip(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => m
                .into_iter()
                .filter(|(k, _)| !k.contains("seconds"))
                .map(|(k, v)| (k, strip(v)))
                .collect(),
            serde_json::Value::Array(a) => a.into_iter().map(strip).collect(),
            v => v,
        }
    }
    let mut out = BTreeMap::new();
    let experiments = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for exp in experiments {
        let exp = exp.map_err(|e| Error::io(dir, e))?.path();
        if !exp.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&exp).map_err(|e| Error::io(&exp, e))? {
            let f = f.map_err(|e| Error::io(&exp, e))?.path();
            if f.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&f).map_err(|e| Error::io(&f, e))?;
            let mut v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::format(&f, e.to_string()))?;
            let result = v
                .get_mut("result")
                .map(serde_json::Value::take)
                .ok_or_else(|| Error::format(&f, "a run record without \"result\""))?;
            let name = format!(
                "{}/{}",
                exp.file_name().unwrap_or_default().to_string_lossy(),
                f.file_stem().unwrap_or_default().to_string_lossy()
            );
            out.insert(name, strip(result));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(lr: f64, seed: u64) -> RunId {
        RunId::new(
            "x1",
            &serde_json::json!({"strategy": "scratch", "lr": lr}),
            seed,
            [("mnist".to_string(), "abc".to_string())],
        )
        .unwrap()
    }

    #[test]
    fn keys_change_with_config_seed_and_inputs() {
        assert_eq!(id(0.1, 0).key(), id(0.1, 0).key());
        assert_ne!(id(0.1, 0).key(), id(0.2, 0).key());
        assert_ne!(id(0.1, 0).key(), id(0.1, 1).key());
        let mut other = id(0.1, 0);
        other.inputs.insert("mnist".into(), "abd".into());
        assert_ne!(id(0.1, 0).key(), other.key());
        // Field order in the config does not matter.
        let a = RunId::new("x", &serde_json::json!({"a": 1, "b": 2}), 0, []).unwrap();
        let b = RunId::new("x", &serde_json::json!({"b": 2, "a": 1}), 0, []).unwrap();
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn shards_split_the_runs_into_disjoint_slices_that_cover_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<RunId> = (0..40).map(|s| id(0.1, s)).collect();
        let mut ran = Vec::new();
        for index in 0..3 {
            let store = RunStore::new(dir.path().join(index.to_string()))
                .with_shard(Some(Shard { index, of: 3 }));
            for i in &ids {
                match store.run_or_load(i, "cpu", || Ok(i.seed)) {
                    Ok((rec, false)) => ran.push(rec.result),
                    Err(Error::OutOfShard { shard, of: 3, .. }) => assert_ne!(shard, index),
                    other => panic!("{other:?}"),
                }
            }
        }
        ran.sort_unstable();
        assert_eq!(
            ran,
            (0..40).collect::<Vec<u64>>(),
            "each run in exactly one shard"
        );
        // A stored run is returned whatever the shard.
        let store = RunStore::new(dir.path().join("0")).with_shard(Some(Shard { index: 1, of: 3 }));
        let stored = ids
            .iter()
            .filter(|i| store.get::<u64>(i).unwrap().is_some())
            .count();
        assert!(stored > 0 && stored < 40);
        assert_eq!("1/3".parse::<Shard>().unwrap(), Shard { index: 1, of: 3 });
        for bad in ["3/3", "1", "a/2", "0/0"] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.contains("i/n"), "{err}");
        }
    }

    #[test]
    fn finished_runs_are_not_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let mut calls = 0;
        let (first, cached) = store
            .run_or_load(&id(0.1, 0), "cpu", || {
                calls += 1;
                Ok(0.93)
            })
            .unwrap();
        assert!(!cached);
        let (second, cached) = store
            .run_or_load(&id(0.1, 0), "cpu", || -> Result<f64> {
                unreachable!("already stored")
            })
            .unwrap();
        assert!(cached);
        assert_eq!((calls, first.result, second.result), (1, 0.93, 0.93));
        assert_eq!(store.records::<f64>("x1").unwrap().len(), 1);
    }

    #[test]
    fn a_failed_run_stores_nothing_and_a_damaged_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let err = store.run_or_load(&id(0.1, 0), "cpu", || -> Result<f64> {
            Err(Error::InvalidArgument("boom".into()))
        });
        assert!(err.is_err());
        assert!(store.get::<f64>(&id(0.1, 0)).unwrap().is_none());
        let path = dir
            .path()
            .join("x1")
            .join(format!("{}.json", id(0.1, 0).key()));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{ half").unwrap();
        let err = store.get::<f64>(&id(0.1, 0)).unwrap_err().to_string();
        assert!(
            err.contains(&id(0.1, 0).key()) && err.contains("delete it"),
            "{err}"
        );
    }
}
