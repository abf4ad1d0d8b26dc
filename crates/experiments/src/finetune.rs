//! `transfer finetune --data … --model …`: the whole user path in one command.
//!
//! Loads the user's data through the libraries' public loaders (an image folder, an `.npz` of
//! MedMNIST-style `<split>_images`/`<split>_labels` arrays, or a CSV table), maps it onto the
//! model's input explicitly ([`InputSpec::prepare`]: channels, size, normalisation), adapts the
//! model with one strategy, and writes into the output folder:
//!
//! - `model.safetensors` and `model.json`: the adapted network (`transfer::Adapted::save`), a
//!   PyTorch `state_dict`;
//! - `result.json` and `result.md`: test accuracy (and ROC AUC for two classes), accuracy per
//!   class, the confusion matrix, the examples used, times and the training reports;
//! - `learning_curve.svg`: validation accuracy and training loss per epoch.
//!
//! Every file is written atomically; a folder that already holds a result is refused unless
//! `--force` is given, so that nothing is overwritten by accident.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use core_tensor::data::{TensorDataset, stratified_indices};
use core_tensor::device::DeviceSpec;
use core_tensor::loaders::csv::{CsvOptions, load_csv};
use core_tensor::loaders::image_folder::{ImageFolderOptions, load_image_folder};
use core_tensor::loaders::npy::Npz;
use core_tensor::loaders::stratified_split;
use pretrained_zoo::arch::ArchConfig;
use pretrained_zoo::registry::{InputSpec, Registry, UserRegistry};
use serde::Serialize;
use tch::{Device, Kind, Tensor};
use transfer::strategy::{AdaptConfig, SourceModel, Strategy, adapt};
use transferlab_report::stats::Summary;
use transferlab_report::{Plot, Point, Series};

/// The options of `transfer finetune` with `--data`.
#[derive(clap::Args, Debug, Clone)]
pub struct FinetuneArgs {
    /// The data: a folder of class subfolders of images (or with `train/` and `test/`
    /// subfolders), an .npz with `train_images`/`train_labels` (and `val_`, `test_` arrays, as
    /// MedMNIST ships them), or a .csv of numeric features and a label column.
    #[arg(long)]
    pub data: PathBuf,
    /// The source model: a zoo entry (`zoo list`) or a model imported with `cargo xtask zoo
    /// import` / `zoo fetch`.
    #[arg(long)]
    pub model: String,
    /// Weights for the model's architecture (safetensors state_dict) instead of the zoo's.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// scratch, linear_probe, fine_tune, lp_ft, l2_sp or discriminative_lr (with this
    /// project's default settings), or a TOML table such as '{ kind = "l2_sp", alpha = 0.1,
    /// beta = 0.01 }'.
    #[arg(long, default_value = "lp_ft")]
    pub strategy: String,
    /// Training images per class (default: all); validation takes a fifth as many per class
    /// (at least 1, at most 100), from the data's `val` split when it has one.
    #[arg(long)]
    pub per_class: Option<usize>,
    /// The output folder (default: finetune-<model>-<strategy>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace a result already in the output folder.
    #[arg(long)]
    pub force: bool,
    /// Seed of the subset, the new head and the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Epochs at least (more when needed for --min-steps).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Train at least this many optimizer steps (small sets have one step an epoch), within
    /// --max-epochs; early stopping's patience is at least a quarter of it.
    #[arg(long, default_value_t = 300)]
    pub min_steps: usize,
    /// Epochs at most.
    #[arg(long, default_value_t = 150)]
    pub max_epochs: usize,
    /// Learning rate (default 1e-3, Adam).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Batch size (default 32).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Fraction of each class held out for testing when the data has no test split.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// CSV: the label column, by name or 0-based index.
    #[arg(long, default_value = "label")]
    pub label: String,
    /// CSV: the shape C,H,W of one row's features as an image (default: 1 channel, square).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub shape: Option<Vec<i64>>,
    /// The folder of zoo weights (default: TRANSFERLAB_ZOO, else the workspace's .cache/zoo, as
    /// `cargo xtask zoo` uses).
    #[arg(long)]
    pub zoo_dir: Option<PathBuf>,
}

