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
