//! The suite's report: every experiment's `summary.json` (written by the experiment crates
//! through `transferlab_report`) turned into one static HTML page and the same in Markdown,
//! with a claims ledger up front, SVG plots with 95% interval bands, `results.jsonl` (every
//! stored run, one per line) and links to each experiment's CSV tables.
//!
//! xtask links no libtorch; it reads the summaries with the experiments' own report model
//! (`transferlab-report`, which has no libtorch either), so both sides share one format.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use transferlab_report::contrast::ContrastResult;
use transferlab_report::ledger::{self, ClaimSpec, ExperimentContrasts, LedgerRow};
pub use transferlab_report::{Cell, ExperimentReport as Experiment};

/// A claim of the ledger (`fixtures/claims.toml`).
#[derive(Debug, Clone, Deserialize)]
pub struct ClaimDef {
    /// ID.
    pub id: String,
    /// Statement.
    pub claim: String,
    /// Experiments testing it.
    pub experiments: Vec<String>,
    /// Literature's reference shape.
    pub reference: Option<String>,
    /// For a definition rather than a claim with an effect size: what the ledger says in
    /// place of a verdict (e.g. "definition; illustrated by P1–P5").
    #[serde(default)]
    pub definition: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ClaimsFile {
    claims: Vec<ClaimDef>,
}

/// What the environment section says.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Lines of `key: value`.
    pub items: Vec<(String, String)>,
}

/// Reads the ledger's claims.
pub fn load_claims(path: &Path) -> Result<Vec<ClaimDef>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: ClaimsFile = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    Ok(f.claims)
}

/// Every `<out>/<dir>/summary.json`, ordered X…, M…, P…, then by ID.
pub fn load_experiments(out: &Path) -> Result<Vec<Experiment>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(out)
        .with_context(|| format!("reading the results folder {}", out.display()))?;
    for e in entries.flatten() {
        let path = e.path().join("summary.json");
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let exp: Experiment = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an experiment summary", path.display()))?;
            found.push(exp);
        }
    }
    let rank = |id: &str| match id.chars().next() {
        Some('X') => 0,
        Some('M') => 1,
        Some('P') => 2,
        _ => 3,
    };
    found.sort_by(|a, b| {
        (rank(&a.id), a.id.len(), a.id.clone()).cmp(&(rank(&b.id), b.id.len(), b.id.clone()))
    });
    Ok(found)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The ledger: one row per claim, its verdict combined from the contrasts of the experiments
/// the claims file lists for it ([`transferlab_report::ledger`]). A listed experiment without
/// a summary makes its claims "incomplete"; one with a summary but no contrast for the claim is
/// an error naming both.
fn ledger_rows(
    claims: &[ClaimDef],
    exps: &[Experiment],
    missing: &[String],
) -> Result<Vec<LedgerRow>> {
    let specs: Vec<ClaimSpec> = claims
        .iter()
        .map(|c| ClaimSpec {
            id: c.id.clone(),
            experiments: c.experiments.clone(),
            definition: c.definition.clone(),
        })
        .collect();
    let mut brought: Vec<ExperimentContrasts<'_>> = exps
        .iter()
        .map(|e| ExperimentContrasts {
            id: &e.id,
            contrasts: Some(&e.contrasts),
        })
        .collect();
    for m in missing {
        if !brought.iter().any(|b| b.id == m) {
            brought.push(ExperimentContrasts {
                id: m,
                contrasts: None,
            });
        }
    }
    ledger::build(&specs, &brought).map_err(|e| {
        anyhow::anyhow!(
            "the claims ledger cannot be built: {e} (fixtures/claims.toml and the experiments' \
             declared contrasts must agree; a summary written before contrasts existed is \
             rebuilt by running its experiment again, which trains nothing)"
        )
    })
}

/// The ledger's words for a row: the definition's text, or the combined verdict.
fn ledger_word(c: &ClaimDef, row: &LedgerRow) -> String {
    match &c.definition {
        Some(d) => d.clone(),
        None => row.status.word().to_string(),
    }
}

