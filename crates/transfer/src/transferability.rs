//! Transferability estimates: scoring a pre-trained source model on a target dataset from its
//! features or predictions alone, without fine-tuning it.
//!
//! - [`log_me`]: LogME (You et al., ICML 2021), the mean per-example log evidence of a Bayesian
//!   linear regression from the features onto each one-hot target column.
//! - [`leep`]: LEEP (Nguyen et al., ICML 2020), the log-likelihood of the target labels under the
//!   "empirical predictor" built from the source head's softmax outputs.
//! - [`h_score`]: H-score (Bao et al., ICIP 2019), how much of the features' variance is
//!   between-class variance.
//! - [`shrunk_h_score`]: the H-score with a Ledoit-Wolf shrunk feature covariance (Ibrahim et
//!   al., 2022), which stays meaningful when there are fewer examples than feature dimensions,
//!   where the plain H-score's inverse covariance fits noise and its value saturates.
//! - [`spearman`] and [`kendall_tau`]: rank correlations between estimated scores and the
//!   accuracies actually reached by fine-tuning (experiment X6).
//!
//! Higher is better for every estimator. Inputs are CPU or GPU tensors of any floating kind
//! (features, probabilities) and any integer kind (labels); they are copied to the CPU as `f64`
//! and every computation is done in `f64`. Malformed inputs (shapes, labels out of range,
//! non-finite values, fewer than two examples) are [`Error::InvalidArgument`]s that name the
//! problem.
//!
//! ```
//! use tch::Tensor;
//! use transfer::transferability::{leep, log_me, spearman};
//!
//! let labels = Tensor::from_slice(&[0i64, 1, 0, 1, 1]);
//! let features = Tensor::from_slice(&[1.0f32, 0.1, 0.2, 0.9, 0.8, 0.0, 0.1, 1.1, 0.0, 1.0])
//!     .view([5, 2]);
//! let score = log_me(&features, &labels, 2)?;
//! assert!(score.is_finite());
//!
//! let probs = Tensor::from_slice(&[0.9f32, 0.1, 0.2, 0.8, 0.7, 0.3, 0.4, 0.6, 0.1, 0.9])
//!     .view([5, 2]);
//! assert!(leep(&probs, &labels, 2)? < 0.0);
//! assert_eq!(spearman(&[0.1, 0.5, 0.3], &[70.0, 90.0, 80.0])?, 1.0);
//! # Ok::<(), core_tensor::Error>(())
//! ```

use core_tensor::{Error, Result};
use tch::{Device, Kind, Tensor};

/// The most fixed-point updates of (α, β) LogME makes per class, as in the authors' code.
pub const LOGME_MAX_ITERS: usize = 11;

/// LogME stops updating (α, β) once `t = α / β` changes by less than this, relatively.
pub const LOGME_TOLERANCE: f64 = 1e-3;

/// [`h_score`] drops eigenvalues of cov(f) at or below this fraction of the largest one when it
/// takes the pseudo-inverse (the `rcond` of `numpy.linalg.pinv`).
pub const H_SCORE_RCOND: f64 = 1e-10;

/// How far a row of the source probabilities given to [`leep`] may sum from 1.
pub const LEEP_ROW_SUM_TOLERANCE: f64 = 1e-3;

/// LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
/// Learning", ICML 2021) of `features` `[N, D]` for integer `labels` `[N]` in `0..classes`.
///
/// For each class k the one-hot column y = 1[label = k] is regressed on the features with the
/// prior w ~ N(0, α⁻¹I) and noise y | w ~ N(Fw, β⁻¹I). The evidence p(y | F, α, β) is
/// maximised over (α, β) by the paper's fixed-point iteration (Algorithm 1): from α = β = 1,
/// with F = U S Vᵀ (thin SVD) and σ = S²,
///
/// γ = Σᵢ βσᵢ / (α + βσᵢ), m = βA⁻¹Fᵀy with A = αI + βFᵀF, α ← γ / ‖m‖², β ← (N − γ) / ‖Fm − y‖²,
///
/// until `t = α / β` changes by less than [`LOGME_TOLERANCE`] (relative) or after
/// [`LOGME_MAX_ITERS`] updates. The class's score is the log evidence at the final (α, β)
/// divided by N:
///
/// L/N = [(D/2) log α + (N/2) log β − (α/2)‖m‖² − (β/2)‖Fm − y‖² − ½ log|A| − (N/2) log 2π] / N,
///
/// and the result is the mean over classes. Everything is computed in the SVD basis, so the
/// cost after the SVD is O(min(N, D)) per iteration. When N < D, A has D − N eigenvalues equal
/// to α that the thin SVD does not list; they are counted in log|A| (the authors' fixed-point
/// code omitted them, thuml/LogME issue #23). The features are used as given: no centring, no
/// bias column. The iteration need not converge within the cap (for features with no linear
/// signal α keeps growing); the score is then the evidence after the last update, as in the
/// authors' code.
///
/// Every class must have at least one example: an all-zero target has no finite maximum of the
/// evidence (α and β both grow without bound), so a class without examples is an error rather
/// than a silently dropped term. Features that leave a class's target with no component in their
/// span (for example all-zero features) are an error for the same reason.
pub fn log_me(features: &Tensor, labels: &Tensor, classes: usize) -> Result<f64> {
    let (f, n, d) = float_matrix(features, "features")?;
    let labels = Labels::new(labels, n, classes)?;
    if let Some(k) = labels.counts.iter().position(|&c| c == 0) {
        return Err(Error::InvalidArgument(format!(
            "LogME needs at least one example of every class, class {k} of 0..{classes} has none"
        )));
    }
    // `linalg_svd` cannot be called through tch on the CPU (it always passes a `driver`), so use
    // `svd(some = true)`: thin U [N, r], S [r], V [D, r] with r = min(N, D).
    let (u, s, _v) = f.f_svd(true, true)?;
    let sigma: Vec<f64> = Vec::<f64>::try_from(&s.f_square()?)?;
    let r = sigma.len();
    // Column k of UᵀY is the target of class k in the SVD basis.
    let x: Vec<f64> = Vec::<f64>::try_from(&u.f_tr()?.f_matmul(&labels.onehot)?.f_flatten(0, -1)?)?;

    let mut total = 0.0;
    for (k, &count) in labels.counts.iter().enumerate() {
        let x2: Vec<f64> = (0..r).map(|i| x[i * classes + k].powi(2)).collect();
        // ‖y‖² = count; the part of y outside the span of U is fitted by nothing.
        let outside = (count as f64 - x2.iter().sum::<f64>()).max(0.0);
        let problem = Regression {
            sigma: &sigma,
            x2: &x2,
            outside,
            n: n as f64,
            d: d as f64,
        };
        let (alpha, beta, iterations) = problem.maximise_evidence(k)?;
        let evidence = problem.log_evidence(alpha, beta) / n as f64;
        tracing::debug!(
            class = k,
            iterations,
            alpha,
            beta,
            evidence,
            "LogME class evidence"
        );
        total += evidence;
    }
    Ok(total / classes as f64)
}

/// One LogME regression (one class) in the SVD basis of the features.
struct Regression<'a> {
    /// Squared singular values of F (eigenvalues of FᵀF), r = min(N, D) of them.
    sigma: &'a [f64],
    /// Squared coordinates of y along the left singular vectors.
    x2: &'a [f64],
    /// ‖y‖² outside the span of the left singular vectors.
    outside: f64,
    n: f64,
    d: f64,
}

/// γ, ‖m‖² and ‖Fm − y‖² at one (α, β).
struct Posterior {
    gamma: f64,
    m2: f64,
    residual2: f64,
}

