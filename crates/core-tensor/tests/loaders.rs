//! The loaders of a user's own data (image folders, `.npy`/`.npz`, CSV) and the batch
//! transforms, on small files each test writes into its own temporary folder.

use std::path::{Path, PathBuf};

use core_tensor::loaders::csv::{CsvOptions, load_csv};
use core_tensor::loaders::image_folder::{
    CacheStatus, Channels, ImageFolderOptions, load_image_folder,
};
use core_tensor::loaders::npy::{self, Npz};
use core_tensor::transforms::{self, Pipeline, Transform};
use image::{GrayImage, RgbImage};
use ndarray::{Array1, Array2, Array3, Array4, ShapeBuilder};
use ndarray_npy::{NpzWriter, WriteNpyExt};
use tch::{Device, Kind, Tensor};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A grey image `w` x `h` whose pixel (x, y) is `base + 10 y + x`.
fn grey(w: u32, h: u32, base: u8) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| image::Luma([base + (10 * y + x) as u8]))
}

/// A colour image `w` x `h` whose pixel (x, y) is `(base + x, base + y, 200)`.
fn rgb(w: u32, h: u32, base: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([base + x as u8, base + y as u8, 200])
    })
}

/// Creates the parent folder of `path` and returns `path`.
fn at(path: PathBuf) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    path
}

/// Writes `n` grey `size` x `size` PNGs into `dir`, named `00.png`, `01.png`, …, pixel
/// values starting at `base + i`.
fn grey_pngs(dir: &Path, n: usize, size: u32, base: u8) {
    for i in 0..n {
        grey(size, size, base + i as u8)
            .save(at(dir.join(format!("{i:02}.png"))))
            .unwrap();
    }
}

fn values_f32(t: &Tensor) -> Vec<f32> {
    Vec::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap()
}

fn values_i64(t: &Tensor) -> Vec<i64> {
    Vec::try_from(t.flatten(0, -1).to_kind(Kind::Int64)).unwrap()
}

/// The error's message, checked to name `path` (its file name at least).
#[track_caller]
fn names_file<T: std::fmt::Debug>(result: core_tensor::Result<T>, path: &Path) -> String {
    let message = result.unwrap_err().to_string();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(message.contains(&*name), "{name} not in: {message}");
    message
}

// ---------------------------------------------------------------------------------------------
// Image folders.

#[test]
fn png_folder_gives_exact_pixels_sorted_classes_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shapes");
    // Classes written out of order: names are sorted, files within a class too.
    grey(4, 3, 50).save(at(root.join("zebra/b.png"))).unwrap();
    grey(4, 3, 20).save(at(root.join("zebra/a.png"))).unwrap();
    rgb(4, 3, 100).save(at(root.join("apple/x.png"))).unwrap();
    std::fs::write(root.join("zebra/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("apple/.hidden.png"), "hidden, skipped").unwrap();

    let opts = ImageFolderOptions::split(0.0, 0).no_cache();
    let folder = load_image_folder(&root, &opts, None).unwrap();
    assert_eq!(folder.class_names, ["apple", "zebra"]);
    assert_eq!(folder.cache, CacheStatus::Disabled);
    let x = &folder.train.inputs;
    assert_eq!(
        x.size(),
        [3, 3, 3, 4],
        "one colour image makes the folder RGB"
    );
    assert_eq!(x.kind(), Kind::Float);
    assert_eq!(values_i64(&folder.train.targets), [0, 1, 1]);
    assert!(folder.test.is_empty());
    // apple/x.png: R = 100 + x, G = 100 + y, B = 200, exact after /255.
    let px = |i, c, y, xx| x.double_value(&[i, c, y, xx]);
    assert_eq!(
        px(0, 0, 2, 3),
        f64::from(103.0f32 / 255.0),
        "exact: a float division of u8"
    );
    assert!((px(0, 0, 2, 3) * 255.0 - 103.0).abs() < 1e-4);
    assert!((px(0, 1, 2, 3) * 255.0 - 102.0).abs() < 1e-4);
    assert!((px(0, 2, 0, 0) * 255.0 - 200.0).abs() < 1e-4);
    // zebra/a.png (base 20) comes before zebra/b.png (base 50); grey replicated on 3 channels.
    let a = x.get(1);
    let want: Vec<f32> = (0..3)
        .flat_map(|_| (0..3).flat_map(|y| (0..4).map(move |xx| (20 + 10 * y + xx) as f32 / 255.0)))
        .collect();
    assert_eq!(values_f32(&a), want);
    assert!((px(2, 1, 1, 1) * 255.0 - 61.0).abs() < 1e-4);
}

#[test]
fn grey_folders_have_one_channel_and_channels_can_be_forced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("g");
    grey_pngs(&root.join("a"), 2, 3, 0);
    let grey_only =
        load_image_folder(&root, &ImageFolderOptions::split(0.0, 0).no_cache(), None).unwrap();
    assert_eq!(grey_only.train.inputs.size(), [2, 1, 3, 3]);
    let forced = load_image_folder(
        &root,
        &ImageFolderOptions::split(0.0, 0)
            .no_cache()
            .channels(Channels::Rgb),
        None,
    )
    .unwrap();
    assert_eq!(forced.train.inputs.size(), [2, 3, 3, 3]);
    let planes = forced.train.inputs.get(0);
    assert!(planes.get(0).equal(&planes.get(2)));
    assert!(planes.get(0).equal(&grey_only.train.inputs.get(0).get(0)));

    // Colour to grey: rounded 0.299 R + 0.587 G + 0.114 B.
    let c = dir.path().join("c");
    RgbImage::from_pixel(2, 2, image::Rgb([10, 200, 30]))
        .save(at(c.join("k/p.png")))
        .unwrap();
    let g = load_image_folder(
        &c,
        &ImageFolderOptions::split(0.0, 0)
            .no_cache()
            .channels(Channels::Grey),
        None,
    )
    .unwrap();
    assert_eq!(g.train.inputs.size(), [1, 1, 2, 2]);
    assert!((g.train.inputs.double_value(&[0, 0, 1, 1]) * 255.0 - 124.0).abs() < 1e-4);
}

