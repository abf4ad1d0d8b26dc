//! A program of a user's own workspace (built by `tests/outside_workspace.rs` in a temporary
//! folder, not as part of transferlab): its own data, its own source network pre-trained on part
//! of that data, fine-tuned on the rest by the short path, saved and loaded back. The network
//! is the user's own tch modules, wrapped as stages with `Staged`: nothing from the zoo.

use core_tensor::data::TensorDataset;
use pretrained_zoo::arch::{Classifier, Staged};
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};
use transfer::finetune::FineTune;
use transfer::strategy::{Adapted, SourceModel, Strategy};

/// The user's network: two hidden blocks and a linear head `fc`.
fn my_net(p: &nn::Path) -> core_tensor::Result<Box<dyn Classifier>> {
    let block1 = nn::seq_t()
        .add(nn::linear(p / "block1" / "lin", 8, 32, Default::default()))
        .add_fn(|x| x.relu());
    let block2 = nn::seq_t()
        .add(nn::linear(p / "block2" / "lin", 32, 16, Default::default()))
        .add_fn(|x| x.relu());
    let net = Staged::builder()
        .stage("block1", block1)
        .stage("block2", block2)
        .head(p / "fc", 16, 2)?;
    Ok(Box::new(net))
}

/// Four Gaussian blobs in 8 dimensions, `n` points each: classes 0..4.
fn blobs(n: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let centres = Tensor::randn([4, 8], (Kind::Float, Device::Cpu)) * 3.0;
    // Classes interleaved (0, 1, 2, 3, 0, 1, …), so that every slice holds each class.
    let y = Tensor::arange(4, (Kind::Int64, Device::Cpu)).repeat([n]);
    let x = centres.index_select(0, &y) + Tensor::randn([4 * n, 8], (Kind::Float, Device::Cpu));
    (x, y)
}

fn part(x: &Tensor, y: &Tensor, classes: [i64; 2], from: i64, len: i64) -> TensorDataset {
    let keep = y.eq(classes[0]).logical_or(&y.eq(classes[1])).nonzero().squeeze_dim(1);
    let keep = keep.narrow(0, from, len);
    // Relabel to 0 and 1.
    let labels = y.index_select(0, &keep).eq(classes[1]).to_kind(Kind::Int64);
    TensorDataset::new(x.index_select(0, &keep), labels).expect("same length")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (x, y) = blobs(100, 7);
    // Pre-train a source on classes 0 vs 1.
    let vs = VarStore::new(Device::Cpu);
    my_net(&vs.root())?;
    let untrained = SourceModel::from_store("untrained", my_net, &vs);
    let pre = FineTune::new(&untrained)
        .strategy(Strategy::Scratch)
        .fit(&part(&x, &y, [0, 1], 0, 160), &part(&x, &y, [0, 1], 160, 40))?;
    let source = SourceModel::from_adapted("blobs-0-1", &pre);
    // Fine-tune it on classes 2 vs 3, save, load back.
    let (train, val, test) = (
        part(&x, &y, [2, 3], 0, 20),
        part(&x, &y, [2, 3], 20, 20),
        part(&x, &y, [2, 3], 40, 160),
    );
    let adapted = FineTune::new(&source).strategy(Strategy::FineTune).seed(1).fit(&train, &val)?;
    let dir = std::env::temp_dir().join(format!("transferlab-outside-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("adapted.safetensors");
    adapted.save(&path)?;
    let back = Adapted::load_with(&path, Device::Cpu, my_net)?;
    let same = back.predict(&test.inputs, 64)?.equal(&adapted.predict(&test.inputs, 64)?);
    let accuracy = back.accuracy(&test, 64)?;
    std::fs::remove_dir_all(&dir)?;
    println!("reloaded predictions equal: {same}; test accuracy {:.1}%", 100.0 * accuracy);
    if !same {
        return Err("the reloaded model predicts differently".into());
    }
    // Well-separated blobs: anything near chance means the short path did not train.
    if accuracy < 0.8 {
        return Err(format!("test accuracy {accuracy} is near chance").into());
    }
    Ok(())
}
