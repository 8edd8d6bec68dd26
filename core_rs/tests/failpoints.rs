//! Failure paths of the writer and of recovery, driven by the named failpoints
//! (src/failpoints.rs): a panic or a write error in the writer fails every
//! waiter and every later write; `pause` holds `durable_seq`; signals answer
//! while the writer is stuck; recovery can fail cleanly.
//!
//! The failpoint registry is process-wide, so the tests of this binary take
//! one lock each and clear every point when they end (even by a panic).
#![cfg(feature = "failpoints")]

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use stead_core::commit::Durability;
use stead_core::entry::{self, EntryRef};
use stead_core::failpoints::{self, COMMIT_BEFORE_PUBLISH, COMMIT_BEFORE_SYNC, COMMIT_BEFORE_WRITE, COMMIT_WRITE_ERROR, STORE_RECOVER};
use stead_core::invocation::*;
use stead_core::store::{Store, SIGNAL_ALREADY_COMPLETED, SIGNAL_APPLIED, SIGNAL_UNKNOWN};
use stead_core::Error;

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the binary's lock; clears every failpoint when dropped.
struct Points(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Points {
    fn take() -> Points {
        Points(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn set(&self, name: &str, actions: &str) {
        failpoints::set(name, actions).unwrap();
    }
}

impl Drop for Points {
    fn drop(&mut self) {
        for name in failpoints::NAMES {
            failpoints::remove(name).unwrap();
        }
    }
}

/// Declared after the store: a test that fails while it holds the writer releases it
/// before the store's drop waits for the writer (else the failure is a hang).
struct ReleaseOnDrop;

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        for name in failpoints::NAMES {
            let _ = failpoints::remove(name);
        }
    }
}

fn open(dir: &Path, durability: Durability) -> Arc<Store> {
    let s = Store::open(dir, durability).unwrap();
    s.recover().unwrap();
    Arc::new(s)
}

fn svc(id: &str) -> Arc<InvocationMeta> {
    InvocationMeta::new(id.into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1).unwrap()
}

const RUN: EntryRef<'static> = EntryRef { kind: entry::RUN, name: Some("r"), value: Some(b"1"), code: 0, message: None };

/// Run `f` on another thread; its result, or None if it takes longer than `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).ok()
}

/// Whether the store's eventfd is readable within `ms`.
fn notified(s: &Store, ms: i32) -> bool {
    let mut p = libc::pollfd { fd: s.notify_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) == 1 }
}

fn writer_failed(r: stead_core::Result<impl std::fmt::Debug>, needle: &str) {
    match r {
        Err(Error::WriterFailed(m)) => assert!(m.contains(needle), "{m:?} should mention {needle:?}"),
        other => panic!("expected WriterFailed({needle}), got {other:?}"),
    }
}

#[test]
fn a_panic_in_the_writer_fails_waiters_and_every_later_write() {
    let points = Points::take();
    for point in [COMMIT_BEFORE_WRITE, COMMIT_BEFORE_SYNC, COMMIT_BEFORE_PUBLISH] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), Durability::Sync);
        let a = svc("inv_a");
        s.wait_durable(s.progress(&a, &[RUN], &[]).unwrap()).unwrap();
        s.drain_notify().unwrap();
        points.set(point, "panic(boom in the writer)");
        let seq = s.progress(&a, &[RUN], &[]).unwrap();
        let waiter = {
            let s = s.clone();
            within(10, move || s.wait_durable(seq)).expect("the waiter is not left hanging")
        };
        writer_failed(waiter, "panicked: boom in the writer");
        assert_eq!(s.durable_seq(), seq - 1);
        assert!(notified(&s, 1000), "{point}: the event loop learns at once");
        writer_failed(s.drain_notify(), "boom");
        writer_failed(s.wait_durable(seq), "boom");
        writer_failed(s.progress(&a, &[RUN], &[]), "boom");
        writer_failed(s.kill("inv_a").map(|_| ()), "boom");
        assert!(s.close().is_err());
        failpoints::remove(point).unwrap();
    }
}