/// One contrast as the ledger shows it: `X4 mnist/unrelated: label = 1.2 [0.3, 2.1] points (δ 2)
/// → supported`.
fn contrast_text(exp: &str, c: &ContrastResult) -> String {
    let k = &c.contrast;
    let mut s = format!(
        "{exp} {}: {} = {} {} (δ {}) → {}",
        k.id,
        k.label,
        c.shown(),
        k.unit.name,
        transferlab_report::fmt_scaled(k.margin.delta * k.unit.scale),
        c.outcome
    );
    if let Some(n) = c.seeds_for_power {
        let _ = write!(s, "; 80% power at δ: {n}");
    }
    if k.claims.len() > 1 {
        let _ = write!(s, "; feeds {}", k.claims.join(" and "));
    }
    if let Some(w) = &k.replication {
        let _ = write!(s, "; seeds do not replicate it: {w}");
    }
    s
}

/// What the report says of its rules, under the ledger.
const LEDGER_NOTE: &str = "Each claim's verdict combines the contrasts its experiments \
     declared before their runs (the rules of transferlab_report::contrast, one per kind: \
     superiority, no meaningful gain, equivalence, non-inferiority, trend, crossover, all of k, \
     any of k with Holm; 95% intervals, i.e. one-sided tests at 2.5%). The margins δ and their \
     justifications are in crates/experiments/src/margins.rs; they were written down after the \
     quick profile's 3-seed results had been seen (issue 29), so every verdict here is decided \
     by a margin set after results were visible. Beside an inconclusive contrast: the seeds \
     that would give 80% power at δ, with the spread at its upper 80% bound.";

/// What [`write`] did.
#[derive(Debug, Default)]
pub struct Written {
    /// The files written.
    pub files: Vec<PathBuf>,
    /// Experiments expected to have reported whose `summary.json` is not there (the report
    /// says so; their claims read "incomplete").
    pub missing: Vec<String>,
    /// Plots of an earlier report that no summary has any more, removed.
    pub stale_plots: Vec<PathBuf>,
}

/// Writes `report.md`, `report.html`, `plots/*.svg` and `results.jsonl` into `out` from the
/// summaries there. `expected` lists the experiments that should have a summary (those the
/// suite ran or that exist): each one without is named in the report and in
/// [`Written::missing`]. A missing or non-folder `out`, or one with no summary and no stored
/// run, is an error rather than an empty report.
pub fn write(
    out: &Path,
    claims: &[ClaimDef],
    env: &Environment,
    expected: &[&str],
) -> Result<Written> {
    match std::fs::metadata(out) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => anyhow::bail!(
            "{} is not a folder: --out names the folder the suite wrote its results into",
            out.display()
        ),
        Err(e) => anyhow::bail!(
            "no results at {}: {e}; run `cargo xtask suite --out {}` first, or pass the \
             folder that holds them",
            out.display(),
            out.display()
        ),
    }
    let exps = load_experiments(out)?;
    let has_runs = std::fs::read_dir(out.join("runs"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if exps.is_empty() && !has_runs {
        anyhow::bail!(
            "no experiment results in {} (no <experiment>/summary.json, no runs/): nothing to \
             report; run the suite into it first",
            out.display()
        );
    }
    let missing: Vec<String> = expected
        .iter()
        .filter(|id| !exps.iter().any(|e| e.id.eq_ignore_ascii_case(id)))
        .map(|id| id.to_string())
        .collect();
    // The ledger first: a claims file and summaries that disagree write nothing.
    let rows = ledger_rows(claims, &exps, &missing)?;
    let forest_svg = crate::forest::forest(&rows)?;
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir)
        .with_context(|| format!("creating {}", plots_dir.display()))?;
    let mut written = Written {
        missing,
        ..Written::default()
    };
    for e in &exps {
        for p in &e.plots {
            let path = plots_dir.join(format!("{}.svg", p.id));
            write_atomic(&path, transferlab_report::svg::svg(p).as_bytes())?;
            written.files.push(path);
        }
    }
    let forest_path = plots_dir.join("ledger-forest.svg");
    write_atomic(&forest_path, forest_svg.as_bytes())?;
    written.files.push(forest_path);
    // Plots no summary has any more (a deleted or renamed experiment) would be shown as current.
    for entry in std::fs::read_dir(&plots_dir)
        .with_context(|| format!("reading {}", plots_dir.display()))?
        .flatten()
    {
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "svg") && !written.files.contains(&p) {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            written.stale_plots.push(p);
        }
    }
    let missing = &written.missing;
    write_atomic(
        &out.join("report.md"),
        markdown(&exps, claims, &rows, env, missing).as_bytes(),
    )?;
    write_atomic(
        &out.join("report.html"),
        html(&exps, claims, &rows, env, missing).as_bytes(),
    )?;
    write_atomic(
        &out.join("results.jsonl"),
        results_jsonl(&out.join("runs"))?.as_bytes(),
    )?;
    written.files.extend([
        out.join("report.md"),
        out.join("report.html"),
        out.join("results.jsonl"),
    ]);
    Ok(written)
}

