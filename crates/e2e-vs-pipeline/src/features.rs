//! Hand-designed audio features: framing, window, FFT, power spectrogram, mel filterbank,
//! log-mel (decibels) and MFCC (DCT-II), computed in `f64` and returned as network inputs.
//!
//! Every step follows librosa 0.11 with the parameters of [`FeatureConfig`] set explicitly on
//! both sides (`tests/librosa_reference.rs` checks real FSDD files against
//! `librosa.feature.melspectrogram`, `librosa.power_to_db` and `librosa.feature.mfcc`):
//!
//! 1. **Centre padding**: with `center`, `n_fft / 2` samples are added on both sides (zeros for
//!    [`PadMode::Constant`], librosa's default since 0.10; mirror images for
//!    [`PadMode::Reflect`]), so frame `t` is centred on sample `t · hop_length`.
//! 2. **Framing**: `1 + (len − n_fft) / hop_length` frames of `n_fft` samples.
//! 3. **Window**: a periodic Hann window of `win_length` samples,
//!    `w[i] = 0.5 − 0.5 cos(2π i / win_length)` (scipy's `get_window("hann", fftbins=True)`),
//!    zero-padded on both sides to `n_fft` (`librosa.util.pad_center`).
//! 4. **FFT**: a real FFT of each windowed frame (the `realfft` crate), `1 + n_fft / 2` bins;
//!    the spectrogram is `|X|^power`.
//! 5. **Mel filterbank**: `n_mels` triangles between `fmin` and `fmax` on the Slaney mel scale
//!    (linear below 1 kHz, logarithmic above; librosa's `htk=False`) or the HTK scale, each with
//!    area normalisation `2 / (f[m+2] − f[m])` ([`MelNorm::Slaney`]) or none.
//! 6. **Decibels**: `10 log10(max(S, amin)) − 10 log10(max(reference, amin))`, then, with
//!    `top_db`, clipped from below at `max − top_db` over the whole recording.
//! 7. **MFCC**: the orthonormal DCT-II over the mel axis of the decibel log-mel, first `n_mfcc`
//!    coefficients (no liftering).
//!
//! Matrices are row-major `[rows, frames]`, like librosa's `(n_mels, t)` arrays.

use std::sync::Arc;

use core_tensor::{Error, Result};
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How the signal is extended at both ends when frames are centred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// Zeros (librosa's `pad_mode="constant"`, its default).
    Constant,
    /// Mirror image without repeating the edge sample (`numpy.pad(mode="reflect")`).
    Reflect,
}

/// The mel scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelScale {
    /// Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above (librosa's
    /// default, `htk=False`).
    Slaney,
    /// `2595 log10(1 + f / 700)` (`htk=True`).
    Htk,
}

/// Normalisation of the mel triangles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelNorm {
    /// Each triangle scaled by `2 / (f[m+2] − f[m])` (equal area; librosa's `norm="slaney"`).
    Slaney,
    /// Peak 1 (`norm=None`).
    None,
}

/// Every parameter of the features. There is no `Default`: use [`FeatureConfig::fsdd`] or state
/// each choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// Samples per second of the input.
    pub sample_rate: u32,
    /// FFT length (samples per frame).
    pub n_fft: usize,
    /// Window length, at most `n_fft` (the window is centred in the frame).
    pub win_length: usize,
    /// Samples between the starts of consecutive frames.
    pub hop_length: usize,
    /// Centre the frames (pad `n_fft / 2` on both sides).
    pub center: bool,
    /// How to pad when centring.
    pub pad_mode: PadMode,
    /// Exponent of the magnitude spectrum (2: power, 1: magnitude).
    pub power: f64,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest edge of the mel bank, Hz.
    pub fmin: f64,
    /// Highest edge of the mel bank, Hz (at most `sample_rate / 2`).
    pub fmax: f64,
    /// The mel scale.
    pub mel_scale: MelScale,
    /// The triangles' normalisation.
    pub mel_norm: MelNorm,
    /// Floor of the spectrum before the logarithm.
    pub amin: f64,
    /// The spectrum value that maps to 0 dB.
    pub reference: f64,
    /// Clip the decibels from below at `max − top_db` per recording (`None`: no clipping).
    pub top_db: Option<f64>,
    /// Number of cepstral coefficients kept.
    pub n_mfcc: usize,
}

