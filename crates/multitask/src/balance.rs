//! Loss balancing: how the per-task losses become the gradients of one update.
//!
//! A [`Balancer`] receives the tasks' losses of one batch (each the mean over the batch's
//! present labels, with its graph), how many labels each task had, and the network's
//! parameters by role; it leaves the gradients of the combined objective in the parameters'
//! `.grad()` (and in its own variables', if it has any). Methods that only weight the losses
//! do one backward pass; methods that need each task's gradient (GradNorm, PCGrad) do more.
//!
//! | `kind` | method | hyper-parameters | extra cost per step |
//! |---|---|---|---|
//! | `equal` | `Σ L_t` | none | none (1 backward) |
//! | `fixed` | `Σ w_t L_t` | `weights` (one per task, ≥ 0) | none |
//! | `uncertainty` | Kendall et al. 2018 | `init_log_var` (0), `lr` (the training lr) | none: `T` extra scalars trained |
//! | `gradnorm` | Chen et al. 2018 | `alpha` (1.5), `lr` (the training lr) | `T` backward passes through the heads and the last shared stage, `T` gradient norms, one host sync |
//! | `dwa` | Liu et al. 2019 | `temperature` (2) | none (weights change once per epoch) |
//! | `pcgrad` | Yu et al. 2020 | none (the projection order comes from the training seed) | `T` full backward passes instead of 1, `T` copies of the shared gradient, `T(T−1)` dot products, one host sync |
//!
//! **Tasks without labels in a batch** contribute nothing: their loss is an exact 0 with zero
//! gradient (see [`crate::task`]), uncertainty weighting leaves out their `s_t` regulariser
//! (it would otherwise drive `s_t` down with no data), GradNorm leaves them out of its norm
//! balancing, and PCGrad leaves their (zero) gradient out of the projections.
//!
//! **Balancer variables** (uncertainty's `log_var`, GradNorm's `logits`) live in the network's
//! `VarStore` under `balancer.`, so early stopping's snapshots and checkpoints include them; the
//! trainer puts them in their own optimizer group (learning rate `lr`, no weight decay).

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use crate::net::SharedParams;

/// The prefix of balancer variables in the `VarStore`.
pub const BALANCER: &str = "balancer";

/// The balancing method and its hyper-parameters, as read from an experiment's TOML
/// (`balancer = { kind = "gradnorm", alpha = 1.5 }`). See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BalancerConfig {
    /// Sum of the task losses, every weight 1.
    Equal,
    /// `Σ w_t L_t` with fixed weights.
    Fixed {
        /// One weight per task, in task order, each ≥ 0 (not all 0).
        weights: Vec<f64>,
    },
    /// Homoscedastic uncertainty weighting (Kendall, Gal, Cipolla 2018):
    /// `Σ_t exp(−s_t) L_t + s_t` with learned `s_t = log σ_t²`. At the optimum
    /// `exp(−s_t) = 1 / L_t`: a task with a larger loss gets a smaller weight. (The paper's
    /// regression form `L/(2σ²) + log σ` is the same up to a factor ½; as in LibMTL, one form
    /// serves every task kind.)
    Uncertainty {
        /// Initial `s_t` (0: every weight starts at 1).
        #[serde(default)]
        init_log_var: f64,
        /// Learning rate of `s` (default: the training learning rate).
        #[serde(default)]
        lr: Option<f64>,
    },
    /// GradNorm (Chen et al. 2018): weights `w = T · softmax(logits)` (positive, summing to
    /// `T`, as in LibMTL) trained to make each task's weighted gradient norm on the last
    /// shared stage, `G_t = ‖∇_W w_t L_t‖`, equal to `mean(G) · r_t^alpha`, where
    /// `r_t = (L_t / L_t(0)) / mean(L / L(0))` is the task's relative inverse training rate
    /// (`L_t(0)`: its loss at the first batch with labels). A task that trains slower gets a
    /// larger weight. The network is trained on `Σ w_t L_t` with `w` held constant.
    #[serde(rename = "gradnorm")]
    GradNorm {
        /// Strength of the pull towards equal training rates (0: equal gradient norms).
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// Learning rate of the weight logits (default: the training learning rate).
        #[serde(default)]
        lr: Option<f64>,
    },
    /// Dynamic weight average (Liu, Johns, Davison 2019): after two epochs,
    /// `w_t = T · softmax(r / temperature)_t` with `r_t = L_t(k−1) / L_t(k−2)` from the
    /// epoch-mean training losses; weights 1 in the first two epochs.
    Dwa {
        /// Softmax temperature (larger: weights closer to 1).
        #[serde(default = "default_temperature")]
        temperature: f64,
    },
    /// Projecting conflicting gradients (Yu et al. 2020): each task's gradient on the shared
    /// parameters is projected onto the normal plane of every other task's gradient it
    /// conflicts with (negative dot product), the others taken in a random order per step;
    /// the projected gradients are summed. Heads get their own task's gradient.
    #[serde(rename = "pcgrad")]
    PcGrad,
}