#[test]
fn jpeg_and_bmp_files_decode() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mixed");
    let flat = RgbImage::from_pixel(8, 8, image::Rgb([120, 60, 30]));
    flat.save(at(root.join("a/one.jpg"))).unwrap();
    flat.save(at(root.join("a/two.JPEG"))).unwrap();
    flat.save(at(root.join("b/three.bmp"))).unwrap();
    let folder =
        load_image_folder(&root, &ImageFolderOptions::split(0.0, 0).no_cache(), None).unwrap();
    assert_eq!(folder.train.inputs.size(), [3, 3, 8, 8]);
    assert_eq!(values_i64(&folder.train.targets), [0, 0, 1]);
    // BMP is lossless; a flat JPEG comes back within a few levels.
    let bmp = folder.train.inputs.get(2);
    assert!((bmp.double_value(&[0, 4, 4]) * 255.0 - 120.0).abs() < 1e-4);
    assert!((bmp.double_value(&[2, 0, 7]) * 255.0 - 30.0).abs() < 1e-4);
    let jpeg = folder.train.inputs.get(0);
    assert!((jpeg.double_value(&[0, 4, 4]) * 255.0 - 120.0).abs() < 4.0);
}

#[test]
fn a_stratified_split_takes_the_fraction_of_each_class_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("strat");
    grey_pngs(&root.join("a"), 10, 2, 0);
    grey_pngs(&root.join("b"), 20, 2, 100);
    grey_pngs(&root.join("c"), 5, 2, 200);
    let load = |seed| {
        load_image_folder(
            &root,
            &ImageFolderOptions::split(0.2, seed).no_cache(),
            None,
        )
        .unwrap()
    };
    let one = load(1);
    let count = |t: &Tensor, c| values_i64(t).iter().filter(|&&l| l == c).count();
    assert_eq!(one.test.len(), 7);
    assert_eq!(one.train.len(), 28);
    assert_eq!(
        [0, 1, 2].map(|c| count(&one.test.targets, c)),
        [2, 4, 1],
        "20% of 10, 20 and 5"
    );
    assert_eq!([0, 1, 2].map(|c| count(&one.train.targets, c)), [8, 16, 4]);
    let again = load(1);
    assert!(one.test.inputs.equal(&again.test.inputs));
    assert!(one.train.inputs.equal(&again.train.inputs));
    let other = load(2);
    assert!(
        !one.test.inputs.equal(&other.test.inputs),
        "another seed, other test images"
    );
    assert_eq!(other.test.len(), 7);
}

