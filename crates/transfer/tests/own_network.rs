//! Every strategy on a network that is not in the zoo: the user's own tch modules wrapped as
//! stages with `Staged`, named as torchvision names a ResNet (a stem of `conv1` + `bn1` at the
//! root, a head `fc`). Checks what each strategy must leave unchanged, and that a saved
//! network of one's own loads back with the same predictions.

use std::collections::HashMap;

use core_tensor::data::TensorDataset;
use pretrained_zoo::arch::{Classifier, Staged};
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};
use transfer::finetune::FineTune;
use transfer::strategy::{Adapted, SourceModel, Strategy, adapt, features};

/// The user's network: stem (`conv1`, `bn1`), `block` (conv + batch norm), head `fc`.
fn my_net(p: &nn::Path) -> core_tensor::Result<Box<dyn Classifier>> {
    let conv = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let stem = nn::seq_t()
        .add(nn::conv2d(p / "conv1", 1, 6, 3, conv))
        .add(nn::batch_norm2d(p / "bn1", 6, Default::default()))
        .add_fn(|x| x.relu().max_pool2d_default(2));
    let block = nn::seq_t()
        .add(nn::conv2d(p / "block" / "conv", 6, 8, 3, conv))
        .add(nn::batch_norm2d(p / "block" / "bn", 8, Default::default()))
        .add_fn(|x| x.relu().adaptive_avg_pool2d([2, 2]));
    Ok(Box::new(
        Staged::builder()
            .stage_with("stem", &["conv1", "bn1"], stem)
            .stage("block", block)
            .head(p / "fc", 32, 4)?,
    ))
}

/// 8x8 images whose class (of `classes`) is the quadrant holding a bright square.
fn data(n: i64, classes: i64, seed: i64) -> TensorDataset {
    tch::manual_seed(seed);
    let y = Tensor::randint(classes, [n], (Kind::Int64, Device::Cpu));
    let x = Tensor::randn([n, 1, 8, 8], (Kind::Float, Device::Cpu)) * 0.3;
    for i in 0..n {
        let q = y.int64_value(&[i]);
        let (r, c) = ((q / 2) * 4, (q % 2) * 4);
        let _ = x.get(i).narrow(1, r, 4).narrow(2, c, 4).g_add_scalar_(1.5);
    }
    TensorDataset::new(x, y).unwrap()
}

/// A source: `my_net` trained briefly on a four-class task.
fn source() -> SourceModel {
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    my_net(&vs.root()).unwrap();
    let untrained = SourceModel::from_store("untrained", my_net, &vs);
    let pre = FineTune::new(&untrained)
        .strategy(Strategy::Scratch)
        .min_steps(60)
        .fit(&data(64, 4, 2), &data(32, 4, 3))
        .unwrap();
    assert!(
        pre.accuracy(&data(200, 4, 4), 64).unwrap() > 0.9,
        "the source did not learn"
    );
    SourceModel::from_adapted("quadrants-4", &pre)
}

fn weights(a: &Adapted) -> HashMap<String, Tensor> {
    a.vs.variables()
}

/// Names (sorted) of the variables of `a` that equal the source's.
fn unchanged(a: &Adapted, source: &SourceModel) -> Vec<String> {
    let mut same: Vec<String> = weights(a)
        .into_iter()
        .filter(|(k, v)| {
            source
                .weights
                .get(k)
                .is_some_and(|w| w.size() == v.size() && w.equal(v))
        })
        .map(|(k, _)| k)
        .collect();
    same.sort();
    same
}

/// `names` as sorted strings.
fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    v.sort();
    v
}

fn stem_vars() -> Vec<String> {
    sorted(&[
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.weight",
        "conv1.bias",
        "conv1.weight",
    ])
}

fn block_vars() -> Vec<String> {
    sorted(&[
        "block.bn.bias",
        "block.bn.running_mean",
        "block.bn.running_var",
        "block.bn.weight",
        "block.conv.bias",
        "block.conv.weight",
    ])
}

