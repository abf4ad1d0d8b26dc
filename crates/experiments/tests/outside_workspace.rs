//! The libraries used as a user would: a Cargo project in a temporary folder *outside* this
//! workspace depends on `core-tensor`, `pretrained-zoo` and `transfer` by path, builds its own
//! data and source network, fine-tunes by the short path, saves and reloads
//! (`outside-workspace/program.rs`). No transferlab environment variable is set; only the two
//! steps the README gives a user: `LIBTORCH` to build, and libtorch's `lib/` on the library path
//! to run.
//!
//! The project shares this workspace's `Cargo.lock` (the same dependency versions) and a target
//! folder of its own under `target/outside-workspace` (kept between runs, so only the first
//! build compiles tch).

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    experiments::paths::workspace_root()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("TRANSFERLAB_") || k.starts_with("CARGO_") && k != "CARGO_HOME" {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("LD_LIBRARY_PATH").env_remove("RUSTFLAGS")
}

fn libtorch() -> PathBuf {
    match std::env::var_os("LIBTORCH") {
        Some(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
        Some(p) => workspace().join(p),
        None => workspace().join(".cache/libtorch"),
    }
    .canonicalize()
    .expect("libtorch is set up (`cargo xtask setup`)")
}

#[test]
fn a_project_outside_the_workspace_fine_tunes_saves_and_reloads() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-finetune");
    std::fs::create_dir_all(project.join("src")).unwrap();
    let crates = workspace().join("crates");
    let dep = |name: &str| {
        format!(
            "{name} = {{ path = {:?} }}",
            crates.join(name).display().to_string()
        )
    };
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"my-finetune\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\n{}\n{}\n{}\ntch = \"0.26\"\n\n[workspace]\n",
            dep("core-tensor"),
            dep("pretrained-zoo"),
            dep("transfer")
        ),
    )
    .unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outside-workspace/program.rs"),
        project.join("src/main.rs"),
    )
    .unwrap();
    std::fs::copy(workspace().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let target = workspace().join("target/outside-workspace");
    let libtorch = libtorch();
    let build = clean_env(&mut cargo())
        .current_dir(&project)
        .args(["build", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .env("LIBTORCH", &libtorch)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "the outside project does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let exe = target.join("release/my-finetune");
    // Without libtorch on the library path the binary cannot start: the README says so.
    let bare = clean_env(&mut Command::new(&exe)).output().unwrap();
    assert!(
        !bare.status.success(),
        "it started without libtorch on the library path?"
    );
    let run = clean_env(&mut Command::new(&exe))
        .env("LD_LIBRARY_PATH", libtorch.join("lib"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("reloaded predictions equal: true"),
        "{stdout}"
    );
    eprintln!(
        "outside-workspace project: built and ran in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        stdout.trim()
    );
}
