//! Write-to-temporary-then-rename, so readers only ever see complete files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::IoError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A hidden sibling path unique to this process and call.
fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{unique}.tmp", std::process::id()))
}

/// Writes `path` through `write`, which gets a buffered writer on a temporary sibling;
/// the file appears under its final name only after `write` succeeded and the data was
/// flushed. On error the temporary is removed and `path` is untouched.
pub fn write_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), IoError> {
    let temp = temporary_sibling(path);
    let result = (|| {
        let mut out = BufWriter::new(File::create(&temp)?);
        write(&mut out)?;
        out.flush()?;
        out.get_ref().sync_data()?;
        drop(out);
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(IoError::io(path, e));
    }
    Ok(())
}

/// [`write_file`] for data already in memory.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_file(path, |out| out.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let err = write_file(&path, |out| {
            out.write_all(b"partial")?;
            Err(std::io::Error::other("injected failure"))
        });
        assert!(err.is_err());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn failed_overwrite_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_bytes(&path, b"old").unwrap();
        let _ = write_file(&path, |_| Err(std::io::Error::other("injected failure")));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