#[test]
fn a_train_test_layout_keeps_its_parts_and_the_train_classes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tt");
    grey_pngs(&root.join("train/cat"), 3, 4, 0);
    grey_pngs(&root.join("train/dog"), 2, 4, 50);
    grey_pngs(&root.join("test/dog"), 2, 4, 150); // a subset of the classes is fine
    let folder =
        load_image_folder(&root, &ImageFolderOptions::train_test().no_cache(), None).unwrap();
    assert_eq!(folder.class_names, ["cat", "dog"]);
    assert_eq!(folder.train.inputs.size(), [5, 1, 4, 4]);
    assert_eq!(values_i64(&folder.train.targets), [0, 0, 0, 1, 1]);
    assert_eq!(values_i64(&folder.test.targets), [1, 1]);
    assert!((folder.test.inputs.double_value(&[1, 0, 0, 0]) * 255.0 - 151.0).abs() < 1e-4);

    // A test class that train/ lacks is refused, naming it.
    grey_pngs(&root.join("test/eel"), 1, 4, 0);
    let err = load_image_folder(&root, &ImageFolderOptions::train_test().no_cache(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("eel") && err.contains("test"), "{err}");

    // Without train/ and test/, the message says what to do.
    let flat = dir.path().join("flat");
    grey_pngs(&flat.join("a"), 1, 4, 0);
    let err = names_file(
        load_image_folder(&flat, &ImageFolderOptions::train_test(), None),
        &flat,
    );
    assert!(err.contains("ImageFolderOptions::split"), "{err}");
}

#[test]
fn the_cache_is_hit_on_the_second_load_and_rebuilt_when_a_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cached");
    let cache = dir.path().join("cache");
    grey_pngs(&root.join("a"), 3, 5, 0);
    grey_pngs(&root.join("b"), 3, 5, 100);
    let opts = ImageFolderOptions::split(0.34, 3);
    let first = load_image_folder(&root, &opts, Some(&cache)).unwrap();
    let CacheStatus::Built(file) = &first.cache else {
        panic!("first load should build the cache: {:?}", first.cache);
    };
    assert!(
        file.starts_with(&cache) && file.is_file(),
        "{}",
        file.display()
    );

    let second = load_image_folder(&root, &opts, Some(&cache)).unwrap();
    assert_eq!(second.cache, CacheStatus::Hit(file.clone()));
    assert!(second.train.inputs.equal(&first.train.inputs));
    assert!(second.test.inputs.equal(&first.test.inputs));
    assert!(second.train.targets.equal(&first.train.targets));
    assert_eq!(second.class_names, first.class_names);
    // Another seed shares the cached pixels.
    let reseeded =
        load_image_folder(&root, &ImageFolderOptions::split(0.34, 4), Some(&cache)).unwrap();
    assert_eq!(reseeded.cache, CacheStatus::Hit(file.clone()));

    // Replace a file (other pixels, later modification time): the key differs, rebuilt.
    let changed = root.join("a/00.png");
    GrayImage::from_pixel(5, 5, image::Luma([255]))
        .save(&changed)
        .unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&changed)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let all = ImageFolderOptions::split(0.0, 0);
    let third = load_image_folder(&root, &all, Some(&cache)).unwrap();
    assert_eq!(third.cache, CacheStatus::Built(file.clone()));
    assert_eq!(
        third.train.inputs.double_value(&[0, 0, 2, 2]),
        1.0,
        "the new pixels"
    );
    assert_eq!(
        load_image_folder(&root, &all, Some(&cache)).unwrap().cache,
        CacheStatus::Hit(file.clone())
    );

    // A new file is a new key too; a damaged cache file is rebuilt, not an error.
    grey_pngs(&root.join("c"), 1, 5, 7);
    let fourth = load_image_folder(&root, &all, Some(&cache)).unwrap();
    assert_eq!(fourth.class_names, ["a", "b", "c"]);
    assert_eq!(fourth.cache, CacheStatus::Built(file.clone()));
    std::fs::write(file, b"garbage").unwrap();
    let fifth = load_image_folder(&root, &all, Some(&cache)).unwrap();
    assert_eq!(fifth.cache, CacheStatus::Built(file.clone()));
    assert!(fifth.train.inputs.equal(&fourth.train.inputs));
    // Only the one cache file, no temporary left behind.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
}

