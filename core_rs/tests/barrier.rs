//! The durability barrier as the store supports it: every read of data that may
//! not be durable yet returns the commit it depends on, signals answer without
//! waiting for the writer, and an awakeable resolved before its entry is
//! journaled is kept and delivered (runtime/_core.pyi).

use std::sync::Arc;

use stead_core::awaiting::{WAKE_DELIVER, WAKE_RUN};
use stead_core::entry::{self, EntryRef};
use stead_core::invocation::*;
use stead_core::store::{Store, SIGNAL_ALREADY_COMPLETED, SIGNAL_APPLIED, SIGNAL_UNKNOWN};
use stead_core::tables::completions::Outcome;

mod common;
use common::{open, reopen};

fn svc(id: &str) -> Arc<InvocationMeta> {
    InvocationMeta::new(id.into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1).unwrap()
}

fn wf(id: &str, key: &str, kind: i32) -> Arc<InvocationMeta> {
    let handler = if kind == KIND_WORKFLOW { "run" } else { "signal" };
    InvocationMeta::new(id.into(), "Wf".into(), handler.into(), key.into(), kind, b"{}", vec![], 1).unwrap()
}

fn e(kind: i32, name: Option<&'static str>, value: Option<&'static [u8]>) -> EntryRef<'static> {
    EntryRef { kind, name, value, code: 0, message: None }
}

fn run() -> EntryRef<'static> {
    e(entry::RUN, Some("step"), Some(b"r"))
}

fn awakeable() -> EntryRef<'static> {
    e(entry::AWAKEABLE, None, None)
}

fn sync(s: &Store) {
    s.wait_durable(s.last_seq()).unwrap();
}

/// (what, invocation id, index, value, seq)
type W = (i32, String, u32, Option<Vec<u8>>, u64);

fn wakes(s: &Store) -> Vec<W> {
    s.take_wakes().into_iter().map(|w| (w.what, w.inv.id.clone(), w.index, w.value, w.seq)).collect()
}

fn completions(s: &Store, id: &str) -> Vec<(u32, Option<Vec<u8>>)> {
    sync(s);
    s.load_completions(id).unwrap().into_iter().map(|(i, e)| (i, e.value)).collect()
}

#[test]
fn idempotency_and_promise_reads_return_the_commit_they_depend_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let r = wf("inv_run", "w", KIND_WORKFLOW);
        let (_, admitted) = s.admit(&r, false).unwrap();
        assert_eq!(s.idempotency_lookup("Wf", "w", "run", "").unwrap(), (Some("inv_run".into()), admitted));
        assert_eq!(s.idempotency_lookup("Wf", "other", "run", "").unwrap(), (None, 0), "none: nothing to wait for");

        assert_eq!(s.peek_promise("Wf", "w", "p").unwrap(), (None, 0), "unknown: nothing to wait for");
        let h = wf("inv_h", "w", KIND_SHARED);
        let resolved = s.progress(&h, &[e(entry::COMPLETE_PROMISE, Some("p"), Some(b"yes"))], &[]).unwrap();
        assert_eq!(s.peek_promise("Wf", "w", "p").unwrap(), (Some((Some(b"yes".to_vec()), 0, None)), resolved));
        s.close().unwrap();
    }
    // Read back from RocksDB after a restart: durable, seq 0.
    let (s, _) = reopen(dir.path());
    assert_eq!(s.idempotency_lookup("Wf", "w", "run", "").unwrap(), (Some("inv_run".into()), 0));
    assert_eq!(s.peek_promise("Wf", "w", "p").unwrap(), (Some((Some(b"yes".to_vec()), 0, None)), 0));
}