/// Labelled data as loaded, images in `[0, 1]`.
struct UserData {
    train: TensorDataset,
    val: Option<TensorDataset>,
    test: TensorDataset,
    class_names: Vec<String>,
    /// How the test part was obtained.
    test_from: String,
}

/// A source model and the input it takes.
struct Source {
    model: SourceModel,
    input: Option<InputSpec>,
    in_channels: Option<i64>,
    weights: String,
}

/// The strategy named on the command line.
pub fn parse_strategy(text: &str) -> Result<Strategy> {
    let s = match text.trim() {
        "scratch" => Strategy::Scratch,
        "linear_probe" | "probe" => Strategy::LinearProbe,
        "fine_tune" | "finetune" => Strategy::FineTune,
        "lp_ft" => Strategy::lp_ft(),
        "l2_sp" => Strategy::L2Sp {
            alpha: 0.01,
            beta: 0.01,
        },
        "discriminative_lr" => Strategy::DiscriminativeLr {
            backbone_factor: 0.1,
            layer_decay: 1.0,
        },
        t if t.starts_with('{') => {
            #[derive(serde::Deserialize)]
            struct Wrap {
                s: Strategy,
            }
            toml::from_str::<Wrap>(&format!("s = {t}"))
                .with_context(|| format!("--strategy {t}"))?
                .s
        }
        other => bail!(
            "--strategy {other:?}: choose scratch, linear_probe, fine_tune, lp_ft, l2_sp or \
             discriminative_lr, or give a TOML table such as '{{ kind = \"l2_sp\", alpha = 0.1, \
             beta = 0.01 }}'"
        ),
    };
    s.validate().with_context(|| format!("--strategy {text}"))?;
    Ok(s)
}

/// The zoo entry or imported model `name`, with `weights` instead of its own when given.
fn source(name: &str, weights: Option<&Path>, zoo: &Path) -> Result<Source> {
    let builtin = Registry::builtin()?;
    let user = UserRegistry::load(zoo)?;
    let (arch, input): (ArchConfig, Option<InputSpec>) = if let Ok(e) = builtin.entry(name) {
        (e.model.clone(), Some(e.recipe.data.input_spec()?))
    } else if let Ok(e) = user.entry(name) {
        (e.model.clone(), e.input.clone())
    } else {
        let mut known: Vec<&str> = builtin.models.keys().map(String::as_str).collect();
        known.extend(user.models.keys().map(String::as_str));
        let importable = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !importable {
            // A path, or a name import would refuse: no advice to import under it.
            bail!(
                "--model {name:?}: not a model name (known: {}); --model names a zoo entry or an \
                 imported model (letters, digits, '-', '_', '.'). For a weights file, import it \
                 first (`cargo xtask zoo import FILE --arch resnet18 --name my-model`) or give \
                 --weights FILE with its zoo entry as --model",
                known.join(", ")
            );
        }
        bail!(
            "--model {name}: no zoo entry or imported model of that name (known: {}); import \
             your own with `cargo xtask zoo import FILE --arch resnet18 --name {name}`",
            known.join(", ")
        );
    };
    let in_channels = match &arch {
        ArchConfig::TorchvisionResNet(c) => Some(c.in_channels),
        _ => Some(1),
    };
    let (model, weights_desc) = match weights {
        Some(path) => {
            let imported = pretrained_zoo::import::import_state_dict(path, &arch, Device::Cpu)
                .with_context(|| format!("--weights {} for {name}", path.display()))?;
            (
                SourceModel::from_store(name, arch, &imported.vs),
                path.display().to_string(),
            )
        }
        None if builtin.models.contains_key(name) => (
            SourceModel::from_zoo(&builtin, zoo, name)?,
            Registry::weights_path(zoo, name).display().to_string(),
        ),
        None => {
            let (_, vs, _) = user.load_model(zoo, name, Device::Cpu)?;
            (
                SourceModel::from_store(name, arch, &vs),
                Registry::weights_path(zoo, name).display().to_string(),
            )
        }
    };
    Ok(Source {
        model,
        input,
        in_channels,
        weights: weights_desc,
    })
}

