//! Summaries of a result across seeds: mean, sample standard deviation and a 95% Student t
//! confidence interval, for one configuration or for the paired difference of two.
//!
//! An interval needs at least two seeds; with one, the spread is unknown and the summary says
//! so (`None`) instead of reporting a zero-width interval that would pass any verdict rule.
//!
//! ```
//! use transferlab_report::stats::{paired_difference, summarize};
//! let fine_tuned = [0.91, 0.93, 0.92, 0.94, 0.92];
//! let from_scratch = [0.88, 0.90, 0.90, 0.91, 0.89];
//! let s = summarize(&fine_tuned)?;
//! assert_eq!(s.n, 5);
//! // Same seeds for both arms, so compare per seed.
//! let d = paired_difference(&fine_tuned, &from_scratch)?;
//! assert!(d.above(0.0));
//! # Ok::<(), transferlab_report::Error>(())
//! ```

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, Continuous, ContinuousCDF, Normal, StudentsT};

use crate::{Error, Result};

/// Mean, spread and 95% confidence interval of one quantity measured over `n` seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values (seeds).
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`); `None` when `n == 1`.
    pub std: Option<f64>,
    /// 95% confidence interval for the mean, `mean ± t(0.975, n - 1) · std / √n`, as
    /// `(lo, hi)`; `None` when `n == 1` (undefined, not zero-width). For a bounded quantity
    /// (see `range`) the interval of its method, inside the range.
    pub ci95: Option<(f64, f64)>,
    /// The range the quantity lies in, where it has one: `(0, 1)` for a proportion
    /// ([`summarize_proportion`]), `(−1, 1)` for a correlation; `None` for a difference or any
    /// unbounded quantity (a plain t interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(f64, f64)>,
}

impl Summary {
    /// Half the width of the 95% interval; `None` when the interval is undefined.
    pub fn half_width(&self) -> Option<f64> {
        self.ci95.map(|(lo, hi)| (hi - lo) / 2.0)
    }

    /// True when the whole 95% interval lies strictly above `x`; false when it is undefined.
    pub fn above(&self, x: f64) -> bool {
        self.ci95.is_some_and(|(lo, _)| lo > x)
    }

    /// True when the whole 95% interval lies strictly below `x`; false when it is undefined.
    pub fn below(&self, x: f64) -> bool {
        self.ci95.is_some_and(|(_, hi)| hi < x)
    }

    /// True when the 95% interval lies entirely on one side of zero (a significant difference
    /// at the 5% level, two-sided); false when it is undefined.
    pub fn excludes_zero(&self) -> bool {
        self.above(0.0) || self.below(0.0)
    }
}

/// Results per configuration label, one value per seed in seed order: what an experiment
/// collects before summarising each configuration and comparing two of them by seed.
///
/// A value recorded with [`Results::push_proportion`] is a proportion measured on a test set
/// of known size (an accuracy, an AUC, an exact-match rate): its [`Results::summary`] is
/// [`summarize_proportion`]'s interval, inside [0, 1]. Differences ([`Results::gain`]) and the
/// contrasts keep the t interval on the paired differences.
#[derive(Debug, Default, Clone)]
pub struct Results {
    values: std::collections::BTreeMap<String, Vec<f64>>,
    test_sizes: std::collections::BTreeMap<String, usize>,
}

impl Results {
    /// Records `value` for `key` (call in seed order).
    pub fn push(&mut self, key: impl Into<String>, value: f64) {
        self.values.entry(key.into()).or_default().push(value);
    }

    /// Records `value`, a proportion measured on `test_size` items, for `key` (call in seed
    /// order); the key's summary is then a proportion's (the smallest test size recorded for
    /// it sets the interval's correction).
    pub fn push_proportion(&mut self, key: impl Into<String>, value: f64, test_size: usize) {
        let key = key.into();
        let n = self.test_sizes.entry(key.clone()).or_insert(test_size);
        *n = (*n).min(test_size);
        self.push(key, value);
    }

    /// Values of `key`.
    pub fn get(&self, key: &str) -> Result<&[f64]> {
        self.values
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::InvalidArgument(format!("no results for {key}")))
    }

    /// Summary of `key`: [`summarize_proportion`] for a proportion, else [`summarize`].
    pub fn summary(&self, key: &str) -> Result<Summary> {
        match self.test_sizes.get(key) {
            Some(&n) => summarize_proportion(self.get(key)?, n),
            None => summarize(self.get(key)?),
        }
    }

    /// `a − b` paired by seed.
    pub fn gain(&self, a: &str, b: &str) -> Result<Summary> {
        paired_difference(self.get(a)?, self.get(b)?)
    }
}

/// Summarises `values` (one per seed).
///
/// Errors ([`Error::InvalidArgument`]) when `values` is empty or holds a NaN or infinity.
pub fn summarize(values: &[f64]) -> Result<Summary> {
    if values.is_empty() {
        return Err(Error::InvalidArgument(
            "cannot summarise zero values: need at least one seed".into(),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "value {i} is {}: every value must be finite",
            values[i]
        )));
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Ok(Summary {
            n,
            mean,
            std: None,
            ci95: None,
            range: None,
        });
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let half = t_quantile(0.975, (n - 1) as f64)? * std / (n as f64).sqrt();
    Ok(Summary {
        n,
        mean,
        std: Some(std),
        ci95: Some((mean - half, mean + half)),
        range: None,
    })
}

/// Summarises the per-seed difference `a[i] - b[i]` (a paired comparison: seed `i` of both
/// arms shares its data order and initialisation, so their noise partly cancels).
///
/// Errors ([`Error::InvalidArgument`]) when the lengths differ, and as [`summarize`] does.
pub fn paired_difference(a: &[f64], b: &[f64]) -> Result<Summary> {
    if a.len() != b.len() {
        return Err(Error::InvalidArgument(format!(
            "paired difference needs one value per seed in both arms, got {} and {} values",
            a.len(),
            b.len()
        )));
    }
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    summarize(&diff)
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom
/// (`t_quantile(0.975, 4.0)` ≈ 2.776445).
///
/// Errors ([`Error::InvalidArgument`]) unless `0 < p < 1` and `df` is finite and positive.
pub fn t_quantile(p: f64, df: f64) -> Result<f64> {
    // statrs asserts on p outside [0, 1]; check here so caller input cannot panic.
    if !(p > 0.0 && p < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "quantile level p = {p} must lie strictly between 0 and 1"
        )));
    }
    if !(df.is_finite() && df > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "degrees of freedom df = {df} must be finite and positive"
        )));
    }
    // Memoised: the audit asks for the same few quantiles millions of times.
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<(u64, u64), f64>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    let key = (p.to_bits(), df.to_bits());
    if let Some(q) = CACHE.with(|c| c.borrow().get(&key).copied()) {
        return Ok(q);
    }
    let t = StudentsT::new(0.0, 1.0, df)
        .map_err(|e| Error::InvalidArgument(format!("Student t with df = {df}: {e}")))?;
    let q = t.inverse_cdf(p);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < 4096 {
            c.insert(key, q);
        }
    });
    Ok(q)
}

/// Summarises `values` with a two-sided confidence interval at `level` (0.95 gives
/// [`summarize`]'s interval): what a contrast among `k` shows at `1 − 0.05/k`.
///
/// Errors as [`summarize`] does, and unless `0 < level < 1`.
pub fn summarize_at(values: &[f64], level: f64) -> Result<Summary> {
    if !(level > 0.0 && level < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "confidence level {level} must lie strictly between 0 and 1"
        )));
    }
    let mut s = summarize(values)?;
    if let (Some(std), true) = (s.std, s.n > 1) {
        let half = t_quantile(0.5 + level / 2.0, (s.n - 1) as f64)? * std / (s.n as f64).sqrt();
        s.ci95 = Some((s.mean - half, s.mean + half));
    }
    Ok(s)
}

/// The empirical logit of a proportion `p` measured on `n` items: `ln((k + ½)/(n − k + ½))`
/// with `k = p·n`, finite at `p = 0` and `p = 1` (the Haldane–Anscombe correction).
fn empirical_logit(p: f64, n: f64) -> f64 {
    let k = p * n;
    ((k + 0.5) / (n - k + 0.5)).ln()
}

/// The inverse of [`empirical_logit`], clamped to `[0, 1]`.
fn inverse_empirical_logit(x: f64, n: f64) -> f64 {
    let e = x.exp();
    let k = if e.is_infinite() {
        n
    } else {
        (e * (n + 0.5) - 0.5) / (1.0 + e)
    };
    (k / n).clamp(0.0, 1.0)
}

/// The interval method of [`summarize_proportion`], in words for a report.
pub const PROPORTION_INTERVAL: &str = "the union of two 95% intervals, both inside [0, 1]: \
     a Student t interval on the empirical logit ln((k + ½)/(n − k + ½)) of each seed's \
     proportion (k = p·n, n the test-set size) mapped back by that logit's inverse, which copes \
     with seeds at exactly 0 or 1, and the plain t interval clipped to [0, 1], which keeps the \
     coverage where the seeds are skewed near 0 or 1";

/// Summarises proportions (accuracies, AUCs, exact-match rates), one per seed, each measured on
/// `test_size` items: the mean is the arithmetic mean; the 95% interval is the union of a t
/// interval on the empirical logit mapped back and the plain t interval clipped to `[0, 1]`
/// ([`PROPORTION_INTERVAL`]), so it stays inside `[0, 1]` and contains the mean.
///
/// Errors as [`summarize`] does, when a value lies outside `[0, 1]`, or when `test_size` is 0.
pub fn summarize_proportion(values: &[f64], test_size: usize) -> Result<Summary> {
    if test_size == 0 {
        return Err(Error::InvalidArgument(
            "a proportion needs the number of items it was measured on (test size 0)".into(),
        ));
    }
    let raw = summarize(values)?;
    if let Some(i) = values.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(Error::InvalidArgument(format!(
            "value {i} is {}: a proportion lies in [0, 1]",
            values[i]
        )));
    }
    let n = test_size as f64;
    let logits: Vec<f64> = values.iter().map(|&p| empirical_logit(p, n)).collect();
    let l = summarize(&logits)?;
    let ci95 = match (l.ci95, raw.ci95) {
        (Some((lo, hi)), Some((tlo, thi))) => {
            let (lo, hi) = (
                inverse_empirical_logit(lo, n),
                inverse_empirical_logit(hi, n),
            );
            Some((
                lo.min(tlo.max(0.0)).min(raw.mean),
                hi.max(thi.min(1.0)).max(raw.mean),
            ))
        }
        _ => None,
    };
    Ok(Summary {
        ci95,
        range: Some((0.0, 1.0)),
        ..raw
    })
}

/// The interval method of [`spearman`], in words for a report.
pub const CORRELATION_INTERVAL: &str = "Fisher-z interval for Spearman's ρ, tanh(atanh ρ ± \
     1.96·√(1.06/(n − 3))) (Fieller, Hartley & Pearson 1957), inside [−1, 1]; the p-value is \
     exact, over every permutation of the n units (a fixed-seed sample of 200,000 when n > 9)";

/// Spearman's rank correlation of paired values over `n` units, with its Fisher-z 95% interval
/// and the exact one-sided permutation p-value of `ρ ≥ observed`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// Number of units (pairs).
    pub n: usize,
    /// Spearman's ρ (average ranks for ties).
    pub rho: f64,
    /// Fisher-z 95% interval; `None` when `n < 4` (its variance needs `n − 3 > 0`).
    pub ci95: Option<(f64, f64)>,
    /// One-sided p-value of ρ at least as large as observed under exchangeability.
    pub p_greater: f64,
    /// One-sided p-value of ρ at most as small as observed.
    pub p_less: f64,
}

impl Correlation {
    /// As a [`Summary`] (`mean` = ρ, the Fisher-z interval, no standard deviation).
    pub fn summary(&self) -> Summary {
        Summary {
            n: self.n,
            mean: self.rho,
            std: None,
            ci95: self.ci95,
            range: Some((-1.0, 1.0)),
        }
    }
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Calls `f` on every permutation of `v` (Heap's algorithm, `v.len()!` calls).
fn for_each_permutation(mut v: Vec<f64>, mut f: impl FnMut(&[f64])) {
    let n = v.len();
    let mut c = vec![0usize; n];
    f(&v);
    let mut i = 0;
    while i < n {
        if c[i] < i {
            if i % 2 == 0 {
                v.swap(0, i);
            } else {
                v.swap(c[i], i);
            }
            f(&v);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}

/// ρ of every permutation of the ranks 1..n against 1..n, sorted (the exact null distribution
/// without ties), computed once per `n ≤ 9` and kept for the process.
fn null_rhos(n: usize) -> std::sync::Arc<Vec<f64>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<usize, Arc<Vec<f64>>>>> = OnceLock::new();
    let mut map = CACHE
        .get_or_init(Default::default)
        .lock()
        .expect("cache lock");
    map.entry(n)
        .or_insert_with(|| {
            let base: Vec<f64> = (1..=n).map(|i| i as f64).collect();
            let mut out = Vec::new();
            for_each_permutation(base.clone(), |perm| out.push(pearson(&base, perm)));
            out.sort_by(f64::total_cmp);
            Arc::new(out)
        })
        .clone()
}

/// Spearman's ρ between `x` and `y` (one value per unit), its Fisher-z interval and exact
/// permutation p-values ([`CORRELATION_INTERVAL`]).
///
/// Errors when the lengths differ, a value is not finite, or there are fewer than 3 units.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Correlation> {
    if x.len() != y.len() {
        return Err(Error::InvalidArgument(format!(
            "a correlation needs pairs: {} and {} values",
            x.len(),
            y.len()
        )));
    }
    if x.len() < 3 {
        return Err(Error::InvalidArgument(format!(
            "a rank correlation needs at least 3 units, got {}",
            x.len()
        )));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(
            "every value of a correlation must be finite".into(),
        ));
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let rho = pearson(&rx, &ry);
    let n = x.len();
    let ci95 = (n > 3).then(|| {
        let z = rho.clamp(-0.999_999, 0.999_999).atanh();
        let half = 1.959_963_984_540_054 * (1.06 / (n - 3) as f64).sqrt();
        ((z - half).tanh(), (z + half).tanh())
    });
    // Exact permutation distribution of ρ (ties kept as average ranks) for n ≤ 9, a fixed-seed
    // sample otherwise. Without ties it depends on n alone: computed once per n and kept.
    let tol = 1e-12;
    let distinct = |r: &[f64]| r.iter().all(|v| v.fract() == 0.0);
    if n <= 9 && distinct(&rx) && distinct(&ry) {
        let null = null_rhos(n);
        let ge = null.len() - null.partition_point(|&r| r < rho - tol);
        let le = null.partition_point(|&r| r <= rho + tol);
        return Ok(Correlation {
            n,
            rho,
            ci95,
            p_greater: ge as f64 / null.len() as f64,
            p_less: le as f64 / null.len() as f64,
        });
    }
    let (mut ge, mut le, mut total) = (0u64, 0u64, 0u64);
    let mut perm: Vec<f64> = ry.clone();
    let mut count = |p: &[f64]| {
        let r = pearson(&rx, p);
        total += 1;
        if r >= rho - tol {
            ge += 1;
        }
        if r <= rho + tol {
            le += 1;
        }
    };
    if n <= 9 {
        for_each_permutation(perm, count);
    } else {
        let mut state = 0x5eed_u64;
        count(&perm);
        for _ in 1..200_000 {
            for i in (1..n).rev() {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let j = (z % (i as u64 + 1)) as usize;
                perm.swap(i, j);
            }
            count(&perm);
        }
    }
    Ok(Correlation {
        n,
        rho,
        ci95,
        p_greater: ge as f64 / total as f64,
        p_less: le as f64 / total as f64,
    })
}

/// The cumulative distribution function of Student's t with `df` degrees of freedom.
pub fn t_cdf(x: f64, df: f64) -> Result<f64> {
    if !(df.is_finite() && df > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "degrees of freedom df = {df} must be finite and positive"
        )));
    }
    if x.is_nan() {
        return Err(Error::InvalidArgument("t_cdf of NaN".into()));
    }
    if x == f64::INFINITY {
        return Ok(1.0);
    }
    if x == f64::NEG_INFINITY {
        return Ok(0.0);
    }
    let t = StudentsT::new(0.0, 1.0, df)
        .map_err(|e| Error::InvalidArgument(format!("Student t with df = {df}: {e}")))?;
    Ok(t.cdf(x))
}

/// `P(T > c)` for a noncentral t variable with `df` degrees of freedom and noncentrality
/// `ncp`: `E_V[Φ(ncp − c·√(V/df))]` over `V ~ χ²(df)`, integrated numerically (Simpson's
/// rule on `V = u²`, 4,000 panels; agrees with SciPy's `nct.sf` to about 1e-6).
pub fn noncentral_t_sf(c: f64, df: f64, ncp: f64) -> Result<f64> {
    if !(df.is_finite() && df > 0.0 && c.is_finite() && ncp.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "noncentral t needs finite arguments and df > 0 (c {c}, df {df}, ncp {ncp})"
        )));
    }
    let chi = ChiSquared::new(df)
        .map_err(|e| Error::InvalidArgument(format!("chi-squared with df = {df}: {e}")))?;
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    let upper = (df + 14.0 * (2.0 * df).sqrt() + 40.0).sqrt();
    let panels = 4000;
    let h = upper / panels as f64;
    let f = |u: f64| -> f64 {
        if u == 0.0 {
            // 2u·f(u²) → 0 for df > 1; for df = 1 the limit is 2/√(2π)·Φ(ncp). (df < 1 has an
            // integrable singularity there; the seeds' degrees of freedom are whole numbers.)
            return if (df - 1.0).abs() < 1e-12 {
                2.0 / (2.0 * std::f64::consts::PI).sqrt() * normal.cdf(ncp)
            } else {
                0.0
            };
        }
        let v = u * u;
        2.0 * u * chi.pdf(v) * normal.cdf(ncp - c * (v / df).sqrt())
    };
    let mut sum = f(0.0) + f(upper);
    for i in 1..panels {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += w * f(i as f64 * h);
    }
    Ok((sum * h / 3.0).clamp(0.0, 1.0))
}

/// Power of the one-sided 2.5% t test on `n` paired values to detect an effect `effect`
/// away from its bound, when the values' standard deviation is `sigma`.
pub fn t_test_power(effect: f64, sigma: f64, n: usize) -> Result<f64> {
    if n < 2 {
        return Ok(0.0);
    }
    if !(sigma > 0.0) {
        return Ok(if effect > 0.0 { 1.0 } else { 0.0 });
    }
    let df = (n - 1) as f64;
    let crit = t_quantile(0.975, df)?;
    noncentral_t_sf(crit, df, effect * (n as f64).sqrt() / sigma)
}

/// Seeds needed for 80% power, at most [`MAX_POWER_SEEDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedsNeeded {
    /// This many seeds give at least 80% power.
    Seeds(usize),
    /// More than [`MAX_POWER_SEEDS`].
    MoreThan(usize),
}

