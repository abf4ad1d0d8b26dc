//! Plots as standalone SVG files: lines with their 95% intervals as bands, a legend, round
//! ticks. No plotting crate: the suite's report and `transfer finetune`'s learning curves are a
//! few lines and bands, and one hand-written renderer keeps both identical and dependency-free.

use std::fmt::Write as _;

use crate::Plot;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// One plot as a standalone SVG: a line per series, its 95% interval as a band, a legend.
pub fn svg(p: &Plot) -> String {
    let (w, h) = (720.0, 420.0);
    let (left, right, top, bottom) = (70.0, 200.0, 40.0, 55.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let tx = |x: f64| if p.log_x { x.max(1e-12).log10() } else { x };
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for s in &p.series {
        for pt in &s.points {
            xs.push(tx(pt.x));
            ys.push(p.y_scale * pt.y.mean);
            if let Some((lo, hi)) = pt.y.ci95 {
                ys.push(p.y_scale * lo);
                ys.push(p.y_scale * hi);
            }
        }
    }
    if p.zero_line {
        ys.push(0.0);
    }
    let finite = |v: &Vec<f64>| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let (xs, ys) = (finite(&xs), finite(&ys));
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            (0.0, 1.0)
        } else if (hi - lo).abs() < 1e-12 {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo, hi)
        }
    };
    let (x0, x1) = range(&xs);
    let (y0, y1) = range(&ys);
    let pad_x = (x1 - x0) * 0.05;
    let pad_y = (y1 - y0) * 0.08;
    let (x0, x1, y0, y1) = (x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y);
    let sx = |x: f64| left + (tx(x) - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + (1.0 - (p.y_scale * y - y0) / (y1 - y0)) * ph;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n",
        left + pw / 2.0,
        esc(&p.title)
    );
    // Axes and ticks.
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>"
    );
    for v in nice_ticks(y0, y1) {
        let y = top + (1.0 - (v - y0) / (y1 - y0)) * ph;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + pw,
            left - 6.0,
            y + 4.0,
            tick(v)
        );
    }
    let xticks: Vec<f64> = if p.log_x {
        let (a, b) = (x0.floor() as i32, x1.ceil() as i32);
        (a..=b)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .filter(|v| {
                let t = v.log10();
                t >= x0 && t <= x1
            })
            .collect()
    } else {
        nice_ticks(x0, x1)
    };
    for v in xticks {
        let x = sx(v);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            top + ph,
            top + ph + 16.0,
            tick(v)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        left + pw / 2.0,
        h - 14.0,
        esc(&p.x_label),
        top + ph / 2.0,
        esc(&p.y_label)
    );
    if p.zero_line && y0 < 0.0 && y1 > 0.0 {
        let y = top + (1.0 - (0.0 - y0) / (y1 - y0)) * ph;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#000\" stroke-dasharray=\"4 3\"/>",
            left + pw
        );
    }
    for (i, ser) in p.series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let band: Vec<(f64, f64, f64)> = ser
            .points
            .iter()
            .filter_map(|pt| pt.y.ci95.map(|(lo, hi)| (pt.x, lo, hi)))
            .collect();
        if band.len() >= 2 {
            let mut pts: Vec<String> = band
                .iter()
                .map(|(x, _, hi)| format!("{:.1},{:.1}", sx(*x), sy(*hi)))
                .collect();
            pts.extend(
                band.iter()
                    .rev()
                    .map(|(x, lo, _)| format!("{:.1},{:.1}", sx(*x), sy(*lo))),
            );
            let _ = writeln!(
                s,
                "<polygon class=\"band\" points=\"{}\" fill=\"{c}\" fill-opacity=\"0.15\" stroke=\"none\"/>",
                pts.join(" ")
            );
        } else {
            for (x, lo, hi) in &band {
                let _ = writeln!(
                    s,
                    "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"{c}\" stroke-opacity=\"0.5\" stroke-width=\"3\"/>",
                    sx(*x),
                    sy(*lo),
                    sy(*hi)
                );
            }
        }
        let line: Vec<String> = ser
            .points
            .iter()
            .map(|pt| format!("{:.1},{:.1}", sx(pt.x), sy(pt.y.mean)))
            .collect();
        if line.len() >= 2 {
            let _ = writeln!(
                s,
                "<polyline class=\"series\" points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>",
                line.join(" ")
            );
        }
        for pt in &ser.points {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                sx(pt.x),
                sy(pt.y.mean)
            );
        }
        let ly = top + 14.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{c}\"/><text x=\"{}\" y=\"{ly:.1}\">{}</text>",
            left + pw + 12.0,
            ly - 6.0,
            left + pw + 32.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// About five round values (1, 2 or 5 times a power of ten apart) within `[lo, hi]`.
fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + 1e-9 * step {
        out.push(if v.abs() < 1e-9 * step { 0.0 } else { v });
        v += step;
    }
    out
}

fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || (a - a.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            nice_ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(nice_ticks(61.7, 102.0), vec![70.0, 80.0, 90.0, 100.0]);
    }
}
