//! What every experiment reports, in one shape: the contrasts that decide the chapter's claims, tables and the
//! data of its plots. Each experiment writes its [`ExperimentReport`] as `summary.json` (read by
//! the suite's report), `report.md` (for a person) and one CSV per table (for their own tools).
//!
//! ```
//! use transferlab_report::stats::summarize;
//! use transferlab_report::{Cell, Table};
//! let mut t = Table::new("accuracy", &["N", "accuracy (%)"]);
//! t.push(vec![Cell::int(10), Cell::pct(summarize(&[0.5, 0.6, 0.7])?)]);
//! assert!(t.markdown().contains("| 10 | 60.0 [35.2, 84.8] |"));
//! assert!(t.csv().starts_with("N,accuracy (%),accuracy (%) lo,accuracy (%) hi,accuracy (%) n\n10,"));
//! # Ok::<(), transferlab_report::Error>(())
//! ```

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::fs::{write_atomic, write_json};
use crate::stats::Summary;

/// A table cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Text.
    Text(String),
    /// A number.
    Num(f64),
    /// A summary over seeds, shown as `mean [lo, hi]` after multiplying by `scale`.
    Stat {
        /// The summary.
        summary: Summary,
        /// Display factor (100 for percent).
        scale: f64,
    },
}

impl Cell {
    /// Text.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// An integer.
    pub fn int(v: impl Into<i64>) -> Cell {
        Cell::Num(v.into() as f64)
    }

    /// A fraction shown in percent.
    pub fn pct(summary: Summary) -> Cell {
        Cell::Stat {
            summary,
            scale: 100.0,
        }
    }

    /// A summary shown as is.
    pub fn stat(summary: Summary) -> Cell {
        Cell::Stat {
            summary,
            scale: 1.0,
        }
    }

    /// The cell as text ([`format_summary`] for summaries).
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Num(v) => fmt_num(*v),
            Cell::Stat { summary, scale } => format_summary(summary, *scale),
        }
    }
}

/// A margin or other scaled number with as few decimals as it needs (`2`, `0.5`, `0.05`).
pub fn fmt_scaled(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// `mean [lo, hi]` of a fraction, in points (×100).
pub fn pts(s: &Summary) -> String {
    format_summary(s, 100.0)
}

/// `mean [lo, hi]` with one decimal after scaling; `mean (n = 1)` when the interval is undefined
/// (one seed), so that a lone value is never mistaken for a measured interval. Markdown, HTML
/// and the suite's ledger all use this format.
pub fn format_summary(s: &Summary, scale: f64) -> String {
    match s.ci95 {
        Some((lo, hi)) => format!(
            "{:.1} [{:.1}, {:.1}]",
            scale * s.mean,
            scale * lo,
            scale * hi
        ),
        None => format!("{:.1} (n = {})", scale * s.mean, s.n),
    }
}

/// A table with named columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Name (also the CSV file's stem).
    pub name: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table.
    pub fn new(name: &str, columns: &[&str]) -> Table {
        Table {
            name: name.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (it must have one cell per column).
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len(), "table {}", self.name);
        self.rows.push(row);
    }

    /// The table in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|", self.columns.join(" | "));
        for _ in &self.columns {
            out.push_str("---|");
        }
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(Cell::display).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }

    /// The table as CSV with raw numbers: a column holding summaries becomes four columns
    /// (mean, 95% interval bounds, number of seeds), unscaled.
    pub fn csv(&self) -> String {
        let is_stat: Vec<bool> = (0..self.columns.len())
            .map(|j| {
                self.rows
                    .iter()
                    .any(|r| matches!(r.get(j), Some(Cell::Stat { .. })))
            })
            .collect();
        let mut header = Vec::new();
        for (c, &stat) in self.columns.iter().zip(&is_stat) {
            header.push(csv_field(c));
            if stat {
                for suffix in ["lo", "hi", "n"] {
                    header.push(csv_field(&format!("{c} {suffix}")));
                }
            }
        }
        let mut out = header.join(",") + "\n";
        for row in &self.rows {
            let mut fields = Vec::new();
            for (cell, &stat) in row.iter().zip(&is_stat) {
                match cell {
                    Cell::Text(s) => fields.push(csv_field(s)),
                    Cell::Num(v) => fields.push(v.to_string()),
                    Cell::Stat { summary, .. } => {
                        fields.push(summary.mean.to_string());
                        let (lo, hi) = summary
                            .ci95
                            .map(|(l, h)| (l.to_string(), h.to_string()))
                            .unwrap_or_default();
                        fields.extend([lo, hi, summary.n.to_string()]);
                    }
                }
                if stat && !matches!(cell, Cell::Stat { .. }) {
                    fields.extend([String::new(), String::new(), String::new()]);
                }
            }
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        out
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A point of a curve: a summary over seeds at `x`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Position on the x axis.
    pub x: f64,
    /// Value over seeds.
    pub y: Summary,
}

/// One curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points, by increasing x.
    pub points: Vec<Point>,
}

