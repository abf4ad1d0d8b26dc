//! The linear probe's head fitted to convergence: multinomial logistic regression on frozen
//! features by full-batch L-BFGS.
//!
//! A linear probe is a convex problem, so it has one answer: the minimum of
//!
//! ```text
//! Σ_i −log softmax(W f_i + b)[y_i]  +  l2/2 · ‖W‖²      (the bias is not penalised)
//! ```
//!
//! which is scikit-learn's `LogisticRegression(C = 1/l2)` objective for more than two classes
//! (for two it fits one weight vector where this fits two rows; the minimiser's decision is that
//! of `C = 2/l2`). Trained by mini-batches with early stopping on a handful of validation
//! examples, a probe stops wherever the noise says; fitted this way it depends only on the
//! features, the labels and `l2`. [`fit_logistic`] minimises the objective divided by the
//! number of examples (the same minimiser) in double precision, until the largest gradient
//! component is below `tol`.

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How a linear probe fits its head on the cached features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeFit {
    /// Trained like every other phase, by the adaptation's `train` settings (mini-batches,
    /// early stopping on the validation metric).
    Train,
    /// Logistic regression fitted to convergence by full-batch L-BFGS (the
    /// [module documentation](self)); the validation set is only reported.
    Lbfgs {
        /// Strength of the L2 penalty on the head's weight (scikit-learn's `1 / C`).
        #[serde(default = "default_l2")]
        l2: f64,
        /// The most L-BFGS iterations.
        #[serde(default = "default_max_iter")]
        max_iter: usize,
        /// Converged when every component of the mean objective's gradient is below this.
        #[serde(default = "default_tol")]
        tol: f64,
    },
}

fn default_l2() -> f64 {
    1.0
}

fn default_max_iter() -> usize {
    1000
}

fn default_tol() -> f64 {
    1e-6
}

impl ProbeFit {
    /// L-BFGS with `l2 = 1` (scikit-learn's default `C = 1`), at most 1,000 iterations, to a
    /// gradient below 1e-6.
    pub fn lbfgs() -> Self {
        ProbeFit::Lbfgs {
            l2: default_l2(),
            max_iter: default_max_iter(),
            tol: default_tol(),
        }
    }

    /// Whether this is [`ProbeFit::Train`].
    pub fn is_train(&self) -> bool {
        matches!(self, ProbeFit::Train)
    }

    /// Checks the parameters, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if let ProbeFit::Lbfgs { l2, max_iter, tol } = self {
            let bad = |f: &str, why: &str| Err(Error::InvalidArgument(format!("probe.{f}: {why}")));
            if !(*l2 > 0.0 && l2.is_finite()) {
                return bad(
                    "l2",
                    "must be a positive number (without it separable data has no minimum)",
                );
            }
            if *max_iter == 0 {
                return bad("max_iter", "must be at least 1");
            }
            if !(*tol > 0.0) {
                return bad("tol", "must be > 0");
            }
        }
        Ok(())
    }
}

/// What [`fit_logistic`] found.
#[derive(Debug)]
pub struct LogisticFit {
    /// The head's weight, `[classes, features]`, in the features' kind.
    pub weight: Tensor,
    /// The head's bias, `[classes]`.
    pub bias: Tensor,
    /// L-BFGS iterations done.
    pub iterations: usize,
    /// The objective divided by the number of examples at the end.
    pub loss: f64,
    /// The largest component of its gradient at the end.
    pub grad_max: f64,
    /// Whether `grad_max` fell below the tolerance.
    pub converged: bool,
}

/// The mean objective and its gradient at `theta` = `[W.flatten(), b]`.
struct Objective<'a> {
    x: &'a Tensor,
    onehot: Tensor,
    n: f64,
    k: i64,
    d: i64,
    l2: f64,
}

