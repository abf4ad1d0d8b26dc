//! P4 *lines and parity* (Shalev-Shwartz, Shamir & Shammah 2017, "Failures of gradient-based
//! deep learning", section on decomposition vs end-to-end): an example is `k` small images,
//! each showing one random straight line; its label is the **parity of the number of steep
//! lines** among the `k`. The per-image "is it steep" bits are the sub-task supervision a
//! decomposed (staged) learner gets.
//!
//! Generation, all from the seed ([`core_tensor::data::uniform`], no libtorch generator):
//!
//! - each image is `size x size`, pixel `(i, j)` centred at `(j + 0.5, i + 0.5)`;
//! - a line passes through a point drawn uniformly from the central half of the image
//!   (`[size/4, 3 size/4]` on both axes) with an angle `θ` from the horizontal;
//! - steep or not is a fair coin; a steep line has `|θ|` uniform in `(45° + margin, 90°]`, a
//!   flat one in `[0°, 45° − margin)`, and the sign of `θ` (rising or falling) is another fair
//!   coin. The `margin` keeps lines that a rasteriser cannot tell apart out of the data;
//! - the line is drawn anti-aliased, one pixel wide: intensity `max(0, 1 − d)`, `d` the distance
//!   of the pixel centre to the line, on a black background.
//!
//! So `steep = |sin θ| > |cos θ|` and `label = (Σ steep) mod 2`; every label is balanced.

use core_tensor::data::{splitmix64, uniform};
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Parameters of the lines-and-parity task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinesConfig {
    /// Images per example (1–4 in P4).
    pub k: usize,
    /// Side of each image, pixels.
    pub size: i64,
    /// Angles within this many degrees of 45° are never drawn.
    pub margin_degrees: f64,
}

impl LinesConfig {
    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::InvalidArgument("lines.k must be >= 1".into()));
        }
        if self.size < 8 {
            return Err(Error::InvalidArgument("lines.size must be >= 8".into()));
        }
        if !(0.0..45.0).contains(&self.margin_degrees) {
            return Err(Error::InvalidArgument(
                "lines.margin_degrees must be in [0, 45)".into(),
            ));
        }
        Ok(())
    }
}

/// A generated lines-and-parity set.
#[derive(Debug)]
pub struct LinesParity {
    /// Images, float in `[0, 1]`, `[N, k, size, size]` (the `k` images as channels).
    pub images: Tensor,
    /// Per-image sub-task labels, `[N, k]` int64: 1 when the line is steep.
    pub steep: Tensor,
    /// The task's label, `[N]` int64: the parity of the number of steep lines.
    pub labels: Tensor,
    /// Each line's angle from the horizontal, radians, `[N, k]` (for checks and plots).
    pub angles: Tensor,
}

