//! The group-commit writer: the only path by which Stead writes RocksDB.
//!
//! Callers push a [`Commit`] and get its sequence number at once (assigned
//! under the queue lock, so sequence order is queue order is write order). One
//! writer thread takes *everything* queued, writes it as one RocksDB
//! `WriteBatch` (one WAL append, one fsync in `sync` mode), publishes the
//! group's highest sequence as `durable_seq`, and makes an eventfd readable
//! once. The Python event loop reads that fd and resolves every waiter up to
//! `durable_seq` in one go, so the cost of a wake-up and of an fsync is shared
//! by every commit of the group rather than paid per commit.
//!
//! A failed write, or a panic in the writer, stops the writer for good: every
//! waiter and every later push gets the error (see `fail`), and the eventfd is
//! signalled so that the event loop learns at once.
//!
//! A `Commit` keeps its keys and values in one byte arena, so building one
//! costs a couple of allocations however many rows it touches.

use std::any::Any;
use std::collections::HashSet;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use rocksdb::{ColumnFamily, WriteBatch};

use crate::db::{Cf, Db};
use crate::error::{Error, Result};
use crate::failpoints::{self, failpoint};

/// How durable a written group is before `durable_seq` advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// WAL fsync per group: survives a power cut.
    Sync,
    /// WAL written, not fsynced: survives a process crash, not a power cut.
    Wal,
}

impl std::str::FromStr for Durability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sync" => Ok(Durability::Sync),
            "wal" => Ok(Durability::Wal),
            other => Err(Error::InvalidArgument(format!("unknown durability {other:?}: expected \"sync\" or \"wal\""))),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum OpKind {
    Put,
    Delete,
    DeleteRange,
}

/// One row operation; `a` is the key (or range start), `b` the value (or range end),
/// both as offsets into the commit's arena.
#[derive(Clone, Copy, Debug)]
struct Op {
    kind: OpKind,
    cf: Cf,
    a: (u32, u32),
    b: (u32, u32),
}

/// The rows one logical step changes, applied atomically and in order.
#[derive(Default, Debug)]
pub struct Commit {
    buf: Vec<u8>,
    ops: Vec<Op>,
}

impl Commit {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(bytes: usize, ops: usize) -> Self {
        Commit { buf: Vec::with_capacity(bytes), ops: Vec::with_capacity(ops) }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    fn span(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> (u32, u32) {
        let start = self.buf.len();
        f(&mut self.buf);
        (start as u32, self.buf.len() as u32)
    }

    /// Put a row whose key and value are written straight into the arena.
    pub fn put_with(&mut self, cf: Cf, key: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>)) {
        let a = self.span(key);
        let b = self.span(value);
        self.ops.push(Op { kind: OpKind::Put, cf, a, b });
    }

    pub fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.put_with(cf, |b| b.extend_from_slice(key), |b| b.extend_from_slice(value));
    }

    pub fn delete_with(&mut self, cf: Cf, key: impl FnOnce(&mut Vec<u8>)) {
        let a = self.span(key);
        self.ops.push(Op { kind: OpKind::Delete, cf, a, b: (0, 0) });
    }

    pub fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.delete_with(cf, |b| b.extend_from_slice(key));
    }

    /// Delete every row with `from <= key < to`.
    pub fn delete_range(&mut self, cf: Cf, from: &[u8], to: &[u8]) {
        let a = self.span(|b| b.extend_from_slice(from));
        let b = self.span(|b| b.extend_from_slice(to));
        self.ops.push(Op { kind: OpKind::DeleteRange, cf, a, b });
    }

    fn key(&self, op: &Op) -> &[u8] {
        &self.buf[op.a.0 as usize..op.a.1 as usize]
    }

    /// Add this commit's ops to `batch`, leaving out those for which `superseded` says a
    /// later op of the same group writes the same row.
    fn apply(
        &self,
        cfs: &[&ColumnFamily; Cf::ALL.len()],
        batch: &mut WriteBatch,
        superseded: &mut impl Iterator<Item = bool>,
        drop_state: bool,
    ) {
        let s = |(x, y): (u32, u32)| &self.buf[x as usize..y as usize];
        for op in &self.ops {
            if superseded.next().unwrap_or(false) {
                continue;
            }
            if drop_state && op.cf == Cf::State {
                continue; // broken on purpose (failpoint commit.drop_state_write)
            }
            let cf = cfs[op.cf as usize];
            match op.kind {
                OpKind::Put => batch.put_cf(cf, s(op.a), s(op.b)),
                OpKind::Delete => batch.delete_cf(cf, s(op.a)),
                OpKind::DeleteRange => batch.delete_range_cf(cf, s(op.a), s(op.b)),
            }
        }
    }
}