/// The data of one plot (drawn as SVG by the suite's report, with interval bands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plot {
    /// File stem.
    pub id: String,
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Multiply y values by this for display (100 for percent).
    pub y_scale: f64,
    /// Draw a horizontal line at y = 0 (for differences).
    pub zero_line: bool,
    /// Curves.
    pub series: Vec<Series>,
    /// The reference result from the literature this plot's shape is compared with, if any.
    pub reference: Option<String>,
}

/// Everything one experiment reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// Experiment ID (`X1`, …).
    pub id: String,
    /// Title.
    pub title: String,
    /// Claim IDs it tests.
    pub claims: Vec<String>,
    /// What was run, in words (datasets, sizes, models).
    pub description: String,
    /// Profile name.
    pub profile: String,
    /// Seeds per configuration.
    pub seeds: u64,
    /// Device.
    pub device: String,
    /// Runs in the experiment, and how many of them came from the store.
    pub runs: usize,
    /// Runs loaded from the store instead of trained.
    pub runs_stored: usize,
    /// Wall time of this invocation in seconds.
    pub seconds: f64,
    /// Summed wall time of every run as recorded when it ran (the cost of the results).
    pub run_seconds: f64,
    /// The resolved config.
    #[serde(default)]
    pub config: serde_json::Value,
    /// The contrasts that decide its claims, declared before the runs and evaluated by the
    /// rules of [`crate::contrast`].
    #[serde(default)]
    pub contrasts: Vec<crate::contrast::ContrastResult>,
    /// Tables.
    pub tables: Vec<Table>,
    /// Plots.
    pub plots: Vec<Plot>,
    /// Remarks (choices made, what the profile leaves out).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl ExperimentReport {
    /// The report in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# {} {}\n\nClaims: {}. Profile `{}`, {} seeds, device {}; {} runs ({} from the store), {:.0} s now, {:.0} s of run time in all.\n\n{}\n\n",
            self.id,
            self.title,
            self.claims.join(", "),
            self.profile,
            self.seeds,
            self.device,
            self.runs,
            self.runs_stored,
            self.seconds,
            self.run_seconds,
            self.description
        );
        if !self.contrasts.is_empty() {
            out.push_str("## Contrasts\n\n");
            for c in &self.contrasts {
                let _ = writeln!(out, "- {}", c.line());
                for part in &c.components {
                    let _ = writeln!(out, "  - {}", part.line());
                }
            }
            out.push('\n');
        }
        for t in &self.tables {
            let _ = write!(out, "## {}\n\n{}\n", t.name, t.markdown());
        }
        if !self.notes.is_empty() {
            out.push_str("## Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }

    /// Writes `summary.json`, `report.md` and `<table>.csv` into `dir`, each atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("summary.json"), self)?;
        write_atomic(&dir.join("report.md"), self.markdown().as_bytes())?;
        for t in &self.tables {
            let stem: String = t
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            write_atomic(&dir.join(format!("{stem}.csv")), t.csv().as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;

    #[test]
    fn csv_expands_summaries_and_quotes_text() {
        let mut t = Table::new("t", &["name", "acc"]);
        t.push(vec![
            Cell::text("a,b"),
            Cell::pct(summarize(&[0.5]).unwrap()),
        ]);
        t.push(vec![Cell::text("c"), Cell::Num(2.0)]);
        let csv = t.csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "name,acc,acc lo,acc hi,acc n");
        assert_eq!(lines[1], "\"a,b\",0.5,,,1");
        assert_eq!(lines[2], "c,2,,,");
    }
}
