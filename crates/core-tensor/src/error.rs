//! The error type of `core-tensor`.

use std::path::PathBuf;

/// Everything that can go wrong in `core-tensor`.
///
/// Errors about files always carry the path, and say what was wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    ///
    /// The message already says the cause, so it is not also offered as
    /// [`std::error::Error::source`] (which would make `anyhow`'s `{:#}` print it twice); match
    /// on the variant to get at the [`std::io::Error`].
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        cause: std::io::Error,
    },
    /// A file was read but its contents are not what its format requires.
    #[error("{}: {problem}", path.display())]
    Format {
        /// The file (for a member of an archive: `archive.tar.gz/member`).
        path: PathBuf,
        /// What is wrong, in words.
        problem: String,
    },
    /// A dataset file is not in the fixture cache.
    #[error("{}: dataset file missing; fetch it with `cargo xtask fetch {dataset}`", path.display())]
    MissingFixture {
        /// The path where the file was expected.
        path: PathBuf,
        /// The dataset name to pass to `cargo xtask fetch`.
        dataset: String,
    },
    /// A run belongs to another shard of a sharded sweep (`--shard i/n`) and is not stored yet.
    #[error("run {key} belongs to shard {shard} of {of}, not this one")]
    OutOfShard {
        /// The run's key.
        key: String,
        /// Its shard (0-based).
        shard: u64,
        /// Number of shards.
        of: u64,
    },
    /// A device was requested that this machine or libtorch build cannot provide.
    #[error("device: {0}")]
    Device(String),
    /// Training produced a NaN or infinite loss.
    #[error(
        "training diverged: the loss is {loss} at epoch {epoch}, step {step}; lower the learning \
         rate, clip gradients (grad_clip_norm), or check the inputs for NaN"
    )]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch (0-based).
        step: usize,
        /// The loss value seen.
        loss: f64,
    },
    /// A request the caller made does not make sense (bad argument, shape, config value).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error raised by libtorch.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
}

impl Error {
    /// A [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    /// This error one level down a config: an [`Error::InvalidArgument`] about field `f`
    /// becomes one about `<prefix>.f` (so nested checks give `recipe.train.batch_size: …`, not
    /// `recipe.invalid argument: train.batch_size: …`); a [`Error::Format`] gets the prefix in
    /// front of its problem; any other error is returned as it is.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{prefix}.{m}")),
            Error::Format { path, problem } => Error::Format {
                path,
                problem: format!("{prefix}.{problem}"),
            },
            other => other,
        }
    }

    /// This error as one about `subject` (a source network, a trunk): an
    /// [`Error::InvalidArgument`]'s message gets `subject: ` in front; any other error is
    /// returned as it is.
    pub fn about(self, subject: &str) -> Self {
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{subject}: {m}")),
            other => other,
        }
    }

    /// This error as a problem of the file `path` (a config): an [`Error::InvalidArgument`]
    /// becomes an [`Error::Format`] of `path` with the same words; errors that already name a
    /// file are returned as they are.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            Error::InvalidArgument(m) => Error::Format {
                path: path.into(),
                problem: m,
            },
            other => other,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<transferlab_report::Error> for Error {
    /// Errors of the report model (seed statistics, atomic report writes) as this crate's.
    fn from(e: transferlab_report::Error) -> Self {
        match e {
            transferlab_report::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            transferlab_report::Error::Io { path, source } => Error::io(path, source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_field_errors_read_as_one_path() {
        let e = Error::InvalidArgument("train.batch_size: must be > 0".into())
            .within("recipe")
            .within("setups.tiny")
            .in_file("m1.toml");
        assert_eq!(
            e.to_string(),
            "m1.toml: setups.tiny.recipe.train.batch_size: must be > 0"
        );
    }

    #[test]
    fn an_io_error_says_its_cause_once() {
        let e = Error::io(
            "/out/x.json",
            std::io::Error::from_raw_os_error(28), // ENOSPC
        );
        let chain = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(
            chain.matches("No space left on device").count(),
            1,
            "{chain}"
        );
        assert!(chain.starts_with("/out/x.json: "), "{chain}");
    }
}
