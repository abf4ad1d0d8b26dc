//! `multitask`: one network trained on several tasks at once — hard parameter sharing, labels
//! that may be missing, loss balancing — and the tools multi-task experiments are built from.
//!
//! # Design
//!
//! - **Tasks** ([`task`]): each task is binary (one logit, binary cross-entropy), multi-class
//!   (`classes` logits, cross-entropy) or regression (one output, squared error), with its own
//!   metrics (accuracy, balanced accuracy and AUC; accuracy; MAE and RMSE; each also its loss).
//!   The targets of `T` tasks are one float tensor `[N, T]`: column `t` holds task `t`'s label
//!   (a class index as a float for multi-class tasks) and **NaN marks a missing label** (the
//!   chapter's "?"). So a multi-task dataset is an ordinary `core_tensor::data::TensorDataset`.
//! - **Masked losses**: a task's loss on a batch is the mean of its per-example loss over the
//!   examples whose label is present; a batch with no label for a task gives it exactly 0 with
//!   zero gradients (missing targets are replaced before the loss, so no NaN enters the graph).
//!   Each example teaches exactly the tasks it has labels for (claim M-4).
//! - **Hard parameter sharing** ([`net`]): any network is the trunk — a zoo backbone
//!   (`pretrained_zoo::arch::ArchConfig`) or your own (any `pretrained_zoo::arch::Architecture`,
//!   e.g. your tch modules wrapped in a `Staged`) — built at the `VarStore` root so its
//!   variables keep their names (pre-trained weights load as they are); its `features` feed one
//!   linear head per task, `task_heads.<name>`. The trunk's own head is frozen and unused.
//! - **Loss balancing** ([`balance`]): one small trait, [`balance::Balancer`], receives the
//!   per-task losses, label counts and shared representation of a batch and leaves the
//!   gradients of the combined objective in the parameters (LibMTL's `backward(losses)` seam);
//!   write your own and pass it to [`train::MultiTaskTrainer::with_balancer`]. Six methods are
//!   built in, chosen by [`balance::BalancerConfig`]:
//!
//! | `kind` | hyper-parameters (default) | what it does | cost per step beyond one backward |
//! |---|---|---|---|
//! | `equal` | — | `Σ L_t` | none |
//! | `fixed` | `weights` (one per task) | `Σ w_t L_t` | none |
//! | `uncertainty` | `init_log_var` (0), `lr` (training lr) | Kendall et al. 2018: `Σ exp(−s_t) L_t + s_t`, `s` learned; weight → `1/L_t` | `T` scalars more to train |
//! | `gradnorm` | `alpha` (1.5), `lr` (training lr) | Chen et al. 2018: `w = T·softmax(θ)` trained so that weighted gradient norms on the last shared stage follow the tasks' relative training rates to the power `alpha` | `T` partial backward passes (heads and last shared stage), a host sync |
//! | `dwa` | `temperature` (2) | Liu et al. 2019: `w = T·softmax(r/temperature)`, `r_t` the ratio of the last two epoch-mean losses | none |
//! | `pcgrad` | — (order from the training seed) | Yu et al. 2020: each task's shared gradient projected off the gradients it conflicts with, then summed | `T` full backward passes instead of 1, `T` flat copies of the shared gradient, `T(T−1)` dot products, a host sync |
//!
//! - **Training** ([`train`]): [`train::MultiTaskTrainer`] runs on `core_tensor::train::Trainer`
//!   itself (one engine: same `TrainConfig`, schedule, clipping, early stopping restoring the
//!   best weights, seeded batch order, the same errors for a non-finite loss, gradient norm or
//!   validation value), the balancer doing each step's backward pass as a
//!   `core_tensor::train::Objective`. Early stopping watches the validation value in the
//!   direction of its `goal` (the experiments' configs minimise the mean validation loss). [`train::evaluate`] scores each task on its present
//!   labels. **Single-task baselines** use the same code with one task
//!   ([`train::MultiTaskConfig::single_task`], [`train::select_tasks`]), so both arms share
//!   architecture and recipe; [`gain::delta_m`] computes Δm against them (never against an
//!   untrained model).
//! - **Scenes** ([`scenes`]): canvases with 0..k MNIST digits or Fashion-MNIST items pasted
//!   with tensor operations at seeded random positions, labelled with per-class presence,
//!   counts and tight boxes: the multi-label data of M1 and M4.
//!
//! The project's multi-task experiments (M1–M6) are built on this crate in the workspace's
//! `experiments` crate; nothing here depends on them.
//!
//! Errors are `core_tensor::Error`; configs are serde structs with `deny_unknown_fields` and a
//! `validate()` naming the bad field.
//!
//! ```
//! use core_tensor::data::TensorDataset;
//! use core_tensor::train::TrainConfig;
//! use multitask::balance::BalancerConfig;
//! use multitask::net::MultiTaskNet;
//! use multitask::task::TaskSpec;
//! use multitask::train::{MultiTaskTrainer, evaluate};
//! use pretrained_zoo::arch::{ArchConfig, MlpConfig};
//! use tch::{Device, Kind, Tensor, nn::VarStore};
//!
//! // Two tasks on 4 inputs; the second task's label is missing (NaN) for odd examples.
//! let x = Tensor::randn([64, 4], (Kind::Float, Device::Cpu));
//! let sign = x.select(1, 0).gt(0.0).to_kind(Kind::Float);
//! let value = x.select(1, 1) * 3.0;
//! let odd = (Tensor::arange(64, (Kind::Int64, Device::Cpu)).remainder(2)).eq(1);
//! let targets = Tensor::stack(&[sign, value.masked_fill(&odd, f64::NAN)], 1);
//! let data = TensorDataset::new(x, targets)?;
//!
//! let vs = VarStore::new(Device::Cpu);
//! let trunk = ArchConfig::Mlp(MlpConfig { inputs: 4, hidden: vec![16], classes: 1 });
//! let tasks = [TaskSpec::binary("sign"), TaskSpec::regression("value")];
//! let net = MultiTaskNet::new(&vs, &trunk, &tasks)?;
//! let recipe = TrainConfig { epochs: 2, batch_size: 16, lr: 1e-2, early_stopping: None, ..Default::default() };
//! let balancer = BalancerConfig::Uncertainty { init_log_var: 0.0, lr: None };
//! let report = MultiTaskTrainer::new(&vs, &net, &balancer, recipe, 7)?.fit(&data, None)?;
//! assert_eq!(report.epochs.len(), 2);
//! let scores = evaluate(&net, &data, 64, None)?;
//! assert_eq!(scores[1].labelled, 32);
//! # Ok::<(), core_tensor::Error>(())
//! ```

pub mod balance;
pub mod gain;
pub mod net;
pub mod scenes;
pub mod task;
pub mod train;