/// Every stored run as one JSON line (`{ "store": kind, ...record }`), sorted by path.
fn results_jsonl(runs: &Path) -> Result<String> {
    let mut paths = Vec::new();
    if let Ok(kinds) = std::fs::read_dir(runs) {
        for k in kinds.flatten() {
            if let Ok(files) = std::fs::read_dir(k.path()) {
                for f in files.flatten() {
                    let p = f.path();
                    if p.extension().is_some_and(|x| x == "json") {
                        paths.push(p);
                    }
                }
            }
        }
    }
    paths.sort();
    let mut out = String::new();
    for p in paths {
        let text = std::fs::read_to_string(&p)?;
        let mut v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a run record", p.display()))?;
        if let Some(obj) = v.as_object_mut() {
            let kind = p
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            obj.insert("store".into(), kind.into());
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    Ok(out)
}

use crate::util::write_atomic;

/// The sentence naming experiments whose results are missing, or nothing.
fn missing_note(missing: &[String]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "Results missing: {} (no summary.json in the output folder; a failed or interrupted \
         experiment, or a deleted summary). Their finished runs stay in the store: `cargo xtask \
         suite --only {}` trains only what is missing and writes the summaries again.",
        missing.join(", "),
        missing.join(",")
    ))
}

fn markdown(
    exps: &[Experiment],
    claims: &[ClaimDef],
    rows: &[LedgerRow],
    env: &Environment,
    missing: &[String],
) -> String {
    let mut s = String::from(
        "# transferlab: the chapter's claims, measured\n\n## Claims ledger\n\n![every deciding contrast with its 95% interval and margin](plots/ledger-forest.svg)\n\n| claim | statement | experiments | deciding contrasts: estimate [95% CI] | verdict |\n|---|---|---|---|---|\n",
    );
    for (c, row) in claims.iter().zip(rows) {
        let effects: Vec<String> = row
            .contrasts
            .iter()
            .map(|(e, r)| contrast_text(e, r))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | **{}** |",
            c.id,
            match &c.reference {
                Some(r) => format!("{}<br>*Literature:* {r}", c.claim),
                None => c.claim.clone(),
            },
            c.experiments.join(", "),
            if effects.is_empty() {
                "—".into()
            } else {
                effects.join("<br>")
            },
            ledger_word(c, row)
        );
    }
    if let Some(note) = missing_note(missing) {
        let _ = write!(s, "\n**{note}**\n");
    }
    let _ = write!(
        s,
        "\n{LEDGER_NOTE} Combining: {}.\n\n",
        ledger::COMBINE_RULE
    );
    for e in exps {
        let _ = write!(
            s,
            "## {} {}\n\nClaims {}; profile `{}`, {} seeds, device {}, {} runs ({} from the store), {:.0} s (run time {:.0} s).\n\n{}\n\n",
            e.id,
            e.title,
            e.claims.join(", "),
            e.profile,
            e.seeds,
            e.device,
            e.runs,
            e.runs_stored,
            e.seconds,
            e.run_seconds,
            e.description
        );
        for c in &e.contrasts {
            let _ = writeln!(
                s,
                "- **{}**: {}. Rule: {}",
                c.contrast.claims.join(", "),
                contrast_text(&e.id, c),
                c.contrast.rule()
            );
            for part in &c.components {
                let _ = writeln!(s, "  - {}", contrast_text(&e.id, part));
            }
        }
        for p in &e.plots {
            let _ = writeln!(s, "\n![{}](plots/{}.svg)", p.title, p.id);
            if let Some(r) = &p.reference {
                let _ = writeln!(s, "\n*Reference:* {r}");
            }
        }
        for t in &e.tables {
            let _ = writeln!(
                s,
                "\n### {}\n\n| {} |\n|{}",
                t.name,
                t.columns.join(" | "),
                "---|".repeat(t.columns.len())
            );
            for r in &t.rows {
                let cells: Vec<String> = r.iter().map(Cell::display).collect();
                let _ = writeln!(s, "| {} |", cells.join(" | "));
            }
        }
        for n in &e.notes {
            let _ = writeln!(s, "\n- {n}");
        }
        s.push('\n');
    }
    s.push_str("## Environment\n\n");
    for (k, v) in &env.items {
        let _ = writeln!(s, "- {k}: {v}");
    }
    s
}