#[test]
fn bad_image_folders_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let no_cache = ImageFolderOptions::split(0.0, 0).no_cache();

    // An empty class folder.
    let root = dir.path().join("empty_class");
    grey_pngs(&root.join("a"), 1, 4, 0);
    std::fs::create_dir_all(root.join("lonely")).unwrap();
    std::fs::write(root.join("lonely/readme.txt"), "no images").unwrap();
    let err = names_file(
        load_image_folder(&root, &no_cache, None),
        &root.join("lonely"),
    );
    assert!(err.contains("empty class folder"), "{err}");

    // No class subfolders at all, and a root that does not exist.
    let bare = dir.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let err = names_file(load_image_folder(&bare, &no_cache, None), &bare);
    assert!(err.contains("no class subfolders"), "{err}");
    names_file(
        load_image_folder(&dir.path().join("missing"), &no_cache, None),
        &dir.path().join("missing"),
    );

    // A truncated PNG and a file that is no image at all.
    let root = dir.path().join("truncated");
    grey_pngs(&root.join("a"), 2, 16, 0);
    let png = std::fs::read(root.join("a/01.png")).unwrap();
    std::fs::write(root.join("a/01.png"), &png[..png.len() / 2]).unwrap();
    let err = names_file(
        load_image_folder(&root, &no_cache, None),
        &root.join("a/01.png"),
    );
    assert!(err.contains("cannot decode"), "{err}");
    let root = dir.path().join("garbage");
    grey_pngs(&root.join("a"), 1, 4, 0);
    std::fs::write(root.join("a/fake.jpg"), b"this is not a jpeg").unwrap();
    names_file(
        load_image_folder(&root, &no_cache, None),
        &root.join("a/fake.jpg"),
    );

    // Mixed sizes: an error naming the odd file unless a resize is asked for.
    let root = dir.path().join("sizes");
    grey(4, 4, 0).save(at(root.join("a/small.png"))).unwrap();
    grey(6, 5, 0).save(at(root.join("b/wide.png"))).unwrap();
    let err = names_file(
        load_image_folder(&root, &no_cache, None),
        &root.join("b/wide.png"),
    );
    assert!(err.contains("6x5") && err.contains("resize"), "{err}");
    let resized = load_image_folder(&root, &no_cache.clone().resize(3, 2), None).unwrap();
    assert_eq!(resized.train.inputs.size(), [2, 1, 3, 2]);

    // Options out of range.
    let err = load_image_folder(&root, &ImageFolderOptions::split(1.0, 0), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("test_fraction"), "{err}");
}

