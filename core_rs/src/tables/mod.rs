//! Reading, writing and scanning, one module per table. Writers add rows to a
//! [`crate::commit::Commit`]; readers go to RocksDB through [`crate::db::Db`].
//! Key layouts live in [`crate::keys`], value encodings in proto/.

pub mod completions;
pub mod idempotency;
pub mod inbox;
pub mod invocations;
pub mod journal;
pub mod promises;
pub mod state;
pub mod timers;
