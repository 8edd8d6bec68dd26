//! Durable control flow as the runtime relies on it (runtime/_core.pyi): sleeps,
//! calls and sends, awakeables, workflow promises, suspension, cancel and kill,
//! idempotency, recovery of all of it, and purge.

use std::sync::Arc;

use stead_core::awaiting::{WAKE_CANCEL, WAKE_DELIVER, WAKE_DONE, WAKE_KILL, WAKE_RUN};
use stead_core::entry::{self, EntryRef};
use stead_core::invocation::*;
use stead_core::store::{Store, SIGNAL_ALREADY_COMPLETED, SIGNAL_APPLIED, SIGNAL_UNKNOWN};
use stead_core::tables::completions::Outcome;
use stead_core::Error;

mod common;
use common::{open, reopen};

fn idem(s: &Store, service: &str, key: &str, handler: &str, idem: &str) -> Option<String> {
    s.idempotency_lookup(service, key, handler, idem).unwrap().0
}

fn svc(id: &str) -> Arc<InvocationMeta> {
    InvocationMeta::new(id.into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1).unwrap()
}

fn obj(id: &str, key: &str) -> Arc<InvocationMeta> {
    InvocationMeta::new(id.into(), "Obj".into(), "add".into(), key.into(), KIND_EXCLUSIVE, b"{}", vec![], 1).unwrap()
}

fn wf(id: &str, key: &str, kind: i32) -> Arc<InvocationMeta> {
    let handler = if kind == KIND_WORKFLOW { "run" } else { "signal" };
    InvocationMeta::new(id.into(), "Wf".into(), handler.into(), key.into(), kind, b"{}", vec![], 1).unwrap()
}

fn linked(id: &str, service: &str, key: &str, kind: i32, caller: &str, entry: u32, idem: &str) -> Arc<InvocationMeta> {
    let links = Links { caller_id: caller.into(), caller_entry: entry, idempotency_key: idem.into() };
    InvocationMeta::with_links(id.into(), service.into(), "h".into(), key.into(), kind, b"{}", vec![], 1, links).unwrap()
}

fn leak<T: ?Sized>(b: Box<T>) -> &'static T {
    Box::leak(b)
}

fn e(kind: i32, name: Option<&str>, value: Option<&[u8]>) -> EntryRef<'static> {
    EntryRef {
        kind,
        name: name.map(|n| leak(n.to_string().into_boxed_str())),
        value: value.map(|v| leak(v.to_vec().into_boxed_slice())),
        code: 0,
        message: None,
    }
}

fn sleep(fire_ms: u64) -> EntryRef<'static> {
    e(entry::SLEEP, None, Some(&fire_ms.to_be_bytes()))
}

fn call(callee: &str) -> EntryRef<'static> {
    e(entry::CALL, Some("Svc/h"), Some(callee.as_bytes()))
}

fn reject(kind: i32, name: &str, code: u32, message: &'static str) -> EntryRef<'static> {
    EntryRef { code, message: Some(message), ..e(kind, Some(name), None) }
}

type W = (i32, String, u32, Option<Vec<u8>>, u32);

fn wakes(s: &Store) -> Vec<W> {
    s.take_wakes().into_iter().map(|w| (w.what, w.inv.id.clone(), w.index, w.value, w.code)).collect()
}

fn w(what: i32, id: &str, index: u32, value: Option<&[u8]>, code: u32) -> W {
    (what, id.into(), index, value.map(<[u8]>::to_vec), code)
}

fn completions(s: &Store, id: &str) -> Vec<(u32, Option<Vec<u8>>, u32, Option<String>)> {
    sync(s);
    s.load_completions(id).unwrap().into_iter().map(|(i, e)| (i, e.value, e.code, e.message)).collect()
}

fn sync(s: &Store) {
    s.wait_durable(s.last_seq()).unwrap();
}

fn status(m: &InvocationMeta) -> i32 {
    m.state().status
}

#[test]
fn sleep_timer_fires_and_completes_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let x = svc("inv_x");
    s.progress(&x, &[e(entry::RUN, Some("r"), Some(b"1")), sleep(1_000)], &[]).unwrap();
    assert_eq!(s.next_timer_ms(), Some(1_000));
    assert_eq!(s.fire_timers(999).unwrap(), 0);
    assert_eq!(s.fire_timers(1_000).unwrap(), 1);
    let got = s.take_wakes();
    assert_eq!(got[0].seq, s.last_seq(), "a wake carries the seq of its commit");
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].what, got[0].index, got[0].value.as_deref()), (WAKE_DELIVER, 1, Some(&b""[..])));
    assert_eq!(completions(&s, "inv_x"), vec![(1, Some(vec![]), 0, None)]);
    assert_eq!(s.load_journal("inv_x").unwrap().len(), 2, "completions are not journal rows");

    // Suspended: the timer makes it running again and asks for a replay.
    let y = svc("inv_y");
    s.progress(&y, &[sleep(2_000)], &[]).unwrap();
    assert!(s.suspend(&y, &[0]).unwrap().is_some());
    assert_eq!(status(&y), STATUS_SUSPENDED);
    assert_eq!(s.fire_timers(5_000).unwrap(), 1);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_y", 0, Some(b""), 0)]);
    assert_eq!(status(&y), STATUS_RUNNING);
    sync(&s);
    assert_eq!(s.get_invocation("inv_y").unwrap().unwrap().state().status, STATUS_RUNNING);
    // A sleep whose invocation finished first just drops its timer.
    let z = svc("inv_z");
    s.progress(&z, &[sleep(3_000)], &[]).unwrap();
    s.complete(&z, &[], None, 0, None, &[]).unwrap();
    assert_eq!(s.next_timer_ms(), None);
}

