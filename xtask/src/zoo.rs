//! `cargo xtask zoo build|list|verify [NAME...]`: the pre-trained model zoo.
//!
//! Sets libtorch up, fetches the datasets the registry's recipes use (`crates/pretrained-zoo/zoo.toml`), then
//! runs the `zoo` binary of the `experiments` crate, which trains, lists or verifies the entries.

use anyhow::{Context, Result};

use crate::util::{cargo, project_root, run_status};

/// Options of `cargo xtask zoo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// `build [NAME...] [--force] [--record] [--device D]`, `list`, or `verify [NAME...]`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub args: Vec<String>,
}

/// The datasets the registry's recipes train on.
pub fn registry_datasets() -> Result<Vec<String>> {
    let path = project_root().join("crates/pretrained-zoo/zoo.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut names: Vec<String> = doc
        .get("models")
        .and_then(|m| m.as_table())
        .into_iter()
        .flat_map(|models| models.values())
        .filter_map(|entry| {
            entry
                .get("recipe")?
                .get("data")?
                .get("dataset")?
                .as_str()
                .map(String::from)
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Runs `zoo ARGS` after setup and fetching.
pub fn run(args: &Args) -> Result<()> {
    run_zoo(&args.args)
}

/// Setup, fetch the registry's datasets, then the `zoo` binary with `args`.
pub fn run_zoo(args: &[String]) -> Result<()> {
    crate::setup::ensure(false)?;
    let datasets = registry_datasets()?;
    crate::fetch::run(&crate::fetch::Args {
        datasets,
        offline: false,
    })?;
    run_status(
        cargo()
            .current_dir(project_root())
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "experiments",
                "--bin",
                "zoo",
                "--",
            ])
            .args(args),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_registry_names_fetchable_datasets() {
        let datasets = super::registry_datasets().unwrap();
        assert!(!datasets.is_empty());
        let manifest = crate::fetch::Manifest::project().unwrap();
        for d in datasets {
            assert!(
                manifest.datasets.contains_key(&d),
                "zoo.toml uses {d}, which fetch does not know"
            );
        }
    }
}
