//! The crate's one error type. It stays a plain Rust enum; the PyO3 layer maps
//! each variant to a named Python exception at the edge (src/py/convert.rs).
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB reported an I/O error, corruption, a full disk, ...
    #[error("storage error: {0}")]
    Storage(String),
    /// The directory was written by a Stead with another on-disk schema.
    #[error(
        "data directory {path} has schema version {found}, but this Stead supports \
         schema version {expected} only; use a matching Stead version or a new directory"
    )]
    SchemaVersion { found: u32, expected: u32, path: String },
    /// A RocksDB database that Stead did not create (no schema version recorded).
    #[error(
        "data directory {path} holds a RocksDB database without a Stead schema version \
         (expected {expected}); refusing to open it"
    )]
    NotStead { expected: u32, path: String },
    /// Bytes on disk that do not decode as what their table holds.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The group-commit writer failed earlier; nothing more is accepted.
    #[error("commit writer stopped after a storage failure: {0}")]
    WriterFailed(String),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The invocation is not running (suspended, backing off, completed, inboxed or
    /// scheduled), so its attempt may not journal, suspend or back off: that attempt
    /// is stale (e.g. it was killed, or its invocation was resumed elsewhere).
    #[error("invocation {id} is not running (status {status}): its attempt may not write")]
    NotRunning { id: String, status: &'static str },
    /// An admin write to an object key that an exclusive or workflow invocation owns
    /// (running, suspended, backing off, or with invocations inboxed on the key).
    #[error("{0}")]
    KeyBusy(String),
    /// An admin write with an expected version that is not the current one.
    #[error("state of {service}/{key} has version {found}, not the expected {expected}")]
    VersionMismatch { service: String, key: String, expected: String, found: String },
    /// A caller passed a value outside the contract (unknown kind, durability, ...).
    #[error("{0}")]
    InvalidArgument(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(feature = "storage")]
impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(e.into_string())
    }
}

impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Error::Corrupt(e.to_string())
    }
}

impl Error {
    pub(crate) fn corrupt(what: impl fmt::Display) -> Self {
        Error::Corrupt(what.to_string())
    }
}