#[test]
fn call_admits_the_callee_in_the_same_commit_and_its_result_completes_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    let b = linked("inv_b", "Obj", "k", KIND_EXCLUSIVE, "inv_a", 0, "");
    let seq = s.progress(&a, &[call("inv_b")], &[(b.clone(), 0)]).unwrap();
    let got = s.take_wakes();
    assert_eq!((got.len(), got[0].what, got[0].inv.id.as_str(), got[0].seq), (1, WAKE_RUN, "inv_b", seq));
    assert!(Arc::ptr_eq(&got[0].inv, &b));
    assert_eq!((status(&b), b.state().persisted), (STATUS_RUNNING, true));
    sync(&s);
    let rec = s.get_invocation("inv_b").unwrap().unwrap();
    assert_eq!((rec.caller_id.as_str(), rec.caller_entry), ("inv_a", 0));
    // Admitting a callee twice is refused.
    assert!(matches!(s.progress(&a, &[], &[(b.clone(), 0)]), Err(Error::InvalidArgument(_))));

    assert!(s.suspend(&a, &[0]).unwrap().is_some());
    s.complete(&b, &[], Some(b"42"), 0, None, &[]).unwrap();
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_a", 0, Some(b"42"), 0)]);
    assert_eq!(completions(&s, "inv_a"), vec![(0, Some(b"42".to_vec()), 0, None)]);

    // A callee on a busy key is inboxed (no wake) and runs after the owner.
    let o = obj("inv_o", "busy");
    s.admit(&o, false).unwrap();
    let c = linked("inv_c", "Obj", "busy", KIND_EXCLUSIVE, "inv_a", 1, "");
    s.progress(&a, &[call("inv_c")], &[(c.clone(), 0)]).unwrap();
    assert!(wakes(&s).is_empty());
    assert_eq!(status(&c), STATUS_INBOXED);
    let (_, next) = s.complete(&o, &[], None, 0, None, &[]).unwrap();
    assert!(Arc::ptr_eq(&next.unwrap(), &c));
    // A failed callee fails the entry.
    s.complete(&c, &[], None, 500, Some("boom"), &[]).unwrap();
    assert_eq!(wakes(&s), vec![w(WAKE_DELIVER, "inv_a", 1, None, 500)]);
    assert_eq!(completions(&s, "inv_a")[1], (1, None, 500, Some("boom".into())));
}

