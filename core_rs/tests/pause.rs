//! Pause and resume (runtime/_core.pyi `Store.pause`, `Store.resume_invocation`,
//! `Store.pause_attempt`): which statuses can be paused and resumed, that a paused
//! invocation journals nothing and is not woken by its completions, that it keeps its
//! key, that a resume replays it with a fresh set of attempts, that it stays paused
//! across a restart, and how cancel and kill treat it.

use std::sync::Arc;

use stead_core::awaiting::{WAKE_CANCEL, WAKE_DONE, WAKE_PAUSE, WAKE_RUN};
use stead_core::entry::{self, EntryRef};
use stead_core::invocation::*;
use stead_core::store::{
    Store, SIGNAL_ALREADY_COMPLETED, SIGNAL_APPLIED, SIGNAL_NOT_STARTED, SIGNAL_UNCHANGED, SIGNAL_UNKNOWN,
};
use stead_core::tables::completions::Outcome;
use stead_core::Error;

mod common;
use common::{obj, open, raw_record, reopen, svc, AWAKEABLE, RUN};

type W = (i32, String, u32, Option<Vec<u8>>, u32);

fn wakes(s: &Store) -> Vec<W> {
    s.take_wakes().into_iter().map(|w| (w.what, w.inv.id.clone(), w.index, w.value, w.code)).collect()
}

fn w(what: i32, id: &str) -> W {
    (what, id.into(), 0, None, 0)
}

fn sync(s: &Store) {
    s.wait_durable(s.last_seq()).unwrap();
}

fn status(m: &InvocationMeta) -> i32 {
    m.state().status
}

fn sleep(fire_ms: u64) -> EntryRef<'static> {
    EntryRef { kind: entry::SLEEP, name: None, value: Some(Box::leak(fire_ms.to_be_bytes().to_vec().into_boxed_slice())), code: 0, message: None }
}

fn not_running<T: std::fmt::Debug>(r: stead_core::Result<T>) {
    match r {
        Err(e @ Error::NotRunning { .. }) => assert!(e.to_string().contains("(status paused)"), "{e}"),
        other => panic!("expected NotRunning (paused), got {other:?}"),
    }
}

/// The attempt of a paused invocation writes nothing: progress, suspend, backoff and
/// complete are refused and the journal does not grow.
fn refuses_its_attempt(s: &Store, inv: &Arc<InvocationMeta>) {
    let len = inv.state().journal_len;
    not_running(s.progress(inv, &[RUN], &[]));
    not_running(s.suspend(inv, &[0]));
    not_running(s.backoff(inv, 1, 5));
    not_running(s.pause_attempt(inv));
    not_running(s.complete(inv, &[], Some(b"late"), 0, None, &[]));
    assert_eq!(inv.state().journal_len, len);
}

#[test]
fn a_running_invocation_is_paused_with_a_wake_and_resumed_by_replay() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    assert_eq!(s.pause("inv_a").unwrap(), (SIGNAL_UNKNOWN, 0), "not persisted yet: unknown, like cancel");
    s.progress(&a, &[RUN], &[]).unwrap();
    a.update(|st| st.retry_count = 4);
    let (answer, seq) = s.pause("inv_a").unwrap();
    assert_eq!((answer, seq), (SIGNAL_APPLIED, s.last_seq()));
    assert_eq!(wakes(&s), vec![w(WAKE_PAUSE, "inv_a")]);
    assert_eq!(status(&a), STATUS_PAUSED);
    refuses_its_attempt(&s, &a);
    // Paused again: nothing to do, nothing written.
    let last = s.last_seq();
    assert_eq!(s.pause("inv_a").unwrap(), (SIGNAL_UNCHANGED, last));
    assert_eq!(s.last_seq(), last);
    sync(&s);
    let rec = raw_record(dir.path(), "inv_a").unwrap();
    assert_eq!((rec.status, rec.retry_count), (STATUS_PAUSED, 4), "its record says paused");

    assert_eq!(s.resume_invocation("inv_a").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_a")]);
    assert_eq!((status(&a), a.state().retry_count), (STATUS_RUNNING, 0), "a fresh set of attempts");
    // Running: a resume has nothing to do.
    let last = s.last_seq();
    assert_eq!(s.resume_invocation("inv_a").unwrap(), (SIGNAL_UNCHANGED, last));
    assert!(wakes(&s).is_empty());
    s.progress(&a, &[RUN], &[]).unwrap();
    s.complete(&a, &[], Some(b"done"), 0, None, &[]).unwrap();
    assert_eq!(s.pause("inv_a").unwrap().0, SIGNAL_ALREADY_COMPLETED);
    assert_eq!(s.resume_invocation("inv_a").unwrap().0, SIGNAL_ALREADY_COMPLETED);
    sync(&s);
    assert_eq!(s.pause("inv_a").unwrap(), (SIGNAL_ALREADY_COMPLETED, 0), "from disk: durable");
    assert_eq!(s.pause("inv_nope").unwrap(), (SIGNAL_UNKNOWN, 0));
    assert_eq!(s.resume_invocation("inv_nope").unwrap(), (SIGNAL_UNKNOWN, 0));
}