#[test]
fn a_waiter_blocked_before_the_writer_panics_is_woken() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Wal);
    points.set(COMMIT_BEFORE_WRITE, "pause");
    points.set(COMMIT_BEFORE_PUBLISH, "panic");
    let seq = s.progress(&svc("inv_a"), &[RUN], &[]).unwrap();
    let waiter = {
        let s = s.clone();
        std::thread::spawn(move || s.wait_durable(seq))
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished(), "blocked while the writer is paused");
    failpoints::remove(COMMIT_BEFORE_WRITE).unwrap();
    writer_failed(waiter.join().unwrap(), "failpoint commit.before_publish panic");
}

#[test]
fn an_injected_write_error_fails_the_group_like_a_failed_write() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path(), Durability::Sync);
        let a = svc("inv_a");
        let first = s.progress(&a, &[RUN], &[]).unwrap();
        s.wait_durable(first).unwrap();
        points.set(COMMIT_WRITE_ERROR, "return");
        let seq = s.progress(&a, &[RUN, RUN], &[]).unwrap();
        writer_failed(s.wait_durable(seq), "injected write error");
        assert_eq!(s.durable_seq(), first);
        writer_failed(s.drain_notify(), "injected write error");
        writer_failed(s.admit(&svc("inv_b"), true), "injected write error");
        assert!(s.close().is_err());
    }
    drop(points);
    // The failed group is not on disk: recovery decides what happened, here nothing.
    let s = open(dir.path(), Durability::Sync);
    assert_eq!(s.load_journal("inv_a").unwrap().len(), 1);
}

#[test]
fn pause_holds_durable_seq_until_released() {
    let points = Points::take();
    for point in [COMMIT_BEFORE_WRITE, COMMIT_BEFORE_SYNC, COMMIT_BEFORE_PUBLISH] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), Durability::Sync);
        let a = svc("inv_a");
        points.set(point, "pause");
        let seq = s.progress(&a, &[RUN], &[]).unwrap();
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait_durable(seq))
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(s.durable_seq() < seq, "{point}: not published while paused");
        assert!(!waiter.is_finished());
        assert!(!notified(&s, 0));
        failpoints::remove(point).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), seq);
        assert!(notified(&s, 1000));
        s.close().unwrap();
    }
    // `1*off->pause`: the first group passes, the next one waits.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Wal);
    points.set(COMMIT_BEFORE_PUBLISH, "1*off->pause");
    let a = svc("inv_a");
    s.wait_durable(s.progress(&a, &[RUN], &[]).unwrap()).unwrap();
    let seq = s.progress(&a, &[RUN], &[]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(s.durable_seq(), seq - 1);
    points.set(COMMIT_BEFORE_PUBLISH, "off"); // configuring again releases it too
    assert_eq!(s.wait_durable(seq).unwrap(), seq);
}

#[test]
fn signals_answer_while_the_writer_is_stuck() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Sync);
    points.set(COMMIT_BEFORE_WRITE, "pause");
    let a = svc("inv_a");
    s.progress(&a, &[RUN], &[]).unwrap();
    let (done, _) = s.complete(&a, &[], None, 0, None, &[]).unwrap();
    let b = svc("inv_b");
    s.progress(&b, &[RUN], &[]).unwrap();
    assert_eq!(s.durable_seq(), 0);
    let answers = {
        let s = s.clone();
        within(5, move || {
            let unknown: Vec<_> = (0..1000).map(|i| s.cancel(&format!("inv_nope{i}")).unwrap()).collect();
            (unknown, s.kill("inv_a").unwrap(), s.complete_awakeable("inv_a", 0, &Default::default()).unwrap(), s.kill("inv_b").unwrap())
        })
    }
    .expect("a signal never waits for the writer");
    assert!(answers.0.iter().all(|r| *r == (SIGNAL_UNKNOWN, 0)));
    assert_eq!(answers.1, (SIGNAL_ALREADY_COMPLETED, done), "finished in a queued commit: wait for it");
    assert_eq!(answers.2, (SIGNAL_ALREADY_COMPLETED, done));
    assert_eq!(answers.3.0, SIGNAL_APPLIED);
    failpoints::remove(COMMIT_BEFORE_WRITE).unwrap();
    assert_eq!(s.wait_durable(answers.3 .1).unwrap(), answers.3 .1);
}