impl Objective<'_> {
    fn eval(&self, theta: &Tensor) -> Result<(f64, Tensor)> {
        let w = theta
            .f_narrow(0, 0, self.k * self.d)?
            .f_view([self.k, self.d])?;
        let b = theta.f_narrow(0, self.k * self.d, self.k)?;
        let logits = self.x.f_matmul(&w.f_transpose(0, 1)?)?.f_add(&b)?;
        let log_p = logits.f_log_softmax(1, Kind::Double)?;
        let nll = -(log_p
            .f_mul(&self.onehot)?
            .f_sum(Kind::Double)?
            .f_double_value(&[])?);
        let penalty = 0.5 * self.l2 * w.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])?;
        let g = log_p.f_exp()?.f_sub(&self.onehot)?; // [n, k]
        let gw = g
            .f_transpose(0, 1)?
            .f_matmul(self.x)?
            .f_add(&w.f_mul_scalar(self.l2)?)?;
        let gb = g.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Double)?;
        let grad = Tensor::f_cat(&[gw.f_flatten(0, -1)?, gb], 0)?.f_div_scalar(self.n)?;
        Ok(((nll + penalty) / self.n, grad))
    }
}

fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok(a.f_dot(b)?.f_double_value(&[])?)
}

/// Fits `W, b` minimising the [objective](self) on `features` `[n, d]` with labels `0..classes`,
/// starting from `init` (`weight [classes, d]`, `bias [classes]`) or from zeros; L-BFGS with a
/// memory of 10 and a backtracking (Armijo) line search, in double precision on the features'
/// device.
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes, labels outside `0..classes`, a bad `l2`
/// or `max_iter`, or features that are not finite.
pub fn fit_logistic(
    features: &Tensor,
    labels: &Tensor,
    classes: i64,
    l2: f64,
    max_iter: usize,
    tol: f64,
    init: Option<(&Tensor, &Tensor)>,
) -> Result<LogisticFit> {
    ProbeFit::Lbfgs { l2, max_iter, tol }.validate()?;
    let size = features.size();
    if size.len() != 2 || labels.size() != [size[0]] || size[0] == 0 {
        return Err(Error::InvalidArgument(format!(
            "logistic regression: features must be [n, d] with n > 0 and labels [n]; got {size:?} and {:?}",
            labels.size()
        )));
    }
    let (n, d, k) = (size[0], size[1], classes);
    let labels = labels.f_to_kind(Kind::Int64)?;
    let (lo, hi) = (
        labels.f_min()?.f_int64_value(&[])?,
        labels.f_max()?.f_int64_value(&[])?,
    );
    if lo < 0 || hi >= k {
        return Err(Error::InvalidArgument(format!(
            "logistic regression: labels must be in 0..{k}, found {lo}..={hi}"
        )));
    }
    let x = features.f_to_kind(Kind::Double)?;
    if x.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
        return Err(Error::InvalidArgument(
            "logistic regression: the features contain NaN or infinity".into(),
        ));
    }
    let onehot = labels.f_one_hot(k)?.f_to_kind(Kind::Double)?;
    let objective = Objective {
        x: &x,
        onehot,
        n: n as f64,
        k,
        d,
        l2,
    };
    let _guard = tch::no_grad_guard();
    let mut theta = match init {
        Some((w, b)) => Tensor::f_cat(
            &[
                w.f_to_kind(Kind::Double)?.f_flatten(0, -1)?,
                b.f_to_kind(Kind::Double)?,
            ],
            0,
        )?
        .f_to_device(x.device())?,
        None => Tensor::f_zeros([k * d + k], (Kind::Double, x.device()))?,
    };
    if theta.size() != [k * d + k] {
        return Err(Error::InvalidArgument(format!(
            "logistic regression: the initial head has {} values, expected {k} x {d} + {k}",
            theta.size()[0]
        )));
    }
    let (mut loss, mut grad) = objective.eval(&theta)?;
    let memory = 10;
    let mut history: std::collections::VecDeque<(Tensor, Tensor, f64)> = Default::default();
    let mut iterations = 0;
    let mut grad_max = grad.f_abs()?.f_max()?.f_double_value(&[])?;
    while grad_max > tol && iterations < max_iter {
        // Two-loop recursion: direction = -H g.
        let mut q = grad.copy();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q)?;
            q = q.f_sub(&y.f_mul_scalar(a)?)?;
            alphas.push(a);
        }
        let gamma = match history.back() {
            Some((s, y, _)) => dot(s, y)? / dot(y, y)?,
            None => {
                1.0 / grad
                    .f_abs()?
                    .f_sum(Kind::Double)?
                    .f_double_value(&[])?
                    .max(1.0)
            }
        };
        let mut r = q.f_mul_scalar(gamma)?;
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &r)?;
            r = r.f_add(&s.f_mul_scalar(a - beta)?)?;
        }
        let mut direction = r.f_neg()?;
        let mut slope = dot(&grad, &direction)?;
        if !(slope < 0.0) {
            history.clear();
            direction = grad.f_neg()?;
            slope = -dot(&grad, &grad)?;
        }
        // Backtracking line search on the Armijo condition.
        let mut step = 1.0;
        let (new_theta, new_loss, new_grad) = loop {
            let candidate = theta.f_add(&direction.f_mul_scalar(step)?)?;
            let (l, g) = objective.eval(&candidate)?;
            if l.is_finite() && l <= loss + 1e-4 * step * slope {
                break (candidate, l, g);
            }
            step *= 0.5;
            if step < 1e-20 {
                // No decrease possible in floating point: the minimum is reached.
                return finish(&theta, &grad, loss, iterations, tol, k, d, features.kind());
            }
        };
        let s = new_theta.f_sub(&theta)?;
        let y = new_grad.f_sub(&grad)?;
        let sy = dot(&s, &y)?;
        if sy > 1e-12 {
            if history.len() == memory {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        theta = new_theta;
        loss = new_loss;
        grad = new_grad;
        grad_max = grad.f_abs()?.f_max()?.f_double_value(&[])?;
        iterations += 1;
    }
    finish(&theta, &grad, loss, iterations, tol, k, d, features.kind())
}

