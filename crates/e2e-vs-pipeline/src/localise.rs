//! Detect-then-identify: a localiser network that predicts a box in a larger image, and the
//! batched resampling that crops a box out of an image (or pastes an image into a box).
//!
//! **Boxes** are `[N, 4]` float tensors `(x0, y0, x1, y1)` in continuous pixel coordinates:
//! pixel `(row i, column j)` covers `[j, j + 1) x [i, i + 1)`, so the box `(0, 0, W, H)` is the
//! whole image and a box with integer corners covers whole pixels.
//!
//! **Resampling** ([`resample`], [`crop_and_resize`], [`paste`]) is one `grid_sample` call
//! (bilinear, zeros outside, `align_corners = false`) for the whole batch: output pixel centre
//! `(x, y)` of the destination box reads the source at the point with the same relative
//! position in the source box. When both boxes have integer corners and the same size, every
//! pixel is copied exactly; otherwise it is bilinear interpolation. Gradients flow to the
//! images (and to the boxes, through the grid).
//!
//! **The localiser** ([`Localiser`]) is a small fully convolutional network: blocks of 3x3
//! convolution, ReLU and 2x2 max pooling (`block1.conv`, …), then a 1x1 convolution to one
//! heat map (`heatmap`) whose spatial soft-argmax is the box centre, and a linear layer on the
//! globally averaged features (`size`) for the box's width and height as fractions of the
//! image (sigmoid), unless the size is fixed. A soft-argmax keeps the centre translation
//! equivariant, which is what lets a localiser learn from few scenes; the loss is the smooth
//! L1 distance of centre and size, both as fractions of the image size.

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Checks that `boxes` is `[n, 4]`.
fn check_boxes(boxes: &Tensor, n: i64, what: &str) -> Result<()> {
    if boxes.size() != [n, 4] {
        return Err(Error::InvalidArgument(format!(
            "{what} must be [{n}, 4] (x0, y0, x1, y1), got {:?}",
            boxes.size()
        )));
    }
    Ok(())
}

/// For each image, the part of `src` inside `src_boxes` resampled onto the part of an
/// `out_h x out_w` grid inside `dst_boxes`; outside `dst_boxes` the result is 0, and
/// `coverage` (second result, `[N, 1, out_h, out_w]`) is the fraction of each output pixel
/// that lies inside its destination box (1 inside, 0 outside, fractional on the edge of a box
/// with fractional corners).
pub fn resample(
    src: &Tensor,
    src_boxes: &Tensor,
    dst_boxes: &Tensor,
    out_h: i64,
    out_w: i64,
) -> Result<(Tensor, Tensor)> {
    let size = src.size();
    if size.len() != 4 {
        return Err(Error::InvalidArgument(format!(
            "images must be [N, C, H, W], got {size:?}"
        )));
    }
    let (n, h, w) = (size[0], size[2], size[3]);
    check_boxes(src_boxes, n, "source boxes")?;
    check_boxes(dst_boxes, n, "destination boxes")?;
    let opts = (Kind::Float, src.device());
    let sb = src_boxes.to_kind(Kind::Float);
    let db = dst_boxes.to_kind(Kind::Float);
    let col = |b: &Tensor, k: i64| b.select(1, k).view([n, 1]);
    // Output pixel centres, [1, out_w] and [1, out_h].
    let xs = (Tensor::arange(out_w, opts) + 0.5).view([1, out_w]);
    let ys = (Tensor::arange(out_h, opts) + 0.5).view([1, out_h]);
    // Relative position in the destination box → point in the source box → [-1, 1].
    let map = |centres: &Tensor, d0: Tensor, d1: Tensor, s0: Tensor, s1: Tensor, extent: i64| {
        let t = (centres - &d0) / (d1 - &d0);
        let p = s0.shallow_clone() + t * (s1 - s0);
        p * (2.0 / extent as f64) - 1.0
    };
    let gx = map(&xs, col(&db, 0), col(&db, 2), col(&sb, 0), col(&sb, 2), w); // [N, out_w]
    let gy = map(&ys, col(&db, 1), col(&db, 3), col(&sb, 1), col(&sb, 3), h); // [N, out_h]
    let grid = Tensor::stack(
        &[
            gx.view([n, 1, out_w]).expand([n, out_h, out_w], false),
            gy.view([n, out_h, 1]).expand([n, out_h, out_w], false),
        ],
        3,
    );
    let sampled = src
        .to_kind(Kind::Float)
        .f_grid_sampler(&grid, 0, 0, false)?;
    // Coverage of pixel [j, j + 1) by [a, b]: clamp(min(j + 1, b) - max(j, a), 0, 1).
    let cover = |lo: Tensor, hi: Tensor, len: i64| {
        let start = Tensor::arange(len, opts).view([1, len]);
        let end = &start + 1.0;
        (end.minimum(&hi) - start.maximum(&lo)).clamp(0.0, 1.0)
    };
    let cx = cover(col(&db, 0), col(&db, 2), out_w).view([n, 1, 1, out_w]);
    let cy = cover(col(&db, 1), col(&db, 3), out_h).view([n, 1, out_h, 1]);
    let coverage = cx * cy;
    Ok((sampled * &coverage, coverage))
}

