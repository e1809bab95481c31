//! File formats and safe writing: every file sula writes goes through [`atomic`], so an
//! interrupted run never leaves half a file under its final name.

pub mod atomic;
pub mod npy;

use std::path::{Path, PathBuf};

use thiserror::Error;

/// A file that could not be read or written, with the path at fault.
#[derive(Debug, Error)]
pub enum IoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

impl IoError {
    pub fn io(path: &Path, source: std::io::Error) -> IoError {
        IoError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn format(path: &Path, message: impl Into<String>) -> IoError {
        IoError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
