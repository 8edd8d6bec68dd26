//! An invocation stays on the deployment it started on (Restate's versioning
//! rule): `Store::pin_deployment` records it (`InvocationRecord.deployment_id`),
//! every later write of the record keeps it, and recovery restores it.


use stead_core::invocation::*;
use stead_core::store::Store;
use stead_core::tables::completions::Outcome;
use stead_core::Error;

mod common;
use common::{obj, open, raw_record, reopen, svc, AWAKEABLE, RUN};


/// Every queued commit written (the wal mode: visible to a read-only open).
fn sync(s: &Store) {
    s.wait_durable(s.last_seq()).unwrap();
}

/// (status, deployment_id) of the record on disk.
fn on_disk(dir: &std::path::Path, s: &Store, id: &str) -> (i32, String) {
    sync(s);
    let r = raw_record(dir, id).unwrap_or_else(|| panic!("no record of {id}"));
    (r.status, r.deployment_id)
}

#[test]
fn a_persisted_invocation_is_pinned_by_a_commit_and_recovered_pinned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let a = svc("inv_a");
        assert_eq!(a.deployment(), "", "in-process by default");
        s.progress(&a, &[RUN], &[]).unwrap();
        assert_eq!(on_disk(dir.path(), &s, "inv_a"), (STATUS_RUNNING, String::new()));
        let before = s.last_seq();
        let seq = s.pin_deployment(&a, "dp_1").unwrap();
        assert_eq!(seq, before + 1, "one commit");
        assert_eq!(a.deployment(), "dp_1");
        assert_eq!(on_disk(dir.path(), &s, "inv_a"), (STATUS_RUNNING, "dp_1".into()));
        // The live object is the one the store hands out.
        assert_eq!(s.get_invocation("inv_a").unwrap().unwrap().deployment(), "dp_1");
        // Journaling more keeps it (the record is not rewritten; the journal grows).
        s.progress(&a, &[RUN], &[]).unwrap();
        assert_eq!(on_disk(dir.path(), &s, "inv_a").1, "dp_1");
        s.close().unwrap();
    }
    let (s, ids) = reopen(dir.path());
    assert_eq!(ids, vec!["inv_a"]);
    let got = s.get_invocation("inv_a").unwrap().unwrap();
    assert_eq!((got.deployment(), got.state().journal_len), ("dp_1".to_string(), 2));
}

#[test]
fn an_invocation_pinned_before_its_first_durable_point_is_written_pinned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let b = svc("inv_b");
        assert_eq!(s.admit(&b, false).unwrap(), (true, 0));
        let last = s.last_seq();
        assert_eq!(s.pin_deployment(&b, "dp_2").unwrap(), 0, "not persisted: memory only");
        assert_eq!(s.last_seq(), last, "no commit");
        assert!(!b.state().persisted);
        assert_eq!(b.deployment(), "dp_2");
        sync(&s);
        assert!(raw_record(dir.path(), "inv_b").is_none());
        // Its first durable point writes the record, pinned.
        s.progress(&b, &[RUN], &[]).unwrap();
        assert_eq!(on_disk(dir.path(), &s, "inv_b"), (STATUS_RUNNING, "dp_2".into()));

        // Never admitted (status 0) counts as running, like progress.
        let c = svc("inv_c");
        assert_eq!(s.pin_deployment(&c, "dp_3").unwrap(), 0);
        s.progress(&c, &[], &[]).unwrap();
        assert_eq!(on_disk(dir.path(), &s, "inv_c"), (STATUS_RUNNING, "dp_3".into()));

        // Admitted with persist (a send, an idempotent request): the admission record carries it.
        let d = svc("inv_d");
        s.pin_deployment(&d, "dp_4").unwrap();
        s.admit(&d, true).unwrap();
        assert_eq!(on_disk(dir.path(), &s, "inv_d"), (STATUS_RUNNING, "dp_4".into()));

        // A delayed send pinned before it is scheduled: the scheduled record, and the
        // admission when its timer fires, carry it.
        let f = svc("inv_f");
        s.pin_deployment(&f, "dp_6").unwrap();
        s.schedule(&f, 1_000).unwrap();
        assert_eq!(on_disk(dir.path(), &s, "inv_f"), (STATUS_SCHEDULED, "dp_6".into()));
        assert_eq!(s.fire_timers(1_000).unwrap(), 1);
        assert_eq!(on_disk(dir.path(), &s, "inv_f"), (STATUS_RUNNING, "dp_6".into()));

        // Completed without any durable point before: its only record carries it.
        let e = svc("inv_e");
        s.admit(&e, false).unwrap();
        s.pin_deployment(&e, "dp_5").unwrap();
        s.complete(&e, &[], Some(b"1"), 0, None, &[]).unwrap();
        assert_eq!(on_disk(dir.path(), &s, "inv_e"), (STATUS_COMPLETED, "dp_5".into()));
        s.close().unwrap();
    }
    let (s, ids) = reopen(dir.path());
    assert_eq!(ids, vec!["inv_b", "inv_c", "inv_d", "inv_f"]);
    for (id, dp) in [("inv_b", "dp_2"), ("inv_c", "dp_3"), ("inv_d", "dp_4"), ("inv_e", "dp_5"), ("inv_f", "dp_6")] {
        assert_eq!(s.get_invocation(id).unwrap().unwrap().deployment(), dp, "{id}");
    }
}

