//! Helpers shared by the integration tests (each test file is its own crate and
//! includes this module with `mod common;`).

#![allow(dead_code)] // each test crate uses a part of it

use std::path::Path;
use std::sync::Arc;

use stead_core::commit::Durability;
use stead_core::entry::{self, EntryRef};
use stead_core::invocation::{InvocationMeta, KIND_EXCLUSIVE, KIND_SERVICE};
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

/// The record of `inv_id` as RocksDB has it, decoded from the raw row (None: no row).
/// Opens the directory read-only, so it works beside a live store: it sees the
/// commits written so far (wait for their seq first).
pub fn raw_record(dir: &Path, inv_id: &str) -> Option<stead_core::proto::InvocationRecord> {
    use prost::Message;
    use stead_core::db::Cf;
    let names = Cf::ALL.iter().map(|cf| cf.name());
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), dir, names, false).unwrap();
    let cf = db.cf_handle(Cf::Invocations.name()).unwrap();
    let raw = db.get_cf(cf, stead_core::keys::invocation(inv_id)).unwrap()?;
    Some(stead_core::proto::InvocationRecord::decode(raw.as_slice()).unwrap())
}

/// A service invocation `id` (handler Svc/h), not admitted.
pub fn svc(id: &str) -> Arc<InvocationMeta> {
    InvocationMeta::new(id.into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1).unwrap()
}

/// An exclusive invocation `id` of object Obj, key k, not admitted.
pub fn obj(id: &str) -> Arc<InvocationMeta> {
    InvocationMeta::new(id.into(), "Obj".into(), "h".into(), "k".into(), KIND_EXCLUSIVE, b"{}", vec![], 1).unwrap()
}

pub const AWAKEABLE: EntryRef<'static> = EntryRef { kind: entry::AWAKEABLE, name: None, value: None, code: 0, message: None };
pub const RUN: EntryRef<'static> = EntryRef { kind: entry::RUN, name: Some("r"), value: Some(b"1"), code: 0, message: None };

/// Every (key, value) of column family `cf` whose key starts with `prefix`, as RocksDB
/// has them: a read-only open beside a live store (wait for the commits first).
pub fn raw_rows(dir: &Path, cf: stead_core::db::Cf, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    use stead_core::db::Cf;
    let names = Cf::ALL.iter().map(|cf| cf.name());
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), dir, names, false).unwrap();
    let handle = db.cf_handle(cf.name()).unwrap();
    db.prefix_iterator_cf(handle, prefix)
        .map(|r| r.unwrap())
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}