#[test]
fn an_attach_to_an_invocation_finished_in_an_unwritten_commit_is_answered_from_memory() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Sync);
    let (t, a) = (svc("inv_t"), svc("inv_a"));
    s.wait_durable(s.progress(&t, &[RUN], &[]).unwrap()).unwrap();
    s.wait_durable(s.progress(&a, &[RUN], &[]).unwrap()).unwrap();
    points.set(COMMIT_BEFORE_WRITE, "pause");
    let (done, _) = s.complete(&t, &[], Some(b"\"r\""), 0, None, &[]).unwrap();
    assert_eq!(s.get_output("inv_t").unwrap(), None, "the disk does not have it yet");
    let attach = EntryRef { kind: entry::ATTACH_INVOCATION, name: Some("inv_t"), value: None, code: 0, message: None };
    let seq = within(5, {
        let (s, a) = (s.clone(), a.clone());
        move || s.progress(&a, &[attach], &[]).unwrap()
    })
    .expect("no wait for the writer");
    assert!(seq > done, "after the target's completion in commit order");
    let w = s.take_wakes();
    let last = w.last().unwrap();
    assert_eq!((last.inv.id.as_str(), last.index, last.value.as_deref(), last.seq), ("inv_a", 1, Some(&b"\"r\""[..]), seq));
    failpoints::remove(COMMIT_BEFORE_WRITE).unwrap();
    s.wait_durable(seq).unwrap();
    let rows = s.load_completions("inv_a").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0, rows[0].1.value.as_deref()), (1, Some(&b"\"r\""[..])));
    drop(points);
}

#[test]
fn purge_leaves_a_workflow_key_to_the_run_admitted_after_it() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Wal);
    let _release = ReleaseOnDrop;
    let run = |id: &str| InvocationMeta::new(id.into(), "Wf".into(), "run".into(), "w".into(), KIND_WORKFLOW, b"{}", vec![], 1).unwrap();
    let set = |n: &'static str, v: &'static [u8]| EntryRef { kind: entry::SET_STATE, name: Some(n), value: Some(v), code: 0, message: None };
    let r1 = run("inv_r1");
    s.admit(&r1, false).unwrap();
    s.progress(&r1, &[set("s", b"old"), set("t", b"old")], &[]).unwrap();
    s.complete(&r1, &[], None, 0, None, &[]).unwrap();
    s.wait_durable(s.last_seq()).unwrap();
    // The purge of run 1 is queued but not written when run 2 of the key is admitted
    // (its lookup already sees the row deleted, with the commit to wait for) and reads
    // and writes the key's state.
    points.set(COMMIT_BEFORE_WRITE, "pause");
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 1);
    let purge = s.last_seq();
    assert_eq!(s.idempotency_lookup("Wf", "w", "run", "").unwrap(), (None, purge));
    assert_eq!(state(&s, "w"), (vec![], purge), "nothing of run 1, though RocksDB still has it");
    let r2 = run("inv_r2");
    let (_, admitted) = s.admit(&r2, false).unwrap();
    assert_eq!(s.idempotency_lookup("Wf", "w", "run", "").unwrap(), (Some("inv_r2".into()), admitted));
    assert_eq!(state(&s, "w"), (vec![], purge));
    let wrote = s.progress(&r2, &[set("s", b"new")], &[]).unwrap();
    assert_eq!(state(&s, "w"), (vec![("s".into(), b"new".to_vec())], wrote), "the rows written after the purge");
    s.progress(&r2, &[RUN], &[]).unwrap();
    assert_eq!(state(&s, "w").1, wrote, "a commit that writes no state changes nothing");
    // Run 1's record is still on disk: another purge must not take the key's state with it.
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 0);
    let clear_all = EntryRef { kind: entry::CLEAR_ALL, name: None, value: None, code: 0, message: None };
    let clear = |n: &'static str| EntryRef { kind: entry::CLEAR_STATE, name: Some(n), value: None, code: 0, message: None };
    let (done, _) = s.complete(&r2, &[clear_all, set("u", b"1"), set("v", b"2"), clear("u")], None, 0, None, &[]).unwrap();
    assert_eq!(state(&s, "w"), (vec![("v".into(), b"2".to_vec())], done));
    failpoints::remove(COMMIT_BEFORE_WRITE).unwrap();
    s.wait_durable(s.last_seq()).unwrap();
    assert_eq!(state(&s, "w"), (vec![("v".into(), b"2".to_vec())], 0), "durable: read from RocksDB");
    assert_eq!(s.idempotency_lookup("Wf", "w", "run", "").unwrap().0.as_deref(), Some("inv_r2"));
    drop(points);
}