fn default_alpha() -> f64 {
    1.5
}

fn default_temperature() -> f64 {
    2.0
}

impl BalancerConfig {
    /// The method's name (its `kind`).
    pub fn name(&self) -> &'static str {
        match self {
            BalancerConfig::Equal => "equal",
            BalancerConfig::Fixed { .. } => "fixed",
            BalancerConfig::Uncertainty { .. } => "uncertainty",
            BalancerConfig::GradNorm { .. } => "gradnorm",
            BalancerConfig::Dwa { .. } => "dwa",
            BalancerConfig::PcGrad => "pcgrad",
        }
    }

    /// Learning rate of the balancer's own variables, if it sets one.
    pub fn lr(&self) -> Option<f64> {
        match self {
            BalancerConfig::Uncertainty { lr, .. } | BalancerConfig::GradNorm { lr, .. } => *lr,
            _ => None,
        }
    }

    /// Checks the hyper-parameters for `tasks` tasks; errors name `balancer.<field>`.
    pub fn validate(&self, tasks: usize) -> Result<()> {
        let bad =
            |f: &str, why: String| Err(Error::InvalidArgument(format!("balancer.{f}: {why}")));
        if let Some(lr) = self.lr()
            && !(lr > 0.0 && lr.is_finite())
        {
            return bad("lr", format!("must be a positive number, got {lr}"));
        }
        match self {
            BalancerConfig::Fixed { weights } => {
                if weights.len() != tasks {
                    return bad(
                        "weights",
                        format!("{} weights for {tasks} tasks", weights.len()),
                    );
                }
                if let Some(w) = weights.iter().find(|w| !(**w >= 0.0 && w.is_finite())) {
                    return bad("weights", format!("each must be finite and >= 0, got {w}"));
                }
                if weights.iter().all(|w| *w == 0.0) {
                    return bad("weights", "at least one must be > 0".into());
                }
            }
            BalancerConfig::Uncertainty { init_log_var, .. } if !init_log_var.is_finite() => {
                return bad("init_log_var", "must be finite".into());
            }
            BalancerConfig::GradNorm { alpha, .. } if !(*alpha >= 0.0 && alpha.is_finite()) => {
                return bad("alpha", format!("must be >= 0, got {alpha}"));
            }
            BalancerConfig::Dwa { temperature }
                if !temperature.is_finite() || *temperature <= 0.0 =>
            {
                return bad("temperature", format!("must be > 0, got {temperature}"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Builds the balancer for `tasks` tasks; its variables (if any) go under `balancer.` of
    /// `root` (the network's `VarStore` root). `seed` drives PCGrad's projection order.
    pub fn build(&self, root: &nn::Path, tasks: usize, seed: u64) -> Result<Box<dyn Balancer>> {
        self.validate(tasks)?;
        let p = root / BALANCER;
        let t = tasks as i64;
        Ok(match self {
            BalancerConfig::Equal => Box::new(Weighted {
                name: "equal",
                weights: vec![1.0; tasks],
            }),
            BalancerConfig::Fixed { weights } => Box::new(Weighted {
                name: "fixed",
                weights: weights.clone(),
            }),
            BalancerConfig::Uncertainty { init_log_var, .. } => Box::new(Uncertainty {
                log_var: p.var("log_var", &[t], Init::Const(*init_log_var)),
            }),
            BalancerConfig::GradNorm { alpha, .. } => Box::new(GradNorm {
                logits: p.var("logits", &[t], Init::Const(0.0)),
                alpha: *alpha,
                initial: vec![None; tasks],
            }),
            BalancerConfig::Dwa { temperature } => Box::new(Dwa {
                temperature: *temperature,
                history: Vec::new(),
                weights: vec![1.0; tasks],
            }),
            BalancerConfig::PcGrad => Box::new(PcGrad { seed }),
        })
    }
}

/// What one [`Balancer::backward`] did.
#[derive(Debug)]
pub struct Balanced {
    /// The combined objective (detached scalar): what divergence checks and logs read.
    pub loss: Tensor,
    /// The weight each task's loss had in this step (detached `[T]`; 1 for PCGrad).
    pub weights: Tensor,
}

/// A loss-balancing method; see the module documentation.
pub trait Balancer {
    /// The method's name.
    fn name(&self) -> &'static str;

    /// Leaves the gradients of the combined objective in `.grad()` of every parameter in
    /// `params` and of the balancer's own variables; they are undefined (zeroed) on entry.
    ///
    /// `losses[t]` is task `t`'s loss on the batch (mean over present labels, with its
    /// graph), `counts` (`[T]` float) how many labels each task had, `representation` the
    /// shared trunk's output on the batch `[B, feature_dim]` (with its graph: methods that
    /// work on the representation's gradients, like MGDA-UB, differentiate the losses with
    /// respect to it), `step` the optimizer step (0-based).
    fn backward(
        &mut self,
        losses: &[Tensor],
        counts: &Tensor,
        params: &SharedParams,
        representation: &Tensor,
        step: u64,
    ) -> Result<Balanced>;

    /// Called after each epoch with each task's mean training loss over its labels (NaN for a
    /// task that had none).
    fn end_epoch(&mut self, _mean_losses: &[f64]) {}
}

fn stack(losses: &[Tensor]) -> Result<Tensor> {
    Ok(Tensor::f_stack(losses, 0)?)
}

fn check_len(losses: &[Tensor], counts: &Tensor, heads: usize) -> Result<()> {
    if losses.is_empty() || counts.size() != [losses.len() as i64] || heads != losses.len() {
        return Err(Error::InvalidArgument(format!(
            "balancer: {} losses, counts {:?}, {heads} heads must agree",
            losses.len(),
            counts.size()
        )));
    }
    Ok(())
}

/// Backpropagates Σ wₜ Lₜ for fixed weights `w` (equal, fixed and DWA weighting).
fn weighted_backward(
    weights: &[f64],
    losses: &[Tensor],
    counts: &Tensor,
    params: &SharedParams,
) -> Result<Balanced> {
    check_len(losses, counts, params.heads.len())?;
    let w = Tensor::from_slice(weights)
        .to_kind(Kind::Float)
        .to_device(counts.device());
    let total = (stack(losses)? * &w).f_sum(Kind::Float)?;
    total.f_backward()?;
    Ok(Balanced {
        loss: total.detach(),
        weights: w,
    })
}

/// Equal and fixed weights.
struct Weighted {
    name: &'static str,
    weights: Vec<f64>,
}

impl Balancer for Weighted {
    fn name(&self) -> &'static str {
        self.name
    }

    fn backward(
        &mut self,
        losses: &[Tensor],
        counts: &Tensor,
        params: &SharedParams,
        _representation: &Tensor,
        _step: u64,
    ) -> Result<Balanced> {
        weighted_backward(&self.weights, losses, counts, params)
    }
}

/// Kendall et al.'s uncertainty weighting.
struct Uncertainty {
    log_var: Tensor,
}

impl Balancer for Uncertainty {
    fn name(&self) -> &'static str {
        "uncertainty"
    }

    fn backward(
        &mut self,
        losses: &[Tensor],
        counts: &Tensor,
        params: &SharedParams,
        _representation: &Tensor,
        _step: u64,
    ) -> Result<Balanced> {
        check_len(losses, counts, params.heads.len())?;
        let present = counts.f_gt(0.0)?.f_to_kind(Kind::Float)?;
        let s = &self.log_var;
        let terms = (s.f_neg()?.f_exp()? * stack(losses)? + s) * present;
        let total = terms.f_sum(Kind::Float)?;
        total.f_backward()?;
        Ok(Balanced {
            loss: total.detach(),
            weights: s.detach().f_neg()?.f_exp()?,
        })
    }
}

/// Chen et al.'s GradNorm.
struct GradNorm {
    logits: Tensor,
    alpha: f64,
    /// Each task's loss at its first batch with labels.
    initial: Vec<Option<f64>>,
}

impl Balancer for GradNorm {
    fn name(&self) -> &'static str {
        "gradnorm"
    }

    fn backward(
        &mut self,
        losses: &[Tensor],
        counts: &Tensor,
        params: &SharedParams,
        _representation: &Tensor,
        _step: u64,
    ) -> Result<Balanced> {
        check_len(losses, counts, params.heads.len())?;
        if params.last_shared.is_empty() {
            return Err(Error::InvalidArgument(
                "balancer gradnorm needs a trainable shared stage (its W); the trunk has none"
                    .into(),
            ));
        }
        let t = losses.len();
        let device = counts.device();
        let counts_host: Vec<f32> = Vec::try_from(counts.f_to_device(tch::Device::Cpu)?)?;
        let values: Vec<f64> = Vec::try_from(stack(losses)?.detach().f_to_kind(Kind::Double)?)?;
        let w = self.logits.f_softmax(0, Kind::Float)? * t as f64;
        // Gradient norms of each present task on W, and its training rate L / L(0).
        let mut present = Vec::new();
        let mut norms = Vec::new();
        let mut rates = Vec::new();
        for i in 0..t {
            if counts_host[i] <= 0.0 {
                continue;
            }
            let l0 = *self.initial[i].get_or_insert(values[i]);
            let grads = Tensor::f_run_backward(&[&losses[i]], &params.last_shared, true, false)?;
            let sq: Vec<Tensor> = grads
                .iter()
                .filter(|g| g.defined())
                .map(|g| g.square().sum(Kind::Float))
                .collect();
            let norm = if sq.is_empty() {
                Tensor::zeros([], (Kind::Float, device))
            } else {
                Tensor::f_stack(&sq, 0)?.f_sum(Kind::Float)?.f_sqrt()?
            };
            present.push(i as i64);
            norms.push(norm);
            rates.push(if l0 > 0.0 { values[i] / l0 } else { 1.0 });
        }
        let weighted_total = (stack(losses)? * w.detach()).f_sum(Kind::Float)?;
        let total_for_backward = if present.is_empty() {
            weighted_total.shallow_clone()
        } else {
            let idx = Tensor::from_slice(&present).to_device(device);
            let g = w.f_index_select(0, &idx)? * Tensor::f_stack(&norms, 0)?;
            let mean_rate = rates.iter().sum::<f64>() / rates.len() as f64;
            let r: Vec<f32> = rates
                .iter()
                .map(|x| (x / mean_rate.max(1e-12)).powf(self.alpha) as f32)
                .collect();
            let target = g.detach().f_mean(Kind::Float)? * Tensor::from_slice(&r).to_device(device);
            let l_grad = (g - target).f_abs()?.f_sum(Kind::Float)?;
            // L_grad reaches only the logits (the norms are constants); the weighted sum, with
            // w detached, reaches only the network: one backward serves both.
            &weighted_total + l_grad
        };
        total_for_backward.f_backward()?;
        Ok(Balanced {
            loss: weighted_total.detach(),
            weights: w.detach(),
        })
    }
}

/// Liu et al.'s dynamic weight average.
struct Dwa {
    temperature: f64,
    /// Epoch-mean losses of past epochs.
    history: Vec<Vec<f64>>,
    weights: Vec<f64>,
}

impl Balancer for Dwa {
    fn name(&self) -> &'static str {
        "dwa"
    }

    fn backward(
        &mut self,
        losses: &[Tensor],
        counts: &Tensor,
        params: &SharedParams,
        _representation: &Tensor,
        _step: u64,
    ) -> Result<Balanced> {
        weighted_backward(&self.weights, losses, counts, params)
    }

    fn end_epoch(&mut self, mean_losses: &[f64]) {
        self.history.push(mean_losses.to_vec());
        self.weights = dwa_weights(&self.history, self.temperature, mean_losses.len());
    }
}