#[allow(clippy::too_many_arguments)]
fn finish(
    theta: &Tensor,
    grad: &Tensor,
    loss: f64,
    iterations: usize,
    tol: f64,
    k: i64,
    d: i64,
    kind: Kind,
) -> Result<LogisticFit> {
    let grad_max = grad.f_abs()?.f_max()?.f_double_value(&[])?;
    Ok(LogisticFit {
        weight: theta
            .f_narrow(0, 0, k * d)?
            .f_view([k, d])?
            .f_to_kind(kind)?,
        bias: theta.f_narrow(0, k * d, k)?.f_to_kind(kind)?,
        iterations,
        loss,
        grad_max,
        converged: grad_max <= tol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_vanishes_at_the_answer_and_matches_finite_differences() {
        tch::manual_seed(0);
        let x = Tensor::randn([60, 5], tch::kind::FLOAT_CPU);
        let y = x.select(1, 0).gt(0.0).to_kind(Kind::Int64)
            + x.select(1, 1).gt(0.5).to_kind(Kind::Int64);
        let fit = fit_logistic(&x, &y, 3, 0.5, 500, 1e-8, None).unwrap();
        assert!(fit.converged, "{fit:?}");
        // The optimality condition, checked independently by autograd.
        let w = fit.weight.to_kind(Kind::Double).set_requires_grad(true);
        let b = fit.bias.to_kind(Kind::Double).set_requires_grad(true);
        let xd = x.to_kind(Kind::Double);
        let obj = xd.matmul(&w.tr()).g_add(&b).cross_entropy_for_logits(&y) * 60.0
            + w.square().sum(Kind::Double) * 0.25;
        obj.backward();
        let g = w
            .grad()
            .abs()
            .max()
            .double_value(&[])
            .max(b.grad().abs().max().double_value(&[]));
        assert!(g < 1e-5, "gradient {g} at the returned minimum");
        // Fitting separable-ish data beats chance by far.
        let acc = xd
            .matmul(&w.detach().tr())
            .g_add(&b.detach())
            .argmax(1, false)
            .eq_tensor(&y)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!(acc > 0.8, "training accuracy {acc}");
    }

    #[test]
    fn bad_input_is_named() {
        let x = Tensor::zeros([4, 2], tch::kind::FLOAT_CPU);
        let y = Tensor::from_slice(&[0i64, 1, 2, 1]);
        let err = fit_logistic(&x, &y, 2, 1.0, 10, 1e-6, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels must be in 0..2"), "{err}");
        let err = fit_logistic(&x, &y, 3, 0.0, 10, 1e-6, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("probe.l2"), "{err}");
        let nan = Tensor::full([4, 2], f64::NAN, tch::kind::FLOAT_CPU);
        let err = fit_logistic(&nan, &y, 3, 1.0, 10, 1e-6, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("NaN"), "{err}");
    }
}
