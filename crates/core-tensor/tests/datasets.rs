//! Loads the real datasets from the fixture cache and checks sizes and known values.
//!
//! Reference values were computed from the same files with Python's standard library, e.g.
//! `list(open("train-labels-idx1-ubyte", "rb").read()[8:18])` and
//! `sum(tarfile.open("orl_faces.tar.gz").extractfile("orl_faces/s1/1.pgm").read()[14:])`.

mod common;

use anyhow::ensure;
use common::{cache, histogram, loaded, sum};
use core_tensor::datasets::{FashionMnist, Fsdd, ImageDataset, Mnist, OrlFaces, Split, UciDigits};
use tch::Kind;

fn check_image_dataset(ds: &ImageDataset, n: i64, side: i64) -> anyhow::Result<()> {
    ensure!(
        ds.images.size() == [n, 1, side, side],
        "images {:?}",
        ds.images.size()
    );
    ensure!(ds.images.kind() == Kind::Uint8);
    ensure!(ds.labels.size() == [n] && ds.labels.kind() == Kind::Int64);
    ensure!(ds.len() == n as usize && ds.classes == 10);
    let hist = histogram(&ds.labels, 10)?;
    ensure!(hist.iter().sum::<i64>() == n, "histogram {hist:?}");
    ensure!(hist.iter().all(|&c| c > 0), "histogram {hist:?}");
    let x = ds.images_f32()?;
    ensure!(x.kind() == Kind::Float);
    let (lo, hi) = (
        x.f_min()?.f_double_value(&[])?,
        x.f_max()?.f_double_value(&[])?,
    );
    ensure!(lo == 0.0 && hi == 1.0, "images_f32 range {lo}..{hi}");
    Ok(())
}

#[test]
fn mnist_train() -> anyhow::Result<()> {
    let ds = loaded(Mnist::load(&cache()?, Split::Train), "mnist")?;
    check_image_dataset(&ds, 60_000, 28)?;
    let first: Vec<i64> = Vec::try_from(ds.labels.f_narrow(0, 0, 10)?)?;
    assert_eq!(first, [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(
        histogram(&ds.labels, 10)?,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(sum(&ds.images.f_get(0)?)?, 27_525);
    assert_eq!(ds.images.f_int64_value(&[0, 0, 14, 14])?, 240);
    Ok(())
}

#[test]
fn mnist_test() -> anyhow::Result<()> {
    let ds = loaded(Mnist::load(&cache()?, Split::Test), "mnist")?;
    check_image_dataset(&ds, 10_000, 28)?;
    assert_eq!(ds.labels.f_int64_value(&[0])?, 7);
    assert_eq!(
        histogram(&ds.labels, 10)?,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    Ok(())
}

#[test]
fn fashion_mnist() -> anyhow::Result<()> {
    let cache = cache()?;
    let train = loaded(FashionMnist::load(&cache, Split::Train), "fashion-mnist")?;
    check_image_dataset(&train, 60_000, 28)?;
    assert_eq!(histogram(&train.labels, 10)?, [6000; 10]);
    let first = train.labels.f_int64_value(&[0])?;
    assert_eq!(FashionMnist::CLASS_NAMES[first as usize], "Ankle boot");
    let test = loaded(FashionMnist::load(&cache, Split::Test), "fashion-mnist")?;
    check_image_dataset(&test, 10_000, 28)?;
    assert_eq!(histogram(&test.labels, 10)?, [1000; 10]);
    Ok(())
}

#[test]
fn uci_digits() -> anyhow::Result<()> {
    let ds = loaded(UciDigits::load(&cache()?), "uci-digits")?;
    check_image_dataset(&ds, 1797, 8)?;
    assert_eq!(ds.max_value, 16);
    assert_eq!(ds.images.f_max()?.f_int64_value(&[])?, 16);
    assert_eq!(ds.labels.f_int64_value(&[0])?, 0);
    assert_eq!(
        histogram(&ds.labels, 10)?,
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    // First row of the CSV: 0,0,5,13,9,1,0,0,...
    let row: Vec<i64> = Vec::try_from(
        ds.images
            .f_get(0)?
            .f_flatten(0, -1)?
            .f_narrow(0, 0, 6)?
            .f_to_kind(Kind::Int64)?,
    )?;
    assert_eq!(row, [0, 0, 5, 13, 9, 1]);
    Ok(())
}

#[test]
fn orl_faces() -> anyhow::Result<()> {
    let faces = loaded(OrlFaces::load(&cache()?), "orl-faces")?;
    assert_eq!(faces.images.size(), [400, 1, 112, 92]);
    assert_eq!(faces.len(), 400);
    assert_eq!(faces.images.f_int64_value(&[0, 0, 0, 0])?, 48);
    assert_eq!(sum(&faces.images.f_get(0)?)?, 1_322_397);
    assert_eq!(sum(&faces.images.f_get(399)?)?, 1_215_504);
    let person: Vec<i64> = Vec::try_from(&faces.person)?;
    let image: Vec<i64> = Vec::try_from(&faces.image)?;
    assert_eq!((person[0], image[0]), (0, 0));
    assert_eq!((person[11], image[11]), (1, 1));
    assert_eq!((person[399], image[399]), (39, 9));
    assert_eq!(histogram(&faces.person, 40)?, [10; 40]);
    Ok(())
}

#[test]
fn fsdd() -> anyhow::Result<()> {
    let fsdd = loaded(Fsdd::load(&cache()?), "fsdd")?;
    assert_eq!(fsdd.recordings.len(), 3000);
    assert_eq!(
        fsdd.speakers,
        ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    );
    assert!(fsdd.recordings.iter().all(|r| r.sample_rate == 8000));
    for r in &fsdd.recordings {
        let seconds = r.samples.len() as f64 / 8000.0;
        assert!((0.1..2.5).contains(&seconds), "{r:?} lasts {seconds} s");
        assert!(r.samples.iter().all(|s| (-1.0..1.0).contains(s)));
    }
    let first = &fsdd.recordings[0];
    assert_eq!(
        (first.speaker.as_str(), first.digit, first.take),
        ("george", 0, 0)
    );
    assert_eq!(first.samples.len(), 2384);
    assert_eq!(
        first.samples[..3],
        [-1489.0 / 32768.0, -962.0 / 32768.0, -606.0 / 32768.0]
    );

    let (train, test) = fsdd.split_by_take();
    assert_eq!((train.len(), test.len()), (2700, 300));
    assert!(test.iter().all(|r| r.take <= 4) && train.iter().all(|r| r.take >= 5));
    for speaker in &fsdd.speakers {
        assert_eq!(test.iter().filter(|r| &r.speaker == speaker).count(), 50);
    }
    let (others, theo) = fsdd.split_by_speaker("theo")?;
    assert_eq!((others.len(), theo.len()), (2500, 500));
    assert!(theo.iter().all(|r| r.speaker == "theo"));
    Ok(())
}