/// DWA's weights after the epochs of `history` (each a vector of epoch-mean losses).
pub fn dwa_weights(history: &[Vec<f64>], temperature: f64, tasks: usize) -> Vec<f64> {
    if history.len() < 2 {
        return vec![1.0; tasks];
    }
    let (prev, last) = (&history[history.len() - 2], &history[history.len() - 1]);
    let r: Vec<f64> = (0..tasks)
        .map(|t| {
            let ratio = last[t] / prev[t];
            if ratio.is_finite() { ratio } else { 1.0 }
        })
        .collect();
    let max = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = r.iter().map(|x| ((x - max) / temperature).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|x| tasks as f64 * x / sum).collect()
}

/// Yu et al.'s PCGrad.
struct PcGrad {
    seed: u64,
}

impl Balancer for PcGrad {
    fn name(&self) -> &'static str {
        "pcgrad"
    }

    fn backward(
        &mut self,
        losses: &[Tensor],
        counts: &Tensor,
        params: &SharedParams,
        _representation: &Tensor,
        step: u64,
    ) -> Result<Balanced> {
        check_len(losses, counts, params.heads.len())?;
        let t = losses.len();
        let counts_host: Vec<f32> = Vec::try_from(counts.f_to_device(tch::Device::Cpu)?)?;
        let total = stack(losses)?.f_sum(Kind::Float)?;
        let mut flat = Vec::new();
        let mut head_grads: Vec<(Vec<Tensor>, Vec<Tensor>)> = Vec::new();
        for i in (0..t).filter(|&i| counts_host[i] > 0.0) {
            let mut inputs: Vec<&Tensor> = params.shared.iter().collect();
            inputs.extend(params.heads[i].iter());
            let grads = Tensor::f_run_backward(&[&losses[i]], &inputs, true, false)?;
            let (shared, head) = grads.split_at(params.shared.len());
            flat.push(flatten(shared, &params.shared)?);
            head_grads.push((
                params.heads[i].iter().map(Tensor::shallow_clone).collect(),
                head.iter().map(Tensor::shallow_clone).collect(),
            ));
        }
        let mut targets: Vec<Tensor> = Vec::new();
        let mut grads: Vec<Tensor> = Vec::new();
        if !params.shared.is_empty() && !flat.is_empty() {
            let order_seed = core_tensor::data::splitmix64(self.seed ^ step.wrapping_mul(0x9E37));
            let projected = project_conflicting(&flat, order_seed)?;
            let sum = Tensor::f_stack(&projected, 0)?.f_sum_dim_intlist(0, false, Kind::Float)?;
            targets.extend(params.shared.iter().map(Tensor::shallow_clone));
            grads.extend(unflatten(&sum, &params.shared)?);
        }
        for (ps, gs) in head_grads {
            targets.extend(ps);
            grads.extend(gs);
        }
        set_grads(&targets, &grads)?;
        Ok(Balanced {
            loss: total.detach(),
            weights: Tensor::ones([t as i64], (Kind::Float, counts.device())),
        })
    }
}