impl FeatureConfig {
    /// The project's speech features for FSDD at 8 kHz: 32 ms FFT (`n_fft` 256) over a 25 ms
    /// Hann window (200 samples), 10 ms hop (80), centred with zero padding; power spectrum; 40
    /// Slaney mel bands from 0 Hz to Nyquist (4 kHz) with Slaney area normalisation; decibels
    /// relative to 1 with `amin` 1e-10 and `top_db` 80 (librosa's defaults); 13 MFCC (DCT-II,
    /// orthonormal). The 25 ms / 10 ms frames and 13 coefficients are the usual ASR choice; 40
    /// bands resolve 8 kHz speech without empty triangles at `n_fft` 256.
    pub fn fsdd() -> Self {
        FeatureConfig {
            sample_rate: 8000,
            n_fft: 256,
            win_length: 200,
            hop_length: 80,
            center: true,
            pad_mode: PadMode::Constant,
            power: 2.0,
            n_mels: 40,
            fmin: 0.0,
            fmax: 4000.0,
            mel_scale: MelScale::Slaney,
            mel_norm: MelNorm::Slaney,
            amin: 1e-10,
            reference: 1.0,
            top_db: Some(80.0),
            n_mfcc: 13,
        }
    }

    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |f: &str, why: String| Err(Error::InvalidArgument(format!("features.{f}: {why}")));
        if self.sample_rate == 0 {
            return bad("sample_rate", "must be > 0".into());
        }
        if self.n_fft < 2 {
            return bad("n_fft", "must be at least 2".into());
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return bad("win_length", format!("must be in 1..={}", self.n_fft));
        }
        if self.hop_length == 0 {
            return bad("hop_length", "must be > 0".into());
        }
        if !(self.power > 0.0 && self.power.is_finite()) {
            return bad("power", "must be a positive number".into());
        }
        if self.n_mels == 0 {
            return bad("n_mels", "must be > 0".into());
        }
        let nyquist = self.sample_rate as f64 / 2.0;
        if !(self.fmin >= 0.0 && self.fmin < self.fmax) {
            return bad("fmin", format!("must be in [0, fmax = {})", self.fmax));
        }
        if self.fmax > nyquist {
            return bad(
                "fmax",
                format!("must be at most the Nyquist frequency {nyquist}"),
            );
        }
        if self.amin.is_nan() || self.amin <= 0.0 {
            return bad("amin", "must be > 0".into());
        }
        if self.reference.is_nan() || self.reference <= 0.0 {
            return bad("reference", "must be > 0".into());
        }
        if self.top_db.is_some_and(|t| t.is_nan() || t < 0.0) {
            return bad("top_db", "must be >= 0".into());
        }
        if self.n_mfcc == 0 || self.n_mfcc > self.n_mels {
            return bad("n_mfcc", format!("must be in 1..={} (n_mels)", self.n_mels));
        }
        Ok(())
    }

    /// Frames of a signal of `len` samples (0 if it is shorter than one frame).
    pub fn frames(&self, len: usize) -> usize {
        let padded = if self.center {
            len + 2 * (self.n_fft / 2)
        } else {
            len
        };
        if padded < self.n_fft {
            0
        } else {
            1 + (padded - self.n_fft) / self.hop_length
        }
    }

    /// Frequency bins of the spectrum, `1 + n_fft / 2`.
    pub fn bins(&self) -> usize {
        1 + self.n_fft / 2
    }
}

/// A row-major matrix `[rows, cols]` of `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows (bins, bands or coefficients).
    pub rows: usize,
    /// Number of columns (frames).
    pub cols: usize,
    /// `rows · cols` values, row after row.
    pub data: Vec<f64>,
}

impl Matrix {
    fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// The value at `(row, col)`.
    pub fn at(&self, row: usize, col: usize) -> f64 {
        self.data[row * self.cols + col]
    }

    /// The matrix as a float32 tensor `[rows, cols]`.
    pub fn to_tensor(&self) -> Tensor {
        let v: Vec<f32> = self.data.iter().map(|&x| x as f32).collect();
        Tensor::from_slice(&v).view([self.rows as i64, self.cols as i64])
    }
}

/// Computes the features of [`FeatureConfig`]; holds the FFT plan, the window, the mel bank and
/// the DCT matrix, so build it once and reuse it.
pub struct FeatureExtractor {
    cfg: FeatureConfig,
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    mel_bank: Matrix,
    dct: Matrix,
}

