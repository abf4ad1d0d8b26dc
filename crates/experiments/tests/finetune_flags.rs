//! `transfer finetune` refuses bad flags in its own words before loading or training anything
//! (issue "Your own data in a dozen lines of Rust", defects 3, 4, 8, 9 and 11): a zero batch
//! size (a division by zero before), an output folder under a file (found only after
//! training before), `--max-epochs` below the default least epochs (ignored before), too many
//! examples per class (a message without the flag before); and `--shape C,H,W` as its help
//! says (clap wanted three separate values before); numeric labels that skip classes (defect
//! 5: {0, 7} was taken as eight classes); a path as --model (defect 12: advice to import under
//! a name import refuses); float images in 0-255 in an NPZ (defect 6: used unscaled) scaled
//! with a warning, other ranges refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A CSV of 28x28 images in [0, 1], `per_class` rows of each of two classes (a bright top half
/// or a bright bottom half), with a `label` column.
fn write_csv(path: &Path, per_class: usize) {
    write_csv_labels(path, per_class, [0, 1]);
}

fn write_csv_labels(path: &Path, per_class: usize, labels: [usize; 2]) {
    let mut text = String::from("label");
    for i in 0..784 {
        text.push_str(&format!(",p{i}"));
    }
    text.push('\n');
    for r in 0..2 * per_class {
        let class = r % 2;
        text.push_str(&labels[class].to_string());
        for i in 0..784 {
            let top = i < 392;
            let v = if top == (class == 0) { 0.8 } else { 0.1 } + 0.01 * ((r * 7 + i) % 5) as f64;
            text.push_str(&format!(",{v:.3}"));
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    zoo: PathBuf,
    data: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let zoo = root.join("zoo");
    let reg = pretrained_zoo::registry::Registry::builtin().unwrap();
    pretrained_zoo::registry::build(
        "mnist-lenet-tiny",
        reg.entry("mnist-lenet-tiny").unwrap(),
        &experiments::paths::cache_dir(),
        &zoo,
        tch::Device::Cpu,
        None,
    )
    .unwrap();
    let data = root.join("data.csv");
    write_csv(&data, 30);
    Setup {
        _dir: dir,
        root,
        zoo,
        data,
    }
}

/// `transfer finetune` on `data` with the tiny zoo, one thread, and `args`.
fn transfer(s: &Setup, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_transfer"))
        .arg("finetune")
        .arg("--data")
        .arg(data)
        .arg("--zoo-dir")
        .arg(&s.zoo)
        .args(args)
        .env("TRANSFERLAB_THREADS", "1")
        .output()
        .unwrap()
}

/// `transfer finetune` of the tiny LeNet on the test's CSV into `out`, with `extra`.
fn finetune(s: &Setup, out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().unwrap();
    let mut args = vec![
        "--model",
        "mnist-lenet-tiny",
        "--shape",
        "1,28,28",
        "--out",
        out,
    ];
    args.extend(extra);
    transfer(s, &s.data, &args)
}

fn refused(o: &Output, want: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "succeeded: {stderr}");
    assert!(stderr.contains(want), "expected {want:?} in:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("fine-tuning"),
        "a panic, or training started:\n{stderr}"
    );
}

#[test]
fn bad_flags_are_refused_before_training_and_max_epochs_is_kept() {
    let s = setup();
    let out = s.root.join("out");
    refused(
        &finetune(&s, &out, &["--batch-size", "0"]),
        "--batch-size 0",
    );
    refused(
        &finetune(&s, &out, &["--epochs", "5", "--max-epochs", "3"]),
        "--epochs 5 is more than --max-epochs 3",
    );
    refused(
        &finetune(&s, &out, &["--max-epochs", "0"]),
        "--max-epochs 0",
    );
    // An output folder under a file: refused before training, nothing written.
    let file = s.root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    refused(
        &finetune(&s, &file.join("out"), &[]),
        "is a file, not a folder",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    // More examples per class than there are: the flag is named.
    let many = finetune(&s, &out, &["--per-class", "100000"]);
    let stderr = String::from_utf8_lossy(&many.stderr);
    assert!(!many.status.success());
    assert!(
        stderr.contains("--per-class 100000") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!out.join("result.json").exists());
    // A path as --model: no advice to import under that name.
    let path_model = transfer(&s, &s.data, &["--model", "../../etc/passwd"]);
    refused(&path_model, "not a model name");
    assert!(!String::from_utf8_lossy(&path_model.stderr).contains("--name ../../etc/passwd"));
    // Labels {0, 7}: two classes numbered with a gap, refused with the labels found.
    let gap = s.root.join("gap.csv");
    write_csv_labels(&gap, 30, [0, 7]);
    let out_s = out.to_str().unwrap();
    let o = transfer(
        &s,
        &gap,
        &[
            "--model",
            "mnist-lenet-tiny",
            "--shape",
            "1,28,28",
            "--out",
            out_s,
        ],
    );
    refused(&o, "the labels are {0, 7}, so classes [1, 2, 3, 4, 5, 6]");

    // --max-epochs below the default least epochs is an upper bound that holds.
    let ok = finetune(
        &s,
        &out,
        &["--per-class", "10", "--max-epochs", "3", "--min-steps", "5"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let epochs = result["adapt"]["train"]["epochs"].as_u64().unwrap();
    assert!((1..=3).contains(&epochs), "{epochs} epochs");
    let trained: usize = result["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["epochs"].as_array().unwrap().len())
        .sum();
    assert!((1..=3 * 2).contains(&trained), "{trained} epochs trained");
}

/// The project's Python (`cargo xtask setup`), which writes the test's NPZ files.
fn python() -> PathBuf {
    std::env::var_os("TRANSFERLAB_PYTHON_REF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/torch-venv/bin/python")
        })
}

#[test]
fn float_images_in_0_255_are_scaled_with_a_warning_and_other_ranges_refused() {
    let s = setup();
    let script = r#"
import sys, numpy as np
rng = np.random.default_rng(0)
def split(n, scale, shift):
    y = np.arange(n) % 2
    x = rng.random((n, 28, 28)) * 0.2
    x[y == 0, :14] += 0.7
    x[y == 1, 14:] += 0.7
    return (x * scale + shift).astype(np.float64), y.astype(np.int64)
for name, scale, shift in [("pixels", 255 / 0.9, 0.0), ("standardised", 4.0, -2.0)]:
    tx, ty = split(60, scale, shift)
    sx, sy = split(20, scale, shift)
    np.savez(f"{sys.argv[1]}/{name}.npz", train_images=tx, train_labels=ty,
             test_images=sx, test_labels=sy)
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .arg(&s.root)
        .output()
        .expect("the project's Python (cargo xtask setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |name: &str| {
        let out = s.root.join(name);
        let args = [
            "--model",
            "mnist-lenet-tiny",
            "--per-class",
            "10",
            "--min-steps",
            "5",
            "--max-epochs",
            "2",
            "--strategy",
            "fine_tune",
            "--out",
            out.to_str().unwrap(),
        ];
        transfer(&s, &s.root.join(format!("{name}.npz")), &args)
    };
    let pixels = run("pixels");
    let stderr = String::from_utf8_lossy(&pixels.stderr);
    assert!(pixels.status.success(), "{stderr}");
    assert!(stderr.contains("scaled to [0, 1]"), "{stderr}");
    refused(
        &run("standardised"),
        "images must be uint8, floats in [0, 1]",
    );
}
