//! A multi-task network whose trunk is the user's own tch modules (wrapped as a `Staged`) and
//! whose losses are combined by a balancer the user wrote.

use core_tensor::Result;
use core_tensor::data::TensorDataset;
use core_tensor::train::TrainConfig;
use multitask::balance::{Balanced, Balancer};
use multitask::net::{MultiTaskNet, SharedParams};
use multitask::task::TaskSpec;
use multitask::train::{MultiTaskTrainer, evaluate};
use pretrained_zoo::arch::{Classifier, Staged};
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

/// The user's trunk: two blocks and a (frozen, unused) head.
fn trunk(p: &nn::Path) -> Result<Box<dyn Classifier>> {
    let stem = nn::seq_t()
        .add(nn::linear(p / "stem", 6, 24, Default::default()))
        .add_fn(|x| x.relu());
    let body = nn::seq_t()
        .add(nn::linear(p / "body", 24, 16, Default::default()))
        .add_fn(|x| x.relu());
    Ok(Box::new(
        Staged::builder()
            .stage("stem", stem)
            .stage("body", body)
            .head(p / "fc", 16, 1)?,
    ))
}

/// A balancer of one's own: only the first task's loss counts.
struct FirstTaskOnly {
    steps: u64,
}

impl Balancer for FirstTaskOnly {
    fn name(&self) -> &'static str {
        "first-task-only"
    }

    fn backward(
        &mut self,
        losses: &[Tensor],
        _counts: &Tensor,
        _params: &SharedParams,
        representation: &Tensor,
        _step: u64,
    ) -> Result<Balanced> {
        self.steps += 1;
        // The trunk's output on the batch, with its graph.
        assert_eq!(representation.size()[1], 16);
        assert!(representation.requires_grad());
        losses[0].f_backward()?;
        let mut weights = vec![0.0f32; losses.len()];
        weights[0] = 1.0;
        Ok(Balanced {
            loss: losses[0].detach(),
            weights: Tensor::from_slice(&weights),
        })
    }
}

fn problem(n: i64, seed: i64) -> TensorDataset {
    tch::manual_seed(seed);
    let x = Tensor::randn([n, 6], (Kind::Float, Device::Cpu));
    let sign = x.select(1, 0).gt(0.0).to_kind(Kind::Float);
    let value = x.select(1, 1) * 2.0;
    TensorDataset::new(x, Tensor::stack(&[sign, value], 1)).unwrap()
}

#[test]
fn a_trunk_and_a_balancer_of_ones_own_train_together() {
    let vs = VarStore::new(Device::Cpu);
    let tasks = [TaskSpec::binary("sign"), TaskSpec::regression("value")];
    let net = MultiTaskNet::new(&vs, &trunk, &tasks).unwrap();
    // The trunk's own head is frozen; the task heads and the stages are trained.
    let vars = vs.variables();
    assert!(!vars["fc.weight"].requires_grad());
    assert!(vars["stem.weight"].requires_grad());
    let params = net.params(&vs);
    assert_eq!(params.shared.len(), 4); // stem and body, weight and bias
    assert_eq!(params.heads.len(), 2);
    let value_head = vars["task_heads.value.weight"].copy();
    let stem = vars["stem.weight"].copy();

    let data = problem(256, 1);
    let cfg = TrainConfig {
        epochs: 15,
        lr: 1e-2,
        early_stopping: None,
        ..Default::default()
    };
    let mut trainer = MultiTaskTrainer::with_balancer(
        &vs,
        &net,
        Box::new(FirstTaskOnly { steps: 0 }),
        None,
        cfg,
        3,
    )
    .unwrap();
    let report = trainer.fit(&data, None).unwrap();
    assert_eq!(report.epochs.len(), 15);
    // Only the first task's loss reached the gradients: its head and the trunk moved, the
    // second task's head did not.
    let vars = vs.variables();
    assert!(vars["task_heads.value.weight"].equal(&value_head));
    assert!(!vars["stem.weight"].equal(&stem));
    let scores = evaluate(&net, &problem(400, 2), 128, None).unwrap();
    let accuracy = scores[0].primary_value().unwrap();
    assert!(accuracy > 0.85, "sign accuracy {accuracy}");
}

#[test]
fn a_trunk_whose_stages_miss_a_variable_is_refused() {
    let leaky = |p: &nn::Path| -> Result<Box<dyn Classifier>> {
        let stem = nn::seq_t().add(nn::linear(p / "stem", 6, 8, Default::default()));
        // `extra` is created but belongs to no stage.
        let _extra = nn::linear(p / "extra", 8, 8, Default::default());
        Ok(Box::new(Staged::builder().stage("stem", stem).head(
            p / "fc",
            8,
            1,
        )?))
    };
    let vs = VarStore::new(Device::Cpu);
    let err = MultiTaskNet::new(&vs, &leaky, &[TaskSpec::binary("a")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("extra.weight") && err.contains("trunk"),
        "{err}"
    );
}
