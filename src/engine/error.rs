//! The engine's errors. No status codes here: each API renders them in its own wire shape, in one
//! function (`vault::error`, later `okms::error`).

use thiserror::Error;

use crate::crypto::CryptoError;
use crate::storage::StorageError;

#[derive(Debug, Error)]
pub enum EngineError {
    /// The key, version or mount does not exist.
    #[error("not found")]
    NotFound,
    /// `cas` was given and does not equal the current version.
    #[error("check-and-set parameter did not match the current version")]
    CasMismatch,
    /// `cas_required` is set (mount or key) and no `cas` was given.
    #[error("check-and-set parameter required for this call")]
    CasRequired,
    /// Creating something that already exists.
    #[error("secret already exists")]
    AlreadyExists,
    /// The request is well-formed but not acceptable (message is shown to the client as is).
    #[error("{0}")]
    Invalid(String),
    /// The engine has no keyring in memory: not initialised, or the key file does not open it.
    #[error("Vault is sealed")]
    Sealed,
    /// `sys/init` on an initialised store.
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    /// The caller may not do this.
    #[error("permission denied")]
    PermissionDenied,
    /// A stored ciphertext failed to open (tampering, wrong key). Never shows any plaintext.
    #[error("stored data failed authentication")]
    Crypto,
    /// A stored record failed authentication or is not what kvseal wrote: it is not served. The
    /// message names the record (never its contents).
    #[error("stored record failed authentication: {0}")]
    Corrupt(String),
    /// The storage layer failed. The message names the operation, never a secret value.
    #[error("storage error: {0}")]
    Storage(String),
    /// A record is sealed under a keyring key this node has not loaded: another node sharing the
    /// store rotated the keyring moments ago. Reads reload the keyring and run again; otherwise the
    /// client is told to retry (503), never that the record was tampered with.
    #[error("a record is sealed under a key this node has not loaded yet (the keyring was rotated on another node); retry")]
    KeyringBehind,
    /// The storage cannot take writes for now (disk full, read-only database or file system, I/O
    /// error). Nothing was changed; the same request succeeds once the condition is gone.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl EngineError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(m) => Self::Unavailable(m),
            StorageError::Corrupt(m) => Self::Corrupt(m),
            // Exact with one writer; a backend with several reports the lost race, and the client
            // retries as it would after any check-and-set failure.
            StorageError::Conflict => {
                Self::Unavailable("the record changed concurrently; retry".into())
            }
            StorageError::Other(m) => Self::Storage(m),
        }
    }
}

impl From<CryptoError> for EngineError {
    fn from(e: CryptoError) -> Self {
        match e {
            // A write that took the keyring before a snapshot restore replaced it: nothing was
            // written, and the same request succeeds now.
            CryptoError::Retired => {
                Self::Unavailable("the store was restored from a snapshot meanwhile; retry".into())
            }
            CryptoError::Authentication | CryptoError::UnknownKey => Self::Crypto,
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;