#[test]
fn delayed_sends_are_scheduled_then_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    let send = e(entry::SEND, Some("Obj/k/add"), Some(b"inv_s"));
    let child = linked("inv_s", "Obj", "k", KIND_EXCLUSIVE, "", 0, "");
    s.progress(&a, &[send], &[(child.clone(), 5_000)]).unwrap();
    assert!(wakes(&s).is_empty());
    assert_eq!(status(&child), STATUS_SCHEDULED);
    // From the ingress, with an idempotency key; its key is busy when it fires.
    let owner = obj("inv_own", "k2");
    s.admit(&owner, false).unwrap();
    let later = linked("inv_t", "Obj", "k2", KIND_EXCLUSIVE, "", 0, "idem-1");
    s.schedule(&later, 6_000).unwrap();
    assert_eq!(idem(&s, "Obj", "k2", "h", "idem-1").as_deref(), Some("inv_t"));
    assert_eq!(s.next_timer_ms(), Some(5_000));
    assert_eq!(s.fire_timers(5_000).unwrap(), 1);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_s", 0, None, 0)]);
    assert_eq!(status(&child), STATUS_RUNNING);
    assert_eq!(s.fire_timers(6_000).unwrap(), 1);
    assert!(wakes(&s).is_empty());
    assert_eq!(status(&later), STATUS_INBOXED);
    let (_, next) = s.complete(&owner, &[], None, 0, None, &[]).unwrap();
    assert_eq!(next.unwrap().id, "inv_t");
    // Cancelling a scheduled one completes it at once.
    let u = svc("inv_u");
    s.schedule(&u, 9_000).unwrap();
    assert_eq!(s.cancel("inv_u").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_DONE, "inv_u", 0, None, 409)]);
    assert_eq!(s.next_timer_ms(), None);
    sync(&s);
    assert_eq!(s.get_output("inv_u").unwrap().unwrap(), (None, 409, Some("cancelled".into())));
}

#[test]
fn awakeables_complete_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    s.progress(&a, &[e(entry::AWAKEABLE, None, None)], &[]).unwrap();
    assert_eq!(s.complete_awakeable("inv_a", 0, &Outcome::ok(b"v")).unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_DELIVER, "inv_a", 0, Some(b"v"), 0)]);
    assert_eq!(s.complete_awakeable("inv_a", 0, &Outcome::ok(b"again")).unwrap().0, SIGNAL_ALREADY_COMPLETED, "already completed");
    // An index not journaled yet is an awakeable resolved early (see tests/barrier.rs).
    let (status, seq) = s.complete_awakeable("inv_a", 7, &Outcome::ok(b"x")).unwrap();
    assert_eq!(status, SIGNAL_APPLIED);
    assert_eq!(s.complete_awakeable("inv_a", 7, &Outcome::ok(b"y")).unwrap(), (SIGNAL_ALREADY_COMPLETED, seq));
    assert_eq!(s.complete_awakeable("inv_nope", 0, &Outcome::ok(b"x")).unwrap(), (SIGNAL_UNKNOWN, 0));

    // From a handler: COMPLETE_AWAKEABLE names the awakeable by its id (pysdk/_ids.py).
    let b = svc("inv_b");
    s.progress(&b, &[e(entry::AWAKEABLE, None, None)], &[]).unwrap();
    assert!(s.suspend(&b, &[0]).unwrap().is_some());
    let c = svc("inv_c");
    let rej = reject(entry::COMPLETE_AWAKEABLE, "sign_1aW52X2IvMA", 400, "no");
    s.complete(&c, &[rej], None, 0, None, &[]).unwrap();
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_b", 0, None, 400)]);
    assert_eq!(completions(&s, "inv_b"), vec![(0, None, 400, Some("no".into()))]);
    s.complete(&a, &[], None, 0, None, &[]).unwrap();
    sync(&s);
    assert_eq!(s.complete_awakeable("inv_a", 0, &Outcome::ok(b"late")).unwrap().0, SIGNAL_ALREADY_COMPLETED, "finished");
}