/// A CIFAR-10-sized folder (60,000 32x32 JPEGs in 10 classes) loads from its cache in well
/// under a second. Slow to set up (it writes the files); run with
/// `cargo test -p core-tensor --test loaders -- --ignored --nocapture`.
///
/// The bound is on the better of two cached loads: the first large allocations of a process
/// pay the machine's first-touch page faults for the 737 MB of floats, which on a virtual
/// machine with free-page reporting (Firecracker) cost 0.5-1 s on their own, against about
/// 20 ms for the conversion into memory already touched.
#[test]
#[ignore]
fn a_cifar_sized_folder_loads_from_its_cache_in_under_a_second() {
    use rayon::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar");
    (0..60_000u32).into_par_iter().for_each(|i| {
        let img = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([(x * 8) as u8, (y * 8) as u8, (i % 251) as u8])
        });
        img.save(at(root.join(format!("class{}/{i:05}.jpg", i % 10))))
            .unwrap();
    });
    let cache = dir.path().join("cache");
    let opts = ImageFolderOptions::split(1.0 / 6.0, 0);
    let t = std::time::Instant::now();
    let first = load_image_folder(&root, &opts, Some(&cache)).unwrap();
    let decode = t.elapsed();
    assert!(matches!(first.cache, CacheStatus::Built(_)));
    let t = std::time::Instant::now();
    let second = load_image_folder(&root, &opts, Some(&cache)).unwrap();
    let cached = t.elapsed();
    assert!(matches!(second.cache, CacheStatus::Hit(_)));
    assert_eq!(second.train.len() + second.test.len(), 60_000);
    assert_eq!(second.test.len(), 10_000);
    drop(second);
    let t = std::time::Instant::now();
    let third = load_image_folder(&root, &opts, Some(&cache)).unwrap();
    let again = t.elapsed();
    assert!(matches!(third.cache, CacheStatus::Hit(_)));
    println!("decode {decode:?}, from cache {cached:?}, again {again:?}");
    assert!(
        cached.min(again).as_secs_f64() < 1.0,
        "{cached:?}, {again:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// NPY / NPZ.

fn write_npy<A: ndarray_npy::WritableElement, D: ndarray::Dimension>(
    path: &Path,
    a: &ndarray::Array<A, D>,
) {
    a.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

#[test]
fn npy_images_and_labels_get_their_shapes_and_scale() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("x.npy");
    let labels = dir.path().join("y.npy");
    write_npy(
        &images,
        &Array3::from_shape_fn((4, 2, 3), |(n, h, w)| (n * 6 + h * 3 + w) as u8 * 10),
    );
    write_npy(
        &labels,
        &Array2::from_shape_fn((4, 1), |(n, _)| (n % 2) as u8),
    );
    let data = npy::load(&images, &labels).unwrap();
    assert_eq!(data.inputs.size(), [4, 1, 2, 3]);
    assert_eq!(data.inputs.kind(), Kind::Float);
    assert!((data.inputs.double_value(&[3, 0, 1, 2]) * 255.0 - 230.0).abs() < 1e-4);
    assert_eq!(data.targets.kind(), Kind::Int64);
    assert_eq!(values_i64(&data.targets), [0, 1, 0, 1]);

    // Floats stay as they are; channel-last colour arrays become channel-first.
    let floats = dir.path().join("f.npy");
    write_npy(
        &floats,
        &Array4::from_shape_fn((2, 3, 2, 2), |(n, c, _, _)| n as f64 + c as f64 * 0.5),
    );
    let x = npy::read_images(&floats).unwrap();
    assert_eq!((x.size(), x.kind()), (vec![2, 3, 2, 2], Kind::Float));
    assert_eq!(x.double_value(&[1, 2, 0, 0]), 2.0);
    let nhwc = dir.path().join("nhwc.npy");
    write_npy(
        &nhwc,
        &Array4::from_shape_fn((2, 4, 5, 3), |(_, h, w, c)| (c * 100 + h * 10 + w) as u8),
    );
    let x = npy::read_images(&nhwc).unwrap();
    assert_eq!(x.size(), [2, 3, 4, 5]);
    assert!((x.double_value(&[1, 2, 3, 4]) * 255.0 - 234.0).abs() < 1e-4);
    // Labels (N,) of int64; Fortran order reads in logical order.
    let flat = dir.path().join("l.npy");
    write_npy(&flat, &Array1::from_vec(vec![3i64, 0, 2]));
    assert_eq!(values_i64(&npy::read_labels(&flat).unwrap()), [3, 0, 2]);
    let fortran = dir.path().join("fortran.npy");
    let a = Array2::from_shape_vec((2, 3), vec![1i32, 2, 3, 4, 5, 6]).unwrap();
    let mut f = Array2::<i32>::zeros((2, 3).f());
    f.assign(&a);
    assert!(!f.is_standard_layout());
    write_npy(&fortran, &f);
    let t = npy::read_tensor(&fortran).unwrap();
    assert_eq!(
        (t.size(), values_i64(&t)),
        (vec![2, 3], vec![1, 2, 3, 4, 5, 6])
    );
}

/// Writes a MedMNIST-like archive: `{train,val,test}_{images,labels}`.
fn medmnist(path: &Path, compressed: bool) {
    let file = std::fs::File::create(path).unwrap();
    let mut npz = if compressed {
        NpzWriter::new_compressed(file)
    } else {
        NpzWriter::new(file)
    };
    for (split, n) in [("train", 6usize), ("val", 2), ("test", 3)] {
        let x = Array3::from_shape_fn((n, 28, 28), |(i, h, w)| ((i + h + w) % 256) as u8);
        let y = Array2::from_shape_fn((n, 1), |(i, _)| (i % 2) as u8);
        npz.add_array(format!("{split}_images"), &x).unwrap();
        npz.add_array(format!("{split}_labels"), &y).unwrap();
    }
    npz.finish().unwrap();
}

#[test]
fn npz_archives_of_named_arrays_load_by_split() {
    let dir = tempfile::tempdir().unwrap();
    for compressed in [false, true] {
        let path = dir.path().join(format!("pneumonia-{compressed}.npz"));
        medmnist(&path, compressed);
        let mut npz = Npz::open(&path).unwrap();
        assert_eq!(
            npz.names(),
            [
                "test_images",
                "test_labels",
                "train_images",
                "train_labels",
                "val_images",
                "val_labels"
            ]
        );
        let train = npz.split("train").unwrap();
        assert_eq!(train.inputs.size(), [6, 1, 28, 28]);
        assert!((train.inputs.double_value(&[5, 0, 27, 27]) * 255.0 - 59.0).abs() < 1e-4);
        assert_eq!(values_i64(&train.targets), [0, 1, 0, 1, 0, 1]);
        assert_eq!(npz.split("test").unwrap().len(), 3);
        let raw = npz.tensor("val_labels").unwrap();
        assert_eq!((raw.size(), raw.kind()), (vec![2, 1], Kind::Uint8));
    }
}

#[test]
fn bad_arrays_are_errors_that_name_the_file_or_member() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("med.npz");
    medmnist(&path, false);
    let mut npz = Npz::open(&path).unwrap();
    // A missing array: the message lists those present.
    let err = names_file(npz.split("validation"), &path);
    assert!(
        err.contains("validation_images") && err.contains("val_images"),
        "{err}"
    );
    // Images used as labels: a shape error naming the member.
    let err = npz.labels("train_images").unwrap_err().to_string();
    assert!(
        err.contains("med.npz/train_images") && err.contains("(N,) or (N, 1)"),
        "{err}"
    );
    // Images and labels of different lengths.
    let err = npz
        .dataset("train_images", "val_labels")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("val_labels") && err.contains("6 images"),
        "{err}"
    );

    // Wrong dtype for images, wrong rank, multi-label targets, negative labels.
    let ints = dir.path().join("ints.npy");
    write_npy(&ints, &Array3::<i32>::zeros((2, 4, 4)));
    let err = names_file(npy::read_images(&ints), &ints);
    assert!(err.contains("uint8") && err.contains("int32"), "{err}");
    let flat = dir.path().join("flat.npy");
    write_npy(&flat, &Array2::<u8>::zeros((2, 16)));
    let err = names_file(npy::read_images(&flat), &flat);
    assert!(err.contains("[2, 16]"), "{err}");
    let multi = dir.path().join("multi.npy");
    write_npy(&multi, &Array2::<u8>::zeros((2, 14)));
    names_file(npy::read_labels(&multi), &multi);
    let negative = dir.path().join("negative.npy");
    write_npy(&negative, &Array1::from_vec(vec![0i64, -1]));
    let err = names_file(npy::read_labels(&negative), &negative);
    assert!(err.contains("-1"), "{err}");
    let fractional = dir.path().join("frac.npy");
    write_npy(&fractional, &Array1::from_vec(vec![0.5f32, 1.0]));
    names_file(npy::read_labels(&fractional), &fractional);

    // Truncated and not-NPY files; a file that is not a zip archive.
    let good = dir.path().join("good.npy");
    write_npy(&good, &Array3::<u8>::zeros((10, 8, 8)));
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.npy");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let err = names_file(npy::read_images(&truncated), &truncated);
    assert!(err.contains("truncated"), "{err}");
    let text = dir.path().join("text.npy");
    std::fs::write(&text, "hello").unwrap();
    let err = names_file(npy::read_tensor(&text), &text);
    assert!(err.contains("not a NumPy .npy array"), "{err}");
    let err = names_file(Npz::open(&good), &good);
    assert!(err.contains("not an .npz"), "{err}");
    names_file(
        npy::read_tensor(&dir.path().join("absent.npy")),
        &dir.path().join("absent.npy"),
    );
}