#[test]
fn suspended_and_backing_off_invocations_are_paused_without_a_wake() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[AWAKEABLE], &[]).unwrap();
    s.suspend(&a, &[0]).unwrap().unwrap();
    assert_eq!(s.pause("inv_a").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(status(&a), STATUS_PAUSED);

    let b = svc("inv_b");
    s.progress(&b, &[RUN], &[]).unwrap();
    s.backoff(&b, 2, 60_000).unwrap();
    assert_eq!(s.next_timer_ms(), Some(60_000));
    assert_eq!(s.pause("inv_b").unwrap().0, SIGNAL_APPLIED);
    assert!(wakes(&s).is_empty(), "nothing of theirs is in memory");
    assert_eq!((status(&b), b.state().next_retry_ms, b.state().retry_count), (STATUS_PAUSED, 0, 2));
    assert_eq!(s.next_timer_ms(), None, "its retry timer is dropped");
    sync(&s);
    let rows = common::raw_rows(dir.path(), stead_core::db::Cf::Timers, b"");
    assert!(rows.is_empty(), "and its timer row: {rows:?}");
    assert_eq!(s.fire_timers(u64::MAX / 2).unwrap(), 0);
    assert!(wakes(&s).is_empty());
    refuses_its_attempt(&s, &b);

    // Resume: each replays, with a fresh set of attempts.
    assert_eq!(s.resume_invocation("inv_b").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_b")]);
    assert_eq!((status(&b), b.state().retry_count), (STATUS_RUNNING, 0));
}

#[test]
fn resume_replays_a_suspended_one_and_retries_a_backing_off_one_now() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[AWAKEABLE], &[]).unwrap();
    s.suspend(&a, &[0]).unwrap().unwrap();
    assert_eq!(s.resume_invocation("inv_a").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_a")]);
    assert_eq!(status(&a), STATUS_RUNNING);

    let b = svc("inv_b");
    s.progress(&b, &[RUN], &[]).unwrap();
    s.backoff(&b, 3, 60_000).unwrap();
    assert_eq!(s.resume_invocation("inv_b").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_b")]);
    assert_eq!((status(&b), b.state().retry_count), (STATUS_RUNNING, 3), "a retry, not a fresh start");
    assert_eq!(s.next_timer_ms(), None, "its retry timer is dropped");
}

#[test]
fn invocations_that_have_not_started_are_neither_paused_nor_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let owner = obj("inv_o");
    s.admit(&owner, false).unwrap();
    let waiter = obj("inv_w");
    s.admit(&waiter, false).unwrap();
    let later = svc("inv_l");
    s.schedule(&later, 9_000).unwrap();
    let last = s.last_seq();
    for id in ["inv_w", "inv_l"] {
        assert_eq!(s.pause(id).unwrap(), (SIGNAL_NOT_STARTED, last), "{id}");
        assert_eq!(s.resume_invocation(id).unwrap(), (SIGNAL_NOT_STARTED, last), "{id}");
    }
    assert_eq!(s.last_seq(), last, "nothing written");
    assert_eq!((status(&waiter), status(&later)), (STATUS_INBOXED, STATUS_SCHEDULED));
    assert_eq!(s.next_timer_ms(), Some(9_000));
}