fn state(s: &Store, key: &str) -> (Vec<(String, Vec<u8>)>, u64) {
    let (rows, seq) = s.load_state("Wf", key).unwrap();
    (rows.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(), seq)
}

/// What the reads say about an invocation whose purge is queued: the idempotency lookup
/// sees the delete with its commit (an answer "none" waits for it); the record and the
/// output are read from RocksDB, so they show the invocation until the delete is written,
/// and show it gone as soon as it is written, before `durable_seq` says so (the runtime
/// waits for `last_seq` after such a read, found or not).
#[test]
fn reads_of_an_invocation_whose_purge_is_queued() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Sync);
    let _release = ReleaseOnDrop;
    let links = Links { idempotency_key: "k".into(), ..Default::default() };
    let i = InvocationMeta::with_links("inv_i".into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1, links).unwrap();
    s.admit(&i, true).unwrap();
    s.complete(&i, &[], Some(b"\"out\""), 0, None, &[]).unwrap();
    s.wait_durable(s.last_seq()).unwrap();
    let output = Some((Some(b"\"out\"".to_vec()), 0, None));

    points.set(COMMIT_BEFORE_WRITE, "pause");
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 1);
    let purge = s.last_seq();
    assert_eq!(s.idempotency_lookup("Svc", "", "h", "k").unwrap(), (None, purge), "gone, on account of the purge");
    assert_eq!(s.get_output("inv_i").unwrap(), output, "not written: RocksDB has it");
    assert_eq!(s.get_invocation("inv_i").unwrap().map(|m| m.state().status), Some(STATUS_COMPLETED));
    // An attach decided now finds it gone (its commit comes after the purge's).
    let a = svc("inv_a");
    let attach = EntryRef { kind: entry::ATTACH_INVOCATION, name: Some("inv_i"), value: None, code: 0, message: None };
    let seq = s.progress(&a, &[attach], &[]).unwrap();
    assert!(seq > purge);
    assert_eq!(s.take_wakes().last().map(|w| w.code), Some(404));

    // Written, not synced: the record is gone from the reads before the purge is durable.
    points.set(COMMIT_BEFORE_SYNC, "pause");
    failpoints::remove(COMMIT_BEFORE_WRITE).unwrap();
    let gone = within(5, {
        let s = s.clone();
        move || loop {
            if s.get_invocation("inv_i").unwrap().is_none() {
                return s.get_output("inv_i").unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert_eq!(gone, Some(None), "written: the reads no longer see it");
    assert!(s.durable_seq() < purge, "and not durable yet");
    assert_eq!(s.idempotency_lookup("Svc", "", "h", "k").unwrap(), (None, purge));
    failpoints::remove(COMMIT_BEFORE_SYNC).unwrap();
    s.wait_durable(seq).unwrap();
    assert_eq!(s.get_output("inv_i").unwrap(), None);
    let (holder, seq) = s.idempotency_lookup("Svc", "", "h", "k").unwrap();
    assert!(holder.is_none() && seq <= s.durable_seq());
    drop(points);
}

#[test]
fn a_failed_recovery_is_a_storage_error() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path(), Durability::Sync);
        s.progress(&svc("inv_a"), &[RUN], &[]).unwrap();
        s.close().unwrap();
    }
    points.set(STORE_RECOVER, "return");
    let s = Store::open(dir.path(), Durability::Sync).unwrap();
    match s.recover() {
        Err(e @ Error::Storage(_)) => assert!(e.to_string().contains("injected I/O error"), "{e}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    failpoints::remove(STORE_RECOVER).unwrap();
    assert_eq!(s.recover().unwrap().len(), 1, "nothing was half-done");
}

#[test]
fn stead_failpoints_configures_points_at_open() {
    let _points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var(failpoints::ENV, "store.recover=return; commit.before_write=off");
    let s = Store::open(dir.path(), Durability::Wal);
    std::env::remove_var(failpoints::ENV);
    assert!(matches!(s.unwrap().recover(), Err(Error::Storage(_))));

    for bad in ["store.recover", "nope=return", "store.recover=bogus(("] {
        std::env::set_var(failpoints::ENV, bad);
        let r = Store::open(dir.path(), Durability::Wal);
        std::env::remove_var(failpoints::ENV);
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{bad}");
    }
}

fn object_rows(s: &Store) -> (Vec<(String, Vec<u8>)>, u64) {
    let (rows, seq) = s.load_state("Obj", "k").unwrap();
    (rows.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(), seq)
}

/// The key's last owner released it in a commit RocksDB does not have yet: the state a
/// checked edit would be compared with is not known, so the edit is refused as busy
/// (never applied on the strength of the older rows RocksDB still has).
#[test]
fn a_checked_state_edit_waits_out_the_unwritten_release_of_its_key() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Sync);
    let _release = ReleaseOnDrop;
    let set = EntryRef { kind: entry::SET_STATE, name: Some("s"), value: Some(b"1"), code: 0, message: None };
    let o = InvocationMeta::new("inv_o".into(), "Obj".into(), "h".into(), "k".into(), KIND_EXCLUSIVE, b"{}", vec![], 1).unwrap();
    s.admit(&o, false).unwrap();
    points.set(COMMIT_BEFORE_WRITE, "pause");
    s.complete(&o, &[set], None, 0, None, &[]).unwrap();
    let stale = s.state_version("Obj", "k").unwrap();
    assert_eq!(stale, stead_core::store::state_version_of(std::iter::empty()), "RocksDB has no row yet");
    let last = s.last_seq();
    let refused = within(5, {
        let s = s.clone();
        let stale = stale.clone();
        move || s.overwrite_state("Obj", "k", vec![("s".into(), b"2".to_vec())], Some(&stale))
    })
    .expect("no wait for the writer");
    assert!(matches!(refused, Err(Error::KeyBusy(_))), "{refused:?}");
    assert_eq!(s.last_seq(), last, "nothing queued");
    failpoints::remove(COMMIT_BEFORE_WRITE).unwrap();
    s.wait_durable(last).unwrap();
    let current = s.state_version("Obj", "k").unwrap();
    assert_ne!(current, stale);
    assert!(matches!(s.overwrite_state("Obj", "k", vec![], Some(&stale)), Err(Error::VersionMismatch { .. })));
    assert!(s.overwrite_state("Obj", "k", vec![], Some(&current)).is_ok());
    drop(points);
}

