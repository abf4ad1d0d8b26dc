//! P3 *bone age in two worlds*: hand-like images whose bones' lengths and widths, and a
//! texture, depend on an age variable with individual variation, generated from a seed.
//!
//! **The picture.** A `size x size` image on a faintly noisy black background holds `bones`
//! vertical bars ("fingers") standing on a common base line `4` pixels above the bottom edge,
//! their centres evenly spaced at `x_b = size · (b + 1) / (bones + 1)`. Bar `b` has
//!
//! - length `L_b = f_b · (size − 8) · (0.4 + 0.6 m_L) · (1 + length_noise · ε_b)` pixels, with
//!   `f_b` from 0.55 (outer bones) to 0.8 (the middle one), the length maturity `m_L ∈ [0, 1]`
//!   and an individual variation `ε_b` uniform in `[−1, 1]`;
//! - width `W_b = (1.5 + 3 m_W) · (1 + 0.05 ε'_b)` pixels, `m_W ∈ [0, 1]` the width maturity;
//! - a striped texture along its length, intensity `0.75 + 0.25 cos(2π y / P + φ)` with period
//!   `P = 3 + 4 (1 − m_W)` pixels (denser stripes when older) and a random phase `φ`.
//!
//! Edges are anti-aliased (each pixel is weighted by the fraction of it the bar covers), so
//! lengths and widths are visible to sub-pixel precision. Background noise is uniform in
//! `[0, noise]`.
//!
//! **The two worlds** (age `a ∈ [0, 1]`; multiply by 18 for "years" if you like):
//!
//! - [`World::LengthsSuffice`]: `a = m_L` uniform; `m_W` is drawn independently of `a`, so
//!   widths and texture are nuisance and the lengths carry all the information about age. A
//!   pipeline that measures lengths and regresses age on them has the right design.
//! - [`World::LengthsPartial`]: `m_L` and `m_W` independent uniform and `a = (m_L + m_W) / 2`:
//!   half of the age is only in widths and texture, which a length measurement discards. The
//!   best possible prediction from exact lengths alone has a mean absolute error of
//!   `E|m_W/2 − 1/4| = 1/8`; the image determines `a` up to the individual variation.
//!
//! [`measure_lengths`] is the hand-designed measurement stage (pipeline (i)); the true
//! [`BoneAgeSet::lengths`] are the cheap sub-task labels of a learned measurement stage
//! (pipeline (ii)).

use core_tensor::data::{splitmix64, uniform};
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Where the information about age is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum World {
    /// Age is the length maturity; widths and texture are independent of it.
    LengthsSuffice,
    /// Age is the mean of the length and the width/texture maturities.
    LengthsPartial,
}

/// Parameters of the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoneAgeConfig {
    /// Image side, pixels (at least 32).
    pub size: i64,
    /// Number of bones (1–8).
    pub bones: usize,
    /// The world.
    pub world: World,
    /// Relative individual variation of each length (e.g. 0.03).
    pub length_noise: f64,
    /// Largest background noise value (e.g. 0.05; must stay below 0.25 for
    /// [`measure_lengths`]).
    pub noise: f64,
}

impl BoneAgeConfig {
    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, why: &str| Err(Error::InvalidArgument(format!("bone_age.{f}: {why}")));
        if self.size < 32 {
            return bad("size", "must be >= 32");
        }
        if !(1..=8).contains(&self.bones) {
            return bad("bones", "must be in 1..=8");
        }
        if !(0.0..0.2).contains(&self.length_noise) {
            return bad("length_noise", "must be in [0, 0.2)");
        }
        if !(0.0..0.25).contains(&self.noise) {
            return bad("noise", "must be in [0, 0.25)");
        }
        Ok(())
    }

    /// `f_b`: the adult length of bone `b` as a fraction of `size − 8`.
    pub fn length_fraction(&self, b: usize) -> f64 {
        if self.bones == 1 {
            return 0.8;
        }
        let t = 2.0 * b as f64 / (self.bones - 1) as f64 - 1.0; // −1 … 1
        0.55 + 0.25 * (1.0 - t.abs())
    }

    /// The centre column of bone `b`, pixels.
    pub fn centre(&self, b: usize) -> f64 {
        self.size as f64 * (b + 1) as f64 / (self.bones + 1) as f64
    }

    /// The base line (bottom of every bone), pixels from the top.
    pub fn base(&self) -> f64 {
        self.size as f64 - 4.0
    }
}

/// A generated bone-age set.
#[derive(Debug)]
pub struct BoneAgeSet {
    /// Images, float in `[0, 1]`, `[N, 1, size, size]`.
    pub images: Tensor,
    /// Age in `[0, 1]`, `[N]` float (the regression target).
    pub age: Tensor,
    /// True bone lengths in pixels, `[N, bones]` (the measurement stage's labels).
    pub lengths: Tensor,
    /// True bone widths in pixels, `[N, bones]`.
    pub widths: Tensor,
    /// Stripe period in pixels, `[N]`.
    pub period: Tensor,
    /// Length maturity `m_L`, `[N]`.
    pub length_maturity: Tensor,
    /// Width/texture maturity `m_W`, `[N]`.
    pub width_maturity: Tensor,
}