// ---------------------------------------------------------------------------------------------
// CSV.

#[test]
fn csv_with_class_names_by_header_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iris.csv");
    std::fs::write(
        &path,
        "sepal, species ,petal\n1.5,virginica,2\n0.25, setosa ,-3e1\n7,virginica,0\n",
    )
    .unwrap();
    let table = load_csv(&path, &CsvOptions::label("species")).unwrap();
    assert_eq!(table.class_names, ["setosa", "virginica"]);
    assert_eq!(table.feature_names, ["sepal", "petal"]);
    assert_eq!(table.data.inputs.size(), [3, 2]);
    assert_eq!(
        values_f32(&table.data.inputs),
        [1.5, 2.0, 0.25, -30.0, 7.0, 0.0]
    );
    assert_eq!(values_i64(&table.data.targets), [1, 0, 1]);
}

#[test]
fn csv_with_integer_labels_by_index_and_no_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digits.tsv");
    std::fs::write(&path, "3\t0.5\t1\n0\t1.5\t2\n").unwrap();
    let opts = CsvOptions::label(0).no_header().delimiter(b'\t');
    let table = load_csv(&path, &opts).unwrap();
    assert_eq!(values_i64(&table.data.targets), [3, 0]);
    assert_eq!(table.class_names, ["0", "1", "2", "3"]);
    assert_eq!(table.feature_names, ["column 1", "column 2"]);
    assert_eq!(values_f32(&table.data.inputs), [0.5, 1.0, 1.5, 2.0]);
}

