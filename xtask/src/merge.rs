//! `cargo xtask merge`: combines the run stores of several suite outputs (the shards of a
//! sharded run, `cargo xtask suite --shard i/n`) into one, so that `cargo xtask suite --out`
//! on the merged folder builds the report from stored results alone.
//!
//! A record (`runs/<kind>/<key>.json`) and its weights (`<key>.safetensors`) are copied when the
//! destination lacks them. When two stores hold the same key, their results must agree (runs are
//! deterministic by seed on the CPU; fields that measure time are not compared); a disagreement
//! is an error naming the key and both files, and nothing of that key is overwritten.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Options of `cargo xtask merge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The merged output folder (its `runs/` is created or extended).
    #[arg(long)]
    pub out: PathBuf,
    /// Suite output folders to merge (each with a `runs/` store).
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
}

/// What a merge did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Files copied.
    pub copied: usize,
    /// Records already present with the same result.
    pub identical: usize,
}

/// Runs the merge and prints what it did.
pub fn run(args: &Args) -> Result<()> {
    let m = merge(&args.sources, &args.out)?;
    eprintln!(
        "merged {} store(s) into {}: {} files copied, {} records already there",
        args.sources.len(),
        args.out.join("runs").display(),
        m.copied,
        m.identical
    );
    eprintln!(
        "build the report from the merged store: cargo xtask suite --out {}",
        args.out.display()
    );
    Ok(())
}

/// Merges the `runs/` stores of `sources` into `out/runs`.
pub fn merge(sources: &[PathBuf], out: &Path) -> Result<Merged> {
    let dest = out.join("runs");
    let mut m = Merged::default();
    for src in sources {
        let runs = src.join("runs");
        if !runs.is_dir() {
            bail!(
                "{}: no run store (runs/) here; pass the --out folders of the shards",
                src.display()
            );
        }
        for kind in read_dir(&runs)? {
            if !kind.is_dir() {
                continue;
            }
            let name = kind.file_name().expect("a folder has a name").to_owned();
            let dest_kind = dest.join(&name);
            std::fs::create_dir_all(&dest_kind)
                .with_context(|| format!("creating {}", dest_kind.display()))?;
            let mut files = read_dir(&kind)?;
            // Weights before records: a record is only ever visible with its weights.
            files.sort_by_key(|p| p.extension().is_some_and(|e| e == "json"));
            for file in files {
                let ext = file.extension().map(|e| e.to_string_lossy().into_owned());
                if !matches!(ext.as_deref(), Some("json" | "safetensors")) {
                    continue;
                }
                let target = dest_kind.join(file.file_name().expect("a file has a name"));
                if target.exists() {
                    if ext.as_deref() == Some("json") {
                        same_result(&file, &target)?;
                        m.identical += 1;
                    }
                    continue;
                }
                let mut from = std::fs::File::open(&file)
                    .with_context(|| format!("opening {}", file.display()))?;
                crate::util::write_atomic_with(&target, |w| {
                    std::io::copy(&mut from, w).map(|_| ())
                })?;
                m.copied += 1;
            }
        }
    }
    Ok(m)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// `v` without fields that measure time (`seconds`, `seconds_per_step`, …), which differ
/// between two runs of the same deterministic computation.
fn without_timings(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !k.contains("seconds"))
            .map(|(k, v)| (k.clone(), without_timings(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_json::Value::Array(a) => a.iter().map(without_timings).collect(),
        other => other.clone(),
    }
}

fn same_result(a: &Path, b: &Path) -> Result<()> {
    let read = |p: &Path| -> Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a run record", p.display()))
    };
    let (x, y) = (read(a)?, read(b)?);
    if without_timings(&x["result"]) != without_timings(&y["result"]) {
        bail!(
            "{} and {} hold the same run with different results; runs are deterministic on the \
             CPU, so one of them comes from other code or another device: keep the one you trust",
            a.display(),
            b.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &Path, kind: &str, key: &str, result: f64) {
        let d = dir.join("runs").join(kind);
        std::fs::create_dir_all(&d).unwrap();
        // Timings differ between two runs of the same computation.
        let v = serde_json::json!({
            "key": key,
            "result": { "test_accuracy": result, "seconds_per_step": rand_like(dir) },
            "seconds": 1.0
        });
        std::fs::write(d.join(format!("{key}.json")), v.to_string()).unwrap();
    }

    fn rand_like(dir: &Path) -> f64 {
        f64::from(dir.to_string_lossy().bytes().last().unwrap_or(0)) * 1e-3
    }

    #[test]
    fn a_merge_that_cannot_write_leaves_no_partial_file() {
        let t = tempfile::tempdir().unwrap();
        let (a, out) = (t.path().join("a"), t.path().join("out"));
        record(&a, "x1", "k1", 0.5);
        crate::util::faults::fail_writes_after(Some(10));
        let err = format!("{:#}", merge(&[a], &out).unwrap_err());
        crate::util::faults::fail_writes_after(None);
        assert!(
            err.contains("k1.json") && err.contains("No space left"),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(out.join("runs/x1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn shards_merge_into_their_union_and_disagreements_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, out) = (t.path().join("a"), t.path().join("b"), t.path().join("out"));
        record(&a, "x1", "k1", 0.5);
        record(&a, "transfer-source", "s1", 0.9);
        std::fs::write(a.join("runs/transfer-source/s1.safetensors"), b"weights").unwrap();
        record(&b, "x1", "k2", 0.6);
        record(&b, "transfer-source", "s1", 0.9);
        std::fs::write(b.join("runs/transfer-source/s1.safetensors"), b"weights").unwrap();
        let m = merge(&[a.clone(), b.clone()], &out).unwrap();
        assert_eq!(
            m,
            Merged {
                copied: 4,
                identical: 1
            }
        );
        for f in [
            "x1/k1.json",
            "x1/k2.json",
            "transfer-source/s1.json",
            "transfer-source/s1.safetensors",
        ] {
            assert!(out.join("runs").join(f).is_file(), "{f}");
        }
        // Merging again copies nothing.
        let m = merge(&[a.clone(), b.clone()], &out).unwrap();
        assert_eq!(
            m,
            Merged {
                copied: 0,
                identical: 4
            }
        );
        // A shard that disagrees is refused, naming the files.
        let c = t.path().join("c");
        record(&c, "x1", "k1", 0.7);
        let err = format!("{:#}", merge(&[c], &out).unwrap_err());
        assert!(
            err.contains("k1.json") && err.contains("different results"),
            "{err}"
        );
        let err = format!("{:#}", merge(&[t.path().join("none")], &out).unwrap_err());
        assert!(err.contains("no run store"), "{err}");
    }
}
