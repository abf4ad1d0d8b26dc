//! A zoo recipe builds deterministically and its weights load verified.
//!
//! Alone in its test binary: libtorch's random generator is global to the process, and other
//! tests running in parallel threads would draw from it between seeding and initialisation.

#[path = "common/tiny.rs"]
mod tiny;

use pretrained_zoo::registry;
use tch::Device;
use tiny::tiny_registry;

#[test]
fn a_recipe_builds_deterministically_and_loads_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = tiny_registry(dir.path());
    let entry = reg.entry("tiny-mlp").unwrap();
    let cache = core_tensor::fixtures::cache_dir();
    let zoo_a = dir.path().join("a");
    let zoo_b = dir.path().join("b");
    let a = registry::build("tiny-mlp", entry, &cache, &zoo_a, Device::Cpu, None).unwrap();
    let b = registry::build("tiny-mlp", entry, &cache, &zoo_b, Device::Cpu, None).unwrap();
    assert_eq!(a.sha256, b.sha256, "one seed, one result");
    assert_eq!(a.train_examples, 160);
    assert_eq!(a.validation_examples, 40);
    assert!(
        a.test_accuracy > 0.4,
        "200 examples should beat chance: {}",
        a.test_accuracy
    );
    assert_eq!(a.matches_registered, None);

    let loaded = reg.load_model(&zoo_a, "tiny-mlp", Device::Cpu).unwrap();
    let test =
        core_tensor::datasets::Mnist::load(&cache, core_tensor::datasets::Split::Test).unwrap();
    let x = ((test.images.narrow(0, 0, 500).to_kind(tch::Kind::Float) / 255.0) - 0.1307) / 0.3081;
    let data = core_tensor::data::TensorDataset::new(x, test.labels.narrow(0, 0, 500)).unwrap();
    let acc = core_tensor::train::accuracy(&*loaded.net, &data, 128).unwrap();
    assert!(acc > 0.4, "the loaded weights are the trained ones: {acc}");
}
