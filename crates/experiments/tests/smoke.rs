//! The smoke job end to end: one short epoch on real MNIST, JSON written atomically.

use std::process::Command;

#[test]
fn smoke_job_trains_and_writes_its_json() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_smoke"))
        .args(["--epochs", "1", "--seed", "3", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "smoke exited with {status} (is MNIST fetched? `cargo xtask fetch mnist`)"
    );
    let text = std::fs::read_to_string(out.path().join("smoke-mnist.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let acc = json["test_accuracy"].as_f64().unwrap();
    // One epoch of LeNet with Adam lands near 98%; far below means training is broken.
    assert!(acc > 0.96, "test accuracy {acc} after one epoch");
    assert_eq!(json["history"].as_array().unwrap().len(), 1);
    assert_eq!(json["train_examples"], 55_000);
    assert!(json["train_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn smoke_job_refuses_cuda_without_a_gpu() {
    if tch::Cuda::is_available() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_smoke"))
        .args(["--device", "cuda", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no CUDA GPU"), "{stderr}");
    assert!(!out.path().join("smoke-mnist.json").exists());
}