fn class_count(labels: &[&Tensor]) -> Result<usize> {
    let mut max = -1i64;
    for l in labels {
        if l.numel() > 0 {
            max = max.max(l.max().int64_value(&[]));
        }
        if l.numel() > 0 && l.min().int64_value(&[]) < 0 {
            bail!("labels must be 0, 1, …; found a negative label");
        }
    }
    Ok((max + 1) as usize)
}

fn numbered(classes: usize) -> Vec<String> {
    (0..classes).map(|c| c.to_string()).collect()
}

/// A stratified `test_fraction` of `all` as test, seed 0 (the same test set for every seed).
fn hold_out(all: TensorDataset, fraction: f64) -> Result<(TensorDataset, TensorDataset)> {
    let (train, test) = stratified_split(&all.targets, fraction, 0)?;
    Ok((all.subset(&train)?, all.subset(&test)?))
}

/// Loads `args.data` by its kind; images come resized to `resize` when given (folders only).
fn load(args: &FinetuneArgs, resize: Option<[i64; 2]>) -> Result<UserData> {
    let path = &args.data;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if path.is_dir() {
        let split = path.join("train").is_dir() && path.join("test").is_dir();
        let mut options = if split {
            ImageFolderOptions::train_test()
        } else {
            ImageFolderOptions::split(args.test_fraction, 0)
        };
        if let Some([h, w]) = resize {
            options = options.resize(h as u32, w as u32);
        }
        let folder = load_image_folder(path, &options, None)?;
        return Ok(UserData {
            train: folder.train,
            val: None,
            test: folder.test,
            class_names: folder.class_names,
            test_from: if split {
                "the folder's test/".into()
            } else {
                format!("{} of each class (seed 0)", args.test_fraction)
            },
        });
    }
    if !path.exists() {
        bail!("--data {}: no such file or folder", path.display());
    }
    match ext.as_str() {
        "npz" => {
            let mut npz = Npz::open(path)?;
            let has = |npz: &Npz, s: &str| npz.names().iter().any(|n| n == &format!("{s}_images"));
            let train = npz.split("train")?;
            let val = if has(&npz, "val") {
                Some(npz.split("val")?)
            } else {
                None
            };
            let (train, test, test_from) = if has(&npz, "test") {
                (
                    train,
                    npz.split("test")?,
                    "the archive's test split".to_owned(),
                )
            } else {
                let (a, b) = hold_out(train, args.test_fraction)?;
                (
                    a,
                    b,
                    format!("{} of each class (seed 0)", args.test_fraction),
                )
            };
            let mut labels = vec![&train.targets, &test.targets];
            if let Some(v) = &val {
                labels.push(&v.targets);
            }
            let classes = class_count(&labels)?;
            // Images stored as floats must lie in [0, 1]; floats in 0-255 (uint8 pixels saved
            // as float) are scaled, with a warning; any other range is refused.
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for d in std::iter::once(&train).chain(val.as_ref()).chain([&test]) {
                if d.inputs.numel() > 0 {
                    lo = lo.min(d.inputs.min().double_value(&[]));
                    hi = hi.max(d.inputs.max().double_value(&[]));
                }
            }
            let (train, val, test) = if lo >= 0.0 && hi <= 1.0 {
                (train, val, test)
            } else if lo >= 0.0 && hi <= 255.0 {
                eprintln!(
                    "warning: {}: float images with values up to {hi}: read as pixels in 0-255 \
                     and scaled to [0, 1] (store them as uint8, or as floats in [0, 1], to \
                     silence this)",
                    path.display()
                );
                let scale = |d: TensorDataset| -> Result<TensorDataset> {
                    Ok(TensorDataset::new(d.inputs / 255.0, d.targets)?)
                };
                (scale(train)?, val.map(scale).transpose()?, scale(test)?)
            } else {
                bail!(
                    "{}: float images with values in [{lo}, {hi}]; images must be uint8, floats \
                     in [0, 1], or floats in 0-255 (scaled); rescale them",
                    path.display()
                );
            };
            Ok(UserData {
                train,
                val,
                test,
                class_names: numbered(classes),
                test_from,
            })
        }
        "csv" => {
            let column: core_tensor::loaders::csv::Column = match args.label.parse::<usize>() {
                Ok(i) => i.into(),
                Err(_) => args.label.as_str().into(),
            };
            let table = load_csv(path, &CsvOptions::label(column))?;
            let x = &table.data.inputs;
            let (n, f) = (x.size()[0], x.size()[1]);
            let shape = match &args.shape {
                Some(s) if s.len() != 3 || s.iter().any(|&d| d < 1) => bail!(
                    "--shape {}: give C,H,W, three positive sizes (e.g. 1,28,28)",
                    s.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
                ),
                Some(s) if s.iter().product::<i64>() == f => s.clone(),
                Some(s) => bail!(
                    "--shape {s:?} has {} values per row; {} has {f} features",
                    s.iter().product::<i64>(),
                    path.display()
                ),
                None => {
                    let side = (f as f64).sqrt().round() as i64;
                    if side * side != f {
                        bail!(
                            "{}: {f} features are not a square image; give --shape C,H,W",
                            path.display()
                        );
                    }
                    vec![1, side, side]
                }
            };
            // Scaled to [0, 1] by the table's smallest and largest value.
            let (lo, hi) = (x.min().double_value(&[]), x.max().double_value(&[]));
            let scaled = (x - lo) / (hi - lo).max(1e-12);
            let images = scaled.reshape([n, shape[0], shape[1], shape[2]]);
            let all = TensorDataset::new(images, table.data.targets.shallow_clone())?;
            let (train, test) = hold_out(all, args.test_fraction)?;
            Ok(UserData {
                train,
                val: None,
                test,
                class_names: table.class_names,
                test_from: format!("{} of each class (seed 0)", args.test_fraction),
            })
        }
        other => bail!(
            "--data {}: .{other} is not data this reads; give an image folder, an .npz or a .csv",
            path.display()
        ),
    }
}