impl Regression<'_> {
    /// The posterior summaries at t = α / β (m depends on α and β only through t).
    fn posterior(&self, t: f64) -> Posterior {
        let mut p = Posterior {
            gamma: 0.0,
            m2: 0.0,
            residual2: self.outside,
        };
        for (&s, &x2) in self.sigma.iter().zip(self.x2) {
            let denom = s + t;
            p.gamma += s / denom;
            p.m2 += s * x2 / (denom * denom);
            p.residual2 += x2 * (t / denom).powi(2);
        }
        p
    }

    /// Algorithm 1's fixed point: the final (α, β) and the number of updates made.
    fn maximise_evidence(&self, class: usize) -> Result<(f64, f64, usize)> {
        let (mut alpha, mut beta) = (1.0f64, 1.0f64);
        for iteration in 1..=LOGME_MAX_ITERS {
            let t = alpha / beta;
            let p = self.posterior(t);
            alpha = p.gamma / p.m2;
            beta = (self.n - p.gamma) / p.residual2;
            if !(alpha.is_finite() && alpha > 0.0 && beta.is_finite() && beta > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "LogME: the evidence for class {class} has no finite maximum (alpha = {alpha}, \
                     beta = {beta}): the features have no component along the class's targets \
                     (are they all zero?)"
                )));
            }
            if ((alpha / beta - t) / t).abs() < LOGME_TOLERANCE {
                return Ok((alpha, beta, iteration));
            }
        }
        Ok((alpha, beta, LOGME_MAX_ITERS))
    }

    /// The log evidence (not yet divided by N) at (α, β), with m recomputed for them.
    fn log_evidence(&self, alpha: f64, beta: f64) -> f64 {
        let p = self.posterior(alpha / beta);
        // Eigenvalues of A: α + βσᵢ along the r singular directions, α along the other D − r.
        let log_det_a = self
            .sigma
            .iter()
            .map(|&s| (alpha + beta * s).ln())
            .sum::<f64>()
            + (self.d - self.sigma.len() as f64) * alpha.ln();
        self.d / 2.0 * alpha.ln() + self.n / 2.0 * beta.ln()
            - alpha / 2.0 * p.m2
            - beta / 2.0 * p.residual2
            - log_det_a / 2.0
            - self.n / 2.0 * (2.0 * std::f64::consts::PI).ln()
    }
}

/// LEEP (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned
/// Representations", ICML 2020) of the source head's softmax outputs `source_probs` `[N, Cs]`
/// (θ(x) in the paper) for target `labels` `[N]` in `0..target_classes`.
///
/// With the empirical joint P(y, z) = (1/N) Σᵢ θ(xᵢ)_z 1[yᵢ = y], the marginal
/// P(z) = Σ_y P(y, z) and the conditional P(y | z) = P(y, z) / P(z), the score is
/// (1/N) Σᵢ log Σ_z P(yᵢ | z) θ(xᵢ)_z, a log-likelihood: at most 0, and equal to
/// (1/N) Σᵢ log P(yᵢ) (log(1/Ct) for balanced classes) when the predictions are uniform.
///
/// Rows of `source_probs` must be probability vectors (entries ≥ 0, sums within
/// [`LEEP_ROW_SUM_TOLERANCE`] of 1): pass the softmax of the logits, not the logits. A source
/// class that receives no probability mass at all has P(z) = 0 and drops out. Target classes
/// without examples are allowed: their P(y | z) is 0 and no term uses it.
pub fn leep(source_probs: &Tensor, labels: &Tensor, target_classes: usize) -> Result<f64> {
    let (theta, n, _source_classes) = float_matrix(source_probs, "source_probs")?;
    let labels = Labels::new(labels, n, target_classes)?;
    let min = theta.f_min()?.f_double_value(&[])?;
    if min < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "source_probs has a negative entry ({min}): pass softmax probabilities, not logits"
        )));
    }
    let row_sums = theta.f_sum_dim_intlist(1, false, Kind::Double)?;
    let worst = (&row_sums - 1.0)
        .f_abs()?
        .f_argmax(0, false)?
        .f_int64_value(&[])?;
    let worst_sum = row_sums.f_double_value(&[worst])?;
    if (worst_sum - 1.0).abs() > LEEP_ROW_SUM_TOLERANCE {
        return Err(Error::InvalidArgument(format!(
            "source_probs row {worst} sums to {worst_sum}, not 1: pass softmax probabilities, \
             not logits"
        )));
    }
    // N P(y, z) and N P(z); the 1/N cancels in P(y | z). Clamping keeps 0 / 0 at 0.
    let joint = labels.onehot.f_tr()?.f_matmul(&theta)?;
    let marginal = theta.f_sum_dim_intlist(0, true, Kind::Double)?;
    let conditional = joint.f_div(&marginal.f_clamp_min(f64::MIN_POSITIVE)?)?;
    // Row i of onehot · conditional is P(yᵢ | ·).
    let likelihood = labels
        .onehot
        .f_matmul(&conditional)?
        .f_mul(&theta)?
        .f_sum_dim_intlist(1, false, Kind::Double)?;
    Ok(likelihood
        .f_log()?
        .f_mean(Kind::Double)?
        .f_double_value(&[])?)
}

