//! The storage layer's errors. They say what failed in storage terms (a database that cannot take
//! writes, a conditional write that lost, a row that is not what the schema promises); the engine maps
//! them to its own errors, and each API to its wire shape.

use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum StorageError {
    /// The database cannot take writes or reads for now (disk full, read-only file system, I/O error,
    /// busy). Nothing was changed; the same operation succeeds once the condition is gone.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A conditional write found the row changed (or present, for a create) since it was read.
    #[error("the record changed concurrently")]
    Conflict,
    /// A row is not in the shape the schema promises (edited behind kvseal's back, or damaged).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Anything else the database reported; the message names the operation, never a value.
    #[error("storage error: {0}")]
    Other(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(
                C::DiskFull | C::ReadOnly | C::SystemIoFailure | C::CannotOpen | C::DatabaseBusy,
            ) => Self::Unavailable(e.to_string()),
            Some(C::ConstraintViolation) => Self::Conflict,
            _ => match e {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::IntegralValueOutOfRange(..) => Self::Corrupt(e.to_string()),
                other => Self::Other(other.to_string()),
            },
        }
    }
}
