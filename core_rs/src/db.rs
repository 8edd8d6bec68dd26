//! Opening a data directory: RocksDB with one column family per table, and the
//! schema-version check that makes an older or newer Stead refuse a directory
//! rather than misread it.
//!
//! Reads go straight to RocksDB (they see every commit the writer has
//! written); all writes go through [`crate::commit`], never through here,
//! except the schema version stamped on a new directory.

use std::path::{Path, PathBuf};

use rocksdb::{BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, ReadOptions, WriteBatch, WriteOptions, DB};

use crate::error::{Error, Result};
use crate::{keys, SCHEMA_VERSION};

/// The tables. Each is a column family so that it can be tuned, compacted and
/// scanned on its own; keys still carry their kind prefix (keys.rs) so that a
/// key is self-describing in tools and in a future single-keyspace log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    // Discriminants index `Cf::ALL`.
    Invocations,
    Journal,
    State,
    Inbox,
    Timers,
    Idempotency,
    Promises,
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 8] = [
        Cf::Invocations,
        Cf::Journal,
        Cf::State,
        Cf::Inbox,
        Cf::Timers,
        Cf::Idempotency,
        Cf::Promises,
        Cf::Meta,
    ];

    pub fn name(self) -> &'static str {
        debug_assert_eq!(Cf::ALL[self as usize], self);
        match self {
            Cf::Invocations => "invocations",
            Cf::Journal => "journal",
            Cf::State => "state",
            Cf::Inbox => "inbox",
            Cf::Timers => "timers",
            Cf::Idempotency => "idempotency",
            Cf::Promises => "promises",
            Cf::Meta => "meta",
        }
    }
}

const SCHEMA_KEY: &str = "schema_version";

/// SST format version. RocksDB 11 writes 7 by default, which the RocksDB inside
/// rocksdict (10.4, used by tests and `stead inspect` to read a data directory
/// offline) cannot read; 6 is readable by RocksDB >= 8.6.
const SST_FORMAT_VERSION: i32 = 6;

fn table_options() -> BlockBasedOptions {
    let mut t = BlockBasedOptions::default();
    t.set_format_version(SST_FORMAT_VERSION);
    t
}

pub struct Db {
    db: DB,
    path: PathBuf,
}

impl Db {
    /// Opens or creates the data directory at `path`, checking its schema version.
    pub fn open(path: &Path) -> Result<Db> {
        let display = path.display().to_string();
        // A directory with a CURRENT file already holds a RocksDB database; it must
        // then carry our schema version (checked after open).
        let existed = path.join("CURRENT").exists();

        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        opts.set_block_based_table_factory(&table_options());
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_block_based_table_factory(&table_options());
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let db = Db { db, path: path.to_path_buf() };

        match db.get(Cf::Meta, &keys::meta(SCHEMA_KEY))? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::corrupt(format_args!("schema version in {display} is not a u32")))?;
                if found != SCHEMA_VERSION {
                    return Err(Error::SchemaVersion { found, expected: SCHEMA_VERSION, path: display });
                }
            }
            None if existed => return Err(Error::NotStead { expected: SCHEMA_VERSION, path: display }),
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(db.cf(Cf::Meta), keys::meta(SCHEMA_KEY), SCHEMA_VERSION.to_be_bytes());
                db.write(batch, true)?;
            }
        }
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn cf(&self, cf: Cf) -> &ColumnFamily {
        // Every Cf was opened (or created) in `open`.
        self.db.cf_handle(cf.name()).expect("column family opened at start")
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_pinned_cf(self.cf(cf), key)?.map(|v| v.to_vec()))
    }

    /// Calls `f(key, value)` for every row whose key starts with `prefix`, in key
    /// order, until `f` returns `Ok(false)`.
    pub fn scan_prefix(&self, cf: Cf, prefix: &[u8], f: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        self.scan_prefix_from(cf, prefix, prefix, f)
    }

    /// Like [`Db::scan_prefix`], starting at the first key `>= from` (a cursor).
    ///
    /// The iterator reads from the implicit snapshot it takes when created: the
    /// rows seen are those of the commits written by then, and the writer is
    /// never held up by it.
    pub fn scan_prefix_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut ro = ReadOptions::default();
        if let Some(end) = keys::prefix_end(prefix) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        it.seek(if from > prefix { from } else { prefix });
        while let Some((k, v)) = it.item() {
            if !f(k, v)? {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// The greatest key starting with `prefix`, if any.
    pub fn last_key_with_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.to_vec());
        let end = keys::prefix_end(prefix);
        if let Some(end) = &end {
            ro.set_iterate_upper_bound(end.clone());
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        match end {
            Some(end) => it.seek_for_prev(end),
            None => it.seek_to_last(),
        }
        if let Some(k) = it.key() {
            // seek_for_prev lands on `end` itself if it exists: the bound excludes it,
            // but guard anyway.
            if k.starts_with(prefix) {
                return Ok(Some(k.to_vec()));
            }
        }
        it.status()?;
        Ok(None)
    }

    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// Sync the WAL (after writes made without sync).
    pub fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_directory_gets_schema_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        drop(Db::open(dir.path()).unwrap());
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.get(Cf::Meta, &keys::meta("schema_version")).unwrap().unwrap(), SCHEMA_VERSION.to_be_bytes());
    }

    #[test]
    fn other_schema_version_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            let mut b = WriteBatch::default();
            b.put_cf(db.cf(Cf::Meta), keys::meta("schema_version"), 99u32.to_be_bytes());
            db.write(b, true).unwrap();
        }
        let err = Db::open(dir.path()).err().unwrap();
        match &err {
            Error::SchemaVersion { found: 99, expected, path } => {
                assert_eq!(*expected, SCHEMA_VERSION);
                assert_eq!(path, &dir.path().display().to_string());
            }
            e => panic!("unexpected {e:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("99") && msg.contains(&dir.path().display().to_string()), "{msg}");
    }

    #[test]
    fn foreign_rocksdb_without_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut o = Options::default();
            o.create_if_missing(true);
            let db = DB::open(&o, dir.path()).unwrap();
            db.put(b"k", b"v").unwrap();
        }
        assert!(matches!(Db::open(dir.path()), Err(Error::NotStead { .. })));
    }

    #[test]
    fn last_key_with_prefix_respects_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let mut b = WriteBatch::default();
        for (id, n) in [("inv_1", 3u32), ("inv_12", 9), ("inv_0", 5)] {
            for i in 0..n {
                b.put_cf(db.cf(Cf::Journal), keys::journal(id, i), b"x");
            }
        }
        db.write(b, false).unwrap();
        let last = db.last_key_with_prefix(Cf::Journal, &keys::journal_prefix("inv_1")).unwrap().unwrap();
        assert_eq!(keys::decode_journal(&last).unwrap(), ("inv_1", 2));
        assert!(db.last_key_with_prefix(Cf::Journal, &keys::journal_prefix("inv_2")).unwrap().is_none());
        let mut n = 0;
        db.scan_prefix(Cf::Journal, &keys::journal_prefix("inv_12"), |_, _| {
            n += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(n, 9);
    }
}