/// H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer
/// Learning", ICIP 2019) of `features` `[N, D]` for `labels` `[N]` in `0..classes`:
/// tr(cov(f)⁻¹ cov(E[f | y])).
///
/// Both covariances are the biased (1/N) sample covariances: cov(f) of the features, and
/// cov(E[f | y]) = Σ_y P(y) (μ_y − μ)(μ_y − μ)ᵀ of the class means, weighted by the class
/// frequencies. The score lies in [0, min(D, classes − 1)] and is invariant to invertible linear
/// maps of the features; features that are exactly their class means reach the maximum.
///
/// For stability cov(f)⁻¹ is a pseudo-inverse: eigenvalues at or below [`H_SCORE_RCOND`] times
/// the largest are dropped, and so are those below the rounding noise left by centring
/// ((N ε max|f|)², ε the `f64` machine epsilon), so constant features score 0 instead of a
/// ratio of rounding errors. Classes without examples are allowed (weight P(y) = 0).
pub fn h_score(features: &Tensor, labels: &Tensor, classes: usize) -> Result<f64> {
    let parts = HParts::new(features, labels, classes)?;
    let cutoff = (H_SCORE_RCOND * parts.largest()).max(parts.noise);
    Ok(parts
        .eigenvalues
        .iter()
        .zip(&parts.along)
        .filter(|&(&lambda, _)| lambda > cutoff)
        .map(|(&lambda, &b)| b / lambda)
        .sum())
}

/// The shrinkage-based H-score (Ibrahim, Ponomareva and Mazumder, "Newer is not always better:
/// rethinking transferability metrics, their peculiarities, stability and performance", ECML
/// PKDD 2022) of `features` `[N, D]` for `labels` `[N]` in `0..classes`:
/// tr(Σ_α⁻¹ (1 − α) cov(E[f | y])) with Σ_α = (1 − α) cov(f) + α (tr cov(f) / D) I.
///
/// The shrinkage α ∈ [0, 1] is Ledoit and Wolf's (2004) estimate from the centred features, as
/// [`ledoit_wolf_shrinkage`] computes it; covariances are the biased (1/N) ones of
/// [`h_score`]. With α = 0 the two scores agree. Σ_α shares cov(f)'s eigenvectors, so the
/// score is Σᵢ (1 − α) bᵢ / ((1 − α) λᵢ + α σ) over cov(f)'s eigenpairs, with the same
/// rounding-noise floor as [`h_score`] (constant features score 0).
pub fn shrunk_h_score(features: &Tensor, labels: &Tensor, classes: usize) -> Result<f64> {
    let parts = HParts::new(features, labels, classes)?;
    let alpha = ledoit_wolf_shrinkage(&parts.centred)?;
    let d = parts.eigenvalues.len() as f64;
    let sigma = parts.eigenvalues.iter().sum::<f64>() / d;
    let cutoff = (H_SCORE_RCOND * parts.largest()).max(parts.noise);
    Ok(parts
        .eigenvalues
        .iter()
        .zip(&parts.along)
        .map(|(&lambda, &b)| ((1.0 - alpha) * lambda + alpha * sigma, b))
        .filter(|&(shrunk, _)| shrunk > cutoff)
        .map(|(shrunk, b)| (1.0 - alpha) * b / shrunk)
        .sum())
}