/// Fraction of pixel `[k, k + 1)` (for `k` in `0..len`, a `[1, len]` row) covered by
/// `[lo, hi]` (`[m, 1]` columns).
fn coverage(lo: &Tensor, hi: &Tensor, len: i64) -> Tensor {
    let start = Tensor::arange(len, (Kind::Float, Device::Cpu)).view([1, len]);
    let end = &start + 1.0;
    (end.minimum(hi) - start.maximum(lo)).clamp(0.0, 1.0)
}

/// Generates `n` images from `seed` (on the CPU).
pub fn generate(cfg: &BoneAgeConfig, n: usize, seed: u64) -> Result<BoneAgeSet> {
    cfg.validate()?;
    let (n, b, s) = (n as i64, cfg.bones as i64, cfg.size);
    let draws = 4 + 2 * b;
    let u = uniform(draws * n, splitmix64(seed ^ 0xB0DE_A6E5), Device::Cpu).view([draws, n]);
    let (m_l, m_w) = (u.get(0), u.get(1));
    let age = match cfg.world {
        World::LengthsSuffice => m_l.shallow_clone(),
        World::LengthsPartial => (&m_l + &m_w) / 2.0,
    };
    let phase = u.get(2) * (2.0 * std::f64::consts::PI);
    let period = (m_w.ones_like() - &m_w) * 4.0 + 3.0;
    let eps_len = u.narrow(0, 4, b).transpose(0, 1) * 2.0 - 1.0; // [N, B]
    let eps_wid = u.narrow(0, 4 + b, b).transpose(0, 1) * 2.0 - 1.0;
    let fractions: Vec<f32> = (0..cfg.bones)
        .map(|i| (cfg.length_fraction(i) * (s - 8) as f64) as f32)
        .collect();
    let adult = Tensor::from_slice(&fractions).view([1, b]);
    let lengths = adult * (&m_l * 0.6 + 0.4).view([n, 1]) * (eps_len * cfg.length_noise + 1.0);
    let widths = (&m_w * 3.0 + 1.5).view([n, 1]) * (eps_wid * 0.05 + 1.0);

    let rows = (Tensor::arange(s, (Kind::Float, Device::Cpu)) + 0.5).view([1, s, 1]);
    let texture = ((rows * (2.0 * std::f64::consts::PI) / period.view([n, 1, 1])
        + phase.view([n, 1, 1]))
    .cos()
        * 0.25
        + 0.75)
        .expand([n, s, s], false);
    let base = cfg.base();
    let mut bones = Tensor::zeros([n, s, s], (Kind::Float, Device::Cpu));
    for i in 0..b {
        let (l, w) = (
            lengths.select(1, i).view([n, 1]),
            widths.select(1, i).view([n, 1]),
        );
        let c = cfg.centre(i as usize);
        let cx = coverage(&(&w * -0.5 + c), &(&w * 0.5 + c), s).view([n, 1, s]);
        let cy = coverage(&(&l * -1.0 + base), &l.full_like(base), s).view([n, s, 1]);
        bones = bones.maximum(&(cx * cy));
    }
    let noise =
        uniform(n * s * s, splitmix64(seed ^ 0x0015_E000), Device::Cpu).view([n, s, s]) * cfg.noise;
    let images = (bones * texture + noise).clamp(0.0, 1.0).view([n, 1, s, s]);
    Ok(BoneAgeSet {
        images,
        age,
        lengths,
        widths,
        period,
        length_maturity: m_l,
        width_maturity: m_w,
    })
}

