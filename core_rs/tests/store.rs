//! The store's semantics as the runtime relies on them (runtime/_core.pyi):
//! admission and inbox order, state effects, completion and hand-over,
//! recovery (including promotion of inboxed invocations), timers, purge.

use std::path::Path;
use std::sync::Arc;

use stead_core::commit::Durability;
use stead_core::entry::{self, EntryRef};
use stead_core::invocation::*;
use stead_core::store::Store;
use stead_core::Error;

fn open(dir: &Path) -> Store {
    Store::open(dir, Durability::Sync).unwrap()
}

fn inv(id: &str, key: &str, kind: i32) -> Arc<InvocationMeta> {
    let (service, handler) = if kind == KIND_SERVICE { ("Greeter", "greet") } else { ("Counter", "add") };
    InvocationMeta::new(id.into(), service.into(), handler.into(), key.into(), kind, b"{}", vec![("h".into(), "v".into())], 1).unwrap()
}

fn set(name: &str, value: &'static [u8]) -> EntryRef<'static> {
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    EntryRef { kind: entry::SET_STATE, name: Some(name), value: Some(value), code: 0, message: None }
}

fn clear_all() -> EntryRef<'static> {
    EntryRef { kind: entry::CLEAR_ALL, name: None, value: None, code: 0, message: None }
}

fn run(name: &'static str, value: &'static [u8]) -> EntryRef<'static> {
    EntryRef { kind: entry::RUN, name: Some(name), value: Some(value), code: 0, message: None }
}

fn state(s: &Store, service: &str, key: &str) -> Vec<(String, Vec<u8>)> {
    s.load_state(service, key).unwrap().0.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
}

fn sync(s: &Store) {
    s.wait_durable(s.last_seq()).unwrap();
}

#[test]
fn exclusive_invocations_run_one_at_a_time_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a: Vec<_> = (0..4).map(|i| inv(&format!("inv_a{i}"), "k", KIND_EXCLUSIVE)).collect();
    assert_eq!(s.admit(&a[0], false).unwrap(), (true, 0));
    let mut last = 0;
    for w in &a[1..] {
        let (runs, seq) = s.admit(w, false).unwrap();
        assert!(!runs, "key busy: inboxed");
        assert!(seq > last);
        last = seq;
        assert_eq!(w.state().status, STATUS_INBOXED);
        assert!(w.state().persisted);
    }
    // Another key, a shared handler and a service all run at once.
    assert_eq!(s.admit(&inv("inv_b", "kk", KIND_EXCLUSIVE), false).unwrap(), (true, 0));
    assert_eq!(s.admit(&inv("inv_s", "k", KIND_SHARED), false).unwrap(), (true, 0));
    assert_eq!(s.admit(&inv("inv_v", "", KIND_SERVICE), false).unwrap(), (true, 0));
    sync(&s);
    assert_eq!(s.get_invocation("inv_a2").unwrap().unwrap().state().status, STATUS_INBOXED);

    let mut order = vec![];
    let mut cur = a[0].clone();
    loop {
        let (_, next) = s.complete(&cur, &[], Some(b"ok"), 0, None, &[]).unwrap();
        order.push(cur.id.clone());
        match next {
            Some(n) => {
                assert_eq!(n.state().status, STATUS_RUNNING);
                cur = n;
            }
            None => break,
        }
    }
    assert_eq!(order, vec!["inv_a0", "inv_a1", "inv_a2", "inv_a3"]);
    sync(&s);
    for id in &order {
        assert_eq!(s.get_output(id).unwrap().unwrap(), (Some(b"ok".to_vec()), 0, None));
    }
    // The key is free again.
    assert_eq!(s.admit(&inv("inv_a4", "k", KIND_EXCLUSIVE), false).unwrap(), (true, 0));
}