/// A non-blocking eventfd: readable while its counter is non-zero.
struct EventFd(RawFd);

impl EventFd {
    fn new() -> Result<Self> {
        // SAFETY: plain syscall; the fd is owned by the returned value.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::Storage(format!("eventfd: {}", std::io::Error::last_os_error())));
        }
        Ok(EventFd(fd))
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our fd. It can only fail with
        // EAGAIN at a counter near u64::MAX, which still leaves the fd readable.
        unsafe { libc::write(self.0, (&one as *const u64).cast(), 8) };
    }

    fn reset(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.0, (&mut v as *mut u64).cast(), 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}

struct Queue {
    pending: Vec<Commit>,
    last_seq: u64,
    stopping: bool,
    /// Set by the writer thread as it exits: nothing queued will be written any more.
    stopped: bool,
    failed: Option<String>,
}

struct Shared {
    db: Arc<Db>,
    sync: bool,
    queue: Mutex<Queue>,
    /// Wakes the writer when commits are queued or on stop.
    work: Condvar,
    /// Wakes threads blocked in `wait_durable` after each group.
    written: Condvar,
    durable_seq: AtomicU64,
    groups: AtomicU64,
    notify: EventFd,
}

/// Handle on the writer thread. Cheap to share behind the `Store`.
pub struct Writer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub fn start(db: Arc<Db>, durability: Durability) -> Result<Writer> {
        let shared = Arc::new(Shared {
            db,
            sync: durability == Durability::Sync,
            queue: Mutex::new(Queue { pending: Vec::new(), last_seq: 0, stopping: false, stopped: false, failed: None }),
            work: Condvar::new(),
            written: Condvar::new(),
            durable_seq: AtomicU64::new(0),
            groups: AtomicU64::new(0),
            notify: EventFd::new()?,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("stead-commit".into())
            .spawn(move || run(&s))
            .map_err(|e| Error::Storage(format!("spawning the commit writer: {e}")))?;
        Ok(Writer { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Queue a commit; returns its sequence number. Never blocks on I/O.
    pub fn push(&self, commit: Commit) -> Result<u64> {
        let mut q = self.shared.queue.lock();
        if let Some(e) = &q.failed {
            return Err(Error::WriterFailed(e.clone()));
        }
        if q.stopping {
            return Err(Error::Closed);
        }
        q.last_seq += 1;
        let seq = q.last_seq;
        q.pending.push(commit);
        drop(q);
        self.shared.work.notify_one();
        Ok(seq)
    }

    pub fn last_seq(&self) -> u64 {
        self.shared.queue.lock().last_seq
    }

    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// Groups written so far (each one WriteBatch, one WAL write).
    pub fn groups_written(&self) -> u64 {
        self.shared.groups.load(Ordering::Relaxed)
    }

    pub fn notify_fd(&self) -> RawFd {
        self.shared.notify.0
    }

    /// Reset the notify fd; returns durable_seq, or the writer's failure.
    pub fn drain_notify(&self) -> Result<u64> {
        self.shared.notify.reset();
        self.check()?;
        Ok(self.durable_seq())
    }

    fn check(&self) -> Result<()> {
        match &self.shared.queue.lock().failed {
            Some(e) => Err(Error::WriterFailed(e.clone())),
            None => Ok(()),
        }
    }

    /// Block until `seq` is durable (for tests and synchronous tools; the
    /// server waits on the notify fd instead).
    pub fn wait_durable(&self, seq: u64) -> Result<u64> {
        let mut q = self.shared.queue.lock();
        loop {
            let d = self.durable_seq();
            if d >= seq {
                return Ok(d);
            }
            if let Some(e) = &q.failed {
                return Err(Error::WriterFailed(e.clone()));
            }
            if q.stopped {
                return Err(Error::Closed);
            }
            self.shared.written.wait(&mut q);
        }
    }

    /// Write everything queued, then stop the thread. Idempotent.
    pub fn close(&self) -> Result<()> {
        self.shared.queue.lock().stopping = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.lock().take() {
            t.join().map_err(|_| Error::Storage("commit writer panicked".into()))?;
        }
        self.check()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn run(s: &Shared) {
    // A panic that escapes the per-group catch below still fails the writer
    // for everyone (waiters woken, later pushes refused) rather than hanging them.
    let _guard = FailOnUnwind(s);
    // Resolve the column families once (a name lookup each otherwise).
    let cfs = Cf::ALL.map(|cf| s.db.cf(cf));
    let mut group: Vec<Commit> = Vec::new();
    loop {
        let top = {
            let mut q = s.queue.lock();
            while q.pending.is_empty() && !q.stopping {
                s.work.wait(&mut q);
            }
            if q.pending.is_empty() {
                q.stopped = true; // stopping and drained
                drop(q);
                s.written.notify_all();
                return;
            }
            std::mem::swap(&mut q.pending, &mut group);
            q.last_seq
        };
        let written = panic::catch_unwind(AssertUnwindSafe(|| write_group(s, &cfs, &group)));
        group.clear(); // keeps the capacity for the next group
        match written {
            Ok(Ok(())) => publish(s, top),
            Ok(Err(e)) => return fail(s, e.to_string()),
            Err(payload) => return fail(s, format!("the commit writer panicked: {}", panic_message(payload.as_ref()))),
        }
    }
}

/// Write one group durably. An error or a panic here fails the writer: the
/// group's outcome is then unknown to its clients (it may or may not be on
/// disk) and recovery at the next open decides it.
fn write_group(s: &Shared, cfs: &[&ColumnFamily; Cf::ALL.len()], group: &[Commit]) -> Result<()> {
    failpoint!(failpoints::COMMIT_BEFORE_WRITE);
    let bytes: usize = group.iter().map(|c| c.buf.len() + 24 * c.ops.len()).sum();
    let mut batch = WriteBatch::with_capacity_bytes(bytes + 64);
    let skip = superseded(group);
    let mut skip_iter = skip.iter().copied();
    let drop_state = drops_state_writes();
    for c in group {
        c.apply(cfs, &mut batch, &mut skip_iter, drop_state);
    }
    failpoint!(failpoints::COMMIT_WRITE_ERROR, |_| Err(Error::Storage(format!(
        "injected write error (failpoint {})",
        failpoints::COMMIT_WRITE_ERROR
    ))));
    write_durably(s, batch)?;
    failpoint!(failpoints::COMMIT_BEFORE_PUBLISH);
    Ok(())
}

/// Whether this group is written without its state rows: never, unless the failpoint
/// `commit.drop_state_write` says `return` (the reliability suite's broken build).
fn drops_state_writes() -> bool {
    if !failpoints::configured() {
        return false;
    }
    failpoint!(failpoints::COMMIT_DROP_STATE_WRITE, |_| true);
    false
}

/// One write with the WAL sync (in `sync` mode): RocksDB makes the rows
/// readable only once they are synced.
#[cfg(not(feature = "failpoints"))]
fn write_durably(s: &Shared, batch: WriteBatch) -> Result<()> {
    s.db.write(batch, s.sync)
}

/// As without failpoints until a failpoint is configured in the process: then
/// the write and the WAL sync are two calls, so that `commit.before_sync` sits
/// between them (on that path only, rows are readable before they are synced).
#[cfg(feature = "failpoints")]
fn write_durably(s: &Shared, batch: WriteBatch) -> Result<()> {
    if !failpoints::configured() {
        return s.db.write(batch, s.sync);
    }
    s.db.write(batch, false)?;
    failpoint!(failpoints::COMMIT_BEFORE_SYNC);
    if s.sync {
        s.db.sync_wal()?;
    }
    Ok(())
}

/// The group ending at `top` is durable: tell every waiter.
fn publish(s: &Shared, top: u64) {
    s.durable_seq.store(top, Ordering::Release);
    s.groups.fetch_add(1, Ordering::Relaxed);
    // Take the lock so a `wait_durable` between its check and its wait
    // cannot miss this wake-up.
    drop(s.queue.lock());
    s.written.notify_all();
    s.notify.signal();
}

/// Stop for good: the failure is sticky (every later push, `wait_durable` and
/// `drain_notify` reports it) and the event loop learns at once from the eventfd.
fn fail(s: &Shared, message: String) {
    let mut q = s.queue.lock();
    q.failed.get_or_insert(message);
    q.stopping = true;
    q.stopped = true;
    q.pending.clear();
    drop(q);
    s.written.notify_all();
    s.notify.signal();
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    match payload.downcast_ref::<&str>() {
        Some(m) => m,
        None => payload.downcast_ref::<String>().map_or("(no message)", String::as_str),
    }
}

struct FailOnUnwind<'a>(&'a Shared);

impl Drop for FailOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            fail(self.0, "the commit writer panicked".into());
        }
    }
}

/// For every op of the group, in order: whether a later Put or Delete of the same group
/// writes the same row. Such an op can be left out of the WriteBatch: the group is atomic,
/// so no reader can observe the overwritten value, and a later exact-key write wins over
/// any range delete in between. A hot key's consecutive completions in one group then
/// cost one state write, not one per invocation.
fn superseded(group: &[Commit]) -> Vec<bool> {
    let total: usize = group.iter().map(Commit::len).sum();
    let mut skip = vec![false; total];
    if group.len() < 2 {
        return skip;
    }
    let mut seen: HashSet<(u8, &[u8])> = HashSet::with_capacity(total);
    let mut i = total;
    for c in group.iter().rev() {
        for op in c.ops.iter().rev() {
            i -= 1;
            if matches!(op.kind, OpKind::DeleteRange) {
                continue;
            }
            if !seen.insert((op.cf as u8, c.key(op))) {
                skip[i] = true;
            }
        }
    }
    skip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> (Arc<Db>, Writer) {
        let db = Arc::new(Db::open(dir).unwrap());
        let w = Writer::start(db.clone(), Durability::Sync).unwrap();
        (db, w)
    }

    #[test]
    fn concurrent_submitters_get_increasing_seqs_and_see_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (db, w) = open(dir.path());
        let w = Arc::new(w);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut seqs = Vec::new();
                    for i in 0..125 {
                        let mut c = Commit::new();
                        c.put(Cf::State, format!("k{t}-{i}").as_bytes(), b"v");
                        let seq = w.push(c).unwrap();
                        assert!(seq > last);
                        last = seq;
                        seqs.push(seq);
                    }
                    seqs
                })
            })
            .collect();
        let mut all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort();
        assert_eq!(all, (1..=1000).collect::<Vec<_>>());
        assert_eq!(w.last_seq(), 1000);
        assert_eq!(w.wait_durable(1000).unwrap(), 1000);
        for t in 0..8 {
            for i in 0..125 {
                assert!(db.get(Cf::State, format!("k{t}-{i}").as_bytes()).unwrap().is_some());
            }
        }
        let groups = w.groups_written();
        assert!(groups < 1000, "1000 commits took {groups} groups");
    }

    #[test]
    fn many_queued_commits_share_groups_and_durable_seq_is_monotonic() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, w) = open(dir.path());
        let w = Arc::new(w);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (w, stop) = (w.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let d = w.durable_seq();
                    assert!(d >= last);
                    last = d;
                }
            })
        };
        for i in 0..1000u32 {
            let mut c = Commit::new();
            c.put(Cf::Journal, &i.to_be_bytes(), b"x");
            w.push(c).unwrap();
        }
        w.wait_durable(1000).unwrap();
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
        assert!(w.groups_written() < 1000);
        // The eventfd was signalled; draining resets it and reports durable_seq.
        assert_eq!(w.drain_notify().unwrap(), 1000);
    }

    #[test]
    fn superseded_marks_only_rows_written_again_later_in_the_group() {
        let mut c1 = Commit::new();
        c1.put(Cf::State, b"k", b"1");
        c1.put(Cf::State, b"l", b"1");
        c1.put(Cf::Journal, b"k", b"other family");
        let mut c2 = Commit::new();
        c2.delete_range(Cf::State, b"a", b"z");
        c2.put(Cf::State, b"k", b"2");
        let mut c3 = Commit::new();
        c3.delete(Cf::State, b"l");
        assert_eq!(superseded(&[c1, c2, c3]), [true, true, false, false, false, false]);
        let mut alone = Commit::new();
        alone.put(Cf::State, b"k", b"1");
        alone.put(Cf::State, b"k", b"2");
        assert_eq!(superseded(&[alone]), [false, false], "a single commit is applied as it is");
    }

    #[test]
    fn a_group_of_overwrites_leaves_the_last_value() {
        let dir = tempfile::tempdir().unwrap();
        let (db, w) = open(dir.path());
        let mut last = 0;
        for i in 0..500u32 {
            let mut c = Commit::new();
            c.put(Cf::State, b"hot", &i.to_be_bytes());
            if i % 7 == 0 {
                c.delete(Cf::State, b"cold");
            } else {
                c.put(Cf::State, b"cold", &i.to_be_bytes());
            }
            last = w.push(c).unwrap();
        }
        w.wait_durable(last).unwrap();
        assert!(w.groups_written() < 500);
        assert_eq!(db.get(Cf::State, b"hot").unwrap().unwrap(), 499u32.to_be_bytes());
        assert_eq!(db.get(Cf::State, b"cold").unwrap().unwrap(), 499u32.to_be_bytes());
    }

    #[test]
    fn close_writes_everything_queued_and_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, w) = open(dir.path());
            for i in 0..200u32 {
                let mut c = Commit::new();
                c.put(Cf::Inbox, &i.to_be_bytes(), &i.to_le_bytes());
                w.push(c).unwrap();
            }
            w.close().unwrap();
            assert_eq!(w.durable_seq(), 200);
            assert!(matches!(w.push(Commit::new()), Err(Error::Closed)));
            drop(w);
            drop(db);
        }
        let db = Db::open(dir.path()).unwrap();
        for i in 0..200u32 {
            assert_eq!(db.get(Cf::Inbox, &i.to_be_bytes()).unwrap().unwrap(), i.to_le_bytes());
        }
    }

    #[test]
    fn delete_range_then_put_in_one_commit_keeps_the_put() {
        let dir = tempfile::tempdir().unwrap();
        let (db, w) = open(dir.path());
        let mut c = Commit::new();
        c.put(Cf::State, b"pa1", b"1");
        c.put(Cf::State, b"pa2", b"2");
        c.put(Cf::State, b"pb", b"3");
        w.push(c).unwrap();
        let mut c = Commit::new();
        c.delete_range(Cf::State, b"pa", b"pb");
        c.put(Cf::State, b"pa2", b"new");
        let seq = w.push(c).unwrap();
        w.wait_durable(seq).unwrap();
        assert_eq!(db.get(Cf::State, b"pa1").unwrap(), None);
        assert_eq!(db.get(Cf::State, b"pa2").unwrap().unwrap(), b"new");
        assert_eq!(db.get(Cf::State, b"pb").unwrap().unwrap(), b"3");
    }

    #[test]
    fn a_failed_write_stops_the_writer_and_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, w) = open(dir.path());
        let mut ok = Commit::new();
        ok.put(Cf::State, b"a", b"1");
        w.wait_durable(w.push(ok).unwrap()).unwrap();
        // RocksDB rejects a range whose end sorts before its start: a stand-in
        // for an I/O error that fails the whole group.
        let mut bad = Commit::new();
        bad.delete_range(Cf::State, b"z", b"a");
        let seq = w.push(bad).unwrap();
        assert!(matches!(w.wait_durable(seq), Err(Error::WriterFailed(_))));
        assert!(matches!(w.drain_notify(), Err(Error::WriterFailed(_))));
        assert!(matches!(w.push(Commit::new()), Err(Error::WriterFailed(_))));
        assert_eq!(w.durable_seq(), 1);
        assert!(w.close().is_err());
    }

    #[test]
    fn durability_parses() {
        assert_eq!("sync".parse::<Durability>().unwrap(), Durability::Sync);
        assert_eq!("wal".parse::<Durability>().unwrap(), Durability::Wal);
        assert!("fast".parse::<Durability>().is_err());
    }
}