/// Ledoit and Wolf's ("A well-conditioned estimator for large-dimensional covariance
/// matrices", 2004) shrinkage intensity for the covariance of `centred` `[N, D]` (rows already
/// centred) towards a multiple of the identity, as scikit-learn's `ledoit_wolf_shrinkage`
/// computes it: β / δ clipped to [0, 1], with δ = ‖S − μI‖²_F / D the spread of the sample
/// covariance S around μ = tr S / D and β = (Σₖ ‖xₖxₖᵀ − S‖²_F / N) / (N D) its estimated
/// sampling error. 0 for constant features.
pub fn ledoit_wolf_shrinkage(centred: &Tensor) -> Result<f64> {
    let (x, n, d) = float_matrix(centred, "features")?;
    let (n, d) = (n as f64, d as f64);
    let x2 = x.f_square()?;
    let trace = x2.f_sum(Kind::Double)?.f_double_value(&[])? / n;
    let mu = trace / d;
    let beta_sum = x2
        .f_tr()?
        .f_matmul(&x2)?
        .f_sum(Kind::Double)?
        .f_double_value(&[])?;
    let delta_sum = x
        .f_tr()?
        .f_matmul(&x)?
        .f_square()?
        .f_sum(Kind::Double)?
        .f_double_value(&[])?
        / (n * n);
    let beta = (beta_sum / n - delta_sum) / (d * n);
    let delta = (delta_sum - 2.0 * mu * trace + d * mu * mu) / d;
    let beta = beta.min(delta);
    Ok(if beta <= 0.0 || delta <= 0.0 {
        0.0
    } else {
        (beta / delta).clamp(0.0, 1.0)
    })
}

/// What both H-scores need: cov(f)'s eigenvalues, the between-class covariance along its
/// eigenvectors, the centred features and the rounding-noise floor.
struct HParts {
    centred: Tensor,
    eigenvalues: Vec<f64>,
    along: Vec<f64>,
    noise: f64,
}

impl HParts {
    fn new(features: &Tensor, labels: &Tensor, classes: usize) -> Result<Self> {
        let (f, n, _d) = float_matrix(features, "features")?;
        let labels = Labels::new(labels, n, classes)?;
        let n_f = n as f64;
        let mean = f.f_mean_dim(0, true, Kind::Double)?;
        let centred = f.f_sub(&mean)?;
        let cov = centred.f_tr()?.f_matmul(&centred)?.f_div_scalar(n_f)?;
        let (eigenvalues, eigenvectors) = cov.f_linalg_eigh("L")?;
        let eigenvalues: Vec<f64> = Vec::<f64>::try_from(&eigenvalues)?;

        let counts: Vec<f64> = labels.counts.iter().map(|&c| c as f64).collect();
        let counts = Tensor::from_slice(&counts).f_unsqueeze(1)?;
        let class_means = labels
            .onehot
            .f_tr()?
            .f_matmul(&f)?
            .f_div(&counts.f_clamp_min(1.0)?)?;
        // Rows √P(y) (μ_y − μ), so that cov(E[f | y]) = BᵀB; projected on the eigenvectors.
        let between = class_means
            .f_sub(&mean)?
            .f_mul(&counts.f_div_scalar(n_f)?.f_sqrt()?)?;
        let along: Vec<f64> = Vec::<f64>::try_from(
            &between
                .f_matmul(&eigenvectors)?
                .f_square()?
                .f_sum_dim_intlist(0, false, Kind::Double)?,
        )?;
        let max_abs = f.f_abs()?.f_max()?.f_double_value(&[])?;
        Ok(HParts {
            centred,
            eigenvalues,
            along,
            noise: (n_f * f64::EPSILON * max_abs).powi(2),
        })
    }