/// `n` examples per class of `d` (all of a class with fewer, which the error names).
fn take(
    d: &TensorDataset,
    classes: usize,
    n: usize,
    seed: u64,
    what: &str,
) -> Result<TensorDataset> {
    let idx = stratified_indices(&d.targets, classes, n, seed)
        .with_context(|| format!("drawing {n} {what} examples per class"))?;
    Ok(d.subset(&idx)?)
}

/// The same tensors as another dataset value.
fn share(d: &TensorDataset) -> Result<TensorDataset> {
    Ok(TensorDataset::new(
        d.inputs.shallow_clone(),
        d.targets.shallow_clone(),
    )?)
}

/// Training and validation sets: `per_class` (and a fifth as many for validation) per class.
fn sample(
    data: &UserData,
    classes: usize,
    per_class: Option<usize>,
    seed: u64,
) -> Result<(TensorDataset, TensorDataset)> {
    match (per_class, &data.val) {
        (Some(n), Some(val)) => Ok((
            take(&data.train, classes, n, seed, "training")?,
            take(
                val,
                classes,
                transfer::target::validation_per_class(n),
                seed ^ 0x5A5A,
                "validation",
            )?,
        )),
        (Some(n), None) => {
            let pool = transfer::target::TargetData {
                train: share(&data.train)?,
                test: share(&data.test)?,
                classes,
            };
            Ok(transfer::target::sample(
                &pool,
                n,
                transfer::target::validation_per_class(n),
                seed,
                Device::Cpu,
            )?)
        }
        (None, Some(val)) => Ok((share(&data.train)?, share(val)?)),
        (None, None) => {
            let (train, val) = stratified_split(&data.train.targets, 0.1, seed)?;
            Ok((data.train.subset(&train)?, data.train.subset(&val)?))
        }
    }
}

