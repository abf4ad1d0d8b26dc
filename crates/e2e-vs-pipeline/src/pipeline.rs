//! Pipelines and end-to-end models behind one [`Model`] interface, so that one sweep trains
//! and scores both.
//!
//! - A [`LearnedStage`] is a network in its own `VarStore`, trained with its **own
//!   supervision on its own data** ([`LearnedStage::fit`]: cross-entropy for
//!   [`Objective::Classification`], squared error for [`Objective::Regression`]) through
//!   `core_tensor::train::Trainer`.
//! - A [`Pipeline`] is a sequence of stages, each hand-designed ([`Pipeline::hand`]: a pure
//!   function) or learned ([`Pipeline::learned`]). A hand stage receives **the pipeline's
//!   input and the previous stage's output** (for the first stage both are the input), so a
//!   crop stage can cut the image at the box the localiser before it predicted; a learned
//!   stage receives the previous output. [`Pipeline::input_of`] gives the input a stage sees
//!   at prediction time, to train it on upstream predictions instead of ground truth when
//!   the experiment wants that.
//! - An [`EndToEnd`] model is one learned stage from input to output.
//!
//! Prediction runs every learned stage in evaluation mode without gradients.

use core_tensor::data::TensorDataset;
use core_tensor::train::{FitReport, TrainConfig, Trainer};
use core_tensor::{Error, Result};
use pretrained_zoo::arch::ArchConfig;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// What a model is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of argmax predictions equal to the integer targets (higher is better).
    Accuracy,
    /// Mean absolute error of the outputs against float targets (lower is better).
    Mae,
}

/// Anything that maps inputs to outputs: a [`Pipeline`] or an [`EndToEnd`] network.
pub trait Model {
    /// The name in reports.
    fn name(&self) -> &str;
    /// Outputs for a batch of inputs (logits for classification, values for regression), in
    /// evaluation mode.
    fn predict(&self, xs: &Tensor) -> Result<Tensor>;
}

/// Scores `model` on `data` in batches of `batch_size`.
pub fn evaluate(
    model: &dyn Model,
    data: &TensorDataset,
    batch_size: usize,
    metric: Metric,
) -> Result<f64> {
    if data.is_empty() {
        return Err(Error::InvalidArgument(
            "cannot evaluate on no examples".into(),
        ));
    }
    let mut total = 0.0;
    for (xs, ys) in data.batches(batch_size) {
        let out = tch::no_grad(|| model.predict(&xs))?;
        total += score_sum(&out, &ys, metric)?;
    }
    Ok(total / data.len() as f64)
}

/// The metric summed (not averaged) over a batch.
fn score_sum(out: &Tensor, ys: &Tensor, metric: Metric) -> Result<f64> {
    Ok(match metric {
        Metric::Accuracy => out
            .f_argmax(-1, false)?
            .f_eq_tensor(&ys.to_device(out.device()))?
            .f_sum(Kind::Float)?
            .f_double_value(&[])?,
        Metric::Mae => {
            let ys = ys.to_device(out.device()).to_kind(Kind::Float);
            let out = out.to_kind(Kind::Float).f_view(ys.size().as_slice())?;
            // Per example: mean over any output dimensions.
            let n = ys.size().first().copied().unwrap_or(1).max(1);
            let per_example = ys.numel() as f64 / n as f64;
            (out - ys).abs().sum(Kind::Float).double_value(&[]) / per_example
        }
    })
}

/// How a learned stage is supervised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Cross-entropy of logits `[N, classes]` against int64 targets `[N]`; validated by
    /// accuracy (early stopping must maximise).
    Classification,
    /// Mean squared error of outputs against float targets of the same number of elements
    /// per example; validated by MAE (early stopping must minimise).
    Regression,
}

/// A network trained with its own supervision: a pipeline stage or an end-to-end model.
pub struct LearnedStage {
    vs: nn::VarStore,
    net: Box<dyn ModuleT>,
    objective: Objective,
}

impl std::fmt::Debug for LearnedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearnedStage")
            .field("objective", &self.objective)
            .field("variables", &self.vs.variables().len())
            .finish()
    }
}