#[test]
fn suspend_wake_backoff_retry_cancel_and_complete_keep_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    {
        let s = open(d);
        let a = svc("inv_a");
        s.progress(&a, &[AWAKEABLE], &[]).unwrap();
        s.pin_deployment(&a, "dp_1").unwrap();
        assert!(s.suspend(&a, &[0]).unwrap().is_some());
        assert_eq!(on_disk(d, &s, "inv_a"), (STATUS_SUSPENDED, "dp_1".into()));
        // Pinning is allowed while suspended (not only by a running attempt).
        s.pin_deployment(&a, "dp_1").unwrap();
        assert_eq!(on_disk(d, &s, "inv_a"), (STATUS_SUSPENDED, "dp_1".into()));
        // The completion wakes it: the record is rewritten running, still pinned.
        s.complete_awakeable("inv_a", 0, &Outcome::ok(b"v")).unwrap();
        assert_eq!(on_disk(d, &s, "inv_a"), (STATUS_RUNNING, "dp_1".into()));
        s.backoff(&a, 1, 5_000).unwrap();
        assert_eq!(on_disk(d, &s, "inv_a"), (STATUS_BACKING_OFF, "dp_1".into()));
        s.close().unwrap();
    }
    // Recovered while backing off: pinned; the retry and what follows keep it.
    let (s, ids) = reopen(d);
    assert!(ids.is_empty());
    assert_eq!(s.get_invocation("inv_a").unwrap().unwrap().deployment(), "dp_1");
    assert_eq!(s.fire_timers(5_000).unwrap(), 1);
    let a = s.take_wakes().pop().unwrap().inv;
    assert_eq!((a.id.as_str(), a.deployment().as_str()), ("inv_a", "dp_1"));
    assert_eq!(on_disk(d, &s, "inv_a"), (STATUS_RUNNING, "dp_1".into()));
    s.resume(&a).unwrap();
    assert_eq!(on_disk(d, &s, "inv_a"), (STATUS_RUNNING, "dp_1".into()));
    s.cancel("inv_a").unwrap();
    let r = {
        sync(&s);
        raw_record(d, "inv_a").unwrap()
    };
    assert!(r.cancel_requested);
    assert_eq!(r.deployment_id, "dp_1");
    s.progress(&a, &[AWAKEABLE], &[]).unwrap();
    s.complete(&a, &[], Some(b"out"), 0, None, &[]).unwrap();
    assert_eq!(on_disk(d, &s, "inv_a"), (STATUS_COMPLETED, "dp_1".into()));
    // A completed invocation is refused, like progress; the record stays as it is.
    assert!(matches!(s.pin_deployment(&a, "dp_9"), Err(Error::NotRunning { .. })));
    assert_eq!(a.deployment(), "dp_1");
    let copy = s.get_invocation("inv_a").unwrap().unwrap();
    assert_eq!(copy.deployment(), "dp_1", "built from the completed record");
    assert!(matches!(s.pin_deployment(&copy, "dp_9"), Err(Error::NotRunning { .. })));
    assert_eq!(on_disk(d, &s, "inv_a"), (STATUS_COMPLETED, "dp_1".into()));
    s.close().unwrap();
}

#[test]
fn an_inboxed_invocation_keeps_its_pin_through_the_hand_over_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = open(d);
    let first = obj("inv_1");
    assert!(s.admit(&first, false).unwrap().0);
    let second = obj("inv_2");
    assert!(!s.admit(&second, false).unwrap().0);
    assert!(s.pin_deployment(&second, "dp_2").unwrap() > 0, "inboxed: persisted");
    assert_eq!(on_disk(d, &s, "inv_2"), (STATUS_INBOXED, "dp_2".into()));
    let third = obj("inv_3");
    assert!(!s.admit(&third, false).unwrap().0);
    s.pin_deployment(&third, "dp_3").unwrap();
    // The key is handed over: the record of the next owner is rewritten running.
    let (_, next) = s.complete(&first, &[], None, 0, None, &[]).unwrap();
    assert_eq!(next.unwrap().id, "inv_2");
    assert_eq!(on_disk(d, &s, "inv_2"), (STATUS_RUNNING, "dp_2".into()));
    // Killed: the completed record of a kill keeps it, as does the next hand-over.
    s.kill("inv_2").unwrap();
    assert_eq!(on_disk(d, &s, "inv_2"), (STATUS_COMPLETED, "dp_2".into()));
    assert_eq!(on_disk(d, &s, "inv_3"), (STATUS_RUNNING, "dp_3".into()));
    s.close().unwrap();
    drop(s);
    let (s, ids) = reopen(d);
    assert_eq!(ids, vec!["inv_3"]);
    assert_eq!(s.get_invocation("inv_3").unwrap().unwrap().deployment(), "dp_3");
    assert_eq!(s.get_invocation("inv_2").unwrap().unwrap().deployment(), "dp_2");
}

#[test]
fn pinned_count_counts_unfinished_invocations_of_a_deployment_and_survives_recovery() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let (a, b, c) = (svc("inv_a"), svc("inv_b"), svc("inv_c"));
        for (inv, dep) in [(&a, "dp_1"), (&b, "dp_1"), (&c, "dp_2")] {
            s.pin_deployment(inv, dep).unwrap();
            s.progress(inv, &[AWAKEABLE], &[]).unwrap();
        }
        assert_eq!(s.pinned_count("dp_1"), 2);
        assert_eq!(s.pinned_count("dp_2"), 1);
        assert_eq!(s.pinned_count("dp_3"), 0);
        assert!(s.suspend(&b, &[0]).unwrap().is_some(), "suspended: still pinned");
        assert_eq!(s.pinned_count("dp_1"), 2);
        s.complete(&a, &[], Some(b"1"), 0, None, &[]).unwrap();
        assert_eq!(s.pinned_count("dp_1"), 1, "a completed invocation is not in flight");
        s.close().unwrap();
    }
    let (s, _) = reopen(dir.path());
    assert_eq!(s.pinned_count("dp_1"), 1, "the suspended one, after recovery");
    assert_eq!(s.pinned_count("dp_2"), 1);
}