#[test]
fn completions_are_stored_while_paused_and_loaded_by_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[AWAKEABLE, sleep(1_000)], &[]).unwrap();
    s.pause("inv_a").unwrap();
    s.take_wakes();
    assert_eq!(s.complete_awakeable("inv_a", 0, &Outcome::ok(b"v")).unwrap().0, SIGNAL_APPLIED);
    assert_eq!(s.fire_timers(1_000).unwrap(), 1, "its sleep fires");
    // An awakeable resolved before its entry is journaled is kept for it too.
    assert_eq!(s.complete_awakeable("inv_a", 5, &Outcome::ok(b"early")).unwrap().0, SIGNAL_APPLIED);
    assert!(wakes(&s).is_empty(), "nothing wakes a paused invocation");
    assert_eq!(status(&a), STATUS_PAUSED);
    assert_eq!(s.complete_awakeable("inv_a", 0, &Outcome::ok(b"w")).unwrap().0, SIGNAL_ALREADY_COMPLETED);
    sync(&s);
    let done: Vec<(u32, Option<Vec<u8>>)> =
        s.load_completions("inv_a").unwrap().into_iter().map(|(i, e)| (i, e.value)).collect();
    assert_eq!(done, vec![(0, Some(b"v".to_vec())), (1, Some(vec![])), (5, Some(b"early".to_vec()))]);
    assert_eq!(s.resume_invocation("inv_a").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_a")]);
    // The replayed attempt goes on from its journal.
    s.progress(&a, &[RUN], &[]).unwrap();
    assert_eq!(a.state().journal_len, 3);
}

#[test]
fn a_paused_invocation_keeps_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let owner = obj("inv_o");
    s.admit(&owner, false).unwrap();
    s.progress(&owner, &[RUN], &[]).unwrap();
    s.pause("inv_o").unwrap();
    let next = obj("inv_n");
    let (runs, _) = s.admit(&next, false).unwrap();
    assert!(!runs, "the key is held: a later invocation of it waits");
    assert_eq!(status(&next), STATUS_INBOXED);
    assert!(matches!(s.overwrite_state("Obj", "k", Vec::new(), None), Err(Error::KeyBusy(_))));
    s.resume_invocation("inv_o").unwrap();
    let (_, handed) = s.complete(&owner, &[], None, 0, None, &[]).unwrap();
    assert_eq!(handed.map(|m| m.id.clone()).as_deref(), Some("inv_n"));
}

#[test]
fn a_paused_invocation_stays_paused_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let owner = obj("inv_o");
        s.admit(&owner, false).unwrap();
        s.progress(&owner, &[AWAKEABLE, sleep(50_000)], &[]).unwrap();
        s.pause("inv_o").unwrap();
        s.complete_awakeable("inv_o", 0, &Outcome::ok(b"v")).unwrap();
        s.admit(&obj("inv_n"), false).unwrap();
        let b = svc("inv_b"); // paused while backing off: no retry after the restart
        s.progress(&b, &[RUN], &[]).unwrap();
        s.backoff(&b, 1, 1_000).unwrap();
        s.pause("inv_b").unwrap();
        s.close().unwrap();
    }
    let (s, running) = reopen(dir.path());
    assert!(running.is_empty(), "recovery resumes no paused invocation: {running:?}");
    let o = s.get_invocation("inv_o").unwrap().unwrap();
    assert_eq!((status(&o), o.state().journal_len), (STATUS_PAUSED, 2));
    assert_eq!(status(&s.get_invocation("inv_b").unwrap().unwrap()), STATUS_PAUSED);
    assert_eq!(s.next_timer_ms(), Some(50_000), "its sleep still waits; no retry timer");
    // The key is still owned: another invocation of it waits behind the inboxed one.
    let third = obj("inv_t");
    assert!(!s.admit(&third, false).unwrap().0);
    assert!(matches!(s.overwrite_state("Obj", "k", Vec::new(), None), Err(Error::KeyBusy(_))));
    assert_eq!(s.complete_awakeable("inv_o", 0, &Outcome::ok(b"x")).unwrap().0, SIGNAL_ALREADY_COMPLETED, "kept");
    assert_eq!(s.fire_timers(50_000).unwrap(), 1);
    assert!(wakes(&s).is_empty(), "its sleep completes the entry without waking it");
    assert_eq!(s.pause("inv_o").unwrap().0, SIGNAL_UNCHANGED);
    assert_eq!(s.resume_invocation("inv_o").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_o")]);
    sync(&s);
    assert_eq!(s.load_completions("inv_o").unwrap().len(), 2);
    let (_, handed) = s.complete(&o, &[], None, 0, None, &[]).unwrap();
    assert_eq!(handed.map(|m| m.id.clone()).as_deref(), Some("inv_n"), "the inbox order is kept");
}

