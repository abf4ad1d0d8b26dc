//! Helpers shared by the tasks.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The project's ignored cache folder (libtorch environment, fixtures).
pub fn cache_root() -> PathBuf {
    project_root().join(".cache")
}

/// `cargo`, as the one that started us (the `CARGO` variable), or from `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd` with inherited output; an error names the command and its exit status.
pub fn run_status(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    anyhow::ensure!(status.success(), "{cmd:?} failed ({status})");
    Ok(())
}

/// Lowercase hex sha256 of everything `reader` yields.
pub fn sha256_reader(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_reader(std::fs::File::open(path)?)
}

/// A path beside `dest` for writing before an atomic rename onto `dest`.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Writes `dest` atomically: `write` fills a temporary file beside it, which is synced and then
/// renamed onto `dest`, and the folder is synced after. On any error (the writer's, a full disk,
/// a rename onto a folder) the temporary file is removed and `dest` is left as it was; the
/// error names the file it was about.
pub fn write_atomic_with(
    dest: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path_for(dest);
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut out = faults::Faulty::new(file);
        write(&mut out)?;
        out.flush()?;
        out.into_inner().sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!("writing {}: {e}", dest.display()));
    }
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// [`write_atomic_with`] of `bytes`.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(dest, |w| w.write_all(bytes))
}

/// A write-failure hook for tests: with [`faults::fail_writes_after`], the atomic writes of
/// this thread fail with "No space left on device" once that many bytes are written, as on a
/// full disk (which a test cannot make for real without a mount).
pub mod faults {
    use std::cell::Cell;
    use std::io::Write;

    thread_local! {
        static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// From now on, this thread's atomic writes fail after `bytes` bytes (`None`: never).
    #[cfg(test)]
    pub fn fail_writes_after(bytes: Option<u64>) {
        BUDGET.with(|b| b.set(bytes));
    }

    pub(super) struct Faulty<W> {
        inner: W,
    }

    impl<W: Write> Faulty<W> {
        pub(super) fn new(inner: W) -> Self {
            Faulty { inner }
        }

        pub(super) fn into_inner(self) -> W {
            self.inner
        }
    }

    impl<W: Write> Write for Faulty<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(left) = BUDGET.with(Cell::get) {
                if (buf.len() as u64) > left {
                    BUDGET.with(|b| b.set(Some(0)));
                    return Err(std::io::Error::from_raw_os_error(28));
                }
                BUDGET.with(|b| b.set(Some(left - buf.len() as u64)));
            }
            self.inner.write(buf)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_atomic_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("report.md");
        write_atomic(&dest, b"old").unwrap();
        faults::fail_writes_after(Some(4));
        let err = write_atomic(&dest, b"new and longer")
            .unwrap_err()
            .to_string();
        faults::fail_writes_after(None);
        assert!(err.contains("report.md"), "{err}");
        assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["report.md"]);
        // A destination that is a folder: the rename fails, the temporary goes.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        let err = write_atomic(&blocked, b"x").unwrap_err().to_string();
        assert!(err.contains("blocked"), "{err}");
        assert_eq!(names(dir.path()), ["blocked", "report.md"]);
    }
}