impl std::fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureExtractor")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl FeatureExtractor {
    /// Validates `cfg` and prepares the FFT plan, window, mel bank and DCT.
    pub fn new(cfg: FeatureConfig) -> Result<Self> {
        cfg.validate()?;
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(cfg.n_fft);
        let window = padded_hann(cfg.win_length, cfg.n_fft);
        let mel_bank = mel_filterbank(&cfg);
        let dct = dct2_ortho(cfg.n_mfcc, cfg.n_mels);
        Ok(FeatureExtractor {
            cfg,
            fft,
            window,
            mel_bank,
            dct,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FeatureConfig {
        &self.cfg
    }

    /// The mel filterbank `[n_mels, 1 + n_fft / 2]` (librosa's `filters.mel`).
    pub fn mel_bank(&self) -> &Matrix {
        &self.mel_bank
    }

    /// The window of each frame, `n_fft` values.
    pub fn window(&self) -> &[f64] {
        &self.window
    }

    /// `|STFT|^power`, `[1 + n_fft / 2, frames]`.
    pub fn power_spectrogram(&self, samples: &[f32]) -> Result<Matrix> {
        let c = &self.cfg;
        let signal = self.pad(samples)?;
        let frames = c.frames(samples.len());
        let bins = c.bins();
        let mut out = Matrix::zeros(bins, frames);
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        for t in 0..frames {
            let start = t * c.hop_length;
            for (i, x) in input.iter_mut().enumerate() {
                *x = signal[start + i] * self.window[i];
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .map_err(|e| Error::InvalidArgument(format!("FFT failed: {e}")))?;
            for (k, z) in spectrum.iter().enumerate() {
                let mag2 = z.re * z.re + z.im * z.im;
                out.data[k * frames + t] = if c.power == 2.0 {
                    mag2
                } else {
                    mag2.sqrt().powf(c.power)
                };
            }
        }
        Ok(out)
    }

    /// The mel spectrogram `[n_mels, frames]` (mel bank times the power spectrogram).
    pub fn mel_spectrogram(&self, samples: &[f32]) -> Result<Matrix> {
        let spec = self.power_spectrogram(samples)?;
        Ok(matmul(&self.mel_bank, &spec))
    }

    /// The log-mel spectrogram in decibels `[n_mels, frames]` (step 6 of the module docs).
    pub fn log_mel(&self, samples: &[f32]) -> Result<Matrix> {
        let mut m = self.mel_spectrogram(samples)?;
        self.to_db(&mut m);
        Ok(m)
    }

    /// The MFCC `[n_mfcc, frames]` of the decibel log-mel.
    pub fn mfcc(&self, samples: &[f32]) -> Result<Matrix> {
        Ok(matmul(&self.dct, &self.log_mel(samples)?))
    }

    /// Log-mel spectrograms of a batch as a network input `[N, 1, n_mels, frames]`: each
    /// recording is first cut or zero-padded at its end to `len` samples
    /// ([`fit_length`]), so `frames = config().frames(len)`.
    pub fn log_mel_batch<S: AsRef<[f32]>>(&self, recordings: &[S], len: usize) -> Result<Tensor> {
        let rows = self.batch(recordings, len, |x| self.log_mel(x))?;
        Ok(rows.unsqueeze(1))
    }

    /// MFCCs of a batch as a network input `[N, n_mfcc, frames]`, recordings fitted to `len`
    /// samples as in [`Self::log_mel_batch`].
    pub fn mfcc_batch<S: AsRef<[f32]>>(&self, recordings: &[S], len: usize) -> Result<Tensor> {
        self.batch(recordings, len, |x| self.mfcc(x))
    }

    fn batch<S: AsRef<[f32]>>(
        &self,
        recordings: &[S],
        len: usize,
        f: impl Fn(&[f32]) -> Result<Matrix>,
    ) -> Result<Tensor> {
        if recordings.is_empty() {
            return Err(Error::InvalidArgument("no recordings to featurise".into()));
        }
        let mats = recordings
            .iter()
            .map(|r| f(&fit_length(r.as_ref(), len)))
            .collect::<Result<Vec<_>>>()?;
        let tensors: Vec<Tensor> = mats.iter().map(Matrix::to_tensor).collect();
        Ok(Tensor::stack(&tensors, 0))
    }

    fn to_db(&self, m: &mut Matrix) {
        let c = &self.cfg;
        let offset = 10.0 * c.reference.max(c.amin).log10();
        for v in &mut m.data {
            *v = 10.0 * v.max(c.amin).log10() - offset;
        }
        if let Some(top) = c.top_db {
            let max = m.data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for v in &mut m.data {
                *v = v.max(max - top);
            }
        }
    }

    fn pad(&self, samples: &[f32]) -> Result<Vec<f64>> {
        let c = &self.cfg;
        let x = samples.iter().map(|&s| s as f64);
        if !c.center {
            if samples.len() < c.n_fft {
                return Err(Error::InvalidArgument(format!(
                    "a recording of {} samples is shorter than one frame (n_fft = {})",
                    samples.len(),
                    c.n_fft
                )));
            }
            return Ok(x.collect());
        }
        let p = c.n_fft / 2;
        match c.pad_mode {
            PadMode::Constant => {
                let mut v = vec![0.0; p];
                v.extend(x);
                v.extend(std::iter::repeat_n(0.0, p));
                Ok(v)
            }
            PadMode::Reflect => {
                let n = samples.len();
                if n <= p {
                    return Err(Error::InvalidArgument(format!(
                        "reflect padding of {p} samples needs more than {p} samples, got {n}"
                    )));
                }
                let s = |i: usize| samples[i] as f64;
                let mut v: Vec<f64> = (1..=p).rev().map(s).collect();
                v.extend(x);
                v.extend((n - 1 - p..n - 1).rev().map(s));
                Ok(v)
            }
        }
    }
}

/// `samples` cut to `len`, or zero-padded at the end to `len`.
pub fn fit_length(samples: &[f32], len: usize) -> Vec<f32> {
    let mut v: Vec<f32> = samples.iter().take(len).copied().collect();
    v.resize(len, 0.0);
    v
}

/// A batch of raw waveforms as a network input `[N, 1, len]` (each [`fit_length`]ed), for
/// end-to-end models such as `pretrained_zoo::arch::AudioCnn1d`.
pub fn waveform_batch<S: AsRef<[f32]>>(recordings: &[S], len: usize) -> Result<Tensor> {
    if recordings.is_empty() || len == 0 {
        return Err(Error::InvalidArgument(
            "waveform_batch needs recordings and len > 0".into(),
        ));
    }
    let flat: Vec<f32> = recordings
        .iter()
        .flat_map(|r| fit_length(r.as_ref(), len))
        .collect();
    Ok(Tensor::from_slice(&flat).view([recordings.len() as i64, 1, len as i64]))
}

/// The periodic Hann window of `win` samples, centred in `n_fft` zeros.
fn padded_hann(win: usize, n_fft: usize) -> Vec<f64> {
    let mut w = vec![0.0; n_fft];
    let left = (n_fft - win) / 2;
    for i in 0..win {
        w[left + i] = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / win as f64).cos();
    }
    w
}

/// Hz to mel on `scale`.
pub fn hz_to_mel(f: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
        MelScale::Slaney => {
            let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
            let min_log_mel = min_log_hz / f_sp;
            let logstep = 6.4f64.ln() / 27.0;
            if f >= min_log_hz {
                min_log_mel + (f / min_log_hz).ln() / logstep
            } else {
                f / f_sp
            }
        }
    }
}

/// Mel to Hz on `scale` (the inverse of [`hz_to_mel`]).
pub fn mel_to_hz(m: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
        MelScale::Slaney => {
            let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
            let min_log_mel = min_log_hz / f_sp;
            let logstep = 6.4f64.ln() / 27.0;
            if m >= min_log_mel {
                min_log_hz * (logstep * (m - min_log_mel)).exp()
            } else {
                f_sp * m
            }
        }
    }
}