#[test]
fn bad_csv_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write("nolabel.csv", "a,b\n1,2\n");
    let err = names_file(load_csv(&p, &CsvOptions::label("class")), &p);
    assert!(err.contains("\"class\"") && err.contains("a, b"), "{err}");
    let p = write("index.csv", "1,2\n");
    let err = names_file(load_csv(&p, &CsvOptions::label(5).no_header()), &p);
    assert!(err.contains("column 5"), "{err}");
    let p = write("text.csv", "x,y\n1,a\n2,b\nthree,a\n");
    let err = names_file(load_csv(&p, &CsvOptions::label("y")), &p);
    assert!(err.contains("line 4") && err.contains("\"three\""), "{err}");
    let p = write("ragged.csv", "x,y\n1,a\n2,b,3\n");
    let err = names_file(load_csv(&p, &CsvOptions::label("y")), &p);
    assert!(err.contains("line 3"), "{err}");
    let p = write("empty.csv", "x,y\n");
    let err = names_file(load_csv(&p, &CsvOptions::label("y")), &p);
    assert!(err.contains("no data rows"), "{err}");
    let p = write("blank.csv", "x,y\n,a\n");
    names_file(load_csv(&p, &CsvOptions::label("y")), &p);
    let p = write("named.csv", "1,2\n");
    let err = names_file(load_csv(&p, &CsvOptions::label("y").no_header()), &p);
    assert!(err.contains("index"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Transforms.

fn ramp(n: i64, c: i64, h: i64, w: i64) -> Tensor {
    Tensor::arange(n * c * h * w, (Kind::Float, Device::Cpu)).view([n, c, h, w])
}

#[test]
fn flips_and_crops_are_exact() {
    let x = ramp(1, 1, 2, 3); // [[0, 1, 2], [3, 4, 5]]
    assert_eq!(
        values_f32(&transforms::horizontal_flip(&x).unwrap()),
        [2., 1., 0., 5., 4., 3.]
    );
    let x = ramp(1, 1, 4, 5);
    let c = transforms::center_crop(&x, 2, 3).unwrap();
    assert_eq!(values_f32(&c), [6., 7., 8., 11., 12., 13.]);
    let err = transforms::center_crop(&x, 5, 5).unwrap_err().to_string();
    assert!(
        err.contains("center_crop") && err.contains("larger"),
        "{err}"
    );
    let err = transforms::random_crop(&x, 9, 5, 2, 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("random_crop") && err.contains("larger"),
        "{err}"
    );
    let err = transforms::center_crop(&Tensor::zeros([3, 4], (Kind::Float, Device::Cpu)), 1, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[N, C, H, W]"), "{err}");
}

#[test]
fn normalise_is_exact_and_checks_the_channels() {
    let x = Tensor::from_slice(&[1.0f32, 3.0, 10.0, 20.0]).view([1, 2, 1, 2]);
    let y = transforms::normalize(&x, &[1.0, 10.0], &[2.0, 5.0]).unwrap();
    assert_eq!(values_f32(&y), [0.0, 1.0, 0.0, 2.0]);
    let err = transforms::normalize(&x, &[0.5, 0.5, 0.5], &[1.0, 1.0, 1.0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 channels") && err.contains('3'), "{err}");
    let err = transforms::normalize(&x, &[0.0, 0.0], &[1.0, 0.0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("positive"), "{err}");
}

#[test]
fn resize_is_bilinear_like_pytorch() {
    // F.interpolate(torch.arange(4.).view(1, 1, 2, 2), (4, 4), mode="bilinear",
    // align_corners=False)
    let x = ramp(1, 1, 2, 2);
    let y = transforms::resize(&x, 4, 4).unwrap();
    assert_eq!(y.size(), [1, 1, 4, 4]);
    assert_eq!(
        values_f32(&y),
        [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0
        ]
    );
    assert_eq!(
        transforms::resize(&ramp(3, 2, 8, 8), 5, 7).unwrap().size(),
        [3, 2, 5, 7]
    );
    assert!(transforms::resize(&x, 0, 4).is_err());
}

#[test]
fn channels_convert_both_ways() {
    let g = ramp(2, 1, 2, 2);
    let rgb = transforms::grey_to_rgb(&g).unwrap();
    assert_eq!(rgb.size(), [2, 3, 2, 2]);
    assert!(rgb.narrow(1, 2, 1).equal(&g));
    let back = transforms::rgb_to_grey(&rgb).unwrap();
    assert!(back.allclose(&g, 1e-5, 1e-5, false), "the weights sum to 1");
    let pure = Tensor::from_slice(&[1.0f32, 0.0, 0.0]).view([1, 3, 1, 1]);
    assert!(
        (transforms::rgb_to_grey(&pure)
            .unwrap()
            .double_value(&[0, 0, 0, 0])
            - 0.299)
            .abs()
            < 1e-6
    );
    let err = transforms::rgb_to_grey(&g).unwrap_err().to_string();
    assert!(err.contains("3 channels"), "{err}");
    assert!(transforms::grey_to_rgb(&rgb).is_err());
}

#[test]
fn random_transforms_follow_the_seed_and_only_train() {
    let x = ramp(64, 3, 32, 32);
    let cifar = Pipeline::new()
        .random_crop(32, 32, 4)
        .random_horizontal_flip(0.5)
        .normalize(&[0.5, 0.5, 0.5], &[0.25, 0.25, 0.25]);
    let a = cifar.apply(&x, true, 11).unwrap();
    assert_eq!(a.size(), [64, 3, 32, 32]);
    tch::manual_seed(5); // libtorch's generator has no say
    let _ = Tensor::rand([3], (Kind::Float, Device::Cpu));
    assert!(
        a.equal(&cifar.apply(&x, true, 11).unwrap()),
        "same seed, same batch"
    );
    assert!(
        !a.equal(&cifar.apply(&x, true, 12).unwrap()),
        "another seed, another batch"
    );
    let eval = cifar.apply(&x, false, 11).unwrap();
    let normalised = (&x - 0.5) / 0.25;
    assert!(
        eval.equal(&normalised),
        "no augmentation when train is false"
    );

    // Flips: p = 0 and p = 1 are exact; p = 0.5 flips some, each image whole or not at all.
    let flip = |p, seed| transforms::random_horizontal_flip(&x, p, seed).unwrap();
    assert!(flip(0.0, 1).equal(&x));
    assert!(flip(1.0, 1).equal(&x.flip([3])));
    let half = flip(0.5, 1);
    let flipped: Vec<bool> = (0..64)
        .map(|i| {
            let (hi, xi) = (half.get(i), x.get(i));
            assert!(hi.equal(&xi) || hi.equal(&xi.flip([2])));
            !hi.equal(&xi)
        })
        .collect();
    let count = flipped.iter().filter(|f| **f).count();
    assert!((16..=48).contains(&count), "{count} of 64 flipped");
    assert!(transforms::random_horizontal_flip(&x, 1.5, 0).is_err());

    // A crop of a padded image differs from the image for some offsets, and the pipeline names
    // the failing step.
    let crops = transforms::random_crop(&x, 32, 32, 4, 3).unwrap();
    assert!(!crops.equal(&x));
    let bad = Pipeline::new().resize(16, 16).then(Transform::CenterCrop {
        height: 20,
        width: 20,
    });
    let err = bad.apply(&x, false, 0).unwrap_err().to_string();
    assert!(
        err.contains("pipeline step 1") && err.contains("center_crop"),
        "{err}"
    );
    assert!(
        Pipeline::new()
            .random_crop(40, 40, 0)
            .apply(&x, false, 0)
            .is_ok(),
        "skipped"
    );
}
