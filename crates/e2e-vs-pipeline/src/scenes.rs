//! P1 cluttered scenes: one object (an MNIST digit, an ORL face) pasted at a random position
//! and scale into a larger canvas strewn with clutter, with its box; the data of
//! detect-then-identify.
//!
//! For scene `i`, from the seed alone ([`core_tensor::data::uniform`]):
//!
//! 1. the canvas (`height x width`) is filled with `background`;
//! 2. `clutter` distractors are pasted ([`Blend`] of the config): each is a
//!    `clutter_size x clutter_size` patch cut at a random whole-pixel position out of a random
//!    image of the pool (any image, possibly the object's own), placed at a random whole-pixel
//!    position of the canvas: fragments with the object's own strokes or textures but no
//!    identity (cluttered MNIST of Mnih et al. 2014);
//! 3. the object `pool[which[i]]` (`h x w`) is resized by a scale uniform in `scale` to
//!    `(h · s) x (w · s)` and pasted on top with its top-left corner at a random whole-pixel
//!    position where it fits entirely. Its box is that rectangle; its label is
//!    `pool_labels[which[i]]`.
//!
//! With scale 1 the object's pixels are copied exactly; otherwise they are bilinearly resized.
//! With [`Blend::Max`] (strokes on black) the clutter can touch the object's box but never
//! hides its strokes; with [`Blend::Replace`] (photographs) the object hides what is under it.

use core_tensor::data::{splitmix64, uniform};
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::localise::{Blend, full_boxes, paste};

/// Parameters of the scenes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneConfig {
    /// Canvas height, pixels.
    pub height: i64,
    /// Canvas width, pixels.
    pub width: i64,
    /// Range `[min, max]` of the object's scale.
    pub scale: (f64, f64),
    /// Distractor patches per scene.
    pub clutter: usize,
    /// Side of a distractor patch, pixels (at most the pool images' sides).
    pub clutter_size: i64,
    /// How clutter and object combine with the canvas.
    pub blend: Blend,
    /// The canvas's fill value.
    pub background: f64,
}

impl SceneConfig {
    /// Checks the fields against the pool images' size `h x w`, naming the bad one.
    pub fn validate(&self, h: i64, w: i64) -> Result<()> {
        let bad = |f: &str, why: String| Err(Error::InvalidArgument(format!("scenes.{f}: {why}")));
        let (lo, hi) = self.scale;
        if lo.is_nan() || hi.is_nan() || lo <= 0.0 || hi < lo {
            return bad(
                "scale",
                format!("must be 0 < min <= max, got {:?}", self.scale),
            );
        }
        if (h as f64 * hi).ceil() as i64 > self.height || (w as f64 * hi).ceil() as i64 > self.width
        {
            return bad(
                "height",
                format!(
                    "a {h}x{w} object at scale {hi} does not fit a {}x{} canvas",
                    self.height, self.width
                ),
            );
        }
        if self.clutter > 0
            && (self.clutter_size < 1
                || self.clutter_size > h.min(w)
                || self.clutter_size > self.height.min(self.width))
        {
            return bad(
                "clutter_size",
                format!(
                    "must be in 1..={} (pool images and canvas)",
                    h.min(w).min(self.height.min(self.width))
                ),
            );
        }
        Ok(())
    }
}

/// Generated scenes.
#[derive(Debug)]
pub struct Scenes {
    /// Canvases, float, `[N, C, height, width]`.
    pub images: Tensor,
    /// The object's label, `[N]` int64.
    pub labels: Tensor,
    /// The object's box `(x0, y0, x1, y1)` in pixels, `[N, 4]` float.
    pub boxes: Tensor,
}

