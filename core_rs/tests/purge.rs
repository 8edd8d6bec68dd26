//! Purge in batches, and a workflow key's state and promises outliving a
//! purged run when a newer run holds the key.

use std::sync::Arc;

use stead_core::entry::{self, EntryRef};
use stead_core::invocation::*;
use stead_core::store::Store;

mod common;
use common::open;

fn run(id: &str, key: &str, idem: &str) -> Arc<InvocationMeta> {
    let links = Links { idempotency_key: idem.into(), ..Default::default() };
    InvocationMeta::with_links(id.into(), "Wf".into(), "run".into(), key.into(), KIND_WORKFLOW, b"{}", vec![], 1, links).unwrap()
}

fn set(value: &'static [u8]) -> EntryRef<'static> {
    EntryRef { kind: entry::SET_STATE, name: Some("s"), value: Some(value), code: 0, message: None }
}

fn resolve(name: &'static str) -> EntryRef<'static> {
    EntryRef { kind: entry::COMPLETE_PROMISE, name: Some(name), value: Some(b"v"), code: 0, message: None }
}

fn sync(s: &Store) {
    s.wait_durable(s.last_seq()).unwrap();
}

fn state(s: &Store, key: &str) -> Vec<(String, Vec<u8>)> {
    sync(s);
    s.load_state("Wf", key).unwrap().0.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
}

fn holder(s: &Store, key: &str, idem: &str) -> Option<String> {
    s.idempotency_lookup("Wf", key, "run", idem).unwrap().0
}

/// Run 1 of workflow key `key`: state s=old, promise p resolved, completed and durable.
fn finished_run(s: &Store, key: &str) {
    let r1 = run("inv_r1", key, "");
    s.admit(&r1, false).unwrap();
    s.progress(&r1, &[set(b"old"), resolve("p")], &[]).unwrap();
    s.complete(&r1, &[], Some(b"done"), 0, None, &[]).unwrap();
    sync(s);
}

#[test]
fn a_newer_run_that_holds_the_idempotency_row_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    finished_run(&s, "w");
    // The store does not check idempotency rows at admission: a second run of the key
    // (as if admitted after a lookup raced with an earlier purge) takes the row.
    let r2 = run("inv_r2", "w", "");
    s.admit(&r2, false).unwrap();
    s.progress(&r2, &[set(b"new")], &[]).unwrap();
    s.complete(&r2, &[], None, 0, None, &[]).unwrap();
    sync(&s);
    // Purge the first run only (the second completed later): its record goes, the key's
    // state, promises and idempotency row are the second run's.
    let purged = s.purge_completed(now_ms() + 1, 0, 1).unwrap();
    assert_eq!(purged, 1);
    sync(&s);
    assert!(s.get_invocation("inv_r1").unwrap().is_none());
    assert_eq!(state(&s, "w"), vec![("s".into(), b"new".to_vec())]);
    assert_eq!(s.peek_promise("Wf", "w", "p").unwrap().0, Some((Some(b"v".to_vec()), 0, None)));
    assert_eq!(holder(&s, "w", "").as_deref(), Some("inv_r2"));
}

#[test]
fn a_key_owned_by_a_live_run_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    finished_run(&s, "w");
    // A live run on the key (with another idempotency key, so the old row still names run 1).
    let r2 = run("inv_r2", "w", "again");
    s.admit(&r2, false).unwrap();
    s.progress(&r2, &[set(b"new")], &[]).unwrap();
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 1);
    assert_eq!(holder(&s, "w", ""), None, "run 1's own row is deleted");
    assert_eq!(state(&s, "w"), vec![("s".into(), b"new".to_vec())]);
    assert!(s.peek_promise("Wf", "w", "p").unwrap().0.is_some());
    // Once the key is free, purging the second run deletes them.
    s.complete(&r2, &[], None, 0, None, &[]).unwrap();
    sync(&s);
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 1);
    assert!(state(&s, "w").is_empty());
    assert_eq!(s.peek_promise("Wf", "w", "p").unwrap().0, None);
}

#[test]
fn many_invocations_are_purged_in_batches_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 0..300 {
        let x = InvocationMeta::new(format!("inv_{i:03}"), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"", vec![], 1).unwrap();
        s.progress(&x, &[EntryRef { kind: entry::RUN, name: None, value: Some(b"1"), code: 0, message: None }], &[]).unwrap();
        s.complete(&x, &[], None, 0, None, &[]).unwrap();
    }
    sync(&s);
    let groups = s.groups_written();
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 250).unwrap(), 250);
    // Not written yet or written: either way the same invocations are not counted twice.
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 1000).unwrap(), 50);
    sync(&s);
    assert!(s.groups_written() > groups, "batches are commits of their own");
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 1000).unwrap(), 0);
    for i in [0, 149, 299] {
        assert!(s.get_invocation(&format!("inv_{i:03}")).unwrap().is_none());
        assert!(s.load_journal(&format!("inv_{i:03}")).unwrap().is_empty());
    }
}

