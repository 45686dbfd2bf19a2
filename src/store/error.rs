//! The single error type of the store layer.

use std::io;
use std::path::{Path, PathBuf};

/// Every failure the store layer can report.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system I/O error, with the file or directory it happened on.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory concerned.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// Allocating a file failed because the device is full (ENOSPC).
    #[error("no space left on device while allocating {0}")]
    NoSpace(PathBuf),
    /// The store directory is locked by another store instance (this or another process).
    #[error("store already in use: {0} is locked by another store (Lock failed, MQ already started)")]
    AlreadyInUse(PathBuf),
    /// A mapped file on disk does not have the configured size.
    #[error("file {path} has length {actual}, expected {expected}: refusing to load")]
    WrongFileSize {
        /// Offending file.
        path: PathBuf,
        /// Its length.
        actual: u64,
        /// The configured length.
        expected: u64,
    },
    /// On-disk data is not what the format requires.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// A caller passed something the store cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The store is flagged not readable (running flag NOT_READABLE).
    #[error("message store is not readable")]
    NotReadable,
    /// The store has been shut down.
    #[error("message store is shut down")]
    ShutDown,
    /// The store refuses writes after a failed flush.
    #[error("message store is poisoned after a failed flush; restart required")]
    Poisoned,
    /// The replicated log the commitlog lives in failed an operation.
    #[error("replicated log: {0}")]
    Replica(String),
    /// JSON (de)serialisation failed.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias of the store layer.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Builds a closure mapping an `io::Error` to [`StoreError::Io`] for `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}