#[test]
fn signals_for_finished_or_unknown_invocations_are_answered_from_memory_or_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        // Persisted, then completed: answered from the finished overlay with its commit.
        let a = svc("inv_a");
        s.progress(&a, &[run()], &[]).unwrap();
        let (done, _) = s.complete(&a, &[], Some(b"o"), 0, None, &[]).unwrap();
        assert_eq!(s.cancel("inv_a").unwrap(), (SIGNAL_ALREADY_COMPLETED, done));
        assert_eq!(s.kill("inv_a").unwrap(), (SIGNAL_ALREADY_COMPLETED, done));
        assert_eq!(s.complete_awakeable("inv_a", 0, &Outcome::ok(b"v")).unwrap(), (SIGNAL_ALREADY_COMPLETED, done));
        // Never persisted before it completed: its completed record is the first row.
        let b = svc("inv_b");
        s.admit(&b, false).unwrap();
        let (done_b, _) = s.complete(&b, &[], None, 0, None, &[]).unwrap();
        assert_eq!(s.kill("inv_b").unwrap(), (SIGNAL_ALREADY_COMPLETED, done_b));
        assert_eq!(s.kill("inv_nope").unwrap(), (SIGNAL_UNKNOWN, 0));
        s.close().unwrap();
    }
    // After a restart: the record on disk decides (durable: seq 0).
    let (s, _) = reopen(dir.path());
    assert_eq!(s.cancel("inv_a").unwrap(), (SIGNAL_ALREADY_COMPLETED, 0));
    assert_eq!(s.complete_awakeable("inv_b", 3, &Outcome::ok(b"v")).unwrap(), (SIGNAL_ALREADY_COMPLETED, 0));
    assert_eq!(s.cancel("inv_nope").unwrap(), (SIGNAL_UNKNOWN, 0));
    // Purged: unknown.
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 2);
    sync(&s);
    assert_eq!(s.kill("inv_a").unwrap(), (SIGNAL_UNKNOWN, 0));
    // A live one: applied in a new commit.
    let c = svc("inv_c");
    s.progress(&c, &[awakeable()], &[]).unwrap();
    let (status, seq) = s.kill("inv_c").unwrap();
    assert_eq!((status, seq), (SIGNAL_APPLIED, s.last_seq()));
}

#[test]
fn an_awakeable_resolved_before_its_entry_is_journaled_is_delivered_when_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[run()], &[]).unwrap();
    // The handler made awakeable 2 (after a run at 1) and handed its id out; the entry is
    // still in memory when the provider resolves it.
    let (status, early) = s.complete_awakeable("inv_a", 2, &Outcome::ok(b"v")).unwrap();
    assert_eq!((status, early), (SIGNAL_APPLIED, s.last_seq()));
    assert!(wakes(&s).is_empty(), "nothing awaits it yet");
    assert_eq!(completions(&s, "inv_a"), vec![(2, Some(b"v".to_vec()))], "a completion row beyond the journal");
    assert_eq!(s.complete_awakeable("inv_a", 2, &Outcome::ok(b"again")).unwrap(), (SIGNAL_ALREADY_COMPLETED, early));
    // Journaling the AWAKEABLE at 2 completes it in the same commit.
    let seq = s.progress(&a, &[run(), awakeable()], &[]).unwrap();
    assert_eq!(wakes(&s), vec![(WAKE_DELIVER, "inv_a".into(), 2, Some(b"v".to_vec()), seq)]);
    assert_eq!(s.suspend(&a, &[2]).unwrap(), None, "already completed: keep the coroutine");
    assert_eq!(s.complete_awakeable("inv_a", 2, &Outcome::ok(b"x")).unwrap().0, SIGNAL_ALREADY_COMPLETED);

    // Another kind of entry at an early index drops the early completion.
    assert_eq!(s.complete_awakeable("inv_a", 4, &Outcome::ok(b"w")).unwrap().0, SIGNAL_APPLIED);
    let sleep = 5_000u64.to_be_bytes();
    let sleep = e(entry::SLEEP, None, Some(Box::leak(Box::new(sleep))));
    s.progress(&a, &[run(), sleep], &[]).unwrap();
    assert!(wakes(&s).is_empty());
    assert_eq!(completions(&s, "inv_a"), vec![(2, Some(b"v".to_vec()))], "the early row is deleted");
    assert_eq!(s.fire_timers(5_000).unwrap(), 1);
    assert_eq!(wakes(&s)[0].0, WAKE_DELIVER, "the sleep completes as usual");

    // From a handler's COMPLETE_AWAKEABLE too (awakeable id of inv_a/5, pysdk/_ids.py).
    let b = svc("inv_b");
    let id: &'static str = "sign_1aW52X2EvNQ";
    s.complete(&b, &[e(entry::COMPLETE_AWAKEABLE, Some(id), Some(b"from b"))], None, 0, None, &[]).unwrap();
    s.take_wakes();
    let seq = s.progress(&a, &[awakeable()], &[]).unwrap();
    assert_eq!(wakes(&s), vec![(WAKE_DELIVER, "inv_a".into(), 5, Some(b"from b".to_vec()), seq)]);
}