#[test]
fn every_strategy_runs_on_a_network_of_ones_own() {
    let src = source();
    // A two-class target: top half vs bottom half.
    let target = |n, seed| {
        let d = data(n, 4, seed);
        TensorDataset::new(d.inputs, d.targets.divide_scalar_mode(2, "floor")).unwrap()
    };
    let (train, val) = (target(24, 5), target(24, 6));
    let run = |s: Strategy| {
        FineTune::new(&src)
            .strategy(s)
            .min_steps(20)
            .fit(&train, &val)
            .unwrap()
    };
    let backbone: Vec<String> = {
        let mut v = stem_vars();
        v.extend(block_vars());
        v.sort();
        v
    };

    // Linear probe: the whole backbone, batch-norm statistics included, is the source's.
    let lp = run(Strategy::LinearProbe);
    assert_eq!(unchanged(&lp, &src), backbone);
    assert_eq!(lp.net.head().ws.size(), [2, 32]);
    // The probe's head is what a logistic regression on the same features predicts well.
    let acc = lp.accuracy(&val, 64).unwrap();
    assert!(acc > 0.7, "{acc}");
    let f = features(&*lp.net, &val.inputs, 16).unwrap();
    assert_eq!(f.size(), [24, 32]);

    // Fine-tune top 1 (the head alone, no feature cache): the backbone stays the source's.
    let top = run(Strategy::FineTuneTop { stages: 1 });
    assert_eq!(unchanged(&top, &src), backbone);

    // Fine-tune, L2-SP and LP-FT train every layer: none of the stem's weights stays.
    for s in [
        Strategy::FineTune,
        Strategy::L2Sp {
            alpha: 0.01,
            beta: 0.01,
        },
        Strategy::LpFt {
            probe_epochs: 5,
            lr_factor: 0.5,
        },
    ] {
        let a = run(s.clone());
        let same = unchanged(&a, &src);
        assert!(
            !same.contains(&"conv1.weight".to_string())
                && !same.contains(&"block.conv.weight".to_string()),
            "{}: {same:?}",
            s.name()
        );
        if matches!(s, Strategy::LpFt { .. }) {
            assert_eq!(a.reports.len(), 2);
        }
    }

    // Layer transfer of the stem, frozen (AnB): the stem is the source's, statistics too; the
    // block is freshly initialised, so nothing of it equals the source's.
    let anb = run(Strategy::LayerTransfer {
        stages: 1,
        frozen: true,
    });
    let same = unchanged(&anb, &src);
    for v in stem_vars() {
        assert!(same.contains(&v), "{v} changed under AnB: {same:?}");
    }
    assert!(!same.contains(&"block.conv.weight".to_string()));
    // Trained (AnB+): the stem's weights move.
    let anb_plus = run(Strategy::LayerTransfer {
        stages: 1,
        frozen: false,
    });
    assert!(!unchanged(&anb_plus, &src).contains(&"conv1.weight".to_string()));

    // Saved and loaded back by the user's own architecture: the same predictions.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.safetensors");
    anb.save(&path).unwrap();
    let back = Adapted::load_with(&path, Device::Cpu, my_net).unwrap();
    assert!(
        back.predict(&val.inputs, 7)
            .unwrap()
            .equal(&anb.predict(&val.inputs, 7).unwrap())
    );
    // Without the architecture the file cannot be rebuilt, and the error says what to call.
    let err = Adapted::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("load_with"), "{err}");
}

#[test]
fn a_network_whose_stages_miss_a_module_is_refused_by_name() {
    // `bn1` is created but listed in no stage.
    let forgetful = |p: &nn::Path| -> core_tensor::Result<Box<dyn Classifier>> {
        let stem = nn::seq_t()
            .add(nn::conv2d(p / "conv1", 1, 4, 3, Default::default()))
            .add(nn::batch_norm2d(p / "bn1", 4, Default::default()))
            .add_fn(|x| x.adaptive_avg_pool2d([1, 1]));
        Ok(Box::new(
            Staged::builder()
                .stage_with("stem", &["conv1"], stem)
                .head(p / "fc", 4, 2)?,
        ))
    };
    let vs = VarStore::new(Device::Cpu);
    forgetful(&vs.root()).unwrap();
    let src = SourceModel::from_store("forgetful", forgetful, &vs);
    let d = data(8, 2, 0);
    let err = adapt(&Strategy::FineTune, &src, 2, &d, &d, &Default::default(), 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bn1.running_mean") && err.contains("forgetful"),
        "{err}"
    );
}