#[test]
fn each_record_is_kept_for_its_own_retention_else_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let hour = 3_600_000;
    let completed_at;
    {
        let s = open(dir.path());
        let svc = |id: &str, idem: &str| {
            let links = Links { idempotency_key: idem.into(), ..Default::default() };
            InvocationMeta::with_links(id.into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1, links).unwrap()
        };
        let (short, long, default) = (svc("inv_short", "k1"), svc("inv_long", "k2"), svc("inv_default", ""));
        s.admit(&short, true).unwrap();
        s.admit(&long, true).unwrap();
        s.admit(&default, true).unwrap();
        completed_at = now_ms();
        s.complete_with_retention(&short, &[], Some(b"1"), 0, None, &[], Some(1000)).unwrap();
        s.complete_with_retention(&long, &[], Some(b"2"), 0, None, &[], Some(hour)).unwrap();
        s.complete_with_retention(&default, &[], Some(b"3"), 0, None, &[], None).unwrap();
        s.close().unwrap();
    }
    // The retention is on disk: it survives a restart.
    let s = open(dir.path());
    let later = completed_at + 5_000;
    assert_eq!(s.purge_completed(completed_at + 500, 0, 10).unwrap(), 1, "only the default one (0 here) ran out");
    sync(&s);
    assert!(s.get_invocation("inv_default").unwrap().is_none());
    assert_eq!(s.purge_completed(later, hour, 10).unwrap(), 1, "1 s ran out, not the hour");
    sync(&s);
    assert!(s.get_invocation("inv_short").unwrap().is_none());
    assert_eq!(s.idempotency_lookup("Svc", "", "h", "k1").unwrap().0, None, "its idempotency row goes with it");
    assert_eq!(s.get_output("inv_long").unwrap(), Some((Some(b"2".to_vec()), 0, None)));
    assert_eq!(s.purge_completed(completed_at + hour + 5_000, u64::MAX, 10).unwrap(), 1);
    sync(&s);
    assert!(s.get_invocation("inv_long").unwrap().is_none());
}

#[test]
fn a_workflow_run_with_a_short_retention_takes_its_key_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let r1 = run("inv_r1", "w", "");
    s.admit(&r1, false).unwrap();
    s.progress(&r1, &[set(b"old"), resolve("p")], &[]).unwrap();
    s.complete_with_retention(&r1, &[], Some(b"done"), 0, None, &[], Some(0)).unwrap();
    sync(&s);
    assert_eq!(s.purge_completed(now_ms(), 3_600_000, 10).unwrap(), 1);
    assert!(state(&s, "w").is_empty());
    assert_eq!(s.peek_promise("Wf", "w", "p").unwrap().0, None);
    assert_eq!(holder(&s, "w", ""), None, "the key can run again");
}

#[test]
fn a_new_run_of_a_purged_key_loads_nothing_of_the_purged_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    finished_run(&s, "w");
    // Whether or not the writer has written the purge yet, the next run of the key reads
    // no state of run 1, then its own writes; a queued commit's rows come with its seq.
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 1);
    let purge = s.last_seq();
    let (rows, seq) = s.load_state("Wf", "w").unwrap();
    assert!(rows.is_empty() && (seq == purge || seq == 0), "{seq}");
    let (found, seq) = s.idempotency_lookup("Wf", "w", "run", "").unwrap();
    assert!(found.is_none() && seq == purge, "an absence on account of the purge: {seq}");
    let r2 = run("inv_r2", "w", "");
    s.admit(&r2, false).unwrap();
    let wrote = s.progress(&r2, &[set(b"new")], &[]).unwrap();
    let (rows, seq) = s.load_state("Wf", "w").unwrap();
    if seq == wrote {
        assert_eq!(rows.iter().collect::<Vec<_>>(), vec![("s", &b"new"[..])]);
    } else {
        // The purge was durable before the write: RocksDB answers, with the commits written
        // so far (the write's rows, once written; the runtime's state cache has them before).
        assert_eq!(seq, 0);
        assert!(rows.iter().all(|(n, v)| (n, v) == ("s", &b"new"[..])), "nothing of run 1");
    }
    assert_eq!(state(&s, "w"), vec![("s".into(), b"new".to_vec())]);
    assert_eq!(s.load_state("Wf", "w").unwrap().1, 0, "durable: from RocksDB");
}
