//! Opening a data directory: RocksDB with one column family per table, and the
//! schema-version check that makes an older or newer Stead refuse a directory
//! rather than misread it.
//!
//! Reads go straight to RocksDB (they see every commit the writer has
//! written); all writes go through [`crate::commit`], never through here,
//! except the schema version stamped on a new directory.

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, Options, ReadOptions,
    WriteBatch, WriteOptions, DB,
};

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

/// Memory bounds for the whole database, not per column family: RocksDB's defaults give
/// each of the nine column families its own 32 MiB block cache and 64 MiB memtables with
/// no overall limit, so memory grew with the number of tables in use (bench/scale.py
/// `keys`: 1,000,000 keys). One LRU block cache is shared by every table, and a write
/// buffer manager flushes the largest memtable once all of them together hold this much.
const BLOCK_CACHE_BYTES: usize = 32 << 20;
const WRITE_BUFFERS_BYTES: usize = 64 << 20;

fn table_options(cache: &Cache) -> BlockBasedOptions {
    let mut t = BlockBasedOptions::default();
    t.set_format_version(SST_FORMAT_VERSION);
    t.set_block_cache(cache);
    // Index and filter blocks live in the same cache, inside its bound, rather than on the
    // heap for as long as their table file is open (RocksDB's default): with them outside,
    // memory grew with the number of SST files a long run had written (the one-hour soak
    // of bench/scale.py). Those of level 0, read by nearly every lookup, stay pinned.
    t.set_cache_index_and_filter_blocks(true);
    t.set_pin_l0_filter_and_index_blocks_in_cache(true);
    t
}

/// The error of a failed open, saying what is damaged when RocksDB found damage: a
/// checksum mismatch in the WAL comes back as a bare "Corruption: checksum mismatch",
/// and only RocksDB's own LOG (in the directory) names the log file and the bytes.
fn opening_error(path: &Path, e: rocksdb::Error) -> Error {
    let msg = e.into_string();
    if !msg.starts_with("Corruption") {
        return Error::Storage(msg);
    }
    let wal = damaged_wal(path).map(|line| format!(" in the write-ahead log ({line})")).unwrap_or_default();
    Error::Storage(format!(
        "data directory {} is damaged: {msg}{wal}; refusing to open it: \
         restore the directory from a backup",
        path.display()
    ))
}

/// The first "<file>.log: dropping N bytes; Corruption: ..." line that RocksDB wrote to its
/// LOG while replaying the WAL (its reporter's wording, db/db_impl/db_impl_open.cc), from
/// the file path on. RocksDB starts a new LOG at each open, so it is this open's.
fn damaged_wal(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path.join("LOG")).ok()?.take(4 << 20).read_to_end(&mut text).ok()?;
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().find(|l| l.contains(".log: dropping ") && l.contains("; Corruption"))?;
    let at = line.find(".log: dropping ")?;
    // After RocksDB's "<time> <thread> [WARN] [source:line] " prefix.
    let start = line[..at].rfind("] ").map_or(0, |i| i + 2);
    Some(line[start..].trim().to_string())
}