/// An edit whose commit is not written yet is what reads and the key's next run see.
#[test]
fn an_unwritten_state_edit_is_what_the_next_run_loads() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Sync);
    let _release = ReleaseOnDrop;
    let o = InvocationMeta::new("inv_o".into(), "Obj".into(), "h".into(), "k".into(), KIND_EXCLUSIVE, b"{}", vec![], 1).unwrap();
    s.admit(&o, false).unwrap();
    let old = EntryRef { kind: entry::SET_STATE, name: Some("old"), value: Some(b"1"), code: 0, message: None };
    s.wait_durable(s.complete(&o, &[old], None, 0, None, &[]).unwrap().0).unwrap();
    points.set(COMMIT_BEFORE_WRITE, "pause");
    let v = s.state_version("Obj", "k").unwrap();
    let (edited, seq) = s.overwrite_state("Obj", "k", vec![("new".into(), b"2".to_vec())], Some(&v)).unwrap();
    assert_eq!(object_rows(&s), (vec![("new".into(), b"2".to_vec())], seq), "from memory, with the commit to wait for");
    assert_eq!(s.state_version("Obj", "k").unwrap(), edited);
    let n = InvocationMeta::new("inv_n".into(), "Obj".into(), "h".into(), "k".into(), KIND_EXCLUSIVE, b"{}", vec![], 1).unwrap();
    assert!(s.admit(&n, false).unwrap().0);
    let more = EntryRef { kind: entry::SET_STATE, name: Some("more"), value: Some(b"3"), code: 0, message: None };
    let wrote = s.progress(&n, &[more], &[]).unwrap();
    assert_eq!(object_rows(&s), (vec![("more".into(), b"3".to_vec()), ("new".into(), b"2".to_vec())], wrote));
    failpoints::remove(COMMIT_BEFORE_WRITE).unwrap();
    s.wait_durable(wrote).unwrap();
    assert_eq!(object_rows(&s), (vec![("more".into(), b"3".to_vec()), ("new".into(), b"2".to_vec())], 0), "durable: RocksDB");
    drop(points);
}

