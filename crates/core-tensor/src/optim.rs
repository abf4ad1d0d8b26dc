//! Optimizers with parameter groups, on libtorch's fused kernels.
//!
//! SGD (momentum, Nesterov), Adam and AdamW, each with weight decay, over named parameter
//! groups that have their own learning rate and weight decay. One step of a group is one call
//! into libtorch's fused kernel (`_fused_sgd_`, `_fused_adam_`, `_fused_adamw_`, the kernels
//! behind PyTorch's `fused=True`), through the small C++ shim in `csrc/fused_optim.cpp`:
//! small models are bound by per-operation overhead, and the optimizer step is most of it.
//!
//! The update rules are PyTorch's exactly (tests compare with reference values from PyTorch).
//! Only variables that require gradients are optimised, so freezing a layer
//! ([`freeze`]) before building the optimizer leaves it out.

use std::ffi::{CStr, c_char};

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Kind, Tensor};
use torch_sys::C_tensor;

use crate::{Error, Result};

unsafe extern "C" {
    fn tl_free_error(msg: *mut c_char);
    fn tl_adam_step(
        params: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        steps: *const *mut C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        decoupled: i32,
    ) -> *mut c_char;
    fn tl_sgd_step(
        params: *const *mut C_tensor,
        bufs: *const *mut C_tensor,
        n: i64,
        lr: f64,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: i32,
        first_step: i32,
    ) -> *mut c_char;
    fn tl_zero_grad(params: *const *mut C_tensor, n: i64) -> *mut c_char;
    fn tl_clip_grad_norm(
        params: *const *mut C_tensor,
        n: i64,
        max_norm: f64,
        total_norm: *mut f64,
    ) -> *mut c_char;
}

/// Turns a shim result into a `Result`, freeing the message.
fn check(ret: *mut c_char, what: &str) -> Result<()> {
    if ret.is_null() {
        return Ok(());
    }
    // SAFETY: the shim returns either NULL or a NUL-terminated string from malloc.
    let msg = unsafe { CStr::from_ptr(ret) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: `ret` came from the shim's malloc and is freed exactly once.
    unsafe { tl_free_error(ret) };
    Err(Error::Tch(tch::TchError::Torch(format!("{what}: {msg}"))))
}

fn ptrs(tensors: &[Tensor]) -> Vec<*mut C_tensor> {
    tensors
        .iter()
        .map(|t| t.as_ptr() as *mut C_tensor)
        .collect()
}

/// The update rule and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerKind {
    /// Stochastic gradient descent; weight decay is added to the gradient.
    Sgd {
        /// Momentum factor (0 for none).
        #[serde(default)]
        momentum: f64,
        /// Dampening of the momentum.
        #[serde(default)]
        dampening: f64,
        /// Nesterov momentum (needs momentum > 0 and no dampening).
        #[serde(default)]
        nesterov: bool,
    },
    /// Adam (Kingma & Ba); weight decay is added to the gradient (L2).
    Adam {
        /// Decay rates of the first and second moment estimates.
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// Added to the denominator.
        #[serde(default = "default_eps")]
        eps: f64,
    },
    /// AdamW (Loshchilov & Hutter): weight decay applied to the weights, decoupled.
    AdamW {
        /// Decay rates of the first and second moment estimates.
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// Added to the denominator.
        #[serde(default = "default_eps")]
        eps: f64,
    },
}

fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}

fn default_eps() -> f64 {
    1e-8
}

impl OptimizerKind {
    /// Adam with PyTorch's defaults.
    pub fn adam() -> Self {
        OptimizerKind::Adam {
            betas: default_betas(),
            eps: default_eps(),
        }
    }

    /// AdamW with PyTorch's defaults.
    pub fn adamw() -> Self {
        OptimizerKind::AdamW {
            betas: default_betas(),
            eps: default_eps(),
        }
    }

    /// SGD with the given momentum, no dampening, no Nesterov.
    pub fn sgd(momentum: f64) -> Self {
        OptimizerKind::Sgd {
            momentum,
            dampening: 0.0,
            nesterov: false,
        }
    }

    /// Checks the hyper-parameters, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: &str| {
            Err(Error::InvalidArgument(format!("optimizer.{field}: {why}")))
        };
        match self {
            OptimizerKind::Sgd {
                momentum,
                dampening,
                nesterov,
            } => {
                if !(0.0..1.0).contains(momentum) {
                    return bad("momentum", "must be in [0, 1)");
                }
                if *nesterov && (*momentum == 0.0 || *dampening != 0.0) {
                    return bad("nesterov", "needs momentum > 0 and dampening = 0");
                }
            }
            OptimizerKind::Adam { betas, eps } | OptimizerKind::AdamW { betas, eps } => {
                if !(0.0..1.0).contains(&betas.0) || !(0.0..1.0).contains(&betas.1) {
                    return bad("betas", "each must be in [0, 1)");
                }
                if !(*eps > 0.0) {
                    return bad("eps", "must be > 0");
                }
            }
        }
        Ok(())
    }
}

