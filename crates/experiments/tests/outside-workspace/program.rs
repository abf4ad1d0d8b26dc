//! A program of a user's own workspace (built by `tests/outside_workspace.rs` in a temporary
//! folder, not as part of transferlab): its own data, its own source network pre-trained on part
//! of that data, fine-tuned on the rest by the short path, saved and loaded back.

use core_tensor::data::TensorDataset;
use pretrained_zoo::arch::{ArchConfig, MlpConfig};
use tch::{Device, Kind, Tensor, nn::VarStore};
use transfer::finetune::FineTune;
use transfer::strategy::{Adapted, SourceModel, Strategy};

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
    let arch = ArchConfig::Mlp(MlpConfig { inputs: 8, hidden: vec![32], classes: 2 });
    let vs = VarStore::new(Device::Cpu);
    arch.build(&vs.root())?;
    let untrained = SourceModel::from_store("untrained", arch, &vs);
    let pre = FineTune::new(&untrained)
        .strategy(Strategy::Scratch)
        .fit(&part(&x, &y, [0, 1], 0, 160), &part(&x, &y, [0, 1], 160, 40))?;
    let source = SourceModel::from_store("blobs-0-1", pre.arch.clone(), &pre.vs);
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
    let back = Adapted::load(&path, Device::Cpu)?;
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
