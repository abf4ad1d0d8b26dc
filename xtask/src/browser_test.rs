//! The report opened in a real browser: headless Chromium (Debian's `chromium` package) loads
//! a report built from a synthetic experiment, and the test checks that the claims ledger is
//! there with one row per claim and that every plot loaded as an image.
//!
//! Without Chromium the test fails if `TRANSFERLAB_REQUIRE_CHROMIUM=1` (CI sets it), and
//! otherwise passes with a message saying it did not run and how to make it run.

use std::path::Path;
use std::process::Command;

use crate::report::{self, Environment};
use crate::util::project_root;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// A contrast deciding T-2 that comes out supported.
fn contrast() -> serde_json::Value {
    use transferlab_report::contrast::{Contrast, Kind, Margin, Unit};
    let mut r = transferlab_report::stats::Results::default();
    for (a, b) in [(0.80, 0.80), (0.81, 0.805), (0.79, 0.80)] {
        r.push("transfer", a);
        r.push("scratch", b);
    }
    let c = Contrast::paired(
        "gain",
        &["T-2"],
        "transfer − scratch",
        Unit::accuracy_points(),
        Kind::NoMeaningfulGain,
        "transfer",
        "scratch",
        Margin::new(0.02, "2 points"),
    );
    serde_json::to_value(c.evaluate(&r).unwrap()).unwrap()
}

fn summary() -> serde_json::Value {
    let s = |m: f64| serde_json::json!({ "n": 3, "mean": m, "std": 0.01, "ci95": [m - 0.02, m + 0.02] });
    let plot = |id: &str| {
        serde_json::json!({
            "id": id, "title": format!("plot {id}"), "x_label": "N", "y_label": "accuracy (%)",
            "log_x": true, "y_scale": 100.0, "zero_line": false, "reference": null,
            "series": [
                { "name": "fine_tune", "points": [{ "x": 1.0, "y": s(0.5) }, { "x": 10.0, "y": s(0.8) }] },
                { "name": "scratch", "points": [{ "x": 1.0, "y": s(0.3) }, { "x": 10.0, "y": s(0.75) }] }
            ]
        })
    };
    serde_json::json!({
        "id": "X2", "title": "source-size sweep", "claims": ["T-2"], "description": "synthetic",
        "profile": "quick", "seeds": 3, "device": "Cpu", "runs": 4, "runs_stored": 0,
        "seconds": 1.0, "run_seconds": 1.0, "config": {},
        "contrasts": [contrast()],
        "tables": [{ "name": "x1-table", "columns": ["N", "accuracy"],
            "rows": [[{ "num": 1.0 }, { "stat": { "summary": s(0.5), "scale": 100.0 } }]] }],
        "plots": [plot("x1-a"), plot("x1-b")],
        "notes": []
    })
}

fn attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!("{name}=\""))? + name.len() + 2;
    dom[start..].split('"').next()
}

#[test]
fn the_report_opens_in_headless_chromium_with_its_ledger_and_every_plot() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("TRANSFERLAB_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "Chromium is required here (TRANSFERLAB_REQUIRE_CHROMIUM=1) but not installed: \
             apt-get install chromium"
        );
        eprintln!("NOT RUN: no Chromium; `apt-get install chromium` to run this test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    std::fs::create_dir_all(out.join("x2")).unwrap();
    std::fs::write(out.join("x2/summary.json"), summary().to_string()).unwrap();
    let claims = report::load_claims(&project_root().join("fixtures/claims.toml")).unwrap();
    report::write(out, &claims, &Environment::default(), &["X2"]).unwrap();
    let page = format!("file://{}", out.join("report.html").display());
    let run = |extra: &[&str]| {
        let o = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--allow-file-access-from-files",
                "--virtual-time-budget=5000",
            ])
            .args(extra)
            .arg(&page)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let dom = run(&["--dump-dom"]);
    assert!(dom.contains("id=\"claims-ledger\""), "no ledger in\n{dom}");
    assert_eq!(dom.matches("class=\"claim-row").count(), claims.len());
    assert!(
        dom.contains("class=\"claim-row supported\""),
        "T-2's row shows its verdict"
    );
    assert!(dom.contains("incomplete"), "claims without results say so");
    // The two experiment plots and the ledger's forest plot.
    assert_eq!(attr(&dom, "data-plots"), Some("3"), "{dom}");
    assert_eq!(attr(&dom, "data-plots-loaded"), Some("3"), "{dom}");
    assert_eq!(attr(&dom, "data-plots-broken"), Some(""), "{dom}");
    let shot = out.join("shot.png");
    run(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1200,1600",
    ]);
    let bytes = std::fs::read(&shot).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "{} bytes",
        bytes.len()
    );
    if let Ok(keep) = std::env::var("TRANSFERLAB_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, Path::new(&keep)).unwrap();
    }
}