/// Which variables form a group and how they are optimised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Name of the group (for logs and per-group learning rates).
    pub name: String,
    /// Variable-name prefixes that belong to the group (`"conv1"` matches `conv1.weight`,
    /// `"layer1"` matches `layer1.0.conv1.weight`, not `layer10.…`). Empty: every variable no
    /// earlier group took.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Learning rate of the group.
    pub lr: f64,
    /// Weight decay of the group.
    #[serde(default)]
    pub weight_decay: f64,
}

/// True when variable `name` lies under `prefix` (whole dotted components).
pub fn has_prefix(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Stops gradients for every variable under one of `prefixes`; returns how many were frozen.
///
/// Batch-norm running statistics are buffers, not parameters: freezing does not stop them
/// from updating in a training-mode forward pass. Whether frozen layers run in evaluation mode
/// is the model's choice (see the architectures' `forward` options), stated by each experiment.
pub fn freeze(vs: &VarStore, prefixes: &[&str]) -> usize {
    let mut n = 0;
    for (name, var) in vs.variables() {
        if prefixes.iter().any(|p| has_prefix(&name, p)) {
            let _ = var.set_requires_grad(false);
            n += 1;
        }
    }
    n
}

/// Per-group state.
#[derive(Debug)]
struct Group {
    spec: GroupSpec,
    names: Vec<String>,
    params: Vec<Tensor>,
    /// Adam: first moments; SGD: momentum buffers (empty without momentum).
    state_a: Vec<Tensor>,
    /// Adam: second moments.
    state_b: Vec<Tensor>,
    /// Adam: step counts (float32 scalars on the parameters' device).
    steps: Vec<Tensor>,
    lr: f64,
    /// Runs of parameters with the same device and dtype: the fused CUDA kernels take one
    /// device and dtype per call (the CPU ones take anything), so each run is one call.
    parts: Vec<std::ops::Range<usize>>,
}

/// An optimizer over the trainable variables of a [`VarStore`], grouped by name prefix.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    groups: Vec<Group>,
    step_count: u64,
}

impl Optimizer {
    /// One group with every trainable variable.
    pub fn new(vs: &VarStore, kind: OptimizerKind, lr: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(
            vs,
            kind,
            &[GroupSpec {
                name: "all".into(),
                prefixes: vec![],
                lr,
                weight_decay,
            }],
        )
    }

