//! `zoo`: builds, lists and verifies the pre-trained models of the registry shipped in
//! `pretrained-zoo` (`crates/pretrained-zoo/zoo.toml`).
//!
//! Usually run through `cargo xtask zoo …`, which sets up libtorch and fetches the datasets
//! first.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use core_tensor::device::DeviceSpec;
use pretrained_zoo::registry::{self, Registry};

#[derive(Parser, Debug)]
#[command(about = "Build, list and verify the pre-trained models of the zoo")]
struct Cli {
    /// The registry file (default: the one shipped in pretrained-zoo, crates/pretrained-zoo/zoo.toml).
    #[arg(long, global = true)]
    registry: Option<PathBuf>,
    /// The folder of built weights (default: TRANSFERLAB_ZOO, else the workspace's .cache/zoo).
    #[arg(long, global = true)]
    zoo_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train entries from their recipes (default: every entry not built yet).
    Build {
        /// Entries to build.
        names: Vec<String>,
        /// Rebuild entries that are already built and verified.
        #[arg(long)]
        force: bool,
        /// Write the measured accuracy and checksum into the registry as the reference.
        #[arg(long)]
        record: bool,
        /// cpu, cuda, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// libtorch intra-op threads. Results repeat bit for bit for one thread count; the
        /// registered checksums were made with 2.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// List the entries and whether each is built and verified.
    List,
    /// Verify the checksums of built entries.
    Verify {
        /// Entries to verify (default: all built).
        names: Vec<String>,
    },
    /// Import a PyTorch checkpoint into the zoo folder: every key checked against the
    /// architecture (missing, unexpected and mis-shaped keys named), written as
    /// `<name>.safetensors` and recorded with its sha256 in the folder's `imported.toml`.
    Import(ImportArgs),
    /// Evaluate a built entry on its recipe's test split; with --dump, write the test inputs,
    /// the predictions and the targets as safetensors (to compare with PyTorch:
    /// python/zoo_torchvision_check.py).
    Evaluate {
        /// The entry.
        name: String,
        /// Write input, prediction and target tensors to this safetensors file.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    // `{:#}` shows the whole chain of causes on one line.
    experiments::progress::run_main("info", || run(Cli::parse()).map_err(|e| format!("{e:#}")))
}

/// `Ok(true)` when the entry's weights exist and match their expected checksum.
fn verified(reg: &Registry, zoo: &std::path::Path, name: &str) -> Result<bool> {
    let path = Registry::weights_path(zoo, name);
    if !path.exists() {
        return Ok(false);
    }
    let Ok(expected) = reg.expected_sha256(zoo, name) else {
        return Ok(false);
    };
    Ok(registry::sha256_file(&path)? == expected)
}

fn run(cli: Cli) -> Result<()> {
    let reg_path = cli.registry.unwrap_or_else(|| {
        experiments::paths::workspace_root().join("crates/pretrained-zoo/zoo.toml")
    });
    let reg = Registry::load(&reg_path)?;
    let zoo = cli.zoo_dir.unwrap_or_else(experiments::paths::zoo_dir);
    match cli.command {
        Command::Import(args) => import(&reg, &zoo, args)?,
        Command::Evaluate { name, dump } => {
            let loaded = reg.load_model(&zoo, &name, tch::Device::Cpu)?;
            let data = loaded
                .entry
                .recipe
                .data
                .load(&experiments::paths::cache_dir())?;
            let logits = core_tensor::train::predict(&*loaded.net, &data.test.inputs, 256)?;
            let preds = logits.argmax(-1, false);
            let acc = core_tensor::metrics::accuracy(&preds, &data.test.targets)?;
            println!(
                "{name}: test accuracy {:.2}% on {} examples",
                100.0 * acc,
                data.test.len()
            );
            if let Some(path) = dump {
                core_tensor::checkpoint::save_tensors(
                    &[
                        ("input", data.test.inputs.shallow_clone()),
                        ("prediction", preds),
                        ("target", data.test.targets.shallow_clone()),
                    ],
                    &path,
                )?;
                println!(
                    "{name}: inputs, predictions and targets in {}",
                    path.display()
                );
            }
        }
        Command::List => {
            for (name, entry) in &reg.models {
                let state = if verified(&reg, &zoo, name)? {
                    "built"
                } else {
                    "not built"
                };
                let acc = entry
                    .registered
                    .as_ref()
                    .map(|r| format!("{:.2}%", 100.0 * r.test_accuracy))
                    .unwrap_or_else(|| "unregistered".into());
                println!(
                    "{name:24} {:16} {acc:>12}  {state:10} {}",
                    entry.model.name(),
                    entry.description
                );
            }
        }
        Command::Verify { names } => {
            let names = if names.is_empty() {
                reg.models.keys().cloned().collect()
            } else {
                names
            };
            for name in names {
                reg.entry(&name)?;
                if !Registry::weights_path(&zoo, &name).exists() {
                    println!("{name}: not built");
                } else if verified(&reg, &zoo, &name)? {
                    println!("{name}: verified");
                } else {
                    bail!(
                        "{name}: checksum mismatch; rebuild with `cargo xtask zoo build {name} --force`"
                    );
                }
            }
        }
        Command::Build {
            names,
            force,
            record,
            device,
            threads,
        } => {
            let device = device.resolve()?;
            core_tensor::device::set_threads(threads);
            let names: Vec<String> = if names.is_empty() {
                reg.models.keys().cloned().collect()
            } else {
                names
            };
            let cache = experiments::paths::cache_dir();
            let mut recorded = Vec::new();
            for name in &names {
                let entry = reg.entry(name)?;
                if !force && verified(&reg, &zoo, name)? {
                    eprintln!("zoo: {name}: built and verified");
                    if record {
                        let rec = registry::read_record(&zoo, name)?;
                        recorded.push((name.clone(), rec.test_accuracy, rec.sha256));
                    }
                    continue;
                }
                let bar = experiments::progress::epoch_bar(name)
                    .map(|b| Box::new(b) as Box<dyn FnMut(core_tensor::train::Progress)>);
                let rec = registry::build(name, entry, &cache, &zoo, device, bar)
                    .with_context(|| format!("building zoo model {name}"))?;
                let status = match rec.matches_registered {
                    Some(true) => "identical to the registered weights",
                    Some(false) => "DIFFERENT from the registered weights (other CPU kernels?)",
                    None => "not registered yet",
                };
                eprintln!(
                    "zoo: {name}: test accuracy {:.2}% in {:.0} s; sha256 {} ({status})",
                    100.0 * rec.test_accuracy,
                    rec.seconds,
                    rec.sha256
                );
                if let Some(reg_acc) = entry.registered.as_ref().map(|r| r.test_accuracy) {
                    eprintln!(
                        "zoo: {name}: registered test accuracy {:.2}%",
                        100.0 * reg_acc
                    );
                }
                recorded.push((name.clone(), rec.test_accuracy, rec.sha256));
            }
            if record && !recorded.is_empty() {
                write_registered(&reg_path, &recorded)?;
                eprintln!(
                    "zoo: recorded {} entries in {}",
                    recorded.len(),
                    reg_path.display()
                );
            }
        }
    }
    Ok(())
}

/// Writes `[models.NAME.registered]` for each build into the registry, keeping its comments.
fn write_registered(path: &std::path::Path, builds: &[(String, f64, String)]) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    for (name, acc, sha) in builds {
        let mut t = toml_edit::Table::new();
        t.insert("test_accuracy", toml_edit::value((acc * 1e4).round() / 1e4));
        t.insert("sha256", toml_edit::value(sha.as_str()));
        doc["models"][name.as_str()]["registered"] = toml_edit::Item::Table(t);
    }
    core_tensor::persist::write_atomic(path, doc.to_string().as_bytes())?;
    Ok(())
}

/// The options of `zoo import`.
#[derive(clap::Args, Debug)]
struct ImportArgs {
    /// The checkpoint: a safetensors state_dict, or a PyTorch .pth/.pt file, which the
    /// project's Python converts with torch.load(weights_only=True) (never an unrestricted
    /// unpickle).
    file: PathBuf,
    /// The architecture whose keys the checkpoint has: resnet18, resnet34 or resnet50
    /// (torchvision's). Width, input channels, stem and classes are read from its shapes.
    #[arg(long)]
    arch: String,
    /// The name to import it as (letters, digits, '-', '_', '.'); `--model NAME` elsewhere.
    #[arg(long)]
    name: String,
    /// What the model is, in a sentence.
    #[arg(long)]
    description: Option<String>,
    /// Where the checkpoint came from (default: the file's path), such as its URL.
    #[arg(long)]
    source: Option<String>,
    /// The input size the weights expect (square), e.g. 224; with --mean and --std.
    #[arg(long, requires_all = ["mean", "std"])]
    size: Option<i64>,
    /// Resize the shorter side to this before the centre crop of --size (ImageNet: 256).
    #[arg(long, requires = "size")]
    resize: Option<i64>,
    /// Per-channel means of the input normalisation, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "size")]
    mean: Option<Vec<f64>>,
    /// Per-channel standard deviations of the input normalisation, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "size")]
    std: Option<Vec<f64>>,
    /// Replace an imported model of the same name.
    #[arg(long)]
    force: bool,
}

/// The Python that converts `.pth` files: `TRANSFERLAB_PYTHON`, else the project's
/// `.cache/torch-venv` (made by `cargo xtask setup`).
fn python() -> Result<PathBuf> {
    let path = match std::env::var_os("TRANSFERLAB_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => experiments::paths::workspace_root().join(".cache/torch-venv/bin/python"),
    };
    if !path.exists() {
        bail!(
            "converting a .pth/.pt checkpoint needs Python with torch and safetensors, and {} \
             does not exist: run `cargo xtask setup`, set TRANSFERLAB_PYTHON, or convert it \
             yourself and import the .safetensors:\n    from safetensors.torch import save_file; \
             import torch\n    save_file({{k: v.contiguous() for k, v in torch.load(\"in.pth\", \
             weights_only=True).items()}}, \"out.safetensors\")",
            path.display()
        );
    }
    Ok(path)
}

/// `zoo import`: converts if needed, checks every key against the architecture, writes
/// `<zoo>/<name>.safetensors` and records it in the zoo folder's `imported.toml`.
fn import(reg: &Registry, zoo: &std::path::Path, args: ImportArgs) -> Result<()> {
    use pretrained_zoo::arch::{ArchConfig, TorchvisionResNetConfig};
    use pretrained_zoo::registry::{ImportedEntry, InputSpec, UserRegistry};
    let name = &args.name;
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!("--name {name:?}: use letters, digits, '-', '_' and '.' (not first)");
    }
    if reg.models.contains_key(name) {
        bail!("--name {name}: a zoo entry of the registry has that name; choose another");
    }
    let user = UserRegistry::load(zoo)?;
    if user.models.contains_key(name) && !args.force {
        bail!(
            "{name} is already imported in {}; --force replaces it",
            UserRegistry::path(zoo).display()
        );
    }
    if !args.file.is_file() {
        bail!("{}: no such file", args.file.display());
    }
    std::fs::create_dir_all(zoo).with_context(|| format!("creating {}", zoo.display()))?;
    let ext = args
        .file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let converted = zoo.join(format!(".{name}.import.safetensors"));
    let st_path = match ext.as_str() {
        "safetensors" => args.file.clone(),
        "pth" | "pt" | "bin" => {
            let script = experiments::paths::workspace_root().join("python/pth_to_safetensors.py");
            let out = std::process::Command::new(python()?)
                .arg(&script)
                .arg(&args.file)
                .arg(&converted)
                .output()
                .with_context(|| format!("running {}", script.display()))?;
            if !out.status.success() {
                let _ = std::fs::remove_file(&converted);
                bail!(
                    "{} could not be converted by torch.load(weights_only=True): {}",
                    args.file.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            converted.clone()
        }
        other => bail!(
            "{}: .{other} is not a checkpoint this imports; give a .safetensors, .pth or .pt file",
            args.file.display()
        ),
    };
    let result = (|| -> Result<ImportedEntry> {
        let shapes: std::collections::BTreeMap<String, Vec<i64>> =
            core_tensor::checkpoint::read_tensors(&st_path)?
                .into_iter()
                .map(|(k, t)| (k, t.size()))
                .collect();
        let cfg = TorchvisionResNetConfig::infer(&args.arch, &shapes)?;
        let channels = cfg.in_channels;
        let arch = ArchConfig::TorchvisionResNet(cfg);
        let imported = pretrained_zoo::import::import_state_dict(&st_path, &arch, tch::Device::Cpu)
            .with_context(|| format!("{} does not fit {}", args.file.display(), args.arch))?;
        let input = match (args.size, args.mean.clone(), args.std.clone()) {
            (Some(size), Some(mean), Some(std)) => {
                let spec = InputSpec {
                    channels,
                    size: [size, size],
                    resize: args.resize,
                    mean,
                    std,
                };
                spec.validate()?;
                Some(spec)
            }
            _ => None,
        };
        let sha256 =
            core_tensor::checkpoint::save(&imported.vs, &Registry::weights_path(zoo, name))?;
        Ok(ImportedEntry {
            description: args
                .description
                .clone()
                .unwrap_or_else(|| format!("{} imported from {}", args.arch, args.file.display())),
            model: arch,
            sha256,
            source: args
                .source
                .clone()
                .unwrap_or_else(|| args.file.display().to_string()),
            source_sha256: registry::sha256_file(&args.file)?,
            input,
        })
    })();
    let _ = std::fs::remove_file(&converted);
    let entry = result?;
    eprintln!(
        "zoo: imported {name} ({}): {} (sha256 {}), recorded in {}",
        args.arch,
        Registry::weights_path(zoo, name).display(),
        entry.sha256,
        UserRegistry::path(zoo).display()
    );
    UserRegistry::record(zoo, name, entry)?;
    Ok(())
}