#[test]
fn progress_journals_and_applies_state_for_exclusive_handlers_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let x = inv("inv_x", "k", KIND_EXCLUSIVE);
    s.admit(&x, false).unwrap();
    assert!(!x.state().persisted);
    s.progress(&x, &[set("a", b"1"), run("step", b"r")], &[]).unwrap();
    assert!(x.state().persisted);
    assert_eq!(x.state().journal_len, 2);
    s.progress(&x, &[set("b", b"2")], &[]).unwrap();
    assert_eq!(x.state().journal_len, 3);
    sync(&s);
    assert_eq!(state(&s, "Counter", "k"), vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]);
    let rec = s.get_invocation("inv_x").unwrap().unwrap();
    assert_eq!(rec.state().status, STATUS_RUNNING);
    let j = s.load_journal("inv_x").unwrap();
    assert_eq!(j.len(), 3);
    assert_eq!(j[1].as_ref(), run("step", b"r"));

    // A shared handler's SET entries are journaled but never reach the state table.
    let sh = inv("inv_sh", "k", KIND_SHARED);
    s.progress(&sh, &[set("c", b"3")], &[]).unwrap();
    sync(&s);
    assert_eq!(state(&s, "Counter", "k").len(), 2);
    assert_eq!(s.load_journal("inv_sh").unwrap().len(), 1);

    // Unknown entry kinds are refused before anything is queued.
    let bad = EntryRef { kind: 42, name: None, value: None, code: 0, message: None };
    assert!(matches!(s.progress(&x, &[bad], &[]), Err(Error::InvalidArgument(_))));
    assert_eq!(x.state().journal_len, 3);
}

#[test]
fn clear_all_deletes_every_row_of_the_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let x = inv("inv_x", "a", KIND_EXCLUSIVE);
    let y = inv("inv_y", "ab", KIND_EXCLUSIVE);
    s.progress(&y, &[set("keep", b"y")], &[]).unwrap();
    s.progress(&x, &[set("one", b"1"), set("two", b"2")], &[]).unwrap();
    // Queued right after (possibly in the same group as) the sets it must clear.
    s.progress(&x, &[set("three", b"3"), clear_all(), set("after", b"4")], &[]).unwrap();
    sync(&s);
    assert_eq!(state(&s, "Counter", "a"), vec![("after".into(), b"4".to_vec())]);
    assert_eq!(state(&s, "Counter", "ab"), vec![("keep".into(), b"y".to_vec())]);
    // CLEAR_STATE of one name.
    let clear = EntryRef { kind: entry::CLEAR_STATE, name: Some("after"), value: None, code: 0, message: None };
    s.complete(&x, &[clear], None, 0, None, &[]).unwrap();
    sync(&s);
    assert!(state(&s, "Counter", "a").is_empty());
}

#[test]
fn complete_writes_journal_rows_only_when_persisted_and_records_failures() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // Never persisted: one commit holds state effects and the completed record only.
    let x = inv("inv_x", "k", KIND_EXCLUSIVE);
    s.admit(&x, false).unwrap();
    let (seq, next) = s.complete(&x, &[set("n", b"1"), run("r", b"v")], Some(b"out"), 0, None, &[]).unwrap();
    assert!(next.is_none());
    s.wait_durable(seq).unwrap();
    assert!(s.load_journal("inv_x").unwrap().is_empty());
    assert_eq!(state(&s, "Counter", "k"), vec![("n".into(), b"1".to_vec())]);
    let rec = s.get_invocation("inv_x").unwrap().unwrap();
    assert_eq!(rec.state().status, STATUS_COMPLETED);
    assert_eq!(rec.state().journal_len, 0);

    // Persisted: the remaining entries are journaled; a terminal failure is kept.
    let y = inv("inv_y", "", KIND_SERVICE);
    s.progress(&y, &[run("a", b"1")], &[]).unwrap();
    s.complete(&y, &[run("b", b"2")], None, 409, Some("conflict"), &[]).unwrap();
    sync(&s);
    assert_eq!(s.load_journal("inv_y").unwrap().len(), 2);
    assert_eq!(s.get_output("inv_y").unwrap().unwrap(), (None, 409, Some("conflict".to_string())));
    assert_eq!(s.get_invocation("inv_y").unwrap().unwrap().state().journal_len, 2);
    // Not completed / unknown.
    let z = inv("inv_z", "", KIND_SERVICE);
    s.progress(&z, &[], &[]).unwrap();
    sync(&s);
    assert!(s.get_output("inv_z").unwrap().is_none());
    assert!(s.get_output("nope").unwrap().is_none());
    assert!(s.get_invocation("nope").unwrap().is_none());
}