#[test]
fn workflow_promises_first_completion_wins() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        // Get before resolve: the run waits, suspended.
        let run = wf("inv_run", "k", KIND_WORKFLOW);
        s.admit(&run, false).unwrap();
        s.progress(&run, &[e(entry::GET_PROMISE, Some("p"), None)], &[]).unwrap();
        assert!(s.suspend(&run, &[0]).unwrap().is_some());
        assert_eq!(s.peek_promise("Wf", "k", "p").unwrap().0, None);
        let h = wf("inv_h", "k", KIND_SHARED);
        s.progress(&h, &[e(entry::COMPLETE_PROMISE, Some("p"), Some(b"yes"))], &[]).unwrap();
        assert_eq!(
            wakes(&s),
            vec![w(WAKE_RUN, "inv_run", 0, Some(b"yes"), 0), w(WAKE_DELIVER, "inv_h", 0, Some(b""), 0)]
        );
        assert_eq!(s.peek_promise("Wf", "k", "p").unwrap().0, Some((Some(b"yes".to_vec()), 0, None)), "before it is written");
        // A second completion is refused with 409.
        let h2 = wf("inv_h2", "k", KIND_SHARED);
        s.progress(&h2, &[e(entry::COMPLETE_PROMISE, Some("p"), Some(b"no"))], &[]).unwrap();
        assert_eq!(wakes(&s), vec![w(WAKE_DELIVER, "inv_h2", 0, None, 409)]);
        // Resolve (here: reject) before get: the get completes at once.
        s.progress(&h2, &[reject(entry::COMPLETE_PROMISE, "q", 500, "bad")], &[]).unwrap();
        s.take_wakes();
        s.progress(&run, &[e(entry::GET_PROMISE, Some("q"), None)], &[]).unwrap();
        assert_eq!(wakes(&s), vec![w(WAKE_DELIVER, "inv_run", 1, None, 500)]);
        assert_eq!(
            completions(&s, "inv_run"),
            vec![(0, Some(b"yes".to_vec()), 0, None), (1, None, 500, Some("bad".into()))]
        );
        // Another key's promise of the same name is another promise.
        assert_eq!(s.peek_promise("Wf", "k2", "p").unwrap().0, None);
        s.close().unwrap();
    }
    let (s, _) = reopen(dir.path());
    assert_eq!(s.peek_promise("Wf", "k", "q").unwrap().0, Some((None, 500, Some("bad".into()))));
    let h3 = wf("inv_h3", "k", KIND_SHARED);
    s.progress(&h3, &[e(entry::GET_PROMISE, Some("p"), None)], &[]).unwrap();
    assert_eq!(wakes(&s), vec![w(WAKE_DELIVER, "inv_h3", 0, Some(b"yes"), 0)]);
}

#[test]
fn suspend_is_refused_when_a_completion_already_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = svc("inv_a");
    assert!(matches!(s.suspend(&a, &[0]), Err(Error::InvalidArgument(_))), "nothing journaled");
    let aw = e(entry::AWAKEABLE, None, None);
    s.progress(&a, &[aw, aw], &[]).unwrap();
    s.complete_awakeable("inv_a", 0, &Outcome::ok(b"v")).unwrap();
    assert_eq!(s.suspend(&a, &[0, 1]).unwrap(), None);
    assert_eq!(status(&a), STATUS_RUNNING);
    assert!(s.suspend(&a, &[1]).unwrap().is_some());
    s.take_wakes();
    s.complete_awakeable("inv_a", 1, &Outcome::ok(b"w")).unwrap();
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_a", 1, Some(b"w"), 0)]);
    s.complete(&a, &[], None, 0, None, &[]).unwrap();
    assert!(matches!(s.suspend(&a, &[1]), Err(Error::NotRunning { .. })), "completed");
}

/// a calls b, b calls c; c waits in the inbox of a key owned by o.
fn call_chain(s: &Store) -> (Arc<InvocationMeta>, Arc<InvocationMeta>, Arc<InvocationMeta>, Arc<InvocationMeta>) {
    let o = obj("inv_o", "k");
    s.admit(&o, false).unwrap();
    let a = svc("inv_a");
    let b = linked("inv_b", "Svc", "", KIND_SERVICE, "inv_a", 0, "");
    let c = linked("inv_c", "Obj", "k", KIND_EXCLUSIVE, "inv_b", 1, "");
    s.progress(&a, &[call("inv_b")], &[(b.clone(), 0)]).unwrap();
    s.progress(&b, &[sleep(50_000), call("inv_c")], &[(c.clone(), 0)]).unwrap();
    s.take_wakes();
    (o, a, b, c)
}

#[test]
fn cancel_propagates_through_awaited_calls() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (o, a, b, c) = call_chain(&s);
    assert!(s.suspend(&b, &[1]).unwrap().is_some());
    assert_eq!(s.cancel("inv_a").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(
        wakes(&s),
        vec![
            w(WAKE_CANCEL, "inv_a", 0, None, 0),
            w(WAKE_RUN, "inv_b", 0, None, 0),
            w(WAKE_DONE, "inv_c", 0, None, 409),
            w(WAKE_DELIVER, "inv_b", 1, None, 409),
        ]
    );
    assert!(a.state().cancel_requested && b.state().cancel_requested);
    assert_eq!((status(&b), status(&c), status(&o)), (STATUS_RUNNING, STATUS_COMPLETED, STATUS_RUNNING));
    assert_eq!(completions(&s, "inv_b"), vec![(1, None, 409, Some("cancelled".into()))]);
    // The handler observes it: the flag clears.
    s.progress(&a, &[e(entry::CANCEL, None, None)], &[]).unwrap();
    assert!(!a.state().cancel_requested);
    assert_eq!(s.cancel("inv_c").unwrap().0, SIGNAL_ALREADY_COMPLETED, "completed");
    assert_eq!(s.cancel("inv_nope").unwrap(), (SIGNAL_UNKNOWN, 0));
    // The inbox no longer holds c: o hands its key to nobody.
    assert!(s.complete(&o, &[], None, 0, None, &[]).unwrap().1.is_none());
    // CANCEL_INVOCATION from a handler.
    let d = svc("inv_d");
    s.progress(&d, &[e(entry::AWAKEABLE, None, None)], &[]).unwrap();
    s.progress(&svc("inv_e"), &[e(entry::CANCEL_INVOCATION, Some("inv_d"), None)], &[]).unwrap();
    assert_eq!(wakes(&s), vec![w(WAKE_CANCEL, "inv_d", 0, None, 0)]);
}