/// librosa's `filters.mel`: `[n_mels, 1 + n_fft / 2]`.
fn mel_filterbank(c: &FeatureConfig) -> Matrix {
    let bins = c.bins();
    let (lo, hi) = (
        hz_to_mel(c.fmin, c.mel_scale),
        hz_to_mel(c.fmax, c.mel_scale),
    );
    // n_mels + 2 edges, equally spaced in mel.
    let edges: Vec<f64> = (0..c.n_mels + 2)
        .map(|i| {
            let m = lo + (hi - lo) * i as f64 / (c.n_mels + 1) as f64;
            mel_to_hz(m, c.mel_scale)
        })
        .collect();
    let nyquist = c.sample_rate as f64 / 2.0;
    let freqs: Vec<f64> = (0..bins)
        .map(|k| nyquist * k as f64 / (bins - 1) as f64)
        .collect();
    let mut w = Matrix::zeros(c.n_mels, bins);
    for m in 0..c.n_mels {
        let (f0, f1, f2) = (edges[m], edges[m + 1], edges[m + 2]);
        let norm = match c.mel_norm {
            MelNorm::Slaney => 2.0 / (f2 - f0),
            MelNorm::None => 1.0,
        };
        for (k, &f) in freqs.iter().enumerate() {
            let lower = (f - f0) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            w.data[m * bins + k] = lower.min(upper).max(0.0) * norm;
        }
    }
    w
}

