//! What can stop a load run.

use std::path::PathBuf;

/// Why a load run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file of the world could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The world in the config directory is not the one the flags describe,
    /// or a change could not be applied to it.
    #[error("world: {0}")]
    World(String),
    /// `sextant serve` could not be started or did not become ready.
    #[error("server: {0}")]
    Server(String),
    /// An ADS stream failed (connect error, gRPC status, unexpected message).
    #[error("proxy {proxy}: {message}")]
    Stream {
        /// The simulated proxy's node id.
        proxy: String,
        /// What went wrong.
        message: String,
    },
    /// Something did not happen in time; names what and how far it got.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl LoadError {
    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LoadError {
        let path = path.into();
        move |source| LoadError::File { path, source }
    }
}