/// ROC AUC of the class-1 probability of `logits` `[N, 2]` against binary `targets`
/// ([`core_tensor::metrics::roc_auc`], the project's one AUC); `None` when one class is absent
/// from `targets` (the area is then undefined).
pub fn binary_auc(logits: &Tensor, targets: &Tensor) -> core_tensor::Result<Option<f64>> {
    let positives = targets.eq(1).sum(Kind::Int64).int64_value(&[]);
    if positives == 0 || positives == targets.numel() as i64 {
        return Ok(None);
    }
    let p1 = logits.softmax(-1, Kind::Double).select(1, 1);
    core_tensor::metrics::roc_auc(&p1, targets).map(Some)
}

/// Accuracy of one class in the result.
#[derive(Debug, Serialize)]
struct ClassResult {
    class: String,
    test_examples: u64,
    accuracy: Option<f64>,
}

/// What `result.json` holds.
#[derive(Debug, Serialize)]
struct FinetuneResult {
    model: String,
    weights: String,
    data: String,
    strategy: Strategy,
    per_class: Option<usize>,
    seed: u64,
    device: String,
    class_names: Vec<String>,
    input: Option<InputSpec>,
    train_examples: usize,
    validation_examples: usize,
    test_examples: usize,
    test_from: String,
    test_accuracy: f64,
    test_auc: Option<f64>,
    per_class_accuracy: Vec<ClassResult>,
    /// Rows: true class; columns: predicted class.
    confusion_matrix: Vec<Vec<u64>>,
    seconds_loading: f64,
    seconds_training: f64,
    adapt: AdaptConfig,
    reports: Vec<core_tensor::train::FitReport>,
}