#[test]
fn kill_completes_the_call_tree_and_hands_keys_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (o, a, b, c) = call_chain(&s);
    let waiter = obj("inv_w", "k");
    s.admit(&waiter, false).unwrap();
    // Kill the key's owner first: c (inboxed) gets the key and runs. A running
    // invocation is known to the store once persisted.
    assert_eq!(s.kill("inv_o").unwrap(), (SIGNAL_UNKNOWN, 0));
    s.progress(&o, &[], &[]).unwrap();
    assert_eq!(s.kill("inv_o").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_KILL, "inv_o", 0, None, 409), w(WAKE_RUN, "inv_c", 0, None, 0)]);
    assert!(s.suspend(&b, &[1]).unwrap().is_some());
    assert_eq!(s.kill("inv_a").unwrap().0, SIGNAL_APPLIED);
    assert_eq!(
        wakes(&s),
        vec![
            w(WAKE_KILL, "inv_a", 0, None, 409),
            w(WAKE_DONE, "inv_b", 0, None, 409),
            w(WAKE_KILL, "inv_c", 0, None, 409),
            w(WAKE_RUN, "inv_w", 0, None, 0),
        ]
    );
    for m in [&o, &a, &b, &c] {
        assert_eq!(status(m), STATUS_COMPLETED);
    }
    assert_eq!(s.next_timer_ms(), None, "b's sleep timer is gone");
    assert!(matches!(s.progress(&a, &[], &[]), Err(Error::NotRunning { .. })));
    assert!(matches!(s.complete(&c, &[], None, 0, None, &[]), Err(Error::NotRunning { .. })));
    assert_eq!(s.kill("inv_a").unwrap().0, SIGNAL_ALREADY_COMPLETED);
    sync(&s);
    assert_eq!(s.get_output("inv_b").unwrap().unwrap(), (None, 409, Some("killed".into())));
    let (_, next) = s.complete(&waiter, &[], None, 0, None, &[]).unwrap();
    assert!(next.is_none());
}

#[test]
fn idempotency_keys_and_workflow_runs_are_registered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let x = linked("inv_x", "Svc", "", KIND_SERVICE, "", 0, "abc");
        let (runs, seq) = s.admit(&x, false).unwrap();
        assert!(runs && seq > 0 && x.state().persisted, "an idempotency key implies persist");
        assert_eq!(idem(&s, "Svc", "", "h", "abc").as_deref(), Some("inv_x"), "queued");
        assert_eq!(idem(&s, "Svc", "", "h", "abd"), None);
        let run = wf("inv_run", "w1", KIND_WORKFLOW);
        assert!(s.admit(&run, false).unwrap().1 > 0);
        assert_eq!(idem(&s, "Wf", "w1", "run", "").as_deref(), Some("inv_run"));
        assert_eq!(idem(&s, "Wf", "w2", "run", ""), None);
        // A workflow run writes its key's state.
        s.progress(&run, &[e(entry::SET_STATE, Some("s"), Some(b"1"))], &[]).unwrap();
        // persist=True without a key.
        let y = svc("inv_y");
        assert!(s.admit(&y, true).unwrap().1 > 0);
        s.close().unwrap();
    }
    let (s, running) = reopen(dir.path());
    assert_eq!(running, vec!["inv_run", "inv_x", "inv_y"]);
    assert_eq!(idem(&s, "Svc", "", "h", "abc").as_deref(), Some("inv_x"));
    assert_eq!(idem(&s, "Wf", "w1", "run", "").as_deref(), Some("inv_run"));
    assert_eq!(s.load_state("Wf", "w1").unwrap().0.len(), 1);
}

