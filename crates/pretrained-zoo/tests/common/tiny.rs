//! A tiny zoo registry for the registry tests: an MLP on 20 MNIST digits per class.

use pretrained_zoo::registry::Registry;

/// The registry text.
pub const TINY: &str = r#"
[models.tiny-mlp]
description = "a small MLP on 20 MNIST digits per class, for tests"
model = { arch = "mlp", inputs = 784, hidden = [32], classes = 10 }

[models.tiny-mlp.recipe]
data = { dataset = "mnist", mean = 0.1307, std = 0.3081 }
per_class = 20
validation = 40
seed = 3
train = { epochs = 3, batch_size = 16, lr = 1e-3, optimizer = { kind = "adam" } }
"#;

/// Writes [`TINY`] to `dir/zoo.toml` and loads it.
pub fn tiny_registry(dir: &std::path::Path) -> (Registry, std::path::PathBuf) {
    let path = dir.join("zoo.toml");
    std::fs::write(&path, TINY).unwrap();
    (Registry::load(&path).unwrap(), path)
}