    fn largest(&self) -> f64 {
        self.eigenvalues.iter().copied().fold(0.0, f64::max)
    }
}

/// Spearman's rank correlation of `a` and `b`: the Pearson correlation of their ranks, ties
/// given the average of the ranks they span. 1 for the same order, −1 for the reverse.
///
/// Needs two slices of the same length ≥ 2, finite values, and neither slice entirely tied
/// (the correlation is undefined then).
pub fn spearman(a: &[f64], b: &[f64]) -> Result<f64> {
    check_pair(a, b)?;
    let (ra, rb) = (average_ranks(a), average_ranks(b));
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - mean) * (y - mean);
        var_a += (x - mean).powi(2);
        var_b += (y - mean).powi(2);
    }
    if var_a == 0.0 || var_b == 0.0 {
        return Err(all_tied());
    }
    Ok(cov / (var_a * var_b).sqrt())
}

/// Kendall's τ-b of `a` and `b`: (n_c − n_d) / √((n₀ − n₁)(n₀ − n₂)), with n_c and n_d the
/// concordant and discordant pairs, n₀ = n(n − 1)/2 and n₁, n₂ the pairs tied in `a`, in `b`.
///
/// Values are tied when exactly equal. O(n²), meant for the handful of models of a ranking
/// experiment. Same requirements as [`spearman`].
pub fn kendall_tau(a: &[f64], b: &[f64]) -> Result<f64> {
    check_pair(a, b)?;
    let n = a.len();
    let (mut concordant, mut discordant, mut tied_a, mut tied_b) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let (da, db) = (sign(a[i] - a[j]), sign(b[i] - b[j]));
            if da == 0 {
                tied_a += 1;
            }
            if db == 0 {
                tied_b += 1;
            }
            match da * db {
                1 => concordant += 1,
                -1 => discordant += 1,
                _ => {}
            }
        }
    }
    let pairs = (n * (n - 1) / 2) as u64;
    if tied_a == pairs || tied_b == pairs {
        return Err(all_tied());
    }
    let denominator = (((pairs - tied_a) as f64) * ((pairs - tied_b) as f64)).sqrt();
    Ok((concordant as f64 - discordant as f64) / denominator)
}

/// −1, 0 or 1 (0 for ±0, so −0.0 and 0.0 are tied).
fn sign(x: f64) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

fn all_tied() -> Error {
    Error::InvalidArgument(
        "rank correlation: every value of one input is the same, the correlation is undefined"
            .into(),
    )
}

fn check_pair(a: &[f64], b: &[f64]) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::InvalidArgument(format!(
            "rank correlation: the inputs have different lengths ({} and {})",
            a.len(),
            b.len()
        )));
    }
    if a.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "rank correlation needs at least 2 pairs, got {}",
            a.len()
        )));
    }
    for (name, values) in [("first", a), ("second", b)] {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "rank correlation: the {name} input has a non-finite value ({}) at index {i}",
                values[i]
            )));
        }
    }
    Ok(())
}