impl LearnedStage {
    /// Builds a network at the root of a fresh `VarStore` on `device`, initialised after
    /// `tch::manual_seed(init_seed)` (so the initialisation is the seed's; libtorch's
    /// generator is global, so keep other threads from drawing meanwhile).
    pub fn new(
        device: Device,
        objective: Objective,
        init_seed: u64,
        build: impl FnOnce(&nn::Path) -> Result<Box<dyn ModuleT>>,
    ) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        tch::manual_seed(init_seed as i64);
        let net = build(&vs.root())?;
        Ok(LearnedStage { vs, net, objective })
    }

    /// A zoo network ([`ArchConfig`]) as a stage.
    pub fn from_arch(
        device: Device,
        arch: &ArchConfig,
        objective: Objective,
        init_seed: u64,
    ) -> Result<Self> {
        Self::new(device, objective, init_seed, |p| {
            Ok(Box::new(ZooNet(arch.build(p)?)))
        })
    }

    /// The stage's variables.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The supervision.
    pub fn objective(&self) -> Objective {
        self.objective
    }

    /// Outputs in evaluation mode, without gradients.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        tch::no_grad(|| self.net.forward_t(&xs.to_device(self.vs.device()), false))
    }

    fn loss(&self, xs: &Tensor, ys: &Tensor) -> Tensor {
        let out = self.net.forward_t(xs, true);
        match self.objective {
            Objective::Classification => out.cross_entropy_for_logits(ys),
            Objective::Regression => out
                .view(ys.size().as_slice())
                .mse_loss(&ys.to_kind(Kind::Float), tch::Reduction::Mean),
        }
    }

    /// Trains on `train` (on the stage's device) with `cfg` and batch order `seed`;
    /// `validation`, if given, is scored after each epoch (accuracy or MAE, by the objective)
    /// for early stopping. Accuracy ties are broken by the validation cross-entropy (lower
    /// wins; its weight, `1e-3 / n` per nat for `n` validation examples and at most 100 nats,
    /// is below one example's share of the accuracy), so a small validation set does not keep
    /// the first of many epochs with the same accuracy.
    pub fn fit(
        &mut self,
        train: &TensorDataset,
        validation: Option<&TensorDataset>,
        cfg: &TrainConfig,
        seed: u64,
    ) -> Result<FitReport> {
        let device = self.vs.device();
        let train = train.to_device(device);
        let metric = match self.objective {
            Objective::Classification => Metric::Accuracy,
            Objective::Regression => Metric::Mae,
        };
        let this = &*self;
        let mut trainer = Trainer::new(&this.vs, cfg.clone())?.shuffle_seed(seed);
        let mut score = validation.map(|val| {
            move || -> Result<f64> {
                let (mut total, mut loss) = (0.0, 0.0);
                for (xs, ys) in val.batches(cfg.batch_size.max(256)) {
                    let out = this.forward(&xs);
                    total += score_sum(&out, &ys, metric)?;
                    if metric == Metric::Accuracy {
                        loss += out
                            .f_log_softmax(-1, Kind::Float)?
                            .f_nll_loss(
                                &ys.to_device(out.device()),
                                None::<Tensor>,
                                tch::Reduction::Mean,
                                -100,
                            )?
                            .f_double_value(&[])?
                            * xs.size()[0] as f64;
                    }
                }
                let n = val.len() as f64;
                // Accuracy moves in steps of 1/n: on a small validation set many epochs tie,
                // and the first of them (often an early, barely trained one) would be kept.
                // Ties go to the lower validation loss, weighted below one step.
                let tie_break = (loss / n).min(100.0) * 1e-3 / n;
                Ok(total / n - tie_break)
            }
        });
        let validate = score.as_mut().map(|f| f as &mut dyn FnMut() -> Result<f64>);
        trainer.fit(&train, |xs, ys| this.loss(xs, ys), validate)
    }
}

/// A zoo classifier as a plain `ModuleT` (no trait upcasting before Rust 1.86).
struct ZooNet(Box<dyn pretrained_zoo::arch::Classifier>);

impl std::fmt::Debug for ZooNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZooNet")
    }
}

impl ModuleT for ZooNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.forward_t(xs, train)
    }
}

type HandFn = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor>>;

/// One stage of a [`Pipeline`].
pub enum Stage {
    /// A hand-designed pure function of (pipeline input, previous output).
    Hand {
        /// Name.
        name: String,
        /// The function.
        f: HandFn,
    },
    /// A learned network applied to the previous output.
    Learned {
        /// Name.
        name: String,
        /// The network.
        stage: LearnedStage,
    },
}