#[test]
fn an_early_completion_at_a_completed_promise_index_does_not_erase_its_own_completion() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let h = wf("inv_h", "w", KIND_SHARED);
    s.progress(&h, &[], &[]).unwrap();
    assert_eq!(s.complete_awakeable("inv_h", 0, &Outcome::ok(b"early")).unwrap().0, SIGNAL_APPLIED);
    // COMPLETE_PROMISE at 0 writes its own completion at 0 in the same commit.
    s.progress(&h, &[e(entry::COMPLETE_PROMISE, Some("p"), Some(b"v"))], &[]).unwrap();
    assert_eq!(completions(&s, "inv_h"), vec![(0, Some(vec![]))]);
}

#[test]
fn an_invocation_that_never_started_has_no_awakeables() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let owner = InvocationMeta::new("inv_o".into(), "Obj".into(), "h".into(), "k".into(), KIND_EXCLUSIVE, b"", vec![], 1).unwrap();
    let waiter = InvocationMeta::new("inv_w".into(), "Obj".into(), "h".into(), "k".into(), KIND_EXCLUSIVE, b"", vec![], 1).unwrap();
    s.admit(&owner, false).unwrap();
    s.admit(&waiter, false).unwrap();
    assert_eq!(waiter.state().status, STATUS_INBOXED);
    assert_eq!(s.complete_awakeable("inv_w", 0, &Outcome::ok(b"v")).unwrap().0, SIGNAL_ALREADY_COMPLETED);
    sync(&s);
    assert!(s.load_completions("inv_w").unwrap().is_empty());
}

#[test]
fn early_completions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let a = svc("inv_a");
        s.progress(&a, &[run()], &[]).unwrap();
        s.complete_awakeable("inv_a", 1, &Outcome::ok(b"a1")).unwrap();
        // b's attempt failed after handing its awakeable out: its retry re-creates it.
        let b = svc("inv_b");
        s.progress(&b, &[run()], &[]).unwrap();
        s.complete_awakeable("inv_b", 1, &Outcome::ok(b"b1")).unwrap();
        s.backoff(&b, 1, 7_000).unwrap();
        s.close().unwrap();
    }
    let (s, running) = reopen(dir.path());
    assert_eq!(running, vec!["inv_a"]);
    assert_eq!(s.complete_awakeable("inv_a", 1, &Outcome::ok(b"x")).unwrap(), (SIGNAL_ALREADY_COMPLETED, 0));
    let a = s.get_invocation("inv_a").unwrap().unwrap();
    let seq = s.progress(&a, &[awakeable()], &[]).unwrap();
    assert_eq!(wakes(&s), vec![(WAKE_DELIVER, "inv_a".into(), 1, Some(b"a1".to_vec()), seq)]);

    assert_eq!(s.fire_timers(7_000).unwrap(), 1);
    assert_eq!(wakes(&s)[0].0, WAKE_RUN);
    let b = s.get_invocation("inv_b").unwrap().unwrap();
    let seq = s.progress(&b, &[awakeable()], &[]).unwrap();
    assert_eq!(wakes(&s), vec![(WAKE_DELIVER, "inv_b".into(), 1, Some(b"b1".to_vec()), seq)]);
}