fn html(
    exps: &[Experiment],
    claims: &[ClaimDef],
    rows: &[LedgerRow],
    env: &Environment,
    missing: &[String],
) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>transferlab report</title>\n<style>\nbody{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\ntable{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}th{background:#f4f4f4}\n.supported{background:#e3f6e3}.not-supported{background:#fbe0e0}.inconclusive{background:#fff6d6}.no-effect{background:#e6eefb}.missing{background:#fbe0e0}.mixed{background:#eee}\nimg{max-width:100%;border:1px solid #eee}.rule{color:#555;font-size:13px}\n</style></head><body>\n<h1>transferlab: the chapter's claims, measured</h1>\n<h2 id=\"ledger\">Claims ledger</h2>\n<figure><img class=\"plot\" id=\"ledger-forest\" src=\"plots/ledger-forest.svg\" alt=\"every deciding contrast with its 95% interval and margin\"><figcaption>Every deciding contrast: its estimate with the 95% interval, the zero line and its margin ±δ (dashed), one panel per unit.</figcaption></figure>\n<table id=\"claims-ledger\"><tr><th>claim</th><th>statement</th><th>experiments</th><th>deciding contrasts: estimate [95% CI]</th><th>verdict</th></tr>\n",
    );
    for (c, row) in claims.iter().zip(rows) {
        let verdict = ledger_word(c, row);
        let effects: Vec<String> = row
            .contrasts
            .iter()
            .map(|(e, r)| {
                format!(
                    "<a href=\"#{}\">{}</a>",
                    esc(&e.to_lowercase()),
                    esc(&contrast_text(e, r))
                )
            })
            .collect();
        let links: Vec<String> = c
            .experiments
            .iter()
            .map(|x| {
                if exps.iter().any(|e| &e.id == x) {
                    format!("<a href=\"#{}\">{}</a>", esc(&x.to_lowercase()), esc(x))
                } else {
                    esc(x)
                }
            })
            .collect();
        let _ = writeln!(
            s,
            "<tr class=\"claim-row {}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td></tr>",
            row.status.css_class(),
            esc(&c.id),
            match &c.reference {
                Some(r) => format!(
                    "{}<br><span class=\"rule\"><i>Literature:</i> {}</span>",
                    esc(&c.claim),
                    esc(r)
                ),
                None => esc(&c.claim),
            },
            links.join(", "),
            if effects.is_empty() {
                "—".into()
            } else {
                effects.join("<br>")
            },
            esc(&verdict)
        );
    }
    s.push_str("</table>\n");
    if let Some(note) = missing_note(missing) {
        let _ = writeln!(s, "<p class=\"missing-results\"><b>{}</b></p>", esc(&note));
    }
    let _ = writeln!(
        s,
        "<p class=\"rule\">{} Combining: {}.</p>",
        esc(LEDGER_NOTE),
        esc(ledger::COMBINE_RULE)
    );
    for e in exps {
        let _ = write!(
            s,
            "<section id=\"{}\"><h2>{} {}</h2>\n<p>Claims {}; profile <code>{}</code>, {} seeds, device {}, {} runs ({} from the store), {:.0} s (run time {:.0} s).</p>\n<p>{}</p>\n<ul>\n",
            esc(&e.id.to_lowercase()),
            esc(&e.id),
            esc(&e.title),
            esc(&e.claims.join(", ")),
            esc(&e.profile),
            e.seeds,
            esc(&e.device),
            e.runs,
            e.runs_stored,
            e.seconds,
            e.run_seconds,
            esc(&e.description)
        );
        for c in &e.contrasts {
            let _ = writeln!(
                s,
                "<li class=\"{}\"><b>{}: {}</b>. {}<br><span class=\"rule\">Rule: {}; δ: {}</span>",
                c.outcome.css_class(),
                esc(&c.contrast.claims.join(", ")),
                esc(c.outcome.word()),
                esc(&contrast_text(&e.id, c)),
                esc(&c.contrast.rule()),
                esc(&c.contrast.margin.why)
            );
            if !c.components.is_empty() {
                s.push_str("<ul>");
                for part in &c.components {
                    let _ = write!(
                        s,
                        "<li class=\"{}\">{}</li>",
                        part.outcome.css_class(),
                        esc(&contrast_text(&e.id, part))
                    );
                }
                s.push_str("</ul>");
            }
            s.push_str("</li>\n");
        }
        s.push_str("</ul>\n");
        for p in &e.plots {
            let _ = writeln!(
                s,
                "<figure><img class=\"plot\" src=\"plots/{}.svg\" alt=\"{}\"><figcaption>{}{}</figcaption></figure>",
                esc(&p.id),
                esc(&p.title),
                esc(&p.title),
                p.reference
                    .as_ref()
                    .map(|r| format!("<br><i>Reference:</i> {}", esc(r)))
                    .unwrap_or_default()
            );
        }
        for t in &e.tables {
            let _ = write!(
                s,
                "<h3>{}</h3><p><a href=\"{}/{}.csv\">CSV</a></p><table><tr>",
                esc(&t.name),
                esc(&e.id.to_lowercase()),
                esc(&csv_stem(&t.name))
            );
            for c in &t.columns {
                let _ = write!(s, "<th>{}</th>", esc(c));
            }
            s.push_str("</tr>\n");
            for r in &t.rows {
                s.push_str("<tr>");
                for c in r {
                    let _ = write!(s, "<td>{}</td>", esc(&c.display()));
                }
                s.push_str("</tr>\n");
            }
            s.push_str("</table>\n");
        }
        if !e.notes.is_empty() {
            s.push_str("<ul>");
            for n in &e.notes {
                let _ = write!(s, "<li>{}</li>", esc(n));
            }
            s.push_str("</ul>\n");
        }
        s.push_str("</section>\n");
    }
    s.push_str("<h2 id=\"environment\">Environment</h2><ul>\n");
    for (k, v) in &env.items {
        let _ = writeln!(s, "<li>{}: {}</li>", esc(k), esc(v));
    }
    s.push_str("</ul>\n<p><a href=\"results.jsonl\">results.jsonl</a>: every stored run, one JSON object per line.</p>\n");
    // Marks on <body> how many plots loaded (read by the headless-browser test).
    s.push_str("<script>\nwindow.addEventListener('load', function () {\n  var imgs = document.querySelectorAll('img.plot'), ok = 0, broken = [];\n  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) { ok++; } else { broken.push(i.getAttribute('src')); } });\n  document.body.setAttribute('data-plots', imgs.length);\n  document.body.setAttribute('data-plots-loaded', ok);\n  document.body.setAttribute('data-plots-broken', broken.join(' '));\n});\n</script>\n</body></html>\n");
    s
}