    /// Groups by prefix; each trainable variable goes to the first group that matches it.
    /// A variable no group takes is an error (add a last group with no prefixes).
    pub fn with_groups(vs: &VarStore, kind: OptimizerKind, specs: &[GroupSpec]) -> Result<Self> {
        kind.validate()?;
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut groups: Vec<Group> = Vec::new();
        for spec in specs {
            if !(spec.lr >= 0.0) || !(spec.weight_decay >= 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "group {:?}: lr and weight_decay must be >= 0 (got {}, {})",
                    spec.name, spec.lr, spec.weight_decay
                )));
            }
            let (mine, rest): (Vec<_>, Vec<_>) = vars.into_iter().partition(|(name, _)| {
                spec.prefixes.is_empty() || spec.prefixes.iter().any(|p| has_prefix(name, p))
            });
            vars = rest;
            // Stable: names stay in order within a device and dtype.
            let mut mine = mine;
            mine.sort_by_cached_key(|(_, t)| format!("{:?}/{:?}", t.device(), t.kind()));
            let (names, params): (Vec<String>, Vec<Tensor>) = mine.into_iter().unzip();
            let (state_a, state_b, steps) = init_state(&kind, &params);
            let mut parts: Vec<std::ops::Range<usize>> = Vec::new();
            for (i, t) in params.iter().enumerate() {
                match parts.last_mut() {
                    Some(r)
                        if params[r.start].device() == t.device()
                            && params[r.start].kind() == t.kind() =>
                    {
                        r.end = i + 1
                    }
                    _ => parts.push(i..i + 1),
                }
            }
            groups.push(Group {
                spec: spec.clone(),
                names,
                params,
                state_a,
                state_b,
                steps,
                lr: spec.lr,
                parts,
            });
        }
        if !vars.is_empty() {
            let names: Vec<_> = vars.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::InvalidArgument(format!(
                "variables in no parameter group: {}; add a group with no prefixes",
                names.join(", ")
            )));
        }
        Ok(Optimizer {
            kind,
            groups,
            step_count: 0,
        })
    }

    /// Sets every gradient to undefined (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&mut self) -> Result<()> {
        for g in &self.groups {
            let p = ptrs(&g.params);
            // SAFETY: `p` holds live tensor handles for the duration of the call.
            check(
                unsafe { tl_zero_grad(p.as_ptr(), p.len() as i64) },
                "zero_grad",
            )?;
        }
        Ok(())
    }

    /// Applies one update to every group.
    pub fn step(&mut self) -> Result<()> {
        let first = self.step_count == 0;
        for g in &self.groups {
            for part in &g.parts {
                let ret = fused_step(&self.kind, g, part.clone(), first);
                check(ret, &format!("optimizer step of group {:?}", g.spec.name))?;
            }
        }
        self.step_count += 1;
        Ok(())
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`; returns the norm
    /// before clipping (`torch.nn.utils.clip_grad_norm_`). A non-finite norm is returned as is.
    pub fn clip_grad_norm(&self, max_norm: f64) -> Result<f64> {
        let all: Vec<Tensor> = self
            .groups
            .iter()
            .flat_map(|g| g.params.iter().map(Tensor::shallow_clone))
            .collect();
        let p = ptrs(&all);
        let mut total = 0.0;
        // SAFETY: `p` holds live handles; `total` outlives the call.
        check(
            unsafe { tl_clip_grad_norm(p.as_ptr(), p.len() as i64, max_norm, &mut total) },
            "clip_grad_norm",
        )?;
        Ok(total)
    }

    /// Sets every group's learning rate to its base rate times `factor` (for schedules).
    pub fn set_lr_factor(&mut self, factor: f64) {
        for g in &mut self.groups {
            g.lr = g.spec.lr * factor;
        }
    }

    /// Current learning rate of each group, by name.
    pub fn learning_rates(&self) -> Vec<(String, f64)> {
        self.groups
            .iter()
            .map(|g| (g.spec.name.clone(), g.lr))
            .collect()
    }

    /// The variables of each group, by group name (for tests and logs).
    pub fn group_members(&self) -> Vec<(String, Vec<String>)> {
        self.groups
            .iter()
            .map(|g| (g.spec.name.clone(), g.names.clone()))
            .collect()
    }

    /// Every optimised variable (all groups).
    pub fn parameters(&self) -> impl Iterator<Item = &Tensor> {
        self.groups.iter().flat_map(|g| g.params.iter())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step_count
    }
}

/// One fused update of the parameters `part` of group `g`; the shim's error, if any.
fn fused_step(
    kind: &OptimizerKind,
    g: &Group,
    part: std::ops::Range<usize>,
    first: bool,
) -> *mut c_char {
    let p = ptrs(&g.params[part.clone()]);
    let n = p.len() as i64;
    let wd = g.spec.weight_decay;
    match kind {
        OptimizerKind::Sgd {
            momentum,
            dampening,
            nesterov,
        } => {
            let b = if g.state_a.is_empty() {
                Vec::new()
            } else {
                ptrs(&g.state_a[part])
            };
            // SAFETY: all arrays hold `n` live handles (or none, when momentum is 0).
            unsafe {
                tl_sgd_step(
                    p.as_ptr(),
                    if b.is_empty() {
                        std::ptr::null()
                    } else {
                        b.as_ptr()
                    },
                    n,
                    g.lr,
                    *momentum,
                    *dampening,
                    wd,
                    *nesterov as i32,
                    first as i32,
                )
            }
        }
        OptimizerKind::Adam { betas, eps } | OptimizerKind::AdamW { betas, eps } => {
            let decoupled = matches!(kind, OptimizerKind::AdamW { .. });
            let (a, b, s) = (
                ptrs(&g.state_a[part.clone()]),
                ptrs(&g.state_b[part.clone()]),
                ptrs(&g.steps[part]),
            );
            // SAFETY: all arrays hold `n` live handles.
            unsafe {
                tl_adam_step(
                    p.as_ptr(),
                    a.as_ptr(),
                    b.as_ptr(),
                    s.as_ptr(),
                    n,
                    g.lr,
                    betas.0,
                    betas.1,
                    wd,
                    *eps,
                    decoupled as i32,
                )
            }
        }
    }
}

fn init_state(kind: &OptimizerKind, params: &[Tensor]) -> (Vec<Tensor>, Vec<Tensor>, Vec<Tensor>) {
    let zeros = |ps: &[Tensor]| ps.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
    match kind {
        OptimizerKind::Sgd { momentum, .. } => (
            if *momentum != 0.0 {
                zeros(params)
            } else {
                vec![]
            },
            vec![],
            vec![],
        ),
        OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => {
            let steps = params
                .iter()
                .map(|p| Tensor::zeros([], (Kind::Float, p.device())))
                .collect();
            (zeros(params), zeros(params), steps)
        }
    }
}