/// Crops `boxes` out of `images` `[N, C, H, W]` and resizes each crop to `out_h x out_w`
/// (bilinear; zeros where a box leaves the image).
pub fn crop_and_resize(images: &Tensor, boxes: &Tensor, out_h: i64, out_w: i64) -> Result<Tensor> {
    let n = images.size().first().copied().unwrap_or(0);
    let full = Tensor::from_slice(&[0.0f32, 0.0, out_w as f32, out_h as f32])
        .to_device(images.device())
        .view([1, 4])
        .expand([n, 4], false);
    Ok(resample(images, boxes, &full, out_h, out_w)?.0)
}

/// How a pasted image combines with what is under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blend {
    /// The pasted pixels replace the canvas inside the box (a photograph on a table).
    Replace,
    /// The brighter of the two (strokes on black, as in cluttered MNIST).
    Max,
}

/// Pastes the `src_boxes` part of each of `src` into `dst_boxes` of each of `canvas`
/// (`[N, C, H, W]`, same `N` and `C`), resized to fit.
pub fn paste(
    canvas: &Tensor,
    src: &Tensor,
    src_boxes: &Tensor,
    dst_boxes: &Tensor,
    blend: Blend,
) -> Result<Tensor> {
    let size = canvas.size();
    if size.len() != 4 || src.size().len() != 4 || src.size()[..2] != size[..2] {
        return Err(Error::InvalidArgument(format!(
            "canvas {size:?} and source {:?} must be [N, C, ., .] with the same N and C",
            src.size()
        )));
    }
    let (pasted, coverage) = resample(src, src_boxes, dst_boxes, size[2], size[3])?;
    let canvas = canvas.to_kind(Kind::Float);
    Ok(match blend {
        Blend::Replace => canvas * (coverage.ones_like() - coverage) + pasted,
        Blend::Max => canvas.maximum(&pasted),
    })
}

/// The whole-image box `(0, 0, w, h)` of each of `n` images `h x w`, on `device`.
pub fn full_boxes(n: i64, h: i64, w: i64, device: tch::Device) -> Tensor {
    Tensor::from_slice(&[0.0f32, 0.0, w as f32, h as f32])
        .to_device(device)
        .view([1, 4])
        .repeat([n, 1])
}

/// Boxes `(x0, y0, x1, y1)` from centres and sizes `(cx, cy, w, h)`, both `[N, 4]`.
pub fn boxes_from_centres(cs: &Tensor) -> Tensor {
    let (cx, cy, w, h) = (
        cs.select(1, 0),
        cs.select(1, 1),
        cs.select(1, 2),
        cs.select(1, 3),
    );
    Tensor::stack(
        &[
            &cx - &w / 2.0,
            &cy - &h / 2.0,
            &cx + &w / 2.0,
            &cy + &h / 2.0,
        ],
        1,
    )
}