impl Stage {
    /// The stage's name.
    pub fn name(&self) -> &str {
        match self {
            Stage::Hand { name, .. } | Stage::Learned { name, .. } => name,
        }
    }
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Hand { name, .. } => write!(f, "Hand({name})"),
            Stage::Learned { name, stage } => write!(f, "Learned({name}, {stage:?})"),
        }
    }
}

/// A sequence of stages; see the module documentation.
#[derive(Debug)]
pub struct Pipeline {
    name: String,
    stages: Vec<Stage>,
}

impl Pipeline {
    /// An empty pipeline (the identity) named `name`.
    pub fn new(name: &str) -> Self {
        Pipeline {
            name: name.to_string(),
            stages: Vec::new(),
        }
    }

    /// Appends a hand-designed stage `f(input, previous)`.
    pub fn hand(
        mut self,
        name: &str,
        f: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + 'static,
    ) -> Self {
        self.stages.push(Stage::Hand {
            name: name.to_string(),
            f: Box::new(f),
        });
        self
    }

    /// Appends a learned stage.
    pub fn learned(mut self, name: &str, stage: LearnedStage) -> Self {
        self.stages.push(Stage::Learned {
            name: name.to_string(),
            stage,
        });
        self
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    fn position(&self, name: &str) -> Result<usize> {
        self.stages
            .iter()
            .position(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.stages.iter().map(Stage::name).collect();
                Error::InvalidArgument(format!(
                    "pipeline {} has no stage {name:?}; stages: {names:?}",
                    self.name
                ))
            })
    }

    /// The learned stage `name`, to train it.
    pub fn learned_mut(&mut self, name: &str) -> Result<&mut LearnedStage> {
        let i = self.position(name)?;
        match &mut self.stages[i] {
            Stage::Learned { stage, .. } => Ok(stage),
            Stage::Hand { .. } => Err(Error::InvalidArgument(format!(
                "stage {name:?} is hand-designed and has nothing to train"
            ))),
        }
    }

    fn run(&self, xs: &Tensor, upto: usize) -> Result<Tensor> {
        let mut prev = xs.shallow_clone();
        for stage in &self.stages[..upto] {
            prev = match stage {
                Stage::Hand { f, .. } => f(xs, &prev)?,
                Stage::Learned { stage, .. } => stage.forward(&prev),
            };
        }
        Ok(prev)
    }

    /// What stage `name` receives when the pipeline predicts on `xs` (the output of the
    /// stages before it).
    pub fn input_of(&self, name: &str, xs: &Tensor) -> Result<Tensor> {
        let i = self.position(name)?;
        tch::no_grad(|| self.run(xs, i))
    }
}

impl Model for Pipeline {
    fn name(&self) -> &str {
        &self.name
    }

    fn predict(&self, xs: &Tensor) -> Result<Tensor> {
        tch::no_grad(|| self.run(xs, self.stages.len()))
    }
}

/// One network from input to output.
#[derive(Debug)]
pub struct EndToEnd {
    name: String,
    /// The network.
    pub stage: LearnedStage,
}

impl EndToEnd {
    /// Names a learned stage as an end-to-end model.
    pub fn new(name: &str, stage: LearnedStage) -> Self {
        EndToEnd {
            name: name.to_string(),
            stage,
        }
    }
}

impl Model for EndToEnd {
    fn name(&self) -> &str {
        &self.name
    }

