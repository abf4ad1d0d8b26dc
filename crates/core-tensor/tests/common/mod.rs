//! Helpers shared by the integration tests.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tch::{Kind, Tensor};

/// The fixture cache, which must exist: these tests load the real datasets and fail (rather
/// than skip) when they have not been fetched.
pub fn cache() -> anyhow::Result<PathBuf> {
    let dir = core_tensor::fixtures::cache_dir();
    if !dir.is_dir() {
        bail!(
            "fixture cache {} does not exist: run `cargo xtask fetch` first (or point {} at a cache)",
            dir.display(),
            core_tensor::fixtures::CACHE_ENV
        );
    }
    Ok(dir)
}

/// Adds the fetch hint to a loader's error (a missing file already names the command).
pub fn loaded<T>(result: core_tensor::Result<T>, dataset: &str) -> anyhow::Result<T> {
    result.with_context(|| {
        format!("loading {dataset} from the fixture cache (run `cargo xtask fetch {dataset}` if it is missing or damaged)")
    })
}

/// Counts of each label `0..classes` in an `i64` label tensor.
pub fn histogram(labels: &Tensor, classes: i64) -> anyhow::Result<Vec<i64>> {
    let counts = labels.f_bincount::<Tensor>(None, classes)?;
    Ok(Vec::<i64>::try_from(counts.f_to_kind(Kind::Int64)?)?)
}

/// The sum of all elements as an `i64`.
pub fn sum(t: &Tensor) -> anyhow::Result<i64> {
    Ok(t.f_sum(Kind::Int64)?.f_int64_value(&[])?)
}
