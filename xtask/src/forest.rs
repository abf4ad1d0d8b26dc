//! The ledger at a glance: a forest plot of every deciding contrast — its estimate with the
//! interval it was decided at, the zero line and its margin ±δ — one panel per unit (accuracy
//! points, Δm %, ρ, % of a range…), drawn with plotters' SVG backend (no system fonts needed).

use plotters::prelude::*;
use transferlab_report::contrast::{ContrastResult, Outcome};
use transferlab_report::ledger::LedgerRow;

/// One row of the plot.
#[derive(Debug, Clone)]
struct Row {
    label: String,
    mean: f64,
    lo: f64,
    hi: f64,
    delta: f64,
    outcome: Outcome,
}

fn colour(o: Outcome) -> RGBColor {
    match o {
        Outcome::Supported => RGBColor(30, 130, 60),
        Outcome::Contradicted => RGBColor(190, 40, 40),
        Outcome::NoEffectWorthHaving => RGBColor(50, 90, 190),
        Outcome::Inconclusive => RGBColor(200, 140, 0),
    }
}

fn rows_of(claim: &str, exp: &str, c: &ContrastResult, out: &mut Vec<(String, Row)>) {
    let k = &c.contrast;
    match (&c.estimate, c.components.is_empty()) {
        (Some(s), _) => {
            if let Some((lo, hi)) = s.ci95 {
                let label = format!("{claim} {exp} {}", k.id);
                out.push((
                    k.unit.name.clone(),
                    Row {
                        label,
                        mean: s.mean * k.unit.scale,
                        lo: lo * k.unit.scale,
                        hi: hi * k.unit.scale,
                        delta: k.margin.delta * k.unit.scale,
                        outcome: c.outcome,
                    },
                ));
            }
        }
        (None, false) => {
            for part in &c.components {
                let mut sub = Vec::new();
                rows_of(claim, exp, part, &mut sub);
                for (u, mut r) in sub {
                    // Components' ids often repeat their parent's; name each once.
                    let pid = &part.contrast.id;
                    r.label = if pid.starts_with(&k.id) {
                        format!("{claim} {exp} {pid}")
                    } else {
                        format!("{claim} {exp} {}/{pid}", k.id)
                    };
                    out.push((u, r));
                }
            }
        }
        (None, true) => {}
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// The forest plot of the ledger's deciding contrasts as an SVG document.
pub fn forest(rows: &[LedgerRow]) -> anyhow::Result<String> {
    let mut items: Vec<(String, Row)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        for (exp, c) in &r.contrasts {
            // A contrast feeding two claims is drawn once, under its first claim.
            if seen.insert((exp.clone(), c.contrast.id.clone())) {
                rows_of(&r.claim, exp, c, &mut items);
            }
        }
    }
    let mut units: Vec<String> = Vec::new();
    for (u, _) in &items {
        if !units.contains(u) {
            units.push(u.clone());
        }
    }
    let width = 1100u32;
    let row_h = 20u32;
    let panel_h = |n: usize| 80 + row_h * n.max(1) as u32;
    let heights: Vec<u32> = units
        .iter()
        .map(|u| panel_h(items.iter().filter(|(x, _)| x == u).count()))
        .collect();
    let legend_h = 28u32;
    let total = (legend_h + heights.iter().sum::<u32>()).max(120);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, total)).into_drawing_area();
        root.fill(&WHITE)?;
        if units.is_empty() {
            root.draw(&Text::new(
                "No deciding contrast has results yet.",
                (20, 50),
                ("sans-serif", 16).into_font(),
            ))?;
        }
        // The legend: what the colours say.
        let mut x = 20;
        for o in [
            Outcome::Supported,
            Outcome::Contradicted,
            Outcome::NoEffectWorthHaving,
            Outcome::Inconclusive,
        ] {
            root.draw(&Circle::new((x, 14), 5, colour(o).filled()))?;
            root.draw(&Text::new(
                format!("{o}"),
                (x + 10, 8),
                ("sans-serif", 13).into_font(),
            ))?;
            x += 30 + 8 * o.word().len() as i32;
        }
        root.draw(&Text::new(
            "(a composite's components are drawn one per row, each coloured by its own outcome)",
            (x + 10, 8),
            ("sans-serif", 12).into_font(),
        ))?;
        let mut top = legend_h;
        for (u, h) in units.iter().zip(&heights) {
            let area = root.clone().shrink((0, top), (width, *h));
            top += h;
            let panel: Vec<&Row> = items
                .iter()
                .filter(|(x, _)| x == u)
                .map(|(_, r)| r)
                .collect();
            let n = panel.len();
            let (mut lo, mut hi) = (0.0f64, 0.0f64);
            for r in &panel {
                lo = lo.min(r.lo).min(-r.delta);
                hi = hi.max(r.hi).max(r.delta);
            }
            let pad = 0.05 * (hi - lo).max(1e-9);
            let labels: Vec<String> = panel.iter().map(|r| short(&r.label, 58)).collect();
            let mut chart = ChartBuilder::on(&area)
                .caption(
                    format!("{u}: estimate, 95% interval, margin ±δ (dashed)"),
                    ("sans-serif", 15),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(430)
                .build_cartesian_2d((lo - pad)..(hi + pad), -0.5f64..(n as f64 - 0.5))?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n.max(1))
                .y_label_formatter(&|y| {
                    let i = y.round();
                    if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                        labels[labels.len() - 1 - i as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .x_desc(u.as_str())
                .label_style(("sans-serif", 12))
                .draw()?;
            // The zero line.
            chart.draw_series(LineSeries::new(
                [(0.0, -0.5), (0.0, n as f64 - 0.5)],
                BLACK.stroke_width(1),
            ))?;
            for (i, r) in panel.iter().enumerate() {
                let y = (n - 1 - i) as f64;
                let c = colour(r.outcome);
                // ±δ as short dashed ticks on the row.
                for d in [-r.delta, r.delta] {
                    chart.draw_series(DashedLineSeries::new(
                        [(d, y - 0.4), (d, y + 0.4)],
                        3,
                        2,
                        RGBColor(120, 120, 120).stroke_width(1),
                    ))?;
                }
                chart.draw_series(LineSeries::new([(r.lo, y), (r.hi, y)], c.stroke_width(2)))?;
                chart.draw_series(std::iter::once(Circle::new((r.mean, y), 4, c.filled())))?;
            }
        }
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use transferlab_report::contrast::{Contrast, Kind, Margin, Unit};
    use transferlab_report::ledger::{ClaimSpec, ExperimentContrasts, build};
    use transferlab_report::stats::Results;

    #[test]
    fn one_panel_per_unit_with_a_marker_per_contrast() {
        let mut r = Results::default();
        for (a, b, d) in [(0.6, 0.5, 1.0), (0.62, 0.5, 1.5), (0.61, 0.51, 0.5)] {
            r.push("a", a);
            r.push("b", b);
            r.push("dm", d);
            r.push("zero", 0.0);
        }
        let acc = Contrast::paired(
            "gain",
            &["T-1"],
            "a − b",
            Unit::accuracy_points(),
            Kind::Superiority,
            "a",
            "b",
            Margin::new(0.02, "t"),
        );
        let dm = Contrast::paired(
            "dm",
            &["M-1"],
            "Δm",
            Unit::new("Δm %", 1.0),
            Kind::Superiority,
            "dm",
            "zero",
            Margin::new(0.5, "t"),
        );
        let x1 = vec![acc.evaluate(&r).unwrap()];
        let m1 = vec![dm.evaluate(&r).unwrap()];
        let rows = build(
            &[
                ClaimSpec {
                    id: "T-1".into(),
                    experiments: vec!["X1".into()],
                    definition: None,
                },
                ClaimSpec {
                    id: "M-1".into(),
                    experiments: vec!["M1".into()],
                    definition: None,
                },
            ],
            &[
                ExperimentContrasts {
                    id: "X1",
                    contrasts: Some(&x1),
                },
                ExperimentContrasts {
                    id: "M1",
                    contrasts: Some(&m1),
                },
            ],
        )
        .unwrap();
        let svg = forest(&rows).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("accuracy points: estimate"), "{svg}");
        assert!(svg.contains("Δm %: estimate"), "{svg}");
        assert!(
            svg.contains("T-1 X1 gain") && svg.contains("M-1 M1 dm"),
            "{svg}"
        );
        // Two contrasts and the legend's four colours.
        assert_eq!(svg.matches("<circle").count(), 2 + 4, "{svg}");
        assert!(svg.contains("no effect worth having"), "the legend");
        // An empty ledger still gives a readable picture.
        assert!(forest(&[]).unwrap().contains("No deciding contrast"));
    }
}