fn markdown(r: &FinetuneResult) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "# {} → {} ({})\n", r.model, r.data, r.strategy.name());
    let _ = writeln!(
        s,
        "Test accuracy **{:.2}%**{} on {} test examples ({}); trained on {} examples ({}), \
         {} for validation; seed {}, {}; {:.1} s training, {:.1} s loading.\n",
        100.0 * r.test_accuracy,
        r.test_auc
            .map(|a| format!(", ROC AUC {a:.3}"))
            .unwrap_or_default(),
        r.test_examples,
        r.test_from,
        r.train_examples,
        r.per_class
            .map_or("all".to_owned(), |n| format!("{n} per class")),
        r.validation_examples,
        r.seed,
        r.device,
        r.seconds_training,
        r.seconds_loading,
    );
    s.push_str("## Accuracy per class\n\n| class | test examples | accuracy |\n|---|---:|---:|\n");
    for c in &r.per_class_accuracy {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            c.class,
            c.test_examples,
            c.accuracy
                .map_or("–".to_owned(), |a| format!("{:.2}%", 100.0 * a))
        );
    }
    s.push_str("\n## Confusion matrix (rows: true class, columns: predicted)\n\n| |");
    for n in &r.class_names {
        let _ = write!(s, " {n} |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(r.class_names.len()));
    s.push('\n');
    for (name, row) in r.class_names.iter().zip(&r.confusion_matrix) {
        let _ = write!(s, "| **{name}** |");
        for v in row {
            let _ = write!(s, " {v} |");
        }
        s.push('\n');
    }
    s.push_str("\n![learning curve](learning_curve.svg)\n");
    s
}

fn point(x: f64, y: f64) -> Point {
    Point {
        x,
        y: Summary {
            n: 1,
            mean: y,
            std: None,
            ci95: None,
            range: None,
        },
    }
}

/// Validation accuracy and training loss per epoch, the phases (LP-FT's probe, then its
/// fine-tuning) one after the other.
fn learning_curve(r: &FinetuneResult) -> Plot {
    let mut series = Vec::new();
    let mut offset = 0usize;
    for (i, rep) in r.reports.iter().enumerate() {
        let phase = if r.reports.len() > 1 {
            format!(" (phase {})", i + 1)
        } else {
            String::new()
        };
        let val: Vec<Point> = rep
            .epochs
            .iter()
            .filter_map(|e| e.validation.map(|v| point((offset + e.epoch) as f64, v)))
            .collect();
        let loss: Vec<Point> = rep
            .epochs
            .iter()
            .filter(|e| e.train_loss.is_finite())
            .map(|e| point((offset + e.epoch) as f64, e.train_loss.min(10.0) / 10.0))
            .collect();
        if !val.is_empty() {
            series.push(Series {
                name: format!("validation accuracy{phase}"),
                points: val,
            });
        }
        if !loss.is_empty() {
            series.push(Series {
                name: format!("training loss / 10{phase}"),
                points: loss,
            });
        }
        offset += rep.epochs.len();
    }
    Plot {
        id: "learning_curve".into(),
        title: format!("{} → {}: {}", r.model, r.data, r.strategy.name()),
        x_label: "epoch".into(),
        y_label: "validation accuracy; training loss / 10".into(),
        log_x: false,
        y_scale: 1.0,
        zero_line: false,
        series,
        reference: None,
    }
}

/// The adaptation settings the flags give, checked before anything is loaded: `--batch-size`,
/// `--epochs`, `--lr` and `--max-epochs` each named when wrong; `--max-epochs` below the default
/// least epochs lowers them (an upper bound the user set is kept).
fn training_settings(args: &FinetuneArgs) -> Result<AdaptConfig> {
    let mut cfg = AdaptConfig::default();
    if args.max_epochs == 0 {
        bail!("--max-epochs 0: give at least 1");
    }
    match args.epochs {
        Some(0) => bail!("--epochs 0: give at least 1"),
        Some(e) if e > args.max_epochs => bail!(
            "--epochs {e} is more than --max-epochs {}: --epochs is the least number of epochs",
            args.max_epochs
        ),
        Some(e) => cfg.train.epochs = e,
        None => cfg.train.epochs = cfg.train.epochs.min(args.max_epochs),
    }
    if let Some(lr) = args.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            bail!("--lr {lr}: give a positive learning rate");
        }
        cfg.train.lr = lr;
    }
    if let Some(b) = args.batch_size {
        if b == 0 {
            bail!("--batch-size 0: give at least 1");
        }
        cfg.train.batch_size = b;
    }
    cfg.train.validate()?;
    Ok(cfg)
}

/// Refuses, before any training, an output folder that cannot be one: `out` or a folder above
/// it is a file.
fn check_out(out: &Path) -> Result<()> {
    for p in out.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        if p.exists() && !p.is_dir() {
            bail!(
                "--out {}: {} is a file, not a folder; choose another --out",
                out.display(),
                p.display()
            );
        }
    }
    Ok(())
}

