//! Stored runs stay valid: the first run each experiment's quick profile asks the store for has
//! the key it had on main before the verdict rework (commit 47994fa), so a store made then is
//! still read, and a quick suite over it trains nothing.
//!
//! Each experiment is run with `--stored-only` on an empty store: it plans, asks the store for
//! its first run, and stops with an error naming that run's key, training nothing. The pinned
//! keys were checked against a quick-profile store made by 47994fa (each is a file there; X0's
//! by that commit's binary loading a record planted under the key, since its store had no X0).

use std::process::Command;

/// (binary, experiment, the store folder and key of its first quick run on 47994fa).
const PINNED: [(&str, &str, &str); 18] = [
    (
        "transfer",
        "x0",
        "x0/4b54957f62fa0ecbd772055e4c51aa3c78141ff56acfda500d2092ca9d408890",
    ),
    (
        "transfer",
        "x1",
        "x1/2b16998ed022f67e9c4fb86f22db15fe55c25d62a1ac603816e7ecd84e173864",
    ),
    (
        "transfer",
        "x2",
        "transfer-adapt/862750c7c80344de2aa52d4382b3f2c714891be8ff0644a97bc398acf182047b",
    ),
    (
        "transfer",
        "x3",
        "transfer-adapt/73b332a604712cd4e9cfdd32e7823d471e79a3b361cfc89bde9d863a21f71c87",
    ),
    (
        "transfer",
        "x4",
        "transfer-adapt/862750c7c80344de2aa52d4382b3f2c714891be8ff0644a97bc398acf182047b",
    ),
    (
        "transfer",
        "x5",
        "transfer-adapt/dece6b388ef3615297d18fd43b773cc14fc663f8d122ef6bda1a545de87b0a0b",
    ),
    (
        "transfer",
        "x6",
        "transfer-adapt/cebe22c86f5680eeae6f66a891c897b0457fd4f230665b50f9499abf1ef6b510",
    ),
    (
        "multitask",
        "m1",
        "multitask-run/f20c244f9b7386931ec0eb38aa35de2994976c1e62a1866ef7a3553b293228f8",
    ),
    (
        "multitask",
        "m2",
        "multitask-run/63752ae48050fe8491316f3bbe6a17a71f90b446b1d13ae2ff71408f03c1f502",
    ),
    (
        "multitask",
        "m3",
        "multitask-run/cc7a92d9e6446dfc793c84d53f0e22fc8b66898afb867cd3a9680a2e99451b68",
    ),
    (
        "multitask",
        "m4",
        "multitask-run/f20c244f9b7386931ec0eb38aa35de2994976c1e62a1866ef7a3553b293228f8",
    ),
    (
        "multitask",
        "m5",
        "multitask-run/18e98775e8eb2235bf9bd2b5843ac585637e910be48a48779f76cf7b4a24a582",
    ),
    (
        "multitask",
        "m6",
        "multitask-run/f20c244f9b7386931ec0eb38aa35de2994976c1e62a1866ef7a3553b293228f8",
    ),
    (
        "e2e",
        "p1",
        "p1-detect-identify/b4a0987a0ecc77cdaf6674eb0e3add1e9899684c1ff142a9a389ad43c35cbcd0",
    ),
    (
        "e2e",
        "p2",
        "p2-speech/b62ca62a3107128e3b2a21c745e2a0f38c5eea066e1c79559f05252b72a3b4c6",
    ),
    (
        "e2e",
        "p3",
        "p3-bone-age/af1fd12e38dbf2f84f19ae0a15de21e721cd92a93e0ac0680a8c19b03c7aab59",
    ),
    (
        "e2e",
        "p4",
        "p4-lines-parity/eb9adaf0c7d0dc47543edd88f500af47f5237d4061d0fb76a7d64197b6177760",
    ),
    (
        "e2e",
        "p5",
        "p5-translation/ef874d9088b9a70118bc2e611296a644749919ed624328b29b51ed93c6fbb8cd",
    ),
];

#[test]
fn every_experiments_first_quick_run_keeps_its_key_from_before_the_rework() {
    let ids: Vec<String> = experiments::registry::entries()
        .unwrap()
        .into_iter()
        .map(|e| e.id.to_lowercase())
        .collect();
    assert_eq!(
        ids,
        PINNED.map(|(_, id, _)| id.to_string()),
        "one pin per experiment"
    );
    // X6 scores the zoo's MNIST LeNet before its first stored run: it needs those weights
    // (`cargo xtask zoo build mnist-lenet`, which CI does not build).
    let zoo = experiments::paths::zoo_dir();
    let lenet = pretrained_zoo::registry::Registry::weights_path(&zoo, "mnist-lenet").is_file();
    let exe = |name: &str| std::path::Path::new(env!("CARGO_BIN_EXE_zoo")).with_file_name(name);
    for (bin, id, pinned) in PINNED {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(exe(bin))
            .args([id, "--profile", "quick", "--stored-only", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{id}: trained nothing, so it must stop"
        );
        assert!(
            !stderr.lines().any(|l| l.starts_with('[')),
            "{id}: no run may finish: {stderr}"
        );
        if id == "x6" && !lenet {
            assert!(stderr.contains("mnist-lenet"), "{stderr}");
            eprintln!(
                "x6: key not checked (mnist-lenet is not built in {})",
                zoo.display()
            );
            continue;
        }
        let want = format!("run {pinned} is not in the store");
        assert!(
            stderr.contains(&want),
            "{id}: expected {want:?}, got:\n{stderr}"
        );
    }
}

#[test]
fn stored_only_loads_what_is_stored_and_names_what_is_not() {
    use experiments::runs::{RunId, RunStore};
    let dir = tempfile::tempdir().unwrap();
    let id = RunId::new("e", &serde_json::json!({"n": 1}), 0, []).unwrap();
    let free = RunStore::new(dir.path());
    let (rec, stored) = free.run_or_load(&id, "Cpu", || Ok(7u32)).unwrap();
    assert_eq!((rec.result, stored), (7, false));
    let only = RunStore::new(dir.path()).with_stored_only(true);
    let (rec, stored) = only
        .run_or_load(&id, "Cpu", || -> core_tensor::Result<u32> {
            unreachable!()
        })
        .unwrap();
    assert_eq!((rec.result, stored), (7, true));
    let other = RunId::new("e", &serde_json::json!({"n": 2}), 0, []).unwrap();
    let err = only
        .run_or_load(&other, "Cpu", || -> core_tensor::Result<u32> {
            unreachable!()
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("e/{}", other.key())) && err.contains("--stored-only"),
        "{err}"
    );
}
