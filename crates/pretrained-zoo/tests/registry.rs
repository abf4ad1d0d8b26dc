//! The zoo registry: a tiny recipe built end to end, checksums verified, corruption refused.

#[path = "common/tiny.rs"]
mod tiny;

use pretrained_zoo::registry::{self, Registry};
use tch::Device;
use tiny::{TINY, tiny_registry};

#[test]
fn corrupted_or_missing_weights_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = tiny_registry(dir.path());
    let zoo = dir.path().join("zoo");
    let err = reg
        .load_model(&zoo, "tiny-mlp", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not built") && err.contains("cargo xtask zoo build tiny-mlp"),
        "{err}"
    );

    let entry = reg.entry("tiny-mlp").unwrap();
    let cache = core_tensor::fixtures::cache_dir();
    registry::build("tiny-mlp", entry, &cache, &zoo, Device::Cpu, None).unwrap();
    let weights = Registry::weights_path(&zoo, "tiny-mlp");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&weights, &bytes).unwrap();
    let err = reg
        .load_model(&zoo, "tiny-mlp", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains("tiny-mlp.safetensors"),
        "{err}"
    );
    assert!(err.contains("cargo xtask zoo build tiny-mlp"), "{err}");
}

#[test]
fn registered_checksums_are_enforced_and_unknown_names_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zoo.toml");
    let registered = format!(
        "{TINY}\n[models.tiny-mlp.registered]\ntest_accuracy = 0.5\nsha256 = \"{}\"\n",
        "0".repeat(64)
    );
    std::fs::write(&path, registered).unwrap();
    let reg = Registry::load(&path).unwrap();
    let zoo = dir.path().join("zoo");
    let entry = reg.entry("tiny-mlp").unwrap();
    let cache = core_tensor::fixtures::cache_dir();
    let rec = registry::build("tiny-mlp", entry, &cache, &zoo, Device::Cpu, None).unwrap();
    // The build differs from the (fake) registered bytes: it says so, and loading follows its
    // own record rather than pretending the bytes are the registered ones.
    assert_eq!(rec.matches_registered, Some(false));
    assert_eq!(reg.expected_sha256(&zoo, "tiny-mlp").unwrap(), rec.sha256);
    reg.load_model(&zoo, "tiny-mlp", Device::Cpu).unwrap();

    let err = reg.entry("nope").unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("tiny-mlp"), "{err}");
}

#[test]
fn bad_registry_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zoo.toml");
    std::fs::write(&path, TINY.replace("per_class = 20", "per_klass = 20")).unwrap();
    let err = Registry::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("per_klass") && err.contains("zoo.toml"),
        "{err}"
    );
    std::fs::write(&path, TINY.replace("hidden = [32]", "hidden = [0]")).unwrap();
    let err = Registry::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("models.tiny-mlp") && err.contains("hidden[0]"),
        "{err}"
    );
}

#[test]
fn the_project_registry_is_valid() {
    let reg = Registry::builtin().unwrap();
    for name in ["mnist-lenet", "fashion-lenet", "fsdd-m5"] {
        reg.entry(name).unwrap();
    }
}

#[test]
fn a_truncated_or_missing_build_record_is_blamed_on_the_record_not_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = dir.path().join("zoo");
    let cache = core_tensor::fixtures::cache_dir();
    // Unregistered (the record holds the checksum) and registered (the record may override it).
    let (reg, _) = tiny_registry(dir.path());
    let path = dir.path().join("registered.toml");
    std::fs::write(
        &path,
        format!(
            "{TINY}\n[models.tiny-mlp.registered]\ntest_accuracy = 0.5\nsha256 = \"{}\"\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let registered = Registry::load(&path).unwrap();
    let entry = reg.entry("tiny-mlp").unwrap();
    registry::build("tiny-mlp", entry, &cache, &zoo, Device::Cpu, None).unwrap();
    let record = Registry::record_path(&zoo, "tiny-mlp");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, &text[..text.len() / 2]).unwrap();
    for r in [&reg, &registered] {
        let err = r
            .load_model(&zoo, "tiny-mlp", Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tiny-mlp.json") && err.contains("truncated or corrupted"),
            "{err}"
        );
        assert!(!err.contains("checksum mismatch"), "{err}");
        assert!(err.contains("cargo xtask zoo build tiny-mlp"), "{err}");
    }
    std::fs::remove_file(&record).unwrap();
    let err = reg
        .load_model(&zoo, "tiny-mlp", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no build record") && !err.contains("checksum mismatch"),
        "{err}"
    );
}