/// The admin's purge of an invocation whose completion (and admission) are not written
/// yet: applied after them in commit order, and forgotten at once by signals.
#[test]
fn purge_invocation_of_an_invocation_completed_in_an_unwritten_commit() {
    let points = Points::take();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), Durability::Sync);
    let _release = ReleaseOnDrop;
    points.set(COMMIT_BEFORE_WRITE, "pause");
    let links = Links { idempotency_key: "once".into(), ..Default::default() };
    let i = InvocationMeta::with_links("inv_i".into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1, links).unwrap();
    s.admit(&i, true).unwrap();
    s.progress(&i, &[RUN], &[]).unwrap();
    let (done, _) = s.complete(&i, &[], Some(b"1"), 0, None, &[]).unwrap();
    let answers = within(5, {
        let s = s.clone();
        move || (s.purge_invocation("inv_i").unwrap(), s.cancel("inv_i").unwrap(), s.purge_invocation("inv_i").unwrap())
    })
    .expect("no wait for the writer");
    let (purged, cancel, again) = answers;
    assert_eq!(purged.0, SIGNAL_APPLIED);
    assert!(purged.1 > done);
    assert_eq!(cancel, (SIGNAL_UNKNOWN, purged.1), "forgotten, once the purge is durable");
    assert_eq!(again, (SIGNAL_UNKNOWN, purged.1));
    assert_eq!(s.idempotency_lookup("Svc", "", "h", "once").unwrap(), (None, purged.1));
    failpoints::remove(COMMIT_BEFORE_WRITE).unwrap();
    s.wait_durable(purged.1).unwrap();
    assert!(s.get_invocation("inv_i").unwrap().is_none());
    assert!(s.load_journal("inv_i").unwrap().is_empty());
    assert!(s.scan_idempotency().unwrap().is_empty());
    assert_eq!(s.cancel("inv_i").unwrap(), (SIGNAL_UNKNOWN, 0));
    drop(points);
}