/// Builds one scene per entry of `which` (int64 indices into the pool) from `seed`.
/// `pool` is `[M, C, h, w]` float (e.g. `Mnist::load(..)?.images_f32()?`), `pool_labels` `[M]`.
/// Runs on `pool`'s device.
pub fn generate(
    pool: &Tensor,
    pool_labels: &Tensor,
    which: &Tensor,
    cfg: &SceneConfig,
    seed: u64,
) -> Result<Scenes> {
    let size = pool.size();
    if size.len() != 4 || pool_labels.size() != [size[0]] {
        return Err(Error::InvalidArgument(format!(
            "pool must be [M, C, h, w] with labels [M], got {size:?} and {:?}",
            pool_labels.size()
        )));
    }
    let (m, c, h, w) = (size[0], size[1], size[2], size[3]);
    cfg.validate(h, w)?;
    let device = pool.device();
    let which = which.to_device(device).to_kind(Kind::Int64);
    let n = which.size()[0];
    let k = cfg.clutter as i64;
    let u = uniform((3 + 5 * k) * n, splitmix64(seed ^ 0x5CE7_E500), device).view([3 + 5 * k, n]);
    let pool = pool.to_kind(Kind::Float);
    let mut canvas = Tensor::full(
        [n, c, cfg.height, cfg.width],
        cfg.background,
        (Kind::Float, device),
    );
    let p = cfg.clutter_size as f64;
    for j in 0..k {
        let r = |t: i64| u.get(3 + 5 * j + t);
        let src = (r(0) * m as f64)
            .floor()
            .to_kind(Kind::Int64)
            .clamp(0, m - 1);
        let sx = (r(1) * (w as f64 - p + 1.0)).floor();
        let sy = (r(2) * (h as f64 - p + 1.0)).floor();
        let dx = (r(3) * (cfg.width as f64 - p + 1.0)).floor();
        let dy = (r(4) * (cfg.height as f64 - p + 1.0)).floor();
        let src_boxes = Tensor::stack(&[&sx, &sy, &(&sx + p), &(&sy + p)], 1);
        let dst_boxes = Tensor::stack(&[&dx, &dy, &(&dx + p), &(&dy + p)], 1);
        canvas = paste(
            &canvas,
            &pool.index_select(0, &src),
            &src_boxes,
            &dst_boxes,
            cfg.blend,
        )?;
    }
    let (lo, hi) = cfg.scale;
    let s = u.get(0) * (hi - lo) + lo;
    let (ow, oh) = (&s * w as f64, &s * h as f64);
    let x0 = (u.get(1) * (-&ow + (cfg.width + 1) as f64))
        .floor()
        .clamp_max_tensor(&(-&ow + cfg.width as f64))
        .clamp_min(0.0);
    let y0 = (u.get(2) * (-&oh + (cfg.height + 1) as f64))
        .floor()
        .clamp_max_tensor(&(-&oh + cfg.height as f64))
        .clamp_min(0.0);
    let boxes = Tensor::stack(&[&x0, &y0, &(&x0 + &ow), &(&y0 + &oh)], 1);
    let objects = pool.index_select(0, &which);
    let images = paste(
        &canvas,
        &objects,
        &full_boxes(n, h, w, device),
        &boxes,
        cfg.blend,
    )?;
    Ok(Scenes {
        images,
        labels: pool_labels.to_device(device).index_select(0, &which),
        boxes,
    })
}