/// 1-based ranks, ties sharing the mean of the ranks they occupy. `values` must be finite.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start + 1 ..= end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// A 2-D floating-point input as a CPU `f64` tensor with its shape, after the shared checks:
/// at least 2 rows and 1 column, finite values.
fn float_matrix(t: &Tensor, name: &str) -> Result<(Tensor, usize, usize)> {
    let size = t.size();
    let &[n, d] = size.as_slice() else {
        return Err(Error::InvalidArgument(format!(
            "{name} must be a 2-D [N, D] tensor, got shape {size:?}"
        )));
    };
    if !matches!(
        t.kind(),
        Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Double
    ) {
        return Err(Error::InvalidArgument(format!(
            "{name} must be a floating-point tensor, got {:?}",
            t.kind()
        )));
    }
    if n < 2 {
        return Err(Error::InvalidArgument(format!(
            "{name} has {n} example(s), at least 2 are needed"
        )));
    }
    if d < 1 {
        return Err(Error::InvalidArgument(format!("{name} has no columns")));
    }
    let t = t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?;
    let bad = t.f_isfinite()?.f_logical_not()?.f_nonzero()?;
    if bad.size()[0] > 0 {
        let (i, j) = (bad.f_int64_value(&[0, 0])?, bad.f_int64_value(&[0, 1])?);
        return Err(Error::InvalidArgument(format!(
            "{name}[{i}, {j}] is {} (NaN or infinite values are not allowed)",
            t.f_double_value(&[i, j])?
        )));
    }
    Ok((t, n as usize, d as usize))
}

/// Checked integer labels: per-class counts and the one-hot matrix `[N, classes]` in `f64`.
struct Labels {
    counts: Vec<usize>,
    onehot: Tensor,
}

impl Labels {
    fn new(labels: &Tensor, n: usize, classes: usize) -> Result<Self> {
        if classes == 0 {
            return Err(Error::InvalidArgument("classes must be at least 1".into()));
        }
        let size = labels.size();
        if size.as_slice() != [n as i64] {
            return Err(Error::InvalidArgument(format!(
                "labels must have shape [{n}] (one per example), got {size:?}"
            )));
        }
        if !matches!(
            labels.kind(),
            Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64
        ) {
            return Err(Error::InvalidArgument(format!(
                "labels must be an integer tensor, got {:?}",
                labels.kind()
            )));
        }
        let labels = labels.f_to_device(Device::Cpu)?.f_to_kind(Kind::Int64)?;
        let values: Vec<i64> = Vec::<i64>::try_from(&labels)?;
        let mut counts = vec![0usize; classes];
        for (i, &y) in values.iter().enumerate() {
            match usize::try_from(y).ok().filter(|&y| y < classes) {
                Some(y) => counts[y] += 1,
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "labels[{i}] = {y} is outside 0..{classes}"
                    )));
                }
            }
        }
        let onehot = labels.f_one_hot(classes as i64)?.f_to_kind(Kind::Double)?;
        Ok(Labels { counts, onehot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_ranks_share_tied_positions() {
        assert_eq!(
            average_ranks(&[3.0, -1.0, 3.0, 0.0, 3.0, -0.0]),
            [5.0, 1.0, 5.0, 2.5, 5.0, 2.5]
        );
    }

    #[test]
    fn evidence_shortcut_counts_the_directions_outside_the_svd() {
        // D = 3 features, r = 1 singular direction: log|A| must include 2 log α.
        let problem = Regression {
            sigma: &[4.0],
            x2: &[1.0],
            outside: 0.5,
            n: 2.0,
            d: 3.0,
        };
        let (alpha, beta) = (2.0f64, 3.0f64);
        // m² = σx² / (t + σ)², residual = x² t² / (t + σ)² + outside with t = 2/3.
        let t = alpha / beta;
        let m2 = 4.0 / (t + 4.0f64).powi(2);
        let residual2 = t * t / (t + 4.0f64).powi(2) + 0.5;
        let log_det_a = (alpha + beta * 4.0).ln() + 2.0 * alpha.ln();
        let want = 1.5 * alpha.ln() + beta.ln()
            - alpha / 2.0 * m2
            - beta / 2.0 * residual2
            - log_det_a / 2.0
            - (2.0 * std::f64::consts::PI).ln();
        assert!((problem.log_evidence(alpha, beta) - want).abs() < 1e-12);
    }
}