#[test]
fn recovery_resumes_running_promotes_inboxed_and_rebuilds_timers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        // Key "a": a0 running with 2 entries, a1 and a2 waiting.
        let a0 = inv("inv_a0", "a", KIND_EXCLUSIVE);
        s.admit(&a0, false).unwrap();
        s.progress(&a0, &[set("x", b"1")], &[]).unwrap();
        s.progress(&a0, &[run("r", b"1")], &[]).unwrap();
        s.admit(&inv("inv_a1", "a", KIND_EXCLUSIVE), false).unwrap();
        s.admit(&inv("inv_a2", "a", KIND_EXCLUSIVE), false).unwrap();
        // Key "b": b0 admitted but never written before the crash; b1, b2 waiting.
        let b0 = inv("inv_b0", "b", KIND_EXCLUSIVE);
        s.admit(&b0, false).unwrap();
        s.admit(&inv("inv_b1", "b", KIND_EXCLUSIVE), false).unwrap();
        s.admit(&inv("inv_b2", "b", KIND_EXCLUSIVE), false).unwrap();
        // Key "c": c0 backing off (still owns the key), c1 waiting.
        let c0 = inv("inv_c0", "c", KIND_EXCLUSIVE);
        s.admit(&c0, false).unwrap();
        s.progress(&c0, &[run("r", b"1")], &[]).unwrap();
        s.backoff(&c0, 3, 5_000).unwrap();
        s.admit(&inv("inv_c1", "c", KIND_EXCLUSIVE), false).unwrap();
        // A running service and a completed one.
        s.progress(&inv("inv_s0", "", KIND_SERVICE), &[], &[]).unwrap();
        let s1 = inv("inv_s1", "", KIND_SERVICE);
        s.complete(&s1, &[], Some(b""), 0, None, &[]).unwrap();
        s.close().unwrap();
    }
    let s = open(dir.path());
    let got = s.recover().unwrap();
    let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["inv_a0", "inv_b1", "inv_s0"]);
    assert_eq!(got[0].state().journal_len, 2);
    assert_eq!(got[1].state().status, STATUS_RUNNING);
    assert!(got[1].state().persisted);
    assert!(matches!(s.recover(), Err(Error::InvalidArgument(_))));

    // Ownership: new arrivals queue behind the recovered owners, after the old waiters.
    let a3 = inv("inv_a3", "a", KIND_EXCLUSIVE);
    assert!(!s.admit(&a3, false).unwrap().0);
    assert!(!s.admit(&inv("inv_c2", "c", KIND_EXCLUSIVE), false).unwrap().0);
    let (_, n) = s.complete(&got[0], &[], None, 0, None, &[]).unwrap();
    assert_eq!(n.unwrap().id, "inv_a1");
    let (_, n) = s.complete(&got[1], &[], None, 0, None, &[]).unwrap();
    assert_eq!(n.unwrap().id, "inv_b2");

    // The backing-off one waits for its timer.
    assert_eq!(s.next_timer_ms(), Some(5_000));
    assert_eq!(s.fire_timers(4_999).unwrap(), 0);
    assert_eq!(s.fire_timers(5_000).unwrap(), 1);
    let due = s.take_wakes();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].what, stead_core::awaiting::WAKE_RUN);
    let c0 = &due[0].inv;
    assert_eq!((c0.id.as_str(), c0.state().status, c0.state().retry_count, c0.state().journal_len), ("inv_c0", STATUS_RUNNING, 3, 1));
    assert_eq!(s.next_timer_ms(), None);
    let (_, n) = s.complete(c0, &[], None, 0, None, &[]).unwrap();
    assert_eq!(n.unwrap().id, "inv_c1");
    s.close().unwrap();
    drop(s);

    // After a second restart the promotions and hand-overs are on disk.
    let s = open(dir.path());
    let ids: Vec<String> = s.recover().unwrap().iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, vec!["inv_a1", "inv_b2", "inv_c1", "inv_s0"]);
    assert_eq!(s.next_timer_ms(), None);
}