/// The indices `0..n` of a pool, as `which` for [`generate`] (every pool image once).
pub fn all(n: i64) -> Tensor {
    Tensor::arange(n, (Kind::Int64, Device::Cpu))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::localise::crop_and_resize;

    /// Ten 8x8 "objects": object `i` is a bright square whose brightness encodes `i`.
    fn pool() -> (Tensor, Tensor) {
        let base = Tensor::zeros([10, 1, 8, 8], (Kind::Float, Device::Cpu));
        let _ = base.narrow(2, 2, 4).narrow(3, 2, 4).fill_(1.0);
        let level = (Tensor::arange(10, (Kind::Float, Device::Cpu)) + 1.0) / 10.0;
        (
            base * level.view([10, 1, 1, 1]),
            Tensor::arange(10, (Kind::Int64, Device::Cpu)) * 3,
        )
    }

    fn cfg(scale: (f64, f64), clutter: usize, blend: Blend) -> SceneConfig {
        SceneConfig {
            height: 32,
            width: 40,
            scale,
            clutter,
            clutter_size: 4,
            blend,
            background: 0.0,
        }
    }

    #[test]
    fn the_box_holds_the_labelled_object() {
        let (pool, labels) = pool();
        let which = Tensor::from_slice(&[3i64, 7, 0, 9, 9, 1]);
        let s = generate(
            &pool,
            &labels,
            &which,
            &cfg((1.0, 1.0), 0, Blend::Replace),
            4,
        )
        .unwrap();
        assert_eq!(s.images.size(), [6, 1, 32, 40]);
        assert_eq!(
            Vec::<i64>::try_from(&s.labels).unwrap(),
            [9, 21, 0, 27, 27, 3]
        );
        let crops = crop_and_resize(&s.images, &s.boxes, 8, 8).unwrap();
        assert!(crops.allclose(&pool.index_select(0, &which), 0.0, 1e-5, false));
        // Nothing outside the box without clutter.
        let total = s.images.sum(Kind::Float).double_value(&[]);
        assert!((total - crops.sum(Kind::Float).double_value(&[])).abs() < 1e-3);
        // Boxes are whole pixels inside the canvas.
        let b: Vec<f32> = Vec::try_from(s.boxes.view([-1])).unwrap();
        for r in b.chunks(4) {
            assert!(r[0] >= 0.0 && r[1] >= 0.0 && r[2] <= 40.0 && r[3] <= 32.0);
            assert_eq!(r[0].fract(), 0.0);
            assert_eq!(r[2] - r[0], 8.0);
        }
    }

    #[test]
    fn scaled_objects_fit_their_boxes_and_clutter_never_hides_strokes() {
        let (pool, labels) = pool();
        let which = all(10);
        let s = generate(&pool, &labels, &which, &cfg((1.5, 2.5), 5, Blend::Max), 9).unwrap();
        let b: Vec<f32> = Vec::try_from(s.boxes.view([-1])).unwrap();
        for r in b.chunks(4) {
            let side = r[2] - r[0];
            assert!((12.0..=20.0).contains(&side) && (r[3] - r[1] - side).abs() < 1e-4);
            assert!(r[2] <= 40.0 + 1e-4 && r[3] <= 32.0 + 1e-4);
        }
        // The object's square, resized, is under the clutter: the crop is at least the object.
        let crops = crop_and_resize(&s.images, &s.boxes, 8, 8).unwrap();
        let centre = crops.narrow(2, 3, 2).narrow(3, 3, 2);
        let want = pool.narrow(2, 3, 2).narrow(3, 3, 2);
        assert!((centre - want).min().double_value(&[]) >= -1e-4);
        // Clutter is there: more ink than the objects alone.
        let ink = s.images.sum(Kind::Float).double_value(&[]);
        let objects: f64 = b
            .chunks(4)
            .zip(1..=10)
            .map(|(r, i)| ((r[2] - r[0]) as f64 / 2.0).powi(2) * i as f64 / 10.0)
            .sum();
        assert!(ink > objects + 1.0, "{ink} vs {objects}");
    }

    #[test]
    fn the_seed_alone_decides() {
        let (pool, labels) = pool();
        let c = cfg((1.0, 2.0), 3, Blend::Max);
        let a = generate(&pool, &labels, &all(10), &c, 1).unwrap();
        tch::manual_seed(5);
        let b = generate(&pool, &labels, &all(10), &c, 1).unwrap();
        assert!(a.images.equal(&b.images) && a.boxes.equal(&b.boxes));
        let d = generate(&pool, &labels, &all(10), &c, 2).unwrap();
        assert!(!a.images.equal(&d.images));
        let err =
            generate(&pool, &labels, &all(10), &cfg((1.0, 5.0), 0, Blend::Max), 1).unwrap_err();
        assert!(err.to_string().contains("scenes.height"), "{err}");
    }
}