/// PCGrad's projection: for each gradient `g_i`, in turn for every other `g_j` (in an order
/// drawn from `seed`, a new one per `i`), if `g_i · g_j < 0` then
/// `g_i ← g_i − (g_i · g_j) / ‖g_j‖² · g_j`. Returns the projected gradients (not summed).
pub fn project_conflicting(grads: &[Tensor], seed: u64) -> Result<Vec<Tensor>> {
    let t = grads.len();
    let mut out = Vec::with_capacity(t);
    for i in 0..t {
        let mut g = grads[i].shallow_clone();
        let order: Vec<i64> = Vec::try_from(core_tensor::data::permutation(
            t as i64,
            core_tensor::data::splitmix64(seed ^ i as u64),
            tch::Device::Cpu,
        ))?;
        for j in order.into_iter().map(|j| j as usize).filter(|&j| j != i) {
            let gj = &grads[j];
            let dot = g.f_dot(gj)?;
            // No branch on the device: the coefficient is 0 without a conflict.
            let coef = dot.f_clamp_max(0.0)? / gj.f_dot(gj)?.f_clamp_min(1e-30)?;
            // Out of place: `g` starts as a handle on `grads[i]`, which later rows still read.
            g = g.f_sub(&(gj * coef))?;
        }
        out.push(g);
    }
    Ok(out)
}

