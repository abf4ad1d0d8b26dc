//! Multi-object scenes from real images: canvases with 0..k items (MNIST digits,
//! Fashion-MNIST items) pasted at random positions, labelled with per-class presence, per-class
//! counts and boxes — the chapter's "is there a pedestrian / a car / a stop sign" images.
//!
//! Everything is a tensor operation on the source's device: each slot's items are moved into
//! place by one `gather` and pasted with an element-wise maximum, so items may overlap (where
//! they do, the brighter pixel wins and both stay partly visible). Every random choice (the
//! number of items, which source image, where) comes from [`core_tensor::data::uniform`] with
//! the given seed, never from libtorch's global generator: the same seed gives the same scenes
//! on every run and device.
//!
//! Labels describe what was pasted: an item counts as present even where another one overlaps
//! it. A box is tight around the item's nonzero pixels, in canvas pixels, `[x0, y0, x1, y1)`
//! (ends exclusive), so always inside the canvas.
//!
//! ```no_run
//! use core_tensor::datasets::{Mnist, Split};
//! use multitask::scenes::{SceneConfig, generate};
//! let mnist = Mnist::load(&core_tensor::fixtures::cache_dir(), Split::Train)?;
//! let cfg = SceneConfig { height: 56, width: 56, min_items: 0, max_items: 4 };
//! let scenes = generate(&mnist, 1000, &cfg, 7)?;
//! assert_eq!(scenes.images.size(), [1000, 1, 56, 56]);
//! assert_eq!(scenes.presence.size(), [1000, 10]);
//! # Ok::<(), core_tensor::Error>(())
//! ```

use core_tensor::datasets::ImageDataset;
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The shape of the scenes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneConfig {
    /// Canvas height in pixels (at least the items' height).
    pub height: i64,
    /// Canvas width in pixels (at least the items' width).
    pub width: i64,
    /// Fewest items in a scene.
    pub min_items: usize,
    /// Most items in a scene (the number is uniform in `min_items..=max_items`).
    pub max_items: usize,
}

