//! Stead's durable core: the journal, object state, per-key inboxes and timers
//! kept in RocksDB, written by one group-commit writer thread.
//!
//! Everything below `py` is plain Rust and tested with `cargo test` (no Python);
//! `py` is the thin PyO3 layer that exposes [`store::Store`] as `runtime._core`.

pub mod admission;
pub mod awaiting;
pub mod commit;
pub mod db;
pub mod entry;
pub mod error;
pub mod failpoints;
pub mod invocation;
pub mod keys;
pub mod overlay;
pub mod proto;
pub mod store;
pub mod tables;
pub mod timers;

#[cfg(feature = "python")]
mod py;

pub use error::{Error, Result};

/// On-disk schema version of a data directory (meta key `schema_version`).
/// Bump it on any incompatible change to keys.rs or proto/stead/journal.proto.
pub const SCHEMA_VERSION: u32 = 1;