/// Centres and sizes `(cx, cy, w, h)` of boxes `(x0, y0, x1, y1)`, both `[N, 4]`.
pub fn centres_from_boxes(b: &Tensor) -> Tensor {
    let (x0, y0, x1, y1) = (
        b.select(1, 0),
        b.select(1, 1),
        b.select(1, 2),
        b.select(1, 3),
    );
    Tensor::stack(&[(&x0 + &x1) / 2.0, (&y0 + &y1) / 2.0, x1 - x0, y1 - y0], 1)
}

/// Shape of the [`Localiser`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocaliserConfig {
    /// Output channels of `block1`, `block2`, … (each block halves the resolution).
    pub channels: Vec<i64>,
    /// Input channels.
    pub in_channels: i64,
    /// A fixed box size `(w, h)` in pixels (e.g. 28x28 digits), or `None` to predict it.
    pub fixed_size: Option<(f64, f64)>,
}

impl LocaliserConfig {
    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.channels.is_empty() || self.channels.iter().any(|&c| c < 1) {
            return Err(Error::InvalidArgument(
                "localiser.channels must list at least one positive width".into(),
            ));
        }
        if self.in_channels < 1 {
            return Err(Error::InvalidArgument(
                "localiser.in_channels must be >= 1".into(),
            ));
        }
        if let Some((w, h)) = self.fixed_size
            && (w.is_nan() || h.is_nan() || w <= 0.0 || h <= 0.0)
        {
            return Err(Error::InvalidArgument(
                "localiser.fixed_size must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// A network from an image to one box; see the module documentation.
#[derive(Debug)]
pub struct Localiser {
    config: LocaliserConfig,
    blocks: Vec<nn::Conv2D>,
    heatmap: nn::Conv2D,
    size: nn::Linear,
}

impl Localiser {
    /// Creates the layers under `p` (PyTorch's default initialisation).
    pub fn new(p: &nn::Path, config: &LocaliserConfig) -> Result<Self> {
        config.validate()?;
        let conv = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let mut inputs = config.in_channels;
        let mut blocks = Vec::new();
        for (i, &c) in config.channels.iter().enumerate() {
            let name = format!("block{}", i + 1);
            blocks.push(nn::conv2d(p / name.as_str() / "conv", inputs, c, 3, conv));
            inputs = c;
        }
        let heatmap = nn::conv2d(p / "heatmap", inputs, 1, 1, Default::default());
        let size = nn::linear(p / "size", inputs, 2, Default::default());
        Ok(Localiser {
            config: config.clone(),
            blocks,
            heatmap,
            size,
        })
    }

    /// Centres and sizes `(cx, cy, w, h)` as fractions of the image width and height, `[N, 4]`.
    pub fn forward_relative(&self, images: &Tensor) -> Tensor {
        let mut x = images.to_kind(Kind::Float);
        for b in &self.blocks {
            x = x.apply(b).relu().max_pool2d_default(2);
        }
        let s = x.size();
        let (n, fh, fw) = (s[0], s[2], s[3]);
        let prob = x
            .apply(&self.heatmap)
            .view([n, fh * fw])
            .softmax(1, Kind::Float);
        let prob = prob.view([n, fh, fw]);
        let opts = (Kind::Float, images.device());
        let xs = (Tensor::arange(fw, opts) + 0.5) / fw as f64;
        let ys = (Tensor::arange(fh, opts) + 0.5) / fh as f64;
        let cx = (prob.sum_dim_intlist([1].as_slice(), false, Kind::Float) * xs.view([1, fw]))
            .sum_dim_intlist([1].as_slice(), false, Kind::Float);
        let cy = (prob.sum_dim_intlist([2].as_slice(), false, Kind::Float) * ys.view([1, fh]))
            .sum_dim_intlist([1].as_slice(), false, Kind::Float);
        let size = match self.config.fixed_size {
            Some((w, h)) => {
                let (ih, iw) = (images.size()[2] as f64, images.size()[3] as f64);
                Tensor::from_slice(&[(w / iw) as f32, (h / ih) as f32])
                    .to_device(images.device())
                    .view([1, 2])
                    .expand([n, 2], false)
            }
            None => x
                .mean_dim([2, 3].as_slice(), false, Kind::Float)
                .apply(&self.size)
                .sigmoid(),
        };
        Tensor::cat(&[cx.view([n, 1]), cy.view([n, 1]), size], 1)
    }

    /// Predicted boxes `(x0, y0, x1, y1)` in pixels, `[N, 4]`.
    pub fn boxes(&self, images: &Tensor) -> Tensor {
        let (h, w) = (images.size()[2] as f64, images.size()[3] as f64);
        let scale = Tensor::from_slice(&[w as f32, h as f32, w as f32, h as f32])
            .to_device(images.device());
        boxes_from_centres(&(self.forward_relative(images) * scale))
    }

    /// Smooth-L1 loss between the predicted and the `target` boxes (pixels), measured on
    /// centres and sizes as fractions of the image size (the size term is dropped when the
    /// size is fixed).
    pub fn loss(&self, images: &Tensor, target: &Tensor) -> Tensor {
        let (h, w) = (images.size()[2] as f64, images.size()[3] as f64);
        let scale = Tensor::from_slice(&[w as f32, h as f32, w as f32, h as f32])
            .to_device(images.device());
        let t = centres_from_boxes(&target.to_kind(Kind::Float)) / scale;
        let p = self.forward_relative(images);
        let k = if self.config.fixed_size.is_some() {
            2
        } else {
            4
        };
        p.narrow(1, 0, k)
            .smooth_l1_loss(&t.narrow(1, 0, k), tch::Reduction::Mean, 0.05)
    }
}

impl Module for Localiser {
    /// [`Localiser::boxes`].
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.boxes(xs)
    }
}

/// Mean intersection over union of two sets of boxes `[N, 4]`.
pub fn mean_iou(a: &Tensor, b: &Tensor) -> f64 {
    let c = |t: &Tensor, k| t.select(1, k).to_kind(Kind::Float);
    let iw = (c(a, 2).minimum(&c(b, 2)) - c(a, 0).maximum(&c(b, 0))).clamp_min(0.0);
    let ih = (c(a, 3).minimum(&c(b, 3)) - c(a, 1).maximum(&c(b, 1))).clamp_min(0.0);
    let inter = iw * ih;
    let area = |t: &Tensor| (c(t, 2) - c(t, 0)) * (c(t, 3) - c(t, 1));
    let union = area(a) + area(b) - &inter;
    (inter / union.clamp_min(1e-12))
        .mean(Kind::Float)
        .double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn ramp(n: i64, h: i64, w: i64) -> Tensor {
        Tensor::arange(n * h * w, (Kind::Float, Device::Cpu)).view([n, 1, h, w])
    }

    #[test]
    fn crop_of_an_integer_box_copies_its_pixels() {
        let img = ramp(2, 10, 12);
        let boxes = Tensor::from_slice(&[2.0f32, 3.0, 7.0, 9.0, 0.0, 0.0, 4.0, 4.0]).view([2, 4]);
        let crops = crop_and_resize(&img, &boxes, 6, 5).unwrap();
        let want0 = img.get(0).narrow(1, 3, 6).narrow(2, 2, 5);
        assert!(crops.get(0).allclose(&want0, 0.0, 1e-4, false));
        // The second box is 4x4 scaled to 6x5: the corners still sample inside the box.
        let c1 = crops.get(1).get(0);
        let v = |i: i64, j: i64| c1.double_value(&[i, j]);
        // Output pixel (0, 0) centre maps to source (x, y) = (0.4, 0.333…) → index (-0.1, -0.17):
        // bilinear with the zero border.
        let src = img.get(1).get(0);
        let s = |i: i64, j: i64| src.double_value(&[i, j]);
        let (fx, fy) = (0.9f64, 5.0 / 6.0);
        let want = fy * fx * s(0, 0);
        assert!((v(0, 0) - want).abs() < 1e-3, "{} vs {want}", v(0, 0));
        // A 2x upscale of a known box: pixel centres fall between source pixels.
        let up = crop_and_resize(&img.narrow(0, 0, 1), &boxes.narrow(0, 0, 1), 12, 10).unwrap();
        // Output (1, 1) centre (1.5, 1.5) in 12x10 → source (2 + 0.75, 3 + 0.75) → index
        // (2.25, 3.25): mean of the four neighbours weighted .75/.25.
        let s0 = img.get(0).get(0);
        let s = |i: i64, j: i64| s0.double_value(&[i, j]);
        let want = 0.75 * 0.75 * s(3, 2) + 0.75 * 0.25 * (s(3, 3) + s(4, 2)) + 0.0625 * s(4, 3);
        assert!((up.double_value(&[0, 0, 1, 1]) - want).abs() < 1e-3);
    }

    #[test]
    fn paste_then_crop_gives_the_object_back() {
        let canvas = Tensor::full([1, 1, 20, 20], 0.5, (Kind::Float, Device::Cpu));
        let obj = ramp(1, 6, 4) / 24.0;
        let dst = Tensor::from_slice(&[5.0f32, 7.0, 9.0, 13.0]).view([1, 4]);
        let scene = paste(
            &canvas,
            &obj,
            &full_boxes(1, 6, 4, Device::Cpu),
            &dst,
            Blend::Replace,
        )
        .unwrap();
        assert!(
            crop_and_resize(&scene, &dst, 6, 4)
                .unwrap()
                .allclose(&obj, 0.0, 1e-5, false)
        );
        // Outside the box the canvas is untouched.
        let outside =
            scene.sum(Kind::Float).double_value(&[]) - obj.sum(Kind::Float).double_value(&[]);
        assert!((outside - 0.5 * (400.0 - 24.0)).abs() < 1e-3);
        // Max blending keeps the brighter pixel.
        let m = paste(
            &canvas,
            &obj,
            &full_boxes(1, 6, 4, Device::Cpu),
            &dst,
            Blend::Max,
        )
        .unwrap();
        assert_eq!(m.double_value(&[0, 0, 7, 5]), 0.5);
        assert!((m.double_value(&[0, 0, 12, 8]) - 23.0 / 24.0).abs() < 1e-6);
    }

    #[test]
    fn boxes_convert_both_ways_and_iou_is_one_on_equal_boxes() {
        let b = Tensor::from_slice(&[1.0f32, 2.0, 5.0, 10.0]).view([1, 4]);
        let c = centres_from_boxes(&b);
        assert_eq!(
            Vec::<f32>::try_from(c.view([-1])).unwrap(),
            [3.0, 6.0, 4.0, 8.0]
        );
        assert!(boxes_from_centres(&c).allclose(&b, 0.0, 1e-6, false));
        assert!((mean_iou(&b, &b) - 1.0).abs() < 1e-9);
        let half = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 10.0]).view([1, 4]);
        assert!((mean_iou(&b, &half) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn localiser_learns_where_a_bright_square_is() {
        use tch::nn::OptimizerConfig;
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LocaliserConfig {
            channels: vec![8, 8],
            in_channels: 1,
            fixed_size: Some((6.0, 6.0)),
        };
        let net = Localiser::new(&vs.root(), &cfg).unwrap();
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "block1.conv.bias",
                "block1.conv.weight",
                "block2.conv.bias",
                "block2.conv.weight",
                "heatmap.bias",
                "heatmap.weight",
                "size.bias",
                "size.weight"
            ]
        );
        // 6x6 squares at seeded positions in 24x24 images.
        let n = 128;
        let u = core_tensor::data::uniform(2 * n, 3, Device::Cpu) * 18.0;
        let pos = u.floor().view([2, n]).transpose(0, 1); // [n, 2] = (x0, y0)
        let boxes = Tensor::cat(&[&pos, &(&pos + 6.0)], 1);
        let ones = Tensor::ones([n, 1, 6, 6], (Kind::Float, Device::Cpu));
        let canvas = Tensor::zeros([n, 1, 24, 24], (Kind::Float, Device::Cpu));
        let scenes = paste(
            &canvas,
            &ones,
            &full_boxes(n, 6, 6, Device::Cpu),
            &boxes,
            Blend::Replace,
        )
        .unwrap();
        let before = mean_iou(&net.boxes(&scenes), &boxes);
        let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
        for _ in 0..150 {
            opt.backward_step(&net.loss(&scenes, &boxes));
        }
        let after = mean_iou(&net.boxes(&scenes), &boxes);
        assert!(
            after > 0.6 && after > before + 0.2,
            "IoU {before} → {after}"
        );
    }
}