impl SceneConfig {
    /// Checks the fields for items of `h x w` pixels; errors name the bad field.
    pub fn validate(&self, h: i64, w: i64) -> Result<()> {
        let bad = |f: &str, why: String| Err(Error::InvalidArgument(format!("scenes.{f}: {why}")));
        if self.height < h {
            return bad(
                "height",
                format!("{} is smaller than the items ({h})", self.height),
            );
        }
        if self.width < w {
            return bad(
                "width",
                format!("{} is smaller than the items ({w})", self.width),
            );
        }
        if self.max_items < self.min_items {
            return bad(
                "max_items",
                format!("{} is below min_items {}", self.max_items, self.min_items),
            );
        }
        if self.max_items == 0 {
            return bad("max_items", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Generated scenes and their labels. `K` is `max_items`, `C` the number of classes; unused
/// slots (a scene with fewer than `K` items) hold -1 in `items`, `labels`, `positions`, `boxes`.
#[derive(Debug)]
pub struct Scenes {
    /// Canvases, `Kind::Uint8`, `[n, 1, H, W]`, on the source's scale (see `max_value`).
    pub images: Tensor,
    /// 1 where at least one item of the class is in the scene, else 0: float `[n, C]`, ready as
    /// the targets of `C` binary tasks.
    pub presence: Tensor,
    /// Items of each class: int64 `[n, C]`.
    pub counts: Tensor,
    /// Index into the source of each slot's item: int64 `[n, K]`.
    pub items: Tensor,
    /// Class of each slot's item: int64 `[n, K]`.
    pub labels: Tensor,
    /// Top-left corner `(y, x)` of each slot's `h x w` patch on the canvas: int64 `[n, K, 2]`.
    pub positions: Tensor,
    /// Tight box `[x0, y0, x1, y1)` of each slot's item: int64 `[n, K, 4]`.
    pub boxes: Tensor,
    /// The number of classes `C`.
    pub classes: usize,
    /// The largest pixel value (the source's).
    pub max_value: u8,
}

impl Scenes {
    /// The images as float32 in `[0, 1]`.
    pub fn images_f32(&self) -> Tensor {
        self.images.to_kind(Kind::Float) / f64::from(self.max_value)
    }

    /// The number of scenes.
    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    /// True when there are no scenes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Scenes generated at a time: bounds the `[chunk, H, W]` int64 gather index.
const CHUNK: i64 = 2048;

/// Generates `n` scenes from the images of `source` (`[N, 1, h, w]` or `[N, h, w]`, any kind
/// that converts to u8) and its labels; see the module documentation.
pub fn generate(source: &ImageDataset, n: usize, cfg: &SceneConfig, seed: u64) -> Result<Scenes> {
    let size = source.images.size();
    let images = match size.len() {
        3 => source.images.shallow_clone(),
        4 if size[1] == 1 => source.images.f_squeeze_dim(1)?,
        _ => {
            return Err(Error::InvalidArgument(format!(
                "scene sources must be [N, 1, h, w] or [N, h, w] images, got {size:?}"
            )));
        }
    }
    .f_to_kind(Kind::Uint8)?;
    let (count, h, w) = {
        let s = images.size();
        (s[0], s[1], s[2])
    };
    if count == 0 || source.labels.size() != [count] {
        return Err(Error::InvalidArgument(format!(
            "scene sources need at least one image and one label per image, got images \
             {size:?} and labels {:?}",
            source.labels.size()
        )));
    }
    cfg.validate(h, w)?;
    let device = images.device();
    let (n, k) = (n as i64, cfg.max_items as i64);
    let (hh, ww) = (cfg.height, cfg.width);
    let c = source.classes as i64;

    // Draws: [n] item counts, then [n, K] each of source index, row, column.
    let u = core_tensor::data::uniform(n * (1 + 3 * k), seed, device);
    let span = (cfg.max_items - cfg.min_items + 1) as f64;
    let draw = |u: Tensor, m: f64| -> Result<Tensor> {
        Ok((u * m)
            .f_floor()?
            .f_to_kind(Kind::Int64)?
            .f_clamp(0, m as i64 - 1)?)
    };
    let n_items = draw(u.narrow(0, 0, n), span)? + cfg.min_items as i64;
    let slot = |i: i64| u.narrow(0, n + i * n * k, n * k).view([n, k]);
    let items = draw(slot(0), count as f64)?;
    let ys = draw(slot(1), (hh - h + 1) as f64)?;
    let xs = draw(slot(2), (ww - w + 1) as f64)?;
    let active = Tensor::arange(k, (Kind::Int64, device))
        .view([1, k])
        .f_lt_tensor(&n_items.view([n, 1]))?;

    let labels_all = source.labels.f_to_device(device)?.f_to_kind(Kind::Int64)?;
    let labels = labels_all
        .f_index_select(0, &items.view([-1]))?
        .view([n, k]);

    // Tight boxes of each slot's item inside its patch (a blank item gets the whole patch).
    let picked = images.f_index_select(0, &items.view([-1]))?; // [n*K, h, w]
    let on = picked.f_gt(0)?;
    let extent = |any: Tensor, len: i64| -> Result<(Tensor, Tensor)> {
        let has = any.f_any_dim(1, false)?;
        let as_int = any.f_to_kind(Kind::Int64)?;
        let first = as_int.f_argmax(1, false)?;
        let last = as_int.f_flip([1])?.f_argmax(1, false)?.f_neg()? + len;
        let zero = first.zeros_like();
        Ok((
            first.f_where_self(&has, &zero)?,
            last.f_where_self(&has, &(zero + len))?,
        ))
    };
    let (r0, r1) = extent(on.f_any_dim(2, false)?, h)?;
    let (c0, c1) = extent(on.f_any_dim(1, false)?, w)?;
    let (yf, xf) = (ys.view([-1]), xs.view([-1]));
    let boxes = Tensor::f_stack(&[&c0 + &xf, &r0 + &yf, &c1 + &xf, &r1 + &yf], 1)?.view([n, k, 4]);
    let positions = Tensor::f_stack(&[&ys, &xs], 2)?;

    // Compose in chunks: for each slot, out[b, i, j] = item[b, i - y_b, j - x_b] inside the
    // patch, else 0; pasted with max.
    let rows = Tensor::arange(hh, (Kind::Int64, device)).view([1, hh, 1]);
    let cols = Tensor::arange(ww, (Kind::Int64, device)).view([1, 1, ww]);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let mut canvas = Tensor::zeros([len, hh, ww], (Kind::Uint8, device));
        for s in 0..k {
            let y = ys.narrow(0, start, len).select(1, s).view([len, 1, 1]);
            let x = xs.narrow(0, start, len).select(1, s).view([len, 1, 1]);
            let on_slot = active.narrow(0, start, len).select(1, s).view([len, 1, 1]);
            let r = &rows - &y;
            let q = &cols - &x;
            let inside = r
                .ge(0)
                .logical_and(&r.lt(h))
                .logical_and(&q.ge(0))
                .logical_and(&q.lt(w));
            let inside = inside.logical_and(&on_slot);
            let flat_index = r.clamp(0, h - 1) * w + q.clamp(0, w - 1); // [len, H, W]
            let item = picked
                .view([n, k, h * w])
                .narrow(0, start, len)
                .select(1, s); // [len, h*w]
            let placed = item
                .f_gather(1, &flat_index.view([len, hh * ww]), false)?
                .view([len, hh, ww])
                .f_masked_fill(&inside.logical_not(), 0)?;
            canvas = canvas.f_maximum(&placed)?;
        }
        chunks.push(canvas);
        start += len;
    }
    let canvases = if chunks.is_empty() {
        Tensor::zeros([0, hh, ww], (Kind::Uint8, device))
    } else {
        Tensor::f_cat(&chunks, 0)?
    };

    let one_hot =
        labels.f_clamp_min(0)?.f_one_hot(c)? * active.view([n, k, 1]).to_kind(Kind::Int64);
    let counts = one_hot.f_sum_dim_intlist(1, false, Kind::Int64)?;
    let presence = counts.f_gt(0)?.f_to_kind(Kind::Float)?;
    let none = |t: Tensor, per_slot: &Tensor| -> Result<Tensor> {
        Ok(t.f_masked_fill(&per_slot.logical_not(), -1)?)
    };
    Ok(Scenes {
        images: canvases.f_unsqueeze(1)?,
        presence,
        counts,
        items: none(items, &active)?,
        labels: none(labels, &active)?,
        positions: none(positions, &active.unsqueeze(2))?,
        boxes: none(boxes, &active.unsqueeze(2))?,
        classes: source.classes,
        max_value: source.max_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn vec2(t: &Tensor) -> Vec<Vec<i64>> {
        Vec::<Vec<i64>>::try_from(t.to_kind(Kind::Int64)).unwrap()
    }

    /// Five 4x5 items with distinct pixel patterns, classes 0, 1, 2, 1, 0 of 3.
    fn source() -> ImageDataset {
        let mut px = vec![0u8; 5 * 4 * 5];
        for (i, p) in px.iter_mut().enumerate() {
            let (item, pos) = (i / 20, i % 20);
            // Sparse patterns with a blank border somewhere, so tight boxes differ from patches.
            if (pos + item) % 3 == 0 && pos >= 5 {
                *p = (40 * (item + 1) + pos) as u8;
            }
        }
        ImageDataset {
            images: Tensor::from_slice(&px).view([5, 1, 4, 5]),
            labels: Tensor::from_slice(&[0i64, 1, 2, 1, 0]),
            classes: 3,
            max_value: 255,
        }
    }

    #[test]
    fn scenes_depend_on_the_seed_alone() {
        let cfg = SceneConfig {
            height: 11,
            width: 9,
            min_items: 0,
            max_items: 3,
        };
        let a = generate(&source(), 40, &cfg, 5).unwrap();
        tch::manual_seed(99);
        let _ = Tensor::randn([7], (Kind::Float, Device::Cpu));
        let b = generate(&source(), 40, &cfg, 5).unwrap();
        assert!(a.images.equal(&b.images) && a.items.equal(&b.items) && a.boxes.equal(&b.boxes));
        let c = generate(&source(), 40, &cfg, 6).unwrap();
        assert!(!a.images.equal(&c.images));
    }

    #[test]
    fn labels_agree_with_the_pixels() {
        let src = source();
        let cfg = SceneConfig {
            height: 11,
            width: 9,
            min_items: 0,
            max_items: 3,
        };
        let s = generate(&src, 200, &cfg, 1).unwrap();
        assert_eq!(s.images.size(), [200, 1, 11, 9]);
        let imgs: Vec<Vec<i64>> = vec2(&s.images.view([200, 99]));
        let px: Vec<Vec<i64>> = vec2(&src.images.view([5, 20]));
        let src_labels = [0i64, 1, 2, 1, 0];
        let (items, labels) = (vec2(&s.items), vec2(&s.labels));
        let positions = vec2(&s.positions.view([200, 6]));
        let boxes = vec2(&s.boxes.view([200, 12]));
        let (presence, counts) = (vec2(&s.presence), vec2(&s.counts));
        let mut sizes = [0usize; 4];
        for b in 0..200 {
            // Rebuild the canvas with loops from the recorded slots.
            let mut want = vec![0i64; 99];
            let mut want_counts = [0i64; 3];
            let mut used = 0;
            for slot in 0..3 {
                let item = items[b][slot];
                if item < 0 {
                    assert_eq!(labels[b][slot], -1);
                    assert_eq!(&boxes[b][4 * slot..4 * slot + 4], [-1; 4]);
                    continue;
                }
                assert_eq!(slot, used, "used slots come first");
                used += 1;
                assert_eq!(labels[b][slot], src_labels[item as usize]);
                want_counts[labels[b][slot] as usize] += 1;
                let (y, x) = (positions[b][2 * slot], positions[b][2 * slot + 1]);
                assert!(y >= 0 && y + 4 <= 11 && x >= 0 && x + 5 <= 9);
                let bx = &boxes[b][4 * slot..4 * slot + 4];
                assert!(bx[0] >= x && bx[1] >= y && bx[2] <= x + 5 && bx[3] <= y + 4);
                let mut tight = [i64::MAX, i64::MAX, i64::MIN, i64::MIN];
                for r in 0..4 {
                    for c in 0..5 {
                        let v = px[item as usize][(r * 5 + c) as usize];
                        let at = ((y + r) * 9 + x + c) as usize;
                        want[at] = want[at].max(v);
                        // The item's pixels are in the canvas, inside its box.
                        if v > 0 {
                            assert!(imgs[b][at] >= v);
                            let (cy, cx) = (y + r, x + c);
                            assert!(cx >= bx[0] && cx < bx[2] && cy >= bx[1] && cy < bx[3]);
                            tight = [
                                tight[0].min(cx),
                                tight[1].min(cy),
                                tight[2].max(cx + 1),
                                tight[3].max(cy + 1),
                            ];
                        }
                    }
                }
                assert_eq!(bx, tight, "scene {b} slot {slot}: the box is tight");
            }
            sizes[used] += 1;
            assert_eq!(imgs[b], want, "scene {b}");
            assert_eq!(counts[b], want_counts);
            let want_presence: Vec<i64> = want_counts.iter().map(|&c| (c > 0) as i64).collect();
            assert_eq!(presence[b], want_presence);
        }
        assert!(
            sizes.iter().all(|&c| c > 20),
            "every item count occurs: {sizes:?}"
        );
    }

    #[test]
    fn a_single_pixel_item_lands_where_its_box_says() {
        // One 2x2 item whose only pixel is at row 1, column 0; one item per 3x3 scene.
        let src = ImageDataset {
            images: Tensor::from_slice(&[0u8, 0, 200, 0]).view([1, 2, 2]),
            labels: Tensor::from_slice(&[0i64]),
            classes: 2,
            max_value: 255,
        };
        let cfg = SceneConfig {
            height: 3,
            width: 3,
            min_items: 1,
            max_items: 1,
        };
        let s = generate(&src, 30, &cfg, 3).unwrap();
        let imgs = vec2(&s.images.view([30, 9]));
        let pos = vec2(&s.positions.view([30, 2]));
        let boxes = vec2(&s.boxes.view([30, 4]));
        let mut seen = std::collections::BTreeSet::new();
        for b in 0..30 {
            let (y, x) = (pos[b][0], pos[b][1]);
            seen.insert((y, x));
            let mut want = vec![0i64; 9];
            want[((y + 1) * 3 + x) as usize] = 200;
            assert_eq!(imgs[b], want);
            assert_eq!(boxes[b], [x, y + 1, x + 1, y + 2]);
        }
        assert_eq!(seen.len(), 4, "all four positions occur: {seen:?}");
        assert_eq!(vec2(&s.presence)[0], [1, 0]);
        assert_eq!(vec2(&s.counts)[0], [1, 0]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cfg = SceneConfig {
            height: 3,
            width: 9,
            min_items: 0,
            max_items: 2,
        };
        let err = generate(&source(), 4, &cfg, 0).unwrap_err().to_string();
        assert!(err.contains("scenes.height"), "{err}");
        let cfg = SceneConfig {
            height: 9,
            width: 9,
            min_items: 3,
            max_items: 2,
        };
        let err = generate(&source(), 4, &cfg, 0).unwrap_err().to_string();
        assert!(err.contains("scenes.max_items"), "{err}");
    }
}