/// The hand-designed measurement: for each bone, the number of rows in which the brightest
/// pixel of the bone's column band (half the spacing either side of its centre) exceeds
/// 0.35, i.e. above the background noise and below the faintest texture (0.5). `[N, bones]`
/// float, pixels. It is exact to within one pixel (the partly covered top row) and blind, by
/// design, to widths and texture.
pub fn measure_lengths(images: &Tensor, cfg: &BoneAgeConfig) -> Result<Tensor> {
    cfg.validate()?;
    let size = images.size();
    if size.len() != 4 || size[1] != 1 || size[2] != cfg.size || size[3] != cfg.size {
        return Err(Error::InvalidArgument(format!(
            "bone-age images must be [N, 1, {s}, {s}], got {size:?}",
            s = cfg.size
        )));
    }
    let half = (cfg.size as f64 / (cfg.bones + 1) as f64 / 2.0).floor() as i64;
    let per_bone: Vec<Tensor> = (0..cfg.bones)
        .map(|b| {
            let c = cfg.centre(b).floor() as i64;
            let lo = (c - half).max(0);
            let hi = (c + half).min(cfg.size);
            let band = images.narrow(3, lo, hi - lo);
            let profile = band.amax([3].as_slice(), false).squeeze_dim(1); // [N, size]
            profile.gt(0.35).to_kind(Kind::Float).sum_dim_intlist(
                [1].as_slice(),
                false,
                Kind::Float,
            )
        })
        .collect();
    Ok(Tensor::stack(&per_bone, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(world: World) -> BoneAgeConfig {
        BoneAgeConfig {
            size: 64,
            bones: 5,
            world,
            length_noise: 0.03,
            noise: 0.05,
        }
    }

    #[test]
    fn the_measurement_reads_the_true_lengths_off_the_image() {
        let c = cfg(World::LengthsSuffice);
        let set = generate(&c, 64, 1).unwrap();
        assert_eq!(set.images.size(), [64, 1, 64, 64]);
        let measured = measure_lengths(&set.images, &c).unwrap();
        let err = (&measured - &set.lengths).abs().max().double_value(&[]);
        assert!(err <= 1.0 + 1e-4, "max length error {err} px");
    }

    #[test]
    fn age_follows_the_world() {
        let n = 256;
        // World 1: age is read back from the lengths alone (up to the individual variation).
        let c = cfg(World::LengthsSuffice);
        let set = generate(&c, n, 2).unwrap();
        let adult: Vec<f32> = (0..5)
            .map(|b| (c.length_fraction(b) * 56.0) as f32)
            .collect();
        let rel = (&set.lengths / Tensor::from_slice(&adult).view([1, 5])).mean_dim(
            [1].as_slice(),
            false,
            Kind::Float,
        );
        let from_lengths = (rel - 0.4) / 0.6;
        let err = (&from_lengths - &set.age).abs().max().double_value(&[]);
        assert!(err < 0.03 / 0.6 + 1e-4, "world 1: {err}");
        // ... and the widths say nothing about it.
        let corr = |a: &Tensor, b: &Tensor| {
            let (a, b) = (a - a.mean(Kind::Float), b - b.mean(Kind::Float));
            ((&a * &b).sum(Kind::Float) / (a.norm() * b.norm())).double_value(&[])
        };
        let width = set.widths.mean_dim([1].as_slice(), false, Kind::Float);
        assert!(corr(&width, &set.age).abs() < 0.2);
        // World 2: age is the mean of what the lengths and what the widths say.
        let c = cfg(World::LengthsPartial);
        let set = generate(&c, n, 2).unwrap();
        let m_w = (set.widths.mean_dim([1].as_slice(), false, Kind::Float) - 1.5) / 3.0;
        let rel = (&set.lengths / Tensor::from_slice(&adult).view([1, 5])).mean_dim(
            [1].as_slice(),
            false,
            Kind::Float,
        );
        let m_l = (rel - 0.4) / 0.6;
        let err = ((m_l + m_w) / 2.0 - &set.age).abs().max().double_value(&[]);
        assert!(err < 0.065, "world 2: {err}"); // bound: (0.05 + 0.075) / 2
        let width = set.widths.mean_dim([1].as_slice(), false, Kind::Float);
        assert!(corr(&width, &set.age) > 0.5);
        // Stripes are denser in older hands.
        assert!(corr(&set.period, &set.age) < -0.5);
    }

    #[test]
    fn a_hand_checked_bone() {
        // One bone of a known image: its column band is dark above the bone and bright along it.
        let c = cfg(World::LengthsSuffice);
        let set = generate(&c, 1, 7).unwrap();
        let l = set.lengths.double_value(&[0, 2]);
        let img = set.images.get(0).get(0);
        let col = c.centre(2).floor() as i64;
        let base = c.base() as i64;
        assert!(img.double_value(&[base - 1, col]) >= 0.5 - 1e-6);
        assert!(img.double_value(&[base - (l.floor() as i64) + 1, col]) >= 0.5 - 1e-6);
        assert!(img.double_value(&[base - (l.ceil() as i64) - 1, col]) <= 0.05 + 1e-6);
        assert!(img.double_value(&[base + 1, col]) <= 0.05 + 1e-6);
    }

    #[test]
    fn the_seed_alone_decides() {
        let c = cfg(World::LengthsPartial);
        let a = generate(&c, 8, 3).unwrap();
        tch::manual_seed(1);
        let b = generate(&c, 8, 3).unwrap();
        assert!(a.images.equal(&b.images) && a.age.equal(&b.age));
        assert!(!a.images.equal(&generate(&c, 8, 4).unwrap().images));
        let err = generate(&BoneAgeConfig { noise: 0.3, ..c }, 1, 0).unwrap_err();
        assert!(err.to_string().contains("bone_age.noise"));
    }
}
