//! Helpers shared by the integration tests (each test file is its own crate and
//! includes this module with `mod common;`).

#![allow(dead_code)] // each test crate uses a part of it

use std::path::Path;

use stead_core::commit::Durability;
use stead_core::store::Store;

/// Open (or create) a store in `wal` mode and run its recovery, as the runtime does.
pub fn open(dir: &Path) -> Store {
    let s = Store::open(dir, Durability::Wal).unwrap();
    s.recover().unwrap();
    s
}

/// Reopen after a close or a crash: the store and the ids recovery resumes.
pub fn reopen(dir: &Path) -> (Store, Vec<String>) {
    let s = Store::open(dir, Durability::Wal).unwrap();
    let ids = s.recover().unwrap().iter().map(|m| m.id.clone()).collect();
    (s, ids)
}