fn csv_stem(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use transferlab_report::stats::Summary;
    use transferlab_report::svg::svg;
    use transferlab_report::{Plot, Point, Series};

    /// A contrast for `claim` that comes out supported (gain 10 points, interval above 0).
    fn contrast_json(claim: &str) -> serde_json::Value {
        use transferlab_report::contrast::{Contrast, Kind, Margin, Unit};
        let mut r = transferlab_report::stats::Results::default();
        for (a, b) in [(0.6, 0.5), (0.61, 0.5), (0.62, 0.51)] {
            r.push("a", a);
            r.push("b", b);
        }
        let c = Contrast::paired(
            "gain",
            &[claim],
            "a − b",
            Unit::accuracy_points(),
            Kind::Superiority,
            "a",
            "b",
            Margin::new(0.02, "test"),
        );
        serde_json::to_value(c.evaluate(&r).unwrap()).unwrap()
    }

    fn write_summary_for(out: &Path, id: &str, claims_: &[&str], plot: &str) {
        let s = serde_json::json!({ "n": 3, "mean": 0.5, "std": 0.01, "ci95": [0.4, 0.6] });
        let contrasts: Vec<serde_json::Value> = claims_.iter().map(|c| contrast_json(c)).collect();
        let v = serde_json::json!({
            "id": id, "title": "t", "claims": claims_, "description": "d", "profile": "tiny",
            "seeds": 3, "device": "Cpu", "runs": 1, "runs_stored": 0, "seconds": 1.0,
            "run_seconds": 1.0, "config": {},
            "contrasts": contrasts,
            "tables": [],
            "plots": [{ "id": plot, "title": "p", "x_label": "N", "y_label": "y", "log_x": false,
                "y_scale": 1.0, "zero_line": false, "reference": null,
                "series": [{ "name": "a", "points": [{ "x": 1.0, "y": s }] }] }],
            "notes": []
        });
        let dir = out.join(id.to_lowercase());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("summary.json"), v.to_string()).unwrap();
    }

    fn write_summary(out: &Path, id: &str, claim: &str, plot: &str) {
        write_summary_for(out, id, &[claim], plot);
    }

    /// Claims for the tests: T-1 from X1, M-1 from M1.
    fn test_claims() -> Vec<ClaimDef> {
        let c = |id: &str, x: &str| ClaimDef {
            id: id.into(),
            claim: format!("claim {id}"),
            experiments: vec![x.into()],
            reference: None,
            definition: None,
        };
        vec![c("T-1", "X1"), c("M-1", "M1")]
    }

    fn claims() -> Vec<ClaimDef> {
        load_claims(&crate::util::project_root().join("fixtures/claims.toml")).unwrap()
    }

    #[test]
    fn a_deleted_summary_is_named_and_its_stale_plot_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        write_summary(out, "X1", "T-1", "x1-curve");
        write_summary(out, "M1", "M-1", "m1-curve");
        let env = Environment::default();
        let w = write(out, &test_claims(), &env, &["X1", "M1"]).unwrap();
        assert!(w.missing.is_empty() && w.stale_plots.is_empty());
        assert!(out.join("plots/m1-curve.svg").is_file());
        std::fs::remove_file(out.join("m1/summary.json")).unwrap();
        let w = write(out, &test_claims(), &env, &["X1", "M1"]).unwrap();
        assert_eq!(w.missing, ["M1"]);
        assert_eq!(w.stale_plots, [out.join("plots/m1-curve.svg")]);
        assert!(!out.join("plots/m1-curve.svg").exists());
        assert!(out.join("plots/x1-curve.svg").is_file());
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(md.contains("Results missing: M1"), "{md}");
        let row = md.lines().find(|l| l.starts_with("| M-1 |")).unwrap();
        assert!(row.contains("incomplete"), "{row}");
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("missing-results"), "the HTML says it too");
    }

    #[test]
    fn no_results_or_a_file_for_a_folder_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment::default();
        let absent = dir.path().join("nowhere");
        let msg = format!("{:#}", write(&absent, &claims(), &env, &[]).unwrap_err());
        assert!(
            msg.contains("no results at") && msg.contains("nowhere"),
            "{msg}"
        );
        assert!(!absent.exists(), "nothing created");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let msg = format!("{:#}", write(&file, &claims(), &env, &[]).unwrap_err());
        assert!(
            msg.contains("a-file") && msg.contains("not a folder"),
            "{msg}"
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let msg = format!("{:#}", write(&empty, &claims(), &env, &[]).unwrap_err());
        assert!(msg.contains("no experiment results in"), "{msg}");
        assert_eq!(
            std::fs::read_dir(&empty).unwrap().count(),
            0,
            "no empty report"
        );
    }

    #[test]
    fn a_report_that_cannot_be_written_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        write_summary(out, "X1", "T-1", "x1-curve");
        crate::util::faults::fail_writes_after(Some(1000));
        let err = write(out, &test_claims(), &Environment::default(), &["X1"]).unwrap_err();
        crate::util::faults::fail_writes_after(None);
        let msg = format!("{err:#}");
        assert!(msg.contains("No space left on device"), "{msg}");
        let mut left = Vec::new();
        for d in [out.to_path_buf(), out.join("plots")] {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.contains("partial") || n.contains("tmp") {
                    left.push(n);
                }
            }
        }
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    fn summary(mean: f64, ci: Option<(f64, f64)>) -> Summary {
        Summary {
            n: 3,
            mean,
            std: None,
            ci95: ci,
            range: None,
        }
    }

    #[test]
    fn a_plot_has_a_band_and_a_line_per_series_and_a_legend() {
        let p = Plot {
            id: "t".into(),
            title: "A <title>".into(),
            x_label: "N".into(),
            y_label: "acc".into(),
            log_x: true,
            y_scale: 100.0,
            zero_line: true,
            series: vec![
                Series {
                    name: "a".into(),
                    points: vec![
                        Point {
                            x: 1.0,
                            y: summary(0.5, Some((0.4, 0.6))),
                        },
                        Point {
                            x: 100.0,
                            y: summary(0.9, Some((0.85, 0.95))),
                        },
                    ],
                },
                Series {
                    name: "b".into(),
                    points: vec![Point {
                        x: 10.0,
                        y: summary(-0.1, None),
                    }],
                },
            ],
            reference: None,
        };
        let svg = svg(&p);
        assert_eq!(svg.matches("class=\"band\"").count(), 1);
        assert_eq!(svg.matches("class=\"series\"").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("A &lt;title&gt;"));
        assert!(svg.contains("stroke-dasharray"), "zero line");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn the_ledger_reads_contrasts_and_says_incomplete_or_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        write_summary(out, "X1", "T-1", "x1-curve");
        let env = Environment::default();
        // M1 expected but absent: M-1 is incomplete, T-1 supported.
        let w = write(out, &test_claims(), &env, &["X1", "M1"]).unwrap();
        assert_eq!(w.missing, ["M1"]);
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        let row = |id: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| {id} |")))
                .unwrap()
                .to_string()
        };
        assert!(row("T-1").ends_with("**supported** |"), "{}", row("T-1"));
        assert!(
            row("T-1").contains("X1 gain: a − b = 10.7"),
            "{}",
            row("T-1")
        );
        assert!(row("M-1").ends_with("**incomplete** |"), "{}", row("M-1"));
        // M1 present but deciding a claim the file does not list it under: an error.
        write_summary(out, "M1", "T-1", "m1-curve");
        let msg = format!(
            "{:#}",
            write(out, &test_claims(), &env, &["X1", "M1"]).unwrap_err()
        );
        assert!(msg.contains("does not list M1 under T-1"), "{msg}");
        // M1 listed under M-1 but emitting no contrast for it: an error naming both.
        write_summary_for(out, "M1", &[], "m1-curve");
        let msg = format!(
            "{:#}",
            write(out, &test_claims(), &env, &["X1", "M1"]).unwrap_err()
        );
        assert!(msg.contains("M1 emits no contrast for M-1"), "{msg}");
        // A definition has no verdict.
        let mut claims = test_claims();
        claims[1].definition = Some("definition; illustrated by M1".into());
        write(out, &claims, &env, &["X1", "M1"]).unwrap();
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(md.contains("**definition; illustrated by M1**"), "{md}");
    }
}
