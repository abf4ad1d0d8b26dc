//! The user path end to end, through the binaries: a `.pth` that torchvision's ResNet class
//! wrote (random weights) imported by `zoo import` (converted with `torch.load(weights_only=True)`,
//! keys checked, recorded with its sha256), a damaged checkpoint refused with every bad key
//! named, then `transfer finetune --data FILE.npz --model <the import>` writing its weights,
//! result files and learning curve.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use core_tensor::checkpoint;
use pretrained_zoo::registry::UserRegistry;
use tch::{Device, Kind, Tensor};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    std::env::var_os("TRANSFERLAB_PYTHON_REF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/torch-venv/bin/python"))
}

fn py(args: &[&str]) -> Output {
    let out = Command::new(python())
        .args(args)
        .current_dir(root().join("python"))
        .output()
        .expect("the project's Python (cargo xtask setup)");
    assert!(
        out.status.success(),
        "python {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn zoo(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zoo"))
        .arg("--zoo-dir")
        .arg(dir)
        .args(args)
        .env("TRANSFERLAB_PYTHON", python())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const CONFIG: &str =
    r#"{"depth": 18, "classes": 5, "in_channels": 3, "width": 8, "small_input": true}"#;

#[test]
fn a_torchvision_pth_is_imported_checked_and_fine_tuned_from_the_command_line() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let zoo_dir = dir.join("zoo");

    // torchvision's ResNet class (small-input stem, width 8), random weights, torch.save'd.
    let input = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
    let input_path = dir.join("input.safetensors");
    checkpoint::save_tensors(&[("input", input.shallow_clone())], &input_path).unwrap();
    let pth = dir.join("tiny.pth");
    let expected = dir.join("expected.safetensors");
    py(&[
        "torchvision_parity.py",
        "save-pth",
        CONFIG,
        "3",
        pth.to_str().unwrap(),
        input_path.to_str().unwrap(),
        expected.to_str().unwrap(),
    ]);

    let out = zoo(
        &zoo_dir,
        &[
            "import",
            pth.to_str().unwrap(),
            "--arch",
            "resnet18",
            "--name",
            "tiny-r18",
            "--size",
            "32",
            "--mean",
            "0.5,0.5,0.5",
            "--std",
            "0.25,0.25,0.25",
        ],
    );
    assert!(out.status.success(), "zoo import: {}", stderr(&out));
    let reg = UserRegistry::load(&zoo_dir).unwrap();
    let entry = reg.entry("tiny-r18").unwrap();
    assert_eq!(
        entry.sha256,
        core_tensor::fixtures::sha256_file(&zoo_dir.join("tiny-r18.safetensors")).unwrap()
    );
    assert_eq!(
        entry.source_sha256,
        core_tensor::fixtures::sha256_file(&pth).unwrap()
    );
    // Width, channels, stem and classes were read from the checkpoint's shapes.
    let (_, _vs, net) = reg.load_model(&zoo_dir, "tiny-r18", Device::Cpu).unwrap();
    assert_eq!(net.classes(), 5);
    let ours = tch::no_grad(|| net.forward_t(&input, false));
    let theirs = checkpoint::read_tensors(&expected)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == "output")
        .unwrap()
        .1;
    let diff = (&ours - &theirs).abs().max().double_value(&[]);
    let scale = theirs.abs().max().double_value(&[]);
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "max |diff| {diff}, scale {scale}"
    );
    // The same name again is refused without --force.
    let again = zoo(
        &zoo_dir,
        &[
            "import",
            pth.to_str().unwrap(),
            "--arch",
            "resnet18",
            "--name",
            "tiny-r18",
        ],
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));

    // A checkpoint with a missing key, an extra key and a wrong shape: each named, nothing kept.
    let bad = dir.join("bad.pth");
    py(&[
        "-c",
        &format!(
            "import torch; s = torch.load({:?}, weights_only=True); del s['layer1.0.conv1.weight']; \
             s['extra.weight'] = torch.zeros(3); s['layer2.0.bn1.weight'] = torch.ones(7); \
             torch.save(s, {:?})",
            pth.to_str().unwrap(),
            bad.to_str().unwrap()
        ),
    ]);
    let refused = zoo(
        &zoo_dir,
        &[
            "import",
            bad.to_str().unwrap(),
            "--arch",
            "resnet18",
            "--name",
            "bad-r18",
        ],
    );
    assert!(!refused.status.success());
    let msg = stderr(&refused);
    for name in [
        "layer1.0.conv1.weight",
        "extra.weight",
        "layer2.0.bn1.weight",
    ] {
        assert!(msg.contains(name), "{name} not named in: {msg}");
    }
    assert!(!zoo_dir.join("bad-r18.safetensors").exists());
    assert!(
        UserRegistry::load(&zoo_dir)
            .unwrap()
            .entry("bad-r18")
            .is_err()
    );
    // A .pth that is not a checkpoint at all is refused by the safe loader.
    let junk = dir.join("junk.pth");
    std::fs::write(&junk, b"not a pickle").unwrap();
    let junked = zoo(
        &zoo_dir,
        &[
            "import",
            junk.to_str().unwrap(),
            "--arch",
            "resnet18",
            "--name",
            "junk",
        ],
    );
    assert!(!junked.status.success());
    assert!(
        stderr(&junked).contains("weights_only"),
        "{}",
        stderr(&junked)
    );

    // Grey 28x28 "X-rays" of two classes (bright or dark centre), MedMNIST's layout.
    let npz = dir.join("xray.npz");
    py(&[
        "-c",
        &format!(
            "import numpy as np; r = np.random.default_rng(0)\n\
             def part(n):\n    y = np.arange(n) % 2\n    x = r.integers(0, 80, (n, 28, 28))\n    \
             x[:, 8:20, 8:20] += 150 * y[:, None, None]\n    return x.astype(np.uint8), y[:, None]\n\
             d = {{}}\n\
             for s, n in [('train', 40), ('val', 20), ('test', 30)]:\n    \
             d[s + '_images'], d[s + '_labels'] = part(n)\n\
             np.savez_compressed({:?}, **d)",
            npz.to_str().unwrap()
        ),
    ]);
    let out_dir = dir.join("run");
    let finetune = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_transfer"))
            .args([
                "finetune",
                "--data",
                npz.to_str().unwrap(),
                "--model",
                "tiny-r18",
            ])
            .arg("--zoo-dir")
            .arg(&zoo_dir)
            .arg("--out")
            .arg(&out_dir)
            .args(extra)
            .output()
            .unwrap()
    };
    let args = [
        "--strategy",
        "lp_ft",
        "--per-class",
        "10",
        "--min-steps",
        "20",
        "--max-epochs",
        "10",
    ];
    let run = finetune(&args);
    assert!(run.status.success(), "transfer finetune: {}", stderr(&run));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("result.json")).unwrap())
            .unwrap();
    assert_eq!(result["train_examples"], 20);
    assert_eq!(
        result["validation_examples"], 4,
        "a fifth of 10 per class, from val"
    );
    assert_eq!(result["test_examples"], 30);
    let cm: Vec<Vec<u64>> = serde_json::from_value(result["confusion_matrix"].clone()).unwrap();
    assert_eq!(cm.iter().flatten().sum::<u64>(), 30);
    let acc = result["test_accuracy"].as_f64().unwrap();
    let diagonal = (cm[0][0] + cm[1][1]) as f64 / 30.0;
    assert!((acc - diagonal).abs() < 1e-9, "{acc} vs {diagonal}");
    assert!(result["test_auc"].as_f64().is_some());
    assert_eq!(result["per_class_accuracy"].as_array().unwrap().len(), 2);
    assert_eq!(
        result["reports"].as_array().unwrap().len(),
        2,
        "LP-FT has two phases"
    );
    let svg = std::fs::read_to_string(out_dir.join("learning_curve.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("validation accuracy"));
    assert!(
        std::fs::read_to_string(out_dir.join("result.md"))
            .unwrap()
            .contains("Confusion matrix")
    );
    // The adapted weights load again (two classes now).
    let adapted =
        transfer::strategy::Adapted::load(&out_dir.join("model.safetensors"), Device::Cpu).unwrap();
    assert_eq!(adapted.net.classes(), 2);

    // Nothing is overwritten by accident; bad options are named.
    let again = finetune(&args);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let bad = finetune(&["--strategy", "finetuen", "--force"]);
    assert!(stderr(&bad).contains("finetuen"), "{}", stderr(&bad));
    let missing = Command::new(env!("CARGO_BIN_EXE_transfer"))
        .args([
            "finetune",
            "--data",
            "/nonexistent.npz",
            "--model",
            "tiny-r18",
        ])
        .arg("--zoo-dir")
        .arg(&zoo_dir)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("/nonexistent.npz"),
        "{}",
        stderr(&missing)
    );
}
