//! An attempt that is not running journals nothing: `progress`, `suspend` and
//! `backoff` refuse an invocation whose status is not running, and `complete`
//! one whose attempt is gone (runtime/_core.pyi, NotRunningError).

use std::sync::Arc;

use stead_core::commit::Durability;
use stead_core::invocation::*;
use stead_core::store::Store;
use stead_core::tables::completions::Outcome;
use stead_core::Error;

mod common;
use common::{obj, open, svc, AWAKEABLE, RUN};


fn refused<T: std::fmt::Debug>(r: stead_core::Result<T>, status: &str) {
    match r {
        Err(e @ Error::NotRunning { .. }) => {
            assert!(e.to_string().contains(&format!("(status {status})")), "{e}");
        }
        other => panic!("expected NotRunning ({status}), got {other:?}"),
    }
}

/// progress, suspend and backoff are refused; the journal does not grow.
fn no_attempt_writes(s: &Store, inv: &Arc<InvocationMeta>, status: &str) {
    let len = inv.state().journal_len;
    refused(s.progress(inv, &[RUN], &[]), status);
    refused(s.suspend(inv, &[0]), status);
    refused(s.backoff(inv, 9, 1), status);
    assert_eq!(inv.state().journal_len, len);
}

#[test]
fn a_suspended_invocation_is_written_only_by_its_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[AWAKEABLE], &[]).unwrap();
    assert!(s.suspend(&a, &[0]).unwrap().is_some());
    no_attempt_writes(&s, &a, "suspended");
    refused(s.complete(&a, &[], None, 0, None, &[]), "suspended");
    // The completion wakes it (running): its new attempt writes.
    s.complete_awakeable("inv_a", 0, &Outcome::ok(b"v")).unwrap();
    assert_eq!(a.state().status, STATUS_RUNNING);
    s.progress(&a, &[RUN], &[]).unwrap();
    s.complete(&a, &[], None, 0, None, &[]).unwrap();
    no_attempt_writes(&s, &a, "completed");
    refused(s.complete(&a, &[], None, 0, None, &[]), "completed");
    refused(s.resume(&a), "completed");
}

#[test]
fn a_backing_off_invocation_is_written_after_its_retry_fires() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[RUN], &[]).unwrap();
    s.backoff(&a, 1, 100).unwrap();
    no_attempt_writes(&s, &a, "backing off");
    refused(s.complete(&a, &[], None, 0, None, &[]), "backing off");
    assert_eq!(s.fire_timers(100).unwrap(), 1);
    assert_eq!(a.state().status, STATUS_RUNNING);
    s.progress(&a, &[RUN], &[]).unwrap();
    assert_eq!(a.state().journal_len, 2);
}

#[test]
fn inboxed_and_scheduled_invocations_may_only_be_completed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let owner = obj("inv_o");
    s.admit(&owner, false).unwrap();
    let waiter = obj("inv_w");
    s.admit(&waiter, false).unwrap();
    no_attempt_writes(&s, &waiter, "inboxed");
    let later = svc("inv_l");
    s.schedule(&later, 9_000).unwrap();
    no_attempt_writes(&s, &later, "scheduled");
    // Completing them (e.g. a terminal failure before they ran) takes them out.
    s.complete(&waiter, &[], None, 400, Some("bad input"), &[]).unwrap();
    s.complete(&later, &[], None, 400, Some("bad input"), &[]).unwrap();
    assert_eq!(s.next_timer_ms(), None);
    assert!(s.complete(&owner, &[], None, 0, None, &[]).unwrap().1.is_none(), "nobody left in the inbox");
}

#[test]
fn a_killed_invocation_journals_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[RUN], &[]).unwrap();
    s.kill("inv_a").unwrap();
    no_attempt_writes(&s, &a, "completed");
    s.wait_durable(s.last_seq()).unwrap();
    assert_eq!(s.load_journal("inv_a").unwrap().len(), 1);
}

#[test]
fn recovery_returns_running_invocations_and_keeps_the_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let a = svc("inv_a");
        s.progress(&a, &[RUN], &[]).unwrap();
        let b = svc("inv_b");
        s.progress(&b, &[AWAKEABLE], &[]).unwrap();
        s.suspend(&b, &[0]).unwrap().unwrap();
        s.close().unwrap();
    }
    let s = Store::open(dir.path(), Durability::Wal).unwrap();
    let running = s.recover().unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].state().status, STATUS_RUNNING);
    s.progress(&running[0], &[RUN], &[]).unwrap();
    let b = s.get_invocation("inv_b").unwrap().unwrap();
    no_attempt_writes(&s, &b, "suspended");
}