/// The gradients `grads` (undefined ones count as zeros) of `params`, as one flat vector.
fn flatten(grads: &[Tensor], params: &[Tensor]) -> Result<Tensor> {
    let parts: Vec<Tensor> = grads
        .iter()
        .zip(params)
        .map(|(g, p)| {
            if g.defined() {
                g.f_reshape([-1])
            } else {
                Ok(p.zeros_like().detach().reshape([-1]))
            }
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(Tensor::f_cat(&parts, 0)?.f_to_kind(Kind::Float)?)
}

/// Splits a flat vector back into tensors shaped like `params`.
fn unflatten(flat: &Tensor, params: &[Tensor]) -> Result<Vec<Tensor>> {
    let mut offset = 0;
    params
        .iter()
        .map(|p| {
            let n = p.numel() as i64;
            let part = flat
                .f_narrow(0, offset, n)?
                .f_view(p.size().as_slice())?
                .f_to_kind(p.kind())?;
            offset += n;
            Ok(part)
        })
        .collect()
}

/// Adds `grads[i]` to `params[i].grad()` (undefined gradients are skipped), by the backward
/// pass of `Σ_i sum(params[i] · grads[i])`, whose gradient is exactly `grads[i]`.
pub fn set_grads(params: &[Tensor], grads: &[Tensor]) -> Result<()> {
    let mut terms = Vec::new();
    for (p, g) in params.iter().zip(grads) {
        if g.defined() {
            terms.push((p * g.detach()).f_sum(Kind::Float)?);
        }
    }
    if terms.is_empty() {
        return Ok(());
    }
    Tensor::f_stack(&terms, 0)?
        .f_sum(Kind::Float)?
        .f_backward()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The toy balancers ignore the representation.
    fn no_rep() -> Tensor {
        Tensor::zeros([1, 1], (Kind::Float, Device::Cpu))
    }
    use tch::Device;

    fn vec_of(t: &Tensor) -> Vec<f32> {
        Vec::try_from(t).unwrap()
    }

    #[test]
    fn pcgrad_projects_only_conflicting_gradients() {
        // Conflict: g1·g2 = -1, ‖g2‖² = 2: g1 - (-1/2) g2 = (0.5, 0.5); g2 - (-1/1) g1 = (0, 1).
        let g1 = Tensor::from_slice(&[1.0f32, 0.0]);
        let g2 = Tensor::from_slice(&[-1.0f32, 1.0]);
        let p = project_conflicting(&[g1.shallow_clone(), g2.shallow_clone()], 7).unwrap();
        assert_eq!(vec_of(&p[0]), [0.5, 0.5]);
        assert_eq!(vec_of(&p[1]), [0.0, 1.0]);
        // Each projection is orthogonal to the gradient it conflicted with.
        assert_eq!(p[0].dot(&g2).double_value(&[]), 0.0);
        // No conflict: nothing changes.
        let g3 = Tensor::from_slice(&[1.0f32, 1.0]);
        let p = project_conflicting(&[g1.shallow_clone(), g3.shallow_clone()], 7).unwrap();
        assert_eq!(vec_of(&p[0]), [1.0, 0.0]);
        assert_eq!(vec_of(&p[1]), [1.0, 1.0]);
    }

    #[test]
    fn set_grads_writes_exact_gradients() {
        let p = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
        let g = Tensor::from_slice(&[0.1f32, -0.2, 0.3]);
        set_grads(&[p.shallow_clone()], &[g.shallow_clone()]).unwrap();
        assert_eq!(vec_of(&p.grad()), vec_of(&g));
    }

    /// A toy: shared `W` (2 numbers) and two "tasks" whose losses are `scale_t · ‖W‖²`.
    fn toy_losses(w: &Tensor, scales: [f64; 2]) -> Vec<Tensor> {
        let base = w.square().sum(Kind::Float);
        vec![&base * scales[0], &base * scales[1]]
    }

    fn toy_params(w: &Tensor) -> SharedParams {
        SharedParams {
            shared: vec![w.shallow_clone()],
            last_shared: vec![w.shallow_clone()],
            heads: vec![vec![], vec![]],
        }
    }

    fn sgd(vars: &[Tensor], lr: f64) {
        tch::no_grad(|| {
            for v in vars {
                let g = v.grad();
                if g.defined() {
                    let _ = v.shallow_clone().f_sub_(&(g * lr)).unwrap();
                    let _ = v.grad().zero_();
                }
            }
        });
    }

    #[test]
    fn uncertainty_gives_the_larger_loss_the_smaller_weight() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = BalancerConfig::Uncertainty {
            init_log_var: 0.0,
            lr: None,
        };
        let mut b = cfg.build(&vs.root(), 2, 0).unwrap();
        let log_var = vs.variables()["balancer.log_var"].shallow_clone();
        // Fixed losses 1 and 100 (scales of the same shared quantity; W itself stays put).
        let w = Tensor::from_slice(&[1.0f32, 0.0]).set_requires_grad(true);
        let counts = Tensor::from_slice(&[4.0f32, 4.0]);
        let mut weights = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        for step in 0..2000 {
            let losses = toy_losses(&w, [1.0, 100.0]);
            weights = b
                .backward(&losses, &counts, &toy_params(&w), &no_rep(), step)
                .unwrap()
                .weights;
            sgd(&[log_var.shallow_clone()], 0.01);
            let _ = w.grad().zero_();
        }
        let got = vec_of(&weights);
        assert!(got[1] < got[0], "{got:?}");
        // The optimum is exp(-s_t) = 1 / L_t.
        assert!(
            (got[0] - 1.0).abs() < 0.05 && (got[1] - 0.01).abs() < 0.005,
            "{got:?}"
        );

        // A task without labels leaves its s_t alone.
        let losses = toy_losses(&w, [3.0, 0.0]);
        let _ = b
            .backward(
                &losses,
                &Tensor::from_slice(&[4.0f32, 0.0]),
                &toy_params(&w),
                &no_rep(),
                0,
            )
            .unwrap();
        let g = vec_of(&log_var.grad());
        assert_eq!(g[1], 0.0);
        assert!(g[0] != 0.0);
    }

    #[test]
    fn gradnorm_gives_the_slower_task_the_larger_weight() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = BalancerConfig::GradNorm {
            alpha: 1.5,
            lr: None,
        };
        let mut b = cfg.build(&vs.root(), 2, 0).unwrap();
        let logits = vs.variables()["balancer.logits"].shallow_clone();
        let w = Tensor::from_slice(&[1.0f32, 1.0]).set_requires_grad(true);
        let counts = Tensor::from_slice(&[4.0f32, 4.0]);
        // Step 0 records L(0) with both tasks at the same scale; from then on task 1 has
        // reached a tenth of its initial loss (it trains faster), task 0 has not moved.
        let first = b
            .backward(
                &toy_losses(&w, [1.0, 1.0]),
                &counts,
                &toy_params(&w),
                &no_rep(),
                0,
            )
            .unwrap();
        assert_eq!(vec_of(&first.weights), [1.0, 1.0]);
        sgd(&[logits.shallow_clone()], 0.0);
        let mut weights = first.weights;
        for step in 1..200 {
            let out = b
                .backward(
                    &toy_losses(&w, [1.0, 0.1]),
                    &counts,
                    &toy_params(&w),
                    &no_rep(),
                    step,
                )
                .unwrap();
            weights = out.weights;
            sgd(&[logits.shallow_clone()], 0.01);
            let _ = w.grad().zero_();
        }
        let got = vec_of(&weights);
        assert!(got[0] > 1.2 && got[1] < 0.8, "{got:?}");
        assert!(
            (got[0] + got[1] - 2.0).abs() < 1e-5,
            "weights sum to T: {got:?}"
        );
    }

    #[test]
    fn dwa_favours_the_task_whose_loss_fell_least() {
        assert_eq!(dwa_weights(&[vec![1.0, 1.0]], 2.0, 2), [1.0, 1.0]);
        let w = dwa_weights(&[vec![1.0, 1.0], vec![1.0, 0.5]], 2.0, 2);
        // r = (1, 0.5): softmax((0.5, 0.25)) · 2.
        let e0 = (0.5f64).exp();
        let e1 = (0.25f64).exp();
        assert!((w[0] - 2.0 * e0 / (e0 + e1)).abs() < 1e-12, "{w:?}");
        assert!(w[0] > w[1]);
        let w = dwa_weights(&[vec![1.0, f64::NAN], vec![1.0, 0.5]], 2.0, 2);
        assert_eq!(w, [1.0, 1.0], "a task without labels counts as unchanged");
    }

    #[test]
    fn configs_read_from_toml_and_name_bad_fields() {
        let cfg: BalancerConfig = toml::from_str("kind = \"gradnorm\"").unwrap();
        assert_eq!(
            cfg,
            BalancerConfig::GradNorm {
                alpha: 1.5,
                lr: None
            }
        );
        let cfg: BalancerConfig = toml::from_str("kind = \"pcgrad\"").unwrap();
        assert_eq!(cfg, BalancerConfig::PcGrad);
        let err = toml::from_str::<BalancerConfig>("kind = \"dwa\"\ntemp = 2.0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("temp"), "{err}");
        let fixed = BalancerConfig::Fixed {
            weights: vec![1.0, 2.0],
        };
        let err = fixed.validate(3).unwrap_err().to_string();
        assert!(err.contains("balancer.weights"), "{err}");
        let err = BalancerConfig::Dwa { temperature: 0.0 }
            .validate(2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("balancer.temperature"), "{err}");
    }
}