    fn predict(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(self.stage.forward(xs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::{self, LinesConfig};
    use crate::sweep::{CrossoverConfig, SweepPlan, contender, run_sweep};
    use core_tensor::optim::OptimizerKind;
    use core_tensor::train::Goal;
    use pretrained_zoo::arch::MlpConfig;

    const S: i64 = 12;
    const K: usize = 2;

    fn recipe() -> TrainConfig {
        TrainConfig {
            epochs: 25,
            batch_size: 32,
            optimizer: OptimizerKind::adam(),
            lr: 3e-3,
            weight_decay: 0.0,
            schedule: Default::default(),
            grad_clip_norm: None,
            early_stopping: None,
        }
    }

    fn mlp(inputs: i64, classes: i64) -> ArchConfig {
        ArchConfig::Mlp(MlpConfig {
            inputs,
            hidden: vec![32],
            classes,
        })
    }

    fn task() -> LinesConfig {
        LinesConfig {
            k: K,
            size: S,
            margin_degrees: 10.0,
        }
    }

    /// Learned steepness of each image, then the parity rule by hand.
    fn pipeline_score(n: usize, seed: u64, test: &TensorDataset) -> Result<f64> {
        let set = lines::generate(&task(), n, 1000 + seed)?;
        let steep =
            LearnedStage::from_arch(Device::Cpu, &mlp(S * S, 2), Objective::Classification, seed)?;
        let mut p = Pipeline::new("pipeline")
            .hand("split", |x, _| Ok(x.view([-1, S * S])))
            .learned("steep", steep)
            .hand("parity", |x, logits| {
                let n = x.size()[0];
                let parity = logits
                    .argmax(1, false)
                    .view([n, K as i64])
                    .sum_dim_intlist([1].as_slice(), false, Kind::Int64)
                    .remainder(2);
                Ok(parity.one_hot(2).to_kind(Kind::Float))
            });
        // The stage's own data: single images with their own labels.
        let own = TensorDataset::new(set.images.view([-1, S * S]), set.steep.view([-1]))?;
        p.learned_mut("steep")?.fit(&own, None, &recipe(), seed)?;
        assert_eq!(
            p.input_of("steep", &test.inputs)?.size(),
            [test.len() as i64 * K as i64, S * S]
        );
        assert!(p.learned_mut("split").is_err());
        evaluate(&p, test, 256, Metric::Accuracy)
    }

    fn e2e_score(n: usize, seed: u64, test: &TensorDataset) -> Result<f64> {
        let set = lines::generate(&task(), n, 1000 + seed)?;
        let stage = LearnedStage::from_arch(
            Device::Cpu,
            &mlp(K as i64 * S * S, 2),
            Objective::Classification,
            seed,
        )?;
        let mut m = EndToEnd::new("end-to-end", stage);
        let data = TensorDataset::new(set.images, set.labels)?;
        m.stage.fit(&data, None, &recipe(), seed)?;
        evaluate(&m, test, 256, Metric::Accuracy)
    }

    #[test]
    fn a_pipeline_and_an_end_to_end_net_train_through_one_interface() {
        let t = lines::generate(&task(), 400, 7).unwrap();
        let test = TensorDataset::new(t.images, t.labels).unwrap();
        let plan = SweepPlan {
            sizes: vec![32, 256],
            seeds: vec![0, 1],
            goal: Goal::Maximize,
        };
        let mut cs = vec![
            contender("pipeline", |n, s| pipeline_score(n, s, &test)),
            contender("end-to-end", |n, s| e2e_score(n, s, &test)),
        ];
        let result = run_sweep(&mut cs, &plan).unwrap();
        let pipe = result.learning_curve("pipeline").unwrap();
        let e2e = result.learning_curve("end-to-end").unwrap();
        // The decomposed learner sees k labelled images per example and a rule that is right.
        assert!(pipe[1].mean > 0.85, "pipeline {pipe:?}");
        assert!(e2e.iter().all(|s| (0.0..=1.0).contains(&s.mean)));
        let c = result
            .crossover(
                "end-to-end",
                "pipeline",
                &CrossoverConfig {
                    bootstrap: 100,
                    seed: 0,
                },
            )
            .unwrap();
        assert_eq!(c.advantage.len(), 2);
    }

    #[test]
    fn regression_stages_fit_and_score_by_mae() {
        // y = 2 x0 − x1 from 2 inputs, learned by a linear "MLP".
        let x = core_tensor::data::uniform(512, 3, Device::Cpu).view([256, 2]);
        let y = x.select(1, 0) * 2.0 - x.select(1, 1);
        let data = TensorDataset::new(x, y).unwrap();
        let arch = ArchConfig::Mlp(MlpConfig {
            inputs: 2,
            hidden: vec![],
            classes: 1,
        });
        let mut m = EndToEnd::new(
            "linear",
            LearnedStage::from_arch(Device::Cpu, &arch, Objective::Regression, 0).unwrap(),
        );
        let before = evaluate(&m, &data, 64, Metric::Mae).unwrap();
        let mut cfg = recipe();
        cfg.lr = 3e-2;
        cfg.early_stopping = Some(core_tensor::train::EarlyStopping {
            patience: 5,
            min_delta: 0.0,
            goal: Goal::Minimize,
            restore_best: true,
            min_epochs: 0,
            break_ties: false,
        });
        let report = m.stage.fit(&data, Some(&data), &cfg, 1).unwrap();
        let after = evaluate(&m, &data, 64, Metric::Mae).unwrap();
        assert!(after < 0.05 && after < before, "MAE {before} → {after}");
        assert!((report.best_validation.unwrap() - after).abs() < 1e-5);
    }
}