#[test]
fn backoff_and_resume_keep_the_timer_table_in_step() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let x = inv("inv_x", "", KIND_SERVICE);
        s.backoff(&x, 1, 100).unwrap();
        // Backing off: no attempt runs that could back off again.
        assert!(matches!(s.backoff(&x, 2, 200), Err(Error::NotRunning { .. })));
        s.resume(&x).unwrap(); // its timer is gone
        s.backoff(&x, 2, 200).unwrap();
        let y = inv("inv_y", "", KIND_SERVICE);
        s.backoff(&y, 1, 150).unwrap();
        s.resume(&y).unwrap(); // its timer is gone
        assert_eq!(s.next_timer_ms(), Some(200));
        s.close().unwrap();
    }
    let s = open(dir.path());
    let running: Vec<String> = s.recover().unwrap().iter().map(|m| m.id.clone()).collect();
    assert_eq!(running, vec!["inv_y"]);
    assert_eq!(s.next_timer_ms(), Some(200));
    assert_eq!(s.fire_timers(u64::MAX).unwrap(), 1);
    let due = s.take_wakes();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].inv.state().retry_count, 2);
}

#[test]
fn purge_deletes_old_completed_records_and_journals() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 0..5 {
        let x = inv(&format!("inv_{i}"), "", KIND_SERVICE);
        s.progress(&x, &[run("r", b"1"), run("r", b"2")], &[]).unwrap();
        s.complete(&x, &[], Some(b"o"), 0, None, &[]).unwrap();
    }
    let live = inv("inv_live", "", KIND_SERVICE);
    s.progress(&live, &[run("r", b"1")], &[]).unwrap();
    sync(&s);
    assert_eq!(s.purge_completed(0, 0, 100).unwrap(), 0); // none completed before t=0
    let later = now_ms() + 1;
    assert_eq!(s.purge_completed(later, 3_600_000, 100).unwrap(), 0); // kept for an hour
    assert_eq!(s.purge_completed(later, 0, 2).unwrap(), 2);
    sync(&s);
    assert_eq!(s.purge_completed(later, 0, 100).unwrap(), 3);
    sync(&s);
    assert_eq!(s.purge_completed(later, 0, 100).unwrap(), 0);
    for i in 0..5 {
        assert!(s.get_invocation(&format!("inv_{i}")).unwrap().is_none());
        assert!(s.load_journal(&format!("inv_{i}")).unwrap().is_empty());
    }
    assert!(s.get_invocation("inv_live").unwrap().is_some());
    assert_eq!(s.load_journal("inv_live").unwrap().len(), 1);
}

#[test]
fn a_directory_of_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close().unwrap();
    // Rewrite the version with plain RocksDB, as an older/newer Stead would have.
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(false);
        let cfs = rocksdb::DB::list_cf(&o, dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&o, dir.path(), &cfs).unwrap();
        db.put_cf(db.cf_handle("meta").unwrap(), b"mtschema_version", 2u32.to_be_bytes()).unwrap();
    }
    match Store::open(dir.path(), Durability::Wal) {
        Err(Error::SchemaVersion { found: 2, expected: 1, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a directory of schema version 2"),
    }
}

#[test]
fn inbox_order_survives_restart_with_many_waiters() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), Durability::Wal).unwrap();
        let owner = inv("inv_000", "hot", KIND_EXCLUSIVE);
        s.admit(&owner, false).unwrap();
        s.progress(&owner, &[], &[]).unwrap();
        // Ids deliberately not in arrival order: the inbox seq decides.
        for i in (1..=300).rev() {
            s.admit(&inv(&format!("inv_{i:03}"), "hot", KIND_EXCLUSIVE), false).unwrap();
        }
        s.close().unwrap();
    }
    let s = open(dir.path());
    let mut cur = s.recover().unwrap().pop().unwrap();
    let mut order = vec![];
    loop {
        let (_, next) = s.complete(&cur, &[], None, 0, None, &[]).unwrap();
        order.push(cur.id.clone());
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    let expected: Vec<String> = std::iter::once("inv_000".to_string()).chain((1..=300).rev().map(|i| format!("inv_{i:03}"))).collect();
    assert_eq!(order, expected);
}
