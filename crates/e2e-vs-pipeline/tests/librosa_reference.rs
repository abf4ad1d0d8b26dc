//! The crate's log-mel and MFCC against librosa 0.11 on real FSDD recordings, with the same
//! parameters on both sides (`librosa_reference.py` beside this file computes the reference).
//!
//! Tolerance: 1e-6 dB on the log-mel and 1e-6 on the MFCC, absolute (both sides compute in
//! float64 from the same float32 samples; what differs is FFT rounding, ~1e-12 relative).

mod common;

use anyhow::{Context, Result, ensure};
use core_tensor::datasets::Fsdd;
use e2e_vs_pipeline::features::{
    FeatureConfig, FeatureExtractor, Matrix, MelNorm, MelScale, PadMode,
};

const TOLERANCE: f64 = 1e-6;

fn read_f64(path: &std::path::Path) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

fn max_abs_diff(ours: &Matrix, reference: &[f64]) -> Result<f64> {
    ensure!(
        ours.data.len() == reference.len(),
        "shape differs: ours {}x{} = {} values, librosa {} values",
        ours.rows,
        ours.cols,
        ours.data.len(),
        reference.len()
    );
    Ok(ours
        .data
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max))
}

/// Compares every recording of `recordings` under `cfg`.
fn check(cfg: FeatureConfig, recordings: &[&[f32]]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (i, r) in recordings.iter().enumerate() {
        let bytes: Vec<u8> = r.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(dir.path().join(format!("rec{i}.f32")), bytes)?;
    }
    let cfg_path = dir.path().join("config.json");
    std::fs::write(&cfg_path, serde_json::to_string(&cfg)?)?;
    common::run_script("librosa_reference.py", &[&cfg_path, dir.path()])?;
    let fx = FeatureExtractor::new(cfg.clone())?;
    for (i, r) in recordings.iter().enumerate() {
        let mel = fx.log_mel(r)?;
        let mfcc = fx.mfcc(r)?;
        let d_mel = max_abs_diff(&mel, &read_f64(&dir.path().join(format!("logmel{i}.f64")))?)?;
        let d_mfcc = max_abs_diff(&mfcc, &read_f64(&dir.path().join(format!("mfcc{i}.f64")))?)?;
        ensure!(
            d_mel <= TOLERANCE && d_mfcc <= TOLERANCE,
            "recording {i} ({} samples) under {cfg:?}: max |Δ| log-mel {d_mel:e} dB, MFCC \
             {d_mfcc:e} (tolerance {TOLERANCE:e})",
            r.len()
        );
        ensure!(mel.cols == cfg.frames(r.len()), "frame count");
    }
    Ok(())
}

/// Four recordings: different digits, speakers and lengths (the shortest and the longest of
/// speaker `jackson`'s digit 0, and two others).
fn recordings(fsdd: &Fsdd) -> Vec<&[f32]> {
    let pick = |digit: u8, speaker: &str, take: u32| {
        fsdd.recordings
            .iter()
            .find(|r| r.digit == digit && r.speaker == speaker && r.take == take)
            .map(|r| r.samples.as_slice())
    };
    let mut out: Vec<&[f32]> = [(0, "jackson", 0), (7, "nicolas", 3), (3, "theo", 12)]
        .iter()
        .filter_map(|&(d, s, t)| pick(d, s, t))
        .collect();
    let longest = fsdd
        .recordings
        .iter()
        .max_by_key(|r| r.samples.len())
        .unwrap();
    out.push(&longest.samples);
    out
}

#[test]
fn log_mel_and_mfcc_match_librosa_on_fsdd() -> Result<()> {
    let fsdd = Fsdd::load(&core_tensor::fixtures::cache_dir())?;
    let recs = recordings(&fsdd);
    ensure!(recs.len() == 4, "expected recordings missing from FSDD");
    check(FeatureConfig::fsdd(), &recs)
}

#[test]
fn other_settings_match_librosa_too() -> Result<()> {
    // Reflect padding, a full-length window, the HTK scale without normalisation, a
    // magnitude spectrum, a band-limited bank and no top_db clipping.
    let fsdd = Fsdd::load(&core_tensor::fixtures::cache_dir())?;
    let recs = recordings(&fsdd);
    let cfg = FeatureConfig {
        n_fft: 512,
        win_length: 512,
        hop_length: 128,
        pad_mode: PadMode::Reflect,
        power: 1.0,
        n_mels: 64,
        fmin: 60.0,
        fmax: 3800.0,
        mel_scale: MelScale::Htk,
        mel_norm: MelNorm::None,
        top_db: None,
        n_mfcc: 20,
        ..FeatureConfig::fsdd()
    };
    check(cfg, &recs[..2])
}