/// Every read verifies the checksum of each block it loads from a table file (RocksDB's
/// default, pinned here): damage fails the read with RocksDB's "block checksum mismatch
/// ... in <file>.sst" rather than returning the damaged bytes.
fn read_options() -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_verify_checksums(true);
    ro
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
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        opts.set_block_based_table_factory(&table_options(&cache));
        opts.set_db_write_buffer_size(WRITE_BUFFERS_BYTES);
        // Damage is refused, never read around. `paranoid_checks` (RocksDB's default,
        // stated here because it matters): an inconsistency found at open or by a flush or
        // compaction fails the open, or stops writes, rather than being skipped; every read
        // verifies the checksum of each block it loads (ReadOptions' default, kept in
        // `read_options`), so a damaged table file fails the read that meets it with an
        // error naming the file, and a wrong value is never returned.
        opts.set_paranoid_checks(true);
        // WAL recovery: kTolerateCorruptedTailRecords. A group commit is one WAL record and
        // is acknowledged only once that record is written (and synced, in `sync` mode), so
        // a crash can leave exactly one kind of damage that loses nothing acknowledged: an
        // incomplete last record (a torn tail), which this mode drops, recovering to the last
        // complete group. Any record that is whole but fails its checksum (a flipped byte,
        // anywhere in the log, tail included) fails the open instead.
        // - kPointInTimeRecovery (RocksDB's default) stops replaying at the first bad record
        //   and opens anyway: a flipped byte in the middle of the log would silently drop
        //   every acknowledged group after it.
        // - kAbsoluteConsistency refuses a torn tail too, so the server could not start
        //   again after an ordinary crash in the middle of a write.
        // - kSkipAnyCorruptedRecords drops damaged records and replays the rest: a hole in
        //   the history, breaking the atomicity of what came after.
        opts.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_block_based_table_factory(&table_options(&cache));
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| opening_error(path, e))?;
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

    /// RocksDB's own memory, in bytes, from its properties (read-only, for the metrics):
    /// the memtables of every table (active, immutable and pinned; bounded together by
    /// WRITE_BUFFERS_BYTES), the table readers kept outside the block cache, and the
    /// shared block cache (bounded by BLOCK_CACHE_BYTES) with what is pinned in it.
    pub fn memory_usage(&self) -> Vec<(&'static str, u64)> {
        let sum = |name: &str| -> u64 {
            Cf::ALL.iter().filter_map(|&cf| self.db.property_int_value_cf(self.cf(cf), name).ok().flatten()).sum()
        };
        let one = |name: &str| self.db.property_int_value_cf(self.cf(Cf::Meta), name).ok().flatten().unwrap_or(0);
        vec![
            ("memtables", sum("rocksdb.size-all-mem-tables")),
            ("table_readers", sum("rocksdb.estimate-table-readers-mem")),
            ("block_cache", one("rocksdb.block-cache-usage")),
            ("block_cache_pinned", one("rocksdb.block-cache-pinned-usage")),
        ]
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_pinned_cf_opt(self.cf(cf), key, &read_options())?.map(|v| v.to_vec()))
    }

    /// Calls `f(key, value)` for every row whose key starts with `prefix`, in key
    /// order, until `f` returns `Ok(false)`.
    ///
    /// The iterator reads from the implicit snapshot it takes when created: the
    /// rows seen are those of the commits written by then, and the writer is
    /// never held up by it.
    pub fn scan_prefix(&self, cf: Cf, prefix: &[u8], f: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        self.scan(cf, prefix, prefix, true, f)
    }

    /// A scan of a whole table (every row under a table's prefix, from the first key
    /// `>= from`, a cursor), such as the purge's, the metrics' counts or an admin
    /// listing: like [`Db::scan_prefix`], but the blocks it reads do not enter the block
    /// cache, where a pass over every record
    /// (completed ones included) would push out the hot blocks of running invocations and
    /// their keys' state, and fill the cache to its bound with cold ones.
    pub fn scan_table(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.scan(cf, prefix, from, false, f)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        fill_cache: bool,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut ro = read_options();
        ro.fill_cache(fill_cache);
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
        let mut ro = read_options();
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

    /// The WAL of a directory holding one (the only `*.log`), and its size now.
    fn wal(dir: &Path) -> (PathBuf, u64) {
        let mut logs: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        assert_eq!(logs.len(), 1, "{logs:?}");
        let path = logs.pop().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        (path, len)
    }

    /// Opens a new directory and writes `n` groups (one synced WriteBatch each, as the
    /// commit writer does); returns the WAL's size after each, then drops the Db without
    /// a flush: everything stays in the WAL.
    fn write_groups(dir: &Path, n: usize) -> Vec<u64> {
        let db = Db::open(dir).unwrap();
        let mut sizes = Vec::new();
        for i in 0..n {
            let mut b = WriteBatch::default();
            b.put_cf(db.cf(Cf::State), format!("key{i}"), vec![i as u8; 300]);
            db.write(b, true).unwrap();
            sizes.push(wal(dir).1);
        }
        sizes
    }

    #[test]
    fn a_torn_wal_tail_recovers_to_the_last_complete_group() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = write_groups(dir.path(), 3);
        let (log, _) = wal(dir.path());
        // A crash in the middle of the third group's write.
        std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len((sizes[1] + sizes[2]) / 2).unwrap();
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.get(Cf::State, b"key0").unwrap(), Some(vec![0; 300]));
        assert_eq!(db.get(Cf::State, b"key1").unwrap(), Some(vec![1; 300]));
        assert_eq!(db.get(Cf::State, b"key2").unwrap(), None);
    }

    #[test]
    fn a_flipped_byte_in_a_wal_record_refuses_to_open_naming_the_log() {
        for damaged in [1, 2] {
            // A byte of the second group (in the middle of the log), or of the last one.
            let dir = tempfile::tempdir().unwrap();
            let sizes = write_groups(dir.path(), 3);
            let (log, _) = wal(dir.path());
            let mut bytes = std::fs::read(&log).unwrap();
            let at = ((sizes[damaged - 1] + sizes[damaged]) / 2) as usize;
            bytes[at] ^= 0xff;
            std::fs::write(&log, &bytes).unwrap();
            let msg = Db::open(dir.path()).err().expect("a damaged WAL must not open").to_string();
            let name = log.file_name().unwrap().to_str().unwrap();
            assert!(msg.contains("is damaged") && msg.contains("Corruption") && msg.contains(name), "{msg}");
            // Refused, not read around: the log is as it was.
            assert_eq!(std::fs::read(&log).unwrap(), bytes);
        }
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

    #[test]
    fn a_whole_table_scan_leaves_the_block_cache_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let mut b = WriteBatch::default();
        for i in 0..20_000u32 {
            b.put_cf(db.cf(Cf::Invocations), keys::invocation(&format!("inv_{i:06}")), [i as u8; 100]);
        }
        db.write(b, false).unwrap();
        db.db.flush_cf(db.cf(Cf::Invocations)).unwrap(); // into a table file, read through the cache
        let cached = || db.memory_usage().into_iter().find(|(k, _)| *k == "block_cache").unwrap().1;
        let count = |scan: &dyn Fn(&mut dyn FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()>| {
            let mut n = 0;
            scan(&mut |_, _| {
                n += 1;
                Ok(true)
            })
            .unwrap();
            n
        };
        let before = cached();
        let table = |f: &mut dyn FnMut(&[u8], &[u8]) -> Result<bool>| {
            db.scan_table(Cf::Invocations, &keys::INVOCATION, &keys::INVOCATION, f)
        };
        assert_eq!(count(&table), 20_000);
        let after_table = cached();
        // The data blocks (about 2 MB) stayed out; only index and filter blocks may have entered.
        assert!(after_table - before < 256 << 10, "{before} -> {after_table}");
        let prefix = |f: &mut dyn FnMut(&[u8], &[u8]) -> Result<bool>| db.scan_prefix(Cf::Invocations, &keys::INVOCATION, f);
        assert_eq!(count(&prefix), 20_000);
        assert!(cached() - after_table > 1 << 20, "a cached scan fills the cache: {after_table} -> {}", cached());
    }
}
