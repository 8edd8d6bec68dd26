//! Stead's durable core: the journal, object state, per-key inboxes and timers
//! kept in RocksDB, written by one group-commit writer thread.
//!
//! Everything below `py` is plain Rust and tested with `cargo test` (no Python);
//! `py` is the thin PyO3 layer that exposes [`store::Store`] as `runtime._core`.
//!
//! The modules that touch RocksDB (db, commit, tables, store, their failpoints,
//! py) are behind the default `storage` feature; without it the crate is the
//! decoders and encoders of what is on disk, which core_rs/fuzz/ fuzzes without
//! building RocksDB's C++.

pub mod admission;
pub mod awaiting;
pub mod clock;
#[cfg(feature = "storage")]
pub mod commit;
#[cfg(feature = "storage")]
pub mod db;
pub mod entry;
pub mod error;
#[cfg(feature = "storage")]
pub mod failpoints;
pub mod invocation;
pub mod keys;
pub mod overlay;
pub mod proto;
#[cfg(feature = "storage")]
pub mod store;
#[cfg(feature = "storage")]
pub mod tables;
pub mod timers;

#[cfg(feature = "python")]
mod py;

pub use error::{Error, Result};

/// On-disk schema version of a data directory (meta key `schema_version`).
/// Bump it on any incompatible change to keys.rs or proto/stead/journal.proto.
pub const SCHEMA_VERSION: u32 = 1;