#[test]
fn recovery_restores_suspended_awaiting_timers_and_scheduled() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let a = svc("inv_a");
        s.progress(&a, &[sleep(10_000)], &[]).unwrap();
        s.suspend(&a, &[0]).unwrap().unwrap();
        let b = svc("inv_b");
        let c = linked("inv_c", "Svc", "", KIND_SERVICE, "inv_b", 2, "");
        let aw = e(entry::AWAKEABLE, None, None);
        s.progress(&b, &[aw, aw, call("inv_c")], &[(c.clone(), 0)]).unwrap();
        s.complete_awakeable("inv_b", 0, &Outcome::ok(b"done")).unwrap();
        s.suspend(&b, &[1, 2]).unwrap().unwrap();
        s.schedule(&svc("inv_d"), 20_000).unwrap();
        let x = svc("inv_x"); // killed: its sleep row must not come back
        s.progress(&x, &[sleep(1)], &[]).unwrap();
        s.kill("inv_x").unwrap();
        s.close().unwrap();
    }
    let (s, running) = reopen(dir.path());
    assert_eq!(running, vec!["inv_c"], "suspended and scheduled ones wait");
    let b = s.get_invocation("inv_b").unwrap().unwrap();
    assert_eq!((status(&b), b.state().journal_len), (STATUS_SUSPENDED, 3));
    assert_eq!(s.next_timer_ms(), Some(10_000));
    assert_eq!(s.complete_awakeable("inv_b", 0, &Outcome::ok(b"x")).unwrap().0, SIGNAL_ALREADY_COMPLETED, "completed before the restart");
    assert_eq!(s.complete_awakeable("inv_b", 1, &Outcome::ok(b"y")).unwrap().0, SIGNAL_APPLIED);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_b", 1, Some(b"y"), 0)]);
    assert_eq!(s.fire_timers(10_000).unwrap(), 1);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_a", 0, Some(b""), 0)]);
    assert_eq!(s.fire_timers(20_000).unwrap(), 1);
    assert_eq!(wakes(&s), vec![w(WAKE_RUN, "inv_d", 0, None, 0)]);
    // The recovered callee still completes its caller's entry.
    let c = s.get_invocation("inv_c").unwrap().unwrap();
    s.complete(&c, &[], Some(b"r"), 0, None, &[]).unwrap();
    assert_eq!(wakes(&s), vec![w(WAKE_DELIVER, "inv_b", 2, Some(b"r"), 0)]);
    assert_eq!(completions(&s, "inv_b").len(), 3);
    s.close().unwrap();
    drop(s);
    let (s, running) = reopen(dir.path());
    assert_eq!(running, vec!["inv_a", "inv_b", "inv_d"]);
    assert_eq!(s.next_timer_ms(), None);
}

#[test]
fn purge_deletes_completions_idempotency_and_workflow_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let run = wf("inv_run", "w", KIND_WORKFLOW);
    s.admit(&run, false).unwrap();
    s.progress(&run, &[e(entry::SET_STATE, Some("s"), Some(b"1")), e(entry::COMPLETE_PROMISE, Some("p"), Some(b"v"))], &[]).unwrap();
    s.complete(&run, &[], Some(b"out"), 0, None, &[]).unwrap();
    let x = linked("inv_x", "Svc", "", KIND_SERVICE, "", 0, "abc");
    s.admit(&x, false).unwrap();
    s.progress(&x, &[e(entry::AWAKEABLE, None, None)], &[]).unwrap();
    s.complete_awakeable("inv_x", 0, &Outcome::ok(b"v")).unwrap();
    s.complete(&x, &[], None, 0, None, &[]).unwrap();
    sync(&s);
    assert_eq!(completions(&s, "inv_x").len(), 1);
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 2);
    assert_eq!(idem(&s, "Svc", "", "h", "abc"), None, "before the purge is written");
    assert_eq!(s.peek_promise("Wf", "w", "p").unwrap().0, None);
    sync(&s);
    assert!(s.load_completions("inv_x").unwrap().is_empty());
    assert!(s.load_completions("inv_run").unwrap().is_empty());
    assert!(s.load_journal("inv_run").unwrap().is_empty());
    assert!(s.load_state("Wf", "w").unwrap().0.is_empty());
    assert_eq!(idem(&s, "Wf", "w", "run", ""), None);
    s.close().unwrap();
    drop(s);
    let (s, _) = reopen(dir.path());
    assert_eq!(s.peek_promise("Wf", "w", "p").unwrap().0, None);
    assert_eq!(idem(&s, "Svc", "", "h", "abc"), None);
}