#[test]
fn kill_completes_a_paused_invocation_and_hands_its_key_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let owner = obj("inv_o");
    s.admit(&owner, false).unwrap();
    s.progress(&owner, &[sleep(70_000)], &[]).unwrap();
    s.pause("inv_o").unwrap();
    let next = obj("inv_n");
    s.admit(&next, false).unwrap();
    s.take_wakes();
    assert_eq!(s.kill("inv_o").unwrap().0, SIGNAL_APPLIED);
    // Not in memory: its waiters get WAKE_DONE (no attempt to stop), the key passes on.
    assert_eq!(wakes(&s), vec![(WAKE_DONE, "inv_o".into(), 0, None, 409), w(WAKE_RUN, "inv_n")]);
    assert_eq!((status(&owner), status(&next)), (STATUS_COMPLETED, STATUS_RUNNING));
    assert_eq!(s.next_timer_ms(), None, "its sleep timer is gone");
    assert_eq!(s.resume_invocation("inv_o").unwrap().0, SIGNAL_ALREADY_COMPLETED);
    sync(&s);
    assert_eq!(s.get_output("inv_o").unwrap().unwrap(), (None, 409, Some("killed".into())));
}

#[test]
fn cancel_resumes_a_paused_invocation_so_that_it_sees_the_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[AWAKEABLE], &[]).unwrap();
    a.update(|st| st.retry_count = 2);
    s.pause("inv_a").unwrap();
    s.take_wakes();
    assert_eq!(s.cancel("inv_a").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_a")]);
    let st = a.state();
    assert_eq!((st.status, st.cancel_requested, st.retry_count), (STATUS_RUNNING, true, 0));
    // Running now: it is cancelled as a running one from here on.
    s.pause("inv_a").unwrap();
    s.resume_invocation("inv_a").unwrap();
    s.take_wakes();
    s.cancel("inv_a").unwrap();
    assert_eq!(wakes(&s), vec![w(WAKE_CANCEL, "inv_a")]);
}

#[test]
fn retries_run_out_into_the_paused_status() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let a = svc("inv_a");
        s.progress(&a, &[RUN], &[]).unwrap();
        s.backoff(&a, 2, 5).unwrap();
        assert_eq!(s.fire_timers(5).unwrap(), 1);
        s.take_wakes();
        let seq = s.pause_attempt(&a).unwrap();
        assert_eq!(seq, s.last_seq());
        assert!(wakes(&s).is_empty(), "the attempt that asked ends by itself");
        assert_eq!((status(&a), a.state().retry_count), (STATUS_PAUSED, 2));
        refuses_its_attempt(&s, &a);
        assert_eq!(s.next_timer_ms(), None);
        // An attempt that never reached a durable point is persisted by it.
        let b = svc("inv_b");
        s.pause_attempt(&b).unwrap();
        assert!(b.state().persisted);
        s.close().unwrap();
    }
    let (s, running) = reopen(dir.path());
    assert!(running.is_empty());
    let rec = raw_record(dir.path(), "inv_a").unwrap();
    assert_eq!((rec.status, rec.retry_count, rec.next_retry_ms), (STATUS_PAUSED, 2, 0));
    assert!(common::raw_rows(dir.path(), stead_core::db::Cf::Timers, b"").is_empty(), "no retry timer");
    assert_eq!(s.resume_invocation("inv_b").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(s.kill("inv_a").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_b"), (WAKE_DONE, "inv_a".into(), 0, None, 409)]);
}
