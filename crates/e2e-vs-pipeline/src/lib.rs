//! `e2e-vs-pipeline`: staged pipelines against end-to-end networks across training-set sizes
//! (claims E-1…E-6 of the chapter), and the pieces such comparisons are built from; the project's
//! experiments P1–P4 use them from the workspace's `experiments` crate.
//!
//! # Design
//!
//! - **One interface** ([`pipeline`]): a [`pipeline::Pipeline`] is a sequence of stages, each
//!   hand-designed (a pure function of the pipeline's input and the previous output) or
//!   learned (a [`pipeline::LearnedStage`]: a network with its own supervision, trained on its
//!   own data); a [`pipeline::EndToEnd`] model is one learned stage. Both implement
//!   [`pipeline::Model`] and are scored by [`pipeline::evaluate`] (accuracy or MAE).
//! - **The sweep** ([`sweep`]): contenders are trait objects (or closures) that train from
//!   scratch at a size `N` with a seed and return one test metric; [`sweep::run_sweep`] runs
//!   them all at every size and seed and gives learning curves with 95% intervals. The
//!   crossover of two contenders is the **last sign change of the mean paired advantage,
//!   interpolated linearly in log N**; its uncertainty is reported two ways: a **bootstrap
//!   over seeds** (whole per-seed curves resampled; 95% percentile interval, and the share of
//!   resamples that cross the same way) and the **sizes where the paired 95% t interval of
//!   the advantage contains zero**. No sign change is "no crossover in range", with the
//!   leader named.
//! - **Audio features** ([`features`]): framing, periodic Hann window, real FFT (`realfft`),
//!   power spectrum, Slaney mel filterbank, decibels, DCT-II MFCC, matching librosa 0.11 to
//!   1e-6 on real FSDD recordings (`tests/librosa_reference.rs`). [`features::FeatureConfig::fsdd`]
//!   states the project's parameters: sr 8000, `n_fft` 256, Hann window of 200 samples (25 ms)
//!   centred in the frame, hop 80 (10 ms), centred frames with zero padding (librosa's default
//!   `pad_mode="constant"`), power 2, 40 Slaney mel bands 0–4000 Hz with Slaney area
//!   normalisation, `10 log10(max(S, 1e-10))` relative to 1 with `top_db` 80 per recording,
//!   13 MFCC (DCT-II, orthonormal, no liftering). Batches become network inputs
//!   `[N, 1, n_mels, frames]` (log-mel) or `[N, n_mfcc, frames]` (MFCC) after cutting or
//!   zero-padding every recording to one length; [`features::waveform_batch`] gives the raw
//!   `[N, 1, samples]` of the end-to-end arm.
//! - **Detect, then identify** ([`localise`]): batched crop-and-resize and paste through one
//!   `grid_sample` (exact pixel copies for integer boxes of equal size), and a
//!   [`localise::Localiser`] whose soft-argmax heat map predicts the box centre (and a linear
//!   head its size, unless fixed).
//! - **Translation with a known answer** ([`dates`], for P5): dates in many formats and four
//!   languages → ISO, a clean and a messy world, and the rule-based pipeline (tokenise → parse
//!   → generate) that covers the clean world completely.
//! - **Generators** ([`scenes`] for P1, [`bone_age`] for P3, [`lines`] for P4), deterministic
//!   from a seed through `core_tensor::data::uniform` (never libtorch's global generator),
//!   each documented in its module with every constant.
//!
//! Errors are `core_tensor::Error`; configs are serde structs with `deny_unknown_fields` and a
//! `validate()` naming the bad field; none has a `Default` that hides an experiment's choice.
//!
//! ```
//! use core_tensor::train::Goal;
//! use e2e_vs_pipeline::sweep::{CrossoverConfig, SweepPlan, contender, run_sweep};
//!
//! // Two made-up learning curves: a pipeline that starts higher, a network that learns faster.
//! let plan = SweepPlan { sizes: vec![10, 100, 1000], seeds: vec![0, 1, 2], goal: Goal::Maximize };
//! let mut contenders = vec![
//!     contender("pipeline", |n, s| Ok(0.60 + 0.02 * (n as f64).ln() + 0.001 * s as f64)),
//!     contender("end-to-end", |n, s| Ok(0.30 + 0.08 * (n as f64).ln() - 0.001 * s as f64)),
//! ];
//! let result = run_sweep(&mut contenders, &plan)?;
//! let c = result.crossover("end-to-end", "pipeline", &CrossoverConfig { bootstrap: 200, seed: 0 })?;
//! let at = c.estimate.expect("the curves cross").n;
//! assert!(at > 100.0 && at < 1000.0); // exactly e^5 ≈ 148 without the seed offsets
//! # Ok::<(), core_tensor::Error>(())
//! ```

#![warn(missing_docs)]

pub mod bone_age;
pub mod dates;
pub mod features;
pub mod lines;
pub mod localise;
pub mod pipeline;
pub mod scenes;
pub mod seq2seq;
pub mod sweep;
