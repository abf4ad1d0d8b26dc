//! `cargo xtask zoo build|list|verify|import …`: the pre-trained model zoo.
//!
//! Sets libtorch up, fetches the datasets the registry's recipes use (`crates/pretrained-zoo/zoo.toml`), then
//! runs the `zoo` binary of the `experiments` crate, which trains, lists or verifies the entries.
//!
//! `cargo xtask zoo fetch NAME...` downloads published weights listed in
//! `crates/pretrained-zoo/downloads.toml` (torchvision's ImageNet ResNets), checks the sha256
//! prefix their file name carries, and imports them as `zoo import` does; without a network it
//! says so, naming the URL.
//!
//! `cargo xtask zoo import FILE --arch resnet18 --name NAME` imports a checkpoint of your own:
//! a `.pth`/`.pt` is converted with the project's Python by `torch.load(..., weights_only=True)`
//! (never an unrestricted unpickle), every key is checked against the architecture, and the
//! result is written as `NAME.safetensors` in the zoo folder with its sha256 recorded in the
//! folder's `imported.toml`; `transfer finetune --model NAME` then starts from it.

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

/// Runs `zoo ARGS` after setup and fetching; `fetch NAME...` downloads published weights.
pub fn run(args: &Args) -> Result<()> {
    if args.args.first().map(String::as_str) == Some("fetch") {
        return fetch_downloads(&args.args[1..]);
    }
    run_zoo(&args.args)
}

/// One entry of `downloads.toml`.
#[derive(Debug, serde::Deserialize)]
struct Download {
    description: String,
    url: String,
    sha256_prefix: String,
    license: String,
    model: DownloadModel,
    preprocess: Preprocess,
}

/// The architecture a download fits (a torchvision ResNet).
#[derive(Debug, serde::Deserialize)]
struct DownloadModel {
    arch: String,
    depth: u32,
    classes: u32,
}

/// What the weights expect of an image.
#[derive(Debug, serde::Deserialize)]
struct Preprocess {
    resize: u32,
    crop: u32,
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Download {
    /// `zoo import` arguments registering the downloaded `pth` as `name`.
    fn import_args(&self, name: &str, pth: &std::path::Path) -> Result<Vec<String>> {
        anyhow::ensure!(
            self.model.arch == "torchvision_resnet",
            "{name}: arch {:?} is not one zoo import takes (torchvision_resnet)",
            self.model.arch
        );
        let join = |v: &[f64]| v.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
        Ok(vec![
            "import".into(),
            pth.display().to_string(),
            "--arch".into(),
            format!("resnet{}", self.model.depth),
            "--name".into(),
            name.into(),
            "--description".into(),
            format!(
                "{} ({} classes; {})",
                self.description, self.model.classes, self.license
            ),
            "--source".into(),
            self.url.clone(),
            "--size".into(),
            self.preprocess.crop.to_string(),
            "--resize".into(),
            self.preprocess.resize.to_string(),
            "--mean".into(),
            join(&self.preprocess.mean),
            "--std".into(),
            join(&self.preprocess.std),
            "--force".into(),
        ])
    }
}

#[derive(Debug, serde::Deserialize)]
struct Downloads {
    downloads: std::collections::BTreeMap<String, Download>,
}

fn read_downloads() -> Result<Downloads> {
    let path = project_root().join("crates/pretrained-zoo/downloads.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Downloads, verifies and converts the named published weights into the zoo folder
/// (`TRANSFERLAB_ZOO`, default `.cache/zoo`): `<name>.pth`, `<name>.safetensors`, and
/// `<name>.download.json` with both checksums.
pub fn fetch_downloads(names: &[String]) -> Result<()> {
    let list = read_downloads()?;
    if names.is_empty() {
        anyhow::bail!(
            "name the weights to fetch; known: {}",
            list.downloads
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let zoo = std::env::var_os("TRANSFERLAB_ZOO")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::util::cache_root().join("zoo"));
    std::fs::create_dir_all(&zoo).with_context(|| format!("creating {}", zoo.display()))?;
    for name in names {
        let entry = list.downloads.get(name).with_context(|| {
            format!(
                "no published weights {name:?}; known: {}",
                list.downloads
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let pth = zoo.join(format!("{name}.pth"));
        let have =
            pth.exists() && crate::util::sha256_file(&pth)?.starts_with(&entry.sha256_prefix);
        if !have {
            eprintln!(
                "zoo fetch: {name}: downloading {} ({})",
                entry.url, entry.license
            );
            let response = ureq::AgentBuilder::new()
                .timeout_connect(std::time::Duration::from_secs(10))
                .build()
                .get(&entry.url)
                .call()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "could not download {name} from {}: {e}. Without a network, download \
                         that URL elsewhere and place it at {} (its sha256 must start with {})",
                        entry.url,
                        pth.display(),
                        entry.sha256_prefix
                    )
                })?;
            let tmp = crate::util::temp_path_for(&pth);
            let mut file = std::fs::File::create(&tmp)?;
            std::io::copy(&mut response.into_reader(), &mut file)
                .with_context(|| format!("downloading {}", entry.url))?;
            file.sync_all()?;
            let sha = crate::util::sha256_file(&tmp)?;
            if !sha.starts_with(&entry.sha256_prefix) {
                let _ = std::fs::remove_file(&tmp);
                anyhow::bail!(
                    "{}: sha256 {sha} does not start with {} (as its file name says): a damaged \
                     or replaced download; nothing was kept",
                    entry.url,
                    entry.sha256_prefix
                );
            }
            std::fs::rename(&tmp, &pth)?;
        }
        // Converted (torch.load(weights_only=True)), checked key by key against the
        // architecture and recorded in the zoo folder's imported.toml by `zoo import`.
        let mut import = entry.import_args(name, &pth)?;
        import.splice(0..0, ["--zoo-dir".to_owned(), zoo.display().to_string()]);
        run_zoo(&import)?;
    }
    Ok(())
}

/// Setup, fetch the registry's datasets, then the `zoo` binary with `args`.
pub fn run_zoo(args: &[String]) -> Result<()> {
    crate::setup::ensure(false)?;
    // Only building trains on datasets; list, verify and import need none.
    let building = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .is_none_or(|a| a == "build");
    if building {
        let datasets = registry_datasets()?;
        crate::fetch::run(&crate::fetch::Args {
            datasets,
            offline: false,
        })?;
    }
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
    fn the_download_list_parses_and_names_torchvisions_prefixes() {
        let list = super::read_downloads().unwrap();
        for (name, d) in &list.downloads {
            assert!(
                d.url.ends_with(&format!("-{}.pth", d.sha256_prefix)),
                "{name}: {}",
                d.url
            );
            assert_eq!(d.sha256_prefix.len(), 8, "{name}");
            let args = d.import_args(name, std::path::Path::new("w.pth")).unwrap();
            assert_eq!(args[3], format!("resnet{}", d.model.depth), "{name}");
            assert_eq!(d.preprocess.mean.len(), 3, "{name}");
        }
        assert!(list.downloads.contains_key("resnet18-imagenet"));
    }

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
