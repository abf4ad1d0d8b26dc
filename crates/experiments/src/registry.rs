//! The one registry of the suite's experiments: `experiments.toml` in this package (what runs,
//! in which order, by which binary, with which zoo entries, after which others) and the
//! function that runs each. The binaries dispatch through [`functions`]; `cargo xtask suite`
//! reads the same file. A test checks that the file and the function table agree.

use serde::Deserialize;

use crate::driver::ExperimentFn;

/// The registry file's text (shipped inside this package).
pub const TOML: &str = include_str!("../experiments.toml");

/// One experiment of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// ID (`X1`, …); the binary's subcommand is its lower case.
    pub id: String,
    /// The binary that runs it (`transfer`, `multitask`, `e2e`).
    pub bin: String,
    /// Zoo entries the quick profile needs.
    #[serde(default)]
    pub zoo: Vec<String>,
    /// Zoo entries the full profile needs.
    #[serde(default)]
    pub zoo_full: Vec<String>,
    /// Zoo entries the tiny (smoke-test) profile needs.
    #[serde(default)]
    pub zoo_tiny: Vec<String>,
    /// Experiments whose stored runs it reuses (run before it).
    #[serde(default)]
    pub after: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    experiment: Vec<Entry>,
}

/// Every experiment of the registry, in the suite's order.
pub fn entries() -> core_tensor::Result<Vec<Entry>> {
    let f: File = toml::from_str(TOML).map_err(|e| {
        core_tensor::Error::InvalidArgument(format!("crates/experiments/experiments.toml: {e}"))
    })?;
    Ok(f.experiment)
}

/// The function that runs each experiment, by ID.
const TABLE: [(&str, ExperimentFn); 18] = [
    ("X0", |c, o, f| crate::xfer::x0::run(c, o, f)),
    ("X1", |c, o, f| crate::xfer::x1::run_report(c, o, f)),
    ("X2", |c, o, f| crate::xfer::x2::run(c, o, f)),
    ("X3", |c, o, f| crate::xfer::x3::run(c, o, f)),
    ("X4", |c, o, f| crate::xfer::x4::run(c, o, f)),
    ("X5", |c, o, f| crate::xfer::x5::run(c, o, f)),
    ("X6", |c, o, f| crate::xfer::x6::run(c, o, f)),
    ("M1", |c, o, f| crate::mtl::m1::run(c, o, f)),
    ("M2", |c, o, f| crate::mtl::m2::run(c, o, f)),
    ("M3", |c, o, f| crate::mtl::m3::run(c, o, f)),
    ("M4", |c, o, f| crate::mtl::m4::run(c, o, f)),
    ("M5", |c, o, f| crate::mtl::m5::run(c, o, f)),
    ("M6", |c, o, f| crate::mtl::m6::run(c, o, f)),
    ("P1", |c, o, f| crate::e2e::p1::run(c, o, f)),
    ("P2", |c, o, f| crate::e2e::p2::run(c, o, f)),
    ("P3", |c, o, f| crate::e2e::p3::run(c, o, f)),
    ("P4", |c, o, f| crate::e2e::p4::run(c, o, f)),
    ("P5", |c, o, f| crate::e2e::p5::run(c, o, f)),
];

/// The experiments binary `bin` runs, in registry order, as `(subcommand, function)`.
pub fn functions(bin: &str) -> core_tensor::Result<Vec<(String, ExperimentFn)>> {
    entries()?
        .into_iter()
        .filter(|e| e.bin == bin)
        .map(|e| {
            let f = TABLE
                .iter()
                .find(|(id, _)| *id == e.id)
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    core_tensor::Error::InvalidArgument(format!(
                        "experiments.toml lists {} but no function runs it",
                        e.id
                    ))
                })?;
            Ok((e.id.to_lowercase(), f))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_file_and_the_function_table_list_the_same_experiments() {
        let entries = entries().unwrap();
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let table: Vec<&str> = TABLE.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, table);
        for e in &entries {
            assert!(
                ["transfer", "multitask", "e2e"].contains(&e.bin.as_str()),
                "{e:?}"
            );
            for a in &e.after {
                let pos = |id: &str| ids.iter().position(|x| *x == id);
                assert!(
                    pos(a).is_some() && pos(a) < pos(&e.id),
                    "{} runs after {a}, which must come first",
                    e.id
                );
            }
        }
        assert_eq!(functions("e2e").unwrap().len(), 5);
        assert_eq!(functions("transfer").unwrap()[0].0, "x0");
    }
}