/// Generates `n` examples from `seed` (on the CPU; move them with `to_device`).
pub fn generate(cfg: &LinesConfig, n: usize, seed: u64) -> Result<LinesParity> {
    cfg.validate()?;
    let (n, k, s) = (n as i64, cfg.k as i64, cfg.size);
    let m = n * k;
    let u = uniform(5 * m, splitmix64(seed ^ 0x4C49_4E45), Device::Cpu).view([5, m]);
    let steep = u.get(0).lt(0.5);
    let margin = cfg.margin_degrees.to_radians();
    let quarter = std::f64::consts::FRAC_PI_4;
    let width = quarter - margin;
    // |θ| in (45° + margin, 90°] for steep lines, [0, 45° − margin) for flat ones.
    let flat_angle = u.get(1) * width;
    let steep_angle = (u.get(1) * -1.0 + 1.0) * width + (quarter + margin);
    let abs_angle = steep_angle.where_self(&steep, &flat_angle);
    let sign = u.get(2).lt(0.5).to_kind(Kind::Float) * 2.0 - 1.0;
    let theta = abs_angle * sign;
    let px = (u.get(3) * 0.5 + 0.25) * s as f64;
    let py = (u.get(4) * 0.5 + 0.25) * s as f64;
    // Distance from pixel centres to the line through (px, py) with direction (cos, sin).
    let c = (Tensor::arange(s, (Kind::Float, Device::Cpu)) + 0.5).view([1, 1, s]);
    let r = c.view([1, s, 1]);
    let (sin, cos) = (theta.sin().view([m, 1, 1]), theta.cos().view([m, 1, 1]));
    let d = ((c - px.view([m, 1, 1])) * sin - (r - py.view([m, 1, 1])) * cos).abs();
    let images = (d * -1.0 + 1.0).clamp_min(0.0).view([n, k, s, s]);
    let steep = steep.to_kind(Kind::Int64).view([n, k]);
    let labels = steep
        .sum_dim_intlist([1].as_slice(), false, Kind::Int64)
        .remainder(2);
    Ok(LinesParity {
        images,
        steep,
        labels,
        angles: theta.view([n, k]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(k: usize) -> LinesConfig {
        LinesConfig {
            k,
            size: 28,
            margin_degrees: 5.0,
        }
    }

    /// Steep from the image alone: the intensity-weighted spread of the line's pixels along y
    /// exceeds that along x (for a segment, var_y = tan²θ · var_x).
    fn looks_steep(img: &Tensor) -> bool {
        let s = img.size()[0];
        let w = img.sum(Kind::Double).double_value(&[]);
        let idx = Tensor::arange(s, (Kind::Double, Device::Cpu));
        let moment = |dim: i64| {
            let p =
                img.to_kind(Kind::Double)
                    .sum_dim_intlist([dim].as_slice(), false, Kind::Double);
            let mean = (&p * &idx).sum(Kind::Double).double_value(&[]) / w;
            (&p * (&idx - mean).square())
                .sum(Kind::Double)
                .double_value(&[])
                / w
        };
        // Summing over rows (dim 0) gives the profile along x.
        moment(1) > moment(0)
    }

    #[test]
    fn labels_agree_with_the_pictures() {
        let set = generate(&cfg(3), 200, 11).unwrap();
        assert_eq!(set.images.size(), [200, 3, 28, 28]);
        let steep: Vec<i64> = Vec::try_from(set.steep.view([-1])).unwrap();
        let labels: Vec<i64> = Vec::try_from(&set.labels).unwrap();
        let flat = set.images.view([600, 28, 28]);
        for (i, &st) in steep.iter().enumerate() {
            assert_eq!(looks_steep(&flat.get(i as i64)), st == 1, "image {i}");
        }
        for (e, &label) in labels.iter().enumerate() {
            let count: i64 = steep[3 * e..3 * e + 3].iter().sum();
            assert_eq!(label, count % 2);
        }
        // Balanced enough: between 35% and 65% steep, and odd parity likewise.
        let frac = steep.iter().sum::<i64>() as f64 / 600.0;
        assert!((0.35..0.65).contains(&frac), "{frac}");
        let odd = labels.iter().sum::<i64>() as f64 / 200.0;
        assert!((0.35..0.65).contains(&odd), "{odd}");
    }

    #[test]
    fn a_line_is_one_pixel_wide_and_passes_through_the_image() {
        let set = generate(&cfg(1), 50, 2).unwrap();
        let img = set.images.get(0).get(0);
        // Every row (steep) or column (flat) crossing holds about one pixel of ink.
        let ink = img.sum(Kind::Float).double_value(&[]);
        assert!(ink > 10.0 && ink < 28.0 * 1.5, "ink {ink}");
        assert!(img.max().double_value(&[]) > 0.5);
        let angle: Vec<f32> = Vec::try_from(set.angles.view([-1])).unwrap();
        assert!(
            angle
                .iter()
                .all(|a| (a.abs().to_degrees() - 45.0).abs() >= 5.0 - 1e-3)
        );
    }

    #[test]
    fn the_seed_alone_decides() {
        let a = generate(&cfg(2), 20, 5).unwrap();
        tch::manual_seed(99);
        let b = generate(&cfg(2), 20, 5).unwrap();
        assert!(a.images.equal(&b.images) && a.labels.equal(&b.labels));
        let c = generate(&cfg(2), 20, 6).unwrap();
        assert!(!a.images.equal(&c.images));
        assert!(generate(&LinesConfig { k: 0, ..cfg(1) }, 1, 0).is_err());
    }
}