/// The orthonormal DCT-II matrix `[n_out, n_in]` (scipy's `dct(type=2, norm="ortho")`).
fn dct2_ortho(n_out: usize, n_in: usize) -> Matrix {
    let mut d = Matrix::zeros(n_out, n_in);
    let n = n_in as f64;
    for k in 0..n_out {
        let scale = if k == 0 {
            (1.0 / n).sqrt()
        } else {
            (2.0 / n).sqrt()
        };
        for i in 0..n_in {
            d.data[k * n_in + i] =
                scale * (std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2.0 * n)).cos();
        }
    }
    d
}

fn matmul(a: &Matrix, b: &Matrix) -> Matrix {
    debug_assert_eq!(a.cols, b.rows);
    let mut out = Matrix::zeros(a.rows, b.cols);
    for i in 0..a.rows {
        for k in 0..a.cols {
            let aik = a.data[i * a.cols + k];
            if aik == 0.0 {
                continue;
            }
            let row = &b.data[k * b.cols..(k + 1) * b.cols];
            let dst = &mut out.data[i * b.cols..(i + 1) * b.cols];
            for (d, &x) in dst.iter_mut().zip(row) {
                *d += aik * x;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, sr: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / sr).sin() as f32)
            .collect()
    }

    #[test]
    fn frames_and_shapes_follow_the_config() {
        let fx = FeatureExtractor::new(FeatureConfig::fsdd()).unwrap();
        // 8000 samples, centred: 1 + 8000 / 80 frames.
        assert_eq!(fx.config().frames(8000), 101);
        let x = sine(440.0, 8000.0, 8000);
        assert_eq!(fx.power_spectrogram(&x).unwrap().rows, 129);
        let m = fx
            .log_mel_batch(&[x.clone(), x[..3000].to_vec()], 4000)
            .unwrap();
        assert_eq!(m.size(), [2, 1, 40, 51]);
        let c = fx.mfcc_batch(&[x], 4000).unwrap();
        assert_eq!(c.size(), [1, 13, 51]);
        assert_eq!(
            waveform_batch(&[vec![1.0f32; 3]], 5).unwrap().size(),
            [1, 1, 5]
        );
    }

    #[test]
    fn a_sine_peaks_in_its_bin_and_band() {
        let fx = FeatureExtractor::new(FeatureConfig::fsdd()).unwrap();
        // 1000 Hz is bin 1000 / (8000 / 256) = 32.
        let spec = fx.power_spectrogram(&sine(1000.0, 8000.0, 4000)).unwrap();
        let t = 20;
        let peak = (0..spec.rows)
            .max_by(|&a, &b| spec.at(a, t).total_cmp(&spec.at(b, t)))
            .unwrap();
        assert_eq!(peak, 32);
        // The band whose centre is nearest 1000 Hz carries the most energy.
        let mel = fx.mel_spectrogram(&sine(1000.0, 8000.0, 4000)).unwrap();
        let band = (0..mel.rows)
            .max_by(|&a, &b| mel.at(a, t).total_cmp(&mel.at(b, t)))
            .unwrap();
        let c = fx.config();
        let centre = |m: usize| {
            let (lo, hi) = (
                hz_to_mel(c.fmin, c.mel_scale),
                hz_to_mel(c.fmax, c.mel_scale),
            );
            mel_to_hz(
                lo + (hi - lo) * (m + 1) as f64 / (c.n_mels + 1) as f64,
                c.mel_scale,
            )
        };
        let nearest = (0..c.n_mels)
            .min_by(|&a, &b| {
                (centre(a) - 1000.0)
                    .abs()
                    .total_cmp(&(centre(b) - 1000.0).abs())
            })
            .unwrap();
        assert!(
            band.abs_diff(nearest) <= 1,
            "band {band}, nearest {nearest}"
        );
    }

    #[test]
    fn mel_scale_round_trips_and_dct_is_orthonormal() {
        for f in [0.0, 300.0, 999.0, 1000.0, 3999.0] {
            for s in [MelScale::Slaney, MelScale::Htk] {
                assert!((mel_to_hz(hz_to_mel(f, s), s) - f).abs() < 1e-9);
            }
        }
        let d = dct2_ortho(8, 8);
        for a in 0..8 {
            for b in 0..8 {
                let dot: f64 = (0..8).map(|i| d.at(a, i) * d.at(b, i)).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = FeatureConfig::fsdd();
        c.fmax = 5000.0;
        let err = FeatureExtractor::new(c).unwrap_err().to_string();
        assert!(err.contains("features.fmax"), "{err}");
        let mut c = FeatureConfig::fsdd();
        c.win_length = 300;
        assert!(c.validate().unwrap_err().to_string().contains("win_length"));
    }
}
