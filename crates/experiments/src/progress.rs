//! A terminal progress bar for [`Trainer::on_progress`](core_tensor::train::Trainer::on_progress).
//!
//! Libraries only emit `tracing` events; a binary that wants a bar asks for one here. The bar
//! is drawn only when standard error is a terminal, so logs and CI output stay clean.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use core_tensor::train::Progress;

/// A progress callback drawing one bar per epoch, or `None` off a terminal.
pub fn epoch_bar(label: &str) -> Option<impl FnMut(Progress) + use<>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let label = label.to_string();
    let mut bar: Option<(usize, ProgressBar)> = None;
    Some(move |p: Progress| {
        if bar.as_ref().is_none_or(|(epoch, _)| *epoch != p.epoch) {
            if let Some((_, old)) = bar.take() {
                old.finish_and_clear();
            }
            let b = ProgressBar::new(p.steps_per_epoch as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}<{eta}")
            {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(format!("{label} epoch {}/{}", p.epoch, p.epochs));
            bar = Some((p.epoch, b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(p.step as u64);
            if p.step == p.steps_per_epoch {
                b.finish_and_clear();
            }
        }
    })
}

/// For binaries: tunes glibc's allocator for training ([`core_tensor::alloc::tune_malloc`]), logs
/// `tracing` events to standard error at `default_level` (overridden by `RUST_LOG`), runs
/// `body`, and turns its error into a one-line message and exit status 1.
pub fn run_main<E: std::fmt::Display>(
    default_level: &str,
    body: impl FnOnce() -> std::result::Result<(), E>,
) -> std::process::ExitCode {
    core_tensor::alloc::tune_malloc();
    // `cargo xtask suite --jobs N` gives each process its share of the cores.
    if let Some(n) = std::env::var("TRANSFERLAB_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        core_tensor::device::set_threads(n);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    match body() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