/// Runs `transfer finetune --data …`; returns the result file written.
pub fn run(args: &FinetuneArgs) -> Result<PathBuf> {
    let strategy = parse_strategy(&args.strategy)?;
    if !(0.0..1.0).contains(&args.test_fraction) || args.test_fraction == 0.0 {
        bail!(
            "--test-fraction {}: give a fraction in (0, 1)",
            args.test_fraction
        );
    }
    if args.per_class == Some(0) {
        bail!("--per-class 0: give at least 1 (or leave it out for all)");
    }
    // Every training setting checked before anything is loaded or trained.
    let cfg = training_settings(args)?;
    let device = args.device.resolve()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("finetune-{}-{}", args.model, strategy.name())));
    check_out(&out)?;
    let result_path = out.join("result.json");
    if result_path.exists() && !args.force {
        bail!(
            "{} already holds a result; choose another --out or give --force to replace it",
            out.display()
        );
    }
    let zoo = args.zoo_dir.clone().unwrap_or_else(crate::paths::zoo_dir);
    let t0 = Instant::now();
    let src = source(&args.model, args.weights.as_deref(), &zoo)?;
    let resize = src.input.as_ref().map(|i| match i.resize {
        Some(r) => [r, r],
        None => i.size,
    });
    let data = load(args, resize)?;
    let classes = data
        .class_names
        .len()
        .max(class_count(&[&data.train.targets, &data.test.targets])?);
    if classes < 2 {
        bail!(
            "{}: one class only; fine-tuning needs at least two",
            args.data.display()
        );
    }
    {
        // Every class has examples: numeric labels (CSV, NPZ) must number the classes 0..C-1
        // (labels {0, 7} are two classes, not eight with six empty).
        let mut present = std::collections::BTreeSet::new();
        for t in [&data.train.targets, &data.test.targets] {
            present.extend(Vec::<i64>::try_from(t)?);
        }
        let missing: Vec<usize> = (0..classes)
            .filter(|&c| !present.contains(&(c as i64)))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{}: the labels are {present:?}, so classes {missing:?} of 0..{} have no \
                 examples; number the classes 0, 1, …, C-1 with none skipped (relabel the data)",
                args.data.display(),
                classes - 1
            );
        }
    }
    let (train, val) = sample(&data, classes, args.per_class, args.seed).with_context(
        || match args.per_class {
            Some(n) => format!(
                "--per-class {n}: each class needs {n} training and {} validation examples in {}",
                transfer::target::validation_per_class(n),
                args.data.display()
            ),
            None => format!("splitting {}", args.data.display()),
        },
    )?;
    if train.is_empty() {
        bail!(
            "{}: no training examples are left after the validation and test splits; give more \
             data or a smaller --test-fraction",
            args.data.display()
        );
    }
    // The data as the model's input: channels, size and normalisation (see InputSpec::prepare).
    let prepare = |d: &TensorDataset| -> Result<TensorDataset> {
        let x = match (&src.input, src.in_channels) {
            (Some(spec), _) => spec.prepare(&d.inputs)?,
            (None, Some(c)) => InputSpec {
                channels: c,
                size: [d.inputs.size()[2], d.inputs.size()[3]],
                resize: None,
                mean: vec![0.0; c as usize],
                std: vec![1.0; c as usize],
            }
            .prepare(&d.inputs)?,
            (None, None) => d.inputs.shallow_clone(),
        };
        Ok(TensorDataset::new(x, d.targets.shallow_clone())?)
    };
    let (train, val, test) = (
        prepare(&train)?.to_device(device),
        prepare(&val)?.to_device(device),
        prepare(&data.test)?,
    );
    let loading = t0.elapsed().as_secs_f64();
    let mut cfg = cfg;
    // The step budget `transfer::finetune::FineTune` guarantees: at least --min-steps optimizer
    // steps (early stopping may not stop before), within --max-epochs.
    cfg.train = cfg
        .train
        .with_min_steps(train.len(), args.min_steps, args.max_epochs);
    tracing::info!(
        model = %args.model, strategy = strategy.name(), train = train.len(), val = val.len(),
        test = test.len(), epochs = cfg.train.epochs, "fine-tuning"
    );
    let t1 = Instant::now();
    let adapted = adapt(
        &strategy,
        &src.model,
        classes as i64,
        &train,
        &val,
        &cfg,
        args.seed,
    )?;
    let training = t1.elapsed().as_secs_f64();
    let logits = adapted
        .logits(&test.inputs, cfg.eval_batch)?
        .to_device(Device::Cpu);
    let preds = logits.argmax(-1, false);
    let cm = core_tensor::metrics::confusion_matrix(&preds, &test.targets, classes)?;
    let per_class = core_tensor::metrics::per_class_accuracy(&preds, &test.targets, classes)?;
    let accuracy = core_tensor::metrics::accuracy(&preds, &test.targets)?;
    let test_auc = if classes == 2 {
        binary_auc(&logits, &test.targets)?
    } else {
        None
    };
    let mut names = data.class_names.clone();
    names.extend((names.len()..classes).map(|c| c.to_string()));
    let result = FinetuneResult {
        model: args.model.clone(),
        weights: src.weights,
        data: args.data.display().to_string(),
        strategy,
        per_class: args.per_class,
        seed: args.seed,
        device: format!("{device:?}"),
        class_names: names.clone(),
        input: src.input,
        train_examples: train.len(),
        validation_examples: val.len(),
        test_examples: test.len(),
        test_from: data.test_from,
        test_accuracy: accuracy,
        test_auc,
        per_class_accuracy: names
            .iter()
            .zip(&per_class)
            .zip(&cm)
            .map(|((n, a), row)| ClassResult {
                class: n.clone(),
                test_examples: row.iter().sum(),
                accuracy: *a,
            })
            .collect(),
        confusion_matrix: cm,
        seconds_loading: loading,
        seconds_training: training,
        adapt: cfg,
        reports: adapted.reports.clone(),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    adapted.save(&out.join("model.safetensors"))?;
    core_tensor::persist::write_atomic(
        &out.join("learning_curve.svg"),
        transferlab_report::svg::svg(&learning_curve(&result)).as_bytes(),
    )?;
    core_tensor::persist::write_atomic(&out.join("result.md"), markdown(&result).as_bytes())?;
    // result.json last: its presence says the folder is complete.
    core_tensor::persist::write_json(&result_path, &result)?;
    println!(
        "{} -> {} ({}, {}): test accuracy {:.2}%{} on {} examples; {:.1} s training; results in {}",
        args.model,
        args.data.display(),
        result.strategy.name(),
        args.per_class
            .map_or("all".to_owned(), |n| format!("{n} per class")),
        100.0 * accuracy,
        test_auc
            .map(|a| format!(", AUC {a:.3}"))
            .unwrap_or_default(),
        result.test_examples,
        training,
        out.display()
    );
    Ok(result_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_auc_is_the_libraries_and_undefined_with_one_class() {
        // Logits whose class-1 probability orders the examples 0.1 < 0.35 < 0.4 < 0.8:
        // sklearn.metrics.roc_auc_score([0, 1, 0, 1], …) == 0.75.
        let p = [0.1f64, 0.4, 0.35, 0.8];
        let logits = Tensor::from_slice(
            &p.iter()
                .flat_map(|&q| [0.0, (q / (1.0 - q)).ln()])
                .collect::<Vec<f64>>(),
        )
        .view([4, 2]);
        let y = Tensor::from_slice(&[0i64, 0, 1, 1]);
        let auc = binary_auc(&logits, &y).unwrap().unwrap();
        assert!((auc - 0.75).abs() < 1e-12, "{auc}");
        assert_eq!(
            binary_auc(&logits, &Tensor::from_slice(&[1i64, 1, 1, 1])).unwrap(),
            None
        );
    }

    #[test]
    fn strategies_parse_by_name_or_table_and_bad_ones_are_named() {
        assert_eq!(parse_strategy("lp_ft").unwrap(), Strategy::lp_ft());
        assert_eq!(
            parse_strategy("{ kind = \"l2_sp\", alpha = 0.1, beta = 0.0 }").unwrap(),
            Strategy::L2Sp {
                alpha: 0.1,
                beta: 0.0
            }
        );
        let e = format!("{:#}", parse_strategy("finetuen").unwrap_err());
        assert!(e.contains("finetuen") && e.contains("lp_ft"), "{e}");
        let e = format!(
            "{:#}",
            parse_strategy("{ kind = \"fine_tune_top\", stages = 0 }").unwrap_err()
        );
        assert!(e.contains("stages"), "{e}");
    }
}