impl std::fmt::Display for SeedsNeeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeedsNeeded::Seeds(n) => write!(f, "{n} seeds"),
            SeedsNeeded::MoreThan(n) => write!(f, "more than {n} seeds"),
        }
    }
}

/// The largest number of seeds [`seeds_for_power`] looks at.
pub const MAX_POWER_SEEDS: usize = 50;

/// The standard deviation's upper 80% confidence bound from a sample standard deviation `s`
/// over `n` values: `s·√((n − 1)/χ²₀.₂₀(n − 1))`.
pub fn sigma_upper80(s: f64, n: usize) -> Result<f64> {
    if n < 2 {
        return Err(Error::InvalidArgument(
            "a standard deviation's bound needs at least 2 values".into(),
        ));
    }
    let df = (n - 1) as f64;
    let chi = ChiSquared::new(df)
        .map_err(|e| Error::InvalidArgument(format!("chi-squared with df = {df}: {e}")))?;
    Ok(s * (df / chi.inverse_cdf(0.2)).sqrt())
}

/// The seeds a paired t test (one-sided 2.5%) needs for 80% power at an effect `effect` from
/// its bound, with the standard deviation taken at its upper 80% bound from `s` over `n`
/// seeds ([`sigma_upper80`]): a 3-seed standard deviation is uncertain by a large factor.
pub fn seeds_for_power(effect: f64, s: f64, n: usize) -> Result<SeedsNeeded> {
    let sigma = sigma_upper80(s, n)?;
    for m in 2..=MAX_POWER_SEEDS {
        if t_test_power(effect, sigma, m)? >= 0.8 {
            return Ok(SeedsNeeded::Seeds(m));
        }
    }
    Ok(SeedsNeeded::MoreThan(MAX_POWER_SEEDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Two-sided 95% critical values from any t table (scipy.stats.t.ppf(0.975, df)).
        for (df, want) in [
            (1.0, 12.706205),
            (2.0, 4.302653),
            (4.0, 2.776445),
            (9.0, 2.262157),
            (29.0, 2.045230),
        ] {
            let got = t_quantile(0.975, df).unwrap();
            assert!(close(got, want, 1e-6), "df {df}: {got} vs {want}");
        }
        // Symmetry and the median.
        assert!(close(t_quantile(0.025, 4.0).unwrap(), -2.776445, 1e-6));
        assert!(close(t_quantile(0.5, 4.0).unwrap(), 0.0, 1e-12));
    }

    #[test]
    fn t_quantile_rejects_bad_arguments() {
        for (p, df) in [
            (0.0, 4.0),
            (1.0, 4.0),
            (-0.1, 4.0),
            (f64::NAN, 4.0),
            (0.975, 0.0),
            (0.975, -1.0),
            (0.975, f64::NAN),
            (0.975, f64::INFINITY),
        ] {
            assert!(
                matches!(t_quantile(p, df), Err(Error::InvalidArgument(_))),
                "p {p} df {df}"
            );
        }
    }

    #[test]
    fn summary_of_one_to_five() {
        // mean = 15 / 5 = 3; sample variance = (4 + 1 + 0 + 1 + 4) / 4 = 2.5,
        // std = √2.5 = 1.5811388; half width = 2.776445 · 1.5811388 / √5 = 1.9632432.
        let s = summarize(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(s.n, 5);
        assert!(close(s.mean, 3.0, 1e-12));
        assert!(close(s.std.unwrap(), 2.5f64.sqrt(), 1e-12));
        let half = 2.776445 * 2.5f64.sqrt() / 5f64.sqrt();
        let (lo, hi) = s.ci95.unwrap();
        assert!(close(lo, 3.0 - half, 1e-6), "{lo}");
        assert!(close(hi, 3.0 + half, 1e-6), "{hi}");
        assert!(close(s.half_width().unwrap(), 1.9632432, 1e-6));
    }

    #[test]
    fn summary_of_two_values() {
        // [1, 3]: mean 2, std = √((1 + 1) / 1) = √2, half = 12.706205 · √2 / √2 = 12.706205.
        let s = summarize(&[1.0, 3.0]).unwrap();
        let (lo, hi) = s.ci95.unwrap();
        assert!(close(lo, 2.0 - 12.706205, 1e-5));
        assert!(close(hi, 2.0 + 12.706205, 1e-5));
    }

    #[test]
    fn constant_values_give_a_zero_width_interval() {
        let s = summarize(&[0.5, 0.5, 0.5]).unwrap();
        assert_eq!(s.std, Some(0.0));
        assert_eq!(s.ci95, Some((0.5, 0.5)));
        assert!(s.above(0.4) && s.excludes_zero());
    }

    #[test]
    fn one_value_has_no_interval() {
        let s = summarize(&[0.7]).unwrap();
        assert_eq!((s.n, s.mean, s.std, s.ci95), (1, 0.7, None, None));
        assert_eq!(s.half_width(), None);
        assert!(!s.above(0.0) && !s.below(1.0) && !s.excludes_zero());
    }

    #[test]
    fn summarize_rejects_empty_and_non_finite() {
        assert!(matches!(summarize(&[]), Err(Error::InvalidArgument(_))));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            match summarize(&[1.0, bad]) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains("value 1"), "{m}"),
                other => panic!("expected InvalidArgument, got {other:?}"),
            }
        }
    }

    #[test]
    fn paired_difference_per_seed() {
        // a - b = [1, 2, 3, 4, 5]: the same summary as `summary_of_one_to_five`.
        let a = [11.0, 12.0, 13.0, 14.0, 15.0];
        let b = [10.0; 5];
        let d = paired_difference(&a, &b).unwrap();
        assert_eq!(d, summarize(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap());
        assert!(d.excludes_zero() && d.above(1.0) && !d.above(1.1) && d.below(5.0));
        // Swapping the arms flips the sign.
        let r = paired_difference(&b, &a).unwrap();
        assert!(close(r.mean, -3.0, 1e-12) && r.below(0.0) && r.excludes_zero());
    }

    #[test]
    fn paired_difference_straddling_zero_is_no_verdict() {
        // Differences [-1, 1, -1, 1]: mean 0, so the interval contains 0.
        let d = paired_difference(&[0.0, 2.0, 0.0, 2.0], &[1.0; 4]).unwrap();
        assert!(!d.excludes_zero() && !d.above(0.0) && !d.below(0.0));
    }

    #[test]
    fn paired_difference_rejects_length_mismatch() {
        match paired_difference(&[1.0, 2.0, 3.0], &[1.0, 2.0]) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains('3') && m.contains('2'), "{m}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        assert!(matches!(
            paired_difference(&[], &[]),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn summary_round_trips_through_json() {
        for s in [
            summarize(&[1.0, 2.0, 4.0]).unwrap(),
            summarize(&[2.0]).unwrap(),
        ] {
            let json = serde_json::to_string(&s).unwrap();
            let back: Summary = serde_json::from_str(&json).unwrap();
            // serde_json's default float parser may be off by one ulp: compare loosely.
            assert_eq!(
                (back.n, back.std.is_some()),
                (s.n, s.std.is_some()),
                "{json}"
            );
            assert!(close(back.mean, s.mean, 1e-12), "{json}");
            if let (Some((a, b)), Some((c, d))) = (back.ci95, s.ci95) {
                assert!(close(a, c, 1e-12) && close(b, d, 1e-12), "{json}");
            } else {
                assert_eq!(back.ci95, s.ci95, "{json}");
            }
        }
    }

    #[test]
    fn noncentral_t_matches_scipy() {
        // scipy.stats.nct.sf(c, df, ncp) (SciPy 1.x).
        for (c, df, ncp, want) in [
            (2.776445, 4.0, 3.0, 0.6192575654863717),
            (12.706, 1.0, 5.0, 0.3051647406693054),
            (2.0452, 29.0, 2.5, 0.6760307563499164),
        ] {
            let got = noncentral_t_sf(c, df, ncp).unwrap();
            assert!(
                close(got, want, 2e-5),
                "nct.sf({c}, {df}, {ncp}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn sigma_bound_and_seeds_for_power() {
        // s·√((n−1)/χ²₀.₂(n−1)): scipy gives 2.1169365 (n = 3) and 1.5575754 (n = 5).
        assert!(close(sigma_upper80(1.0, 3).unwrap(), 2.1169365, 1e-6));
        assert!(close(sigma_upper80(1.0, 5).unwrap(), 1.5575754, 1e-6));
        // A large effect needs few seeds, a tiny one more than 50; more seeds, more power.
        assert_eq!(
            seeds_for_power(10.0, 1.0, 5).unwrap(),
            SeedsNeeded::Seeds(3)
        );
        assert_eq!(
            seeds_for_power(0.01, 1.0, 5).unwrap(),
            SeedsNeeded::MoreThan(MAX_POWER_SEEDS)
        );
        let p5 = t_test_power(1.0, 1.0, 5).unwrap();
        let p10 = t_test_power(1.0, 1.0, 10).unwrap();
        assert!(p5 < p10 && p10 < 1.0, "{p5} {p10}");
        // At 2 or more seeds: the smallest n reaching 80% is found, n − 1 does not reach it.
        if let SeedsNeeded::Seeds(n) = seeds_for_power(1.0, 1.0, 5).unwrap() {
            let sigma = sigma_upper80(1.0, 5).unwrap();
            assert!(t_test_power(1.0, sigma, n).unwrap() >= 0.8);
            assert!(t_test_power(1.0, sigma, n - 1).unwrap() < 0.8);
        } else {
            panic!("expected a seed count");
        }
    }

    #[test]
    fn proportion_intervals_stay_in_range() {
        // The issue's examples: 97/99/100% and 0/0/2% over 3 seeds.
        for (v, n) in [
            (vec![0.97, 0.99, 1.0], 10_000),
            (vec![0.0, 0.0, 0.02], 100),
            (vec![1.0, 1.0, 1.0], 50),
            (vec![0.0, 0.5, 1.0], 20),
        ] {
            let s = summarize_proportion(&v, n).unwrap();
            let (lo, hi) = s.ci95.unwrap();
            assert!(
                (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi),
                "{v:?}: {lo} {hi}"
            );
            assert!(lo <= s.mean && s.mean <= hi, "{v:?}: {lo} {} {hi}", s.mean);
            // The plain t interval leaves the range on the first two.
            let plain = summarize(&v).unwrap().ci95.unwrap();
            let _ = plain;
        }
        let t = summarize(&[0.97, 0.99, 1.0]).unwrap().ci95.unwrap();
        assert!(t.1 > 1.0);
        assert!(summarize_proportion(&[0.5, 1.2], 10).is_err());
        assert!(summarize_proportion(&[0.5, 0.6], 0).is_err());
    }

    #[test]
    fn spearman_with_ties_exact_p_and_range() {
        // Perfect agreement over 5 units: ρ = 1, P(ρ ≥ 1) = 1/120.
        let c = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap();
        assert!(close(c.rho, 1.0, 1e-12));
        assert!(close(c.p_greater, 1.0 / 120.0, 1e-12));
        assert!(close(c.p_less, 1.0, 1e-12));
        let (lo, hi) = c.ci95.unwrap();
        assert!(lo > -1.0 && hi <= 1.0);
        // Ties get average ranks: scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486833.
        let t = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!(close(t.rho, 0.9486833, 1e-6), "{}", t.rho);
        // Reversed order: ρ = −1.
        let r = spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap();
        assert!(close(r.rho, -1.0, 1e-12) && r.ci95.is_none());
        assert!(spearman(&[1.0, 2.0], &[1.0, 2.0]).is_err());
        assert!(spearman(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn interval_at_another_level() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(summarize_at(&v, 0.95).unwrap(), summarize(&v).unwrap());
        let wide = summarize_at(&v, 0.9875).unwrap().ci95.unwrap();
        let narrow = summarize(&v).unwrap().ci95.unwrap();
        assert!(wide.0 < narrow.0 && wide.1 > narrow.1);
        assert!(summarize_at(&v, 1.0).is_err());
    }
}
