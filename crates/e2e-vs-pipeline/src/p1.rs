//! Experiment P1 (in progress).

/// Runs P1.
pub fn run(
    _config_path: &std::path::Path,
    _opts: &crate::experiment::RunOptions,
    _on_run: impl FnMut(&str, bool),
) -> core_tensor::Result<core_tensor::report::ExperimentReport> {
    Err(core_tensor::Error::InvalidArgument("not yet".into()))
}
