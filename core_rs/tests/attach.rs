//! ATTACH_INVOCATION (`ctx.attach_invocation`): an entry that waits for another
//! invocation's result. Completed in the commit that journals it when the target
//! is done (in memory or on disk) or unknown, otherwise by the target's finishing
//! commit; through suspension, kill, cancel and recovery.

use std::sync::Arc;

use stead_core::awaiting::{WAKE_DELIVER, WAKE_RUN};
use stead_core::entry::{self, Entry, EntryRef};
use stead_core::invocation::*;
use stead_core::store::Store;
use stead_core::Error;

mod common;
use common::{open, reopen};

fn sync(s: &Store) {
    s.wait_durable(s.last_seq()).unwrap();
}

fn svc(id: &str) -> Arc<InvocationMeta> {
    InvocationMeta::new(id.into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1).unwrap()
}

fn callee(id: &str, caller: &str, entry: u32) -> Arc<InvocationMeta> {
    let links = Links { caller_id: caller.into(), caller_entry: entry, idempotency_key: String::new() };
    InvocationMeta::with_links(id.into(), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{}", vec![], 1, links).unwrap()
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn attach(target: &str) -> EntryRef<'static> {
    EntryRef { kind: entry::ATTACH_INVOCATION, name: Some(leak(target)), value: None, code: 0, message: None }
}

fn to(kind: i32, target: &str) -> EntryRef<'static> {
    EntryRef { kind, name: Some("Svc/h"), value: Some(leak(target).as_bytes()), code: 0, message: None }
}

const RUN: EntryRef<'static> = EntryRef { kind: entry::RUN, name: Some("r"), value: Some(b"1"), code: 0, message: None };

/// A persisted, running invocation that has journaled one step.
fn started(s: &Store, id: &str) -> Arc<InvocationMeta> {
    let m = svc(id);
    s.progress(&m, &[RUN], &[]).unwrap();
    m
}

type W = (i32, String, u32, Option<Vec<u8>>, u32, Option<String>);

fn wakes(s: &Store) -> Vec<W> {
    s.take_wakes().into_iter().map(|w| (w.what, w.inv.id.clone(), w.index, w.value, w.code, w.message)).collect()
}

fn delivered(id: &str, index: u32, value: Option<&[u8]>, code: u32, message: Option<&str>) -> W {
    (WAKE_DELIVER, id.into(), index, value.map(<[u8]>::to_vec), code, message.map(str::to_string))
}

/// A completion row: (index, value, code, message).
type Row = (u32, Option<Vec<u8>>, u32, Option<String>);

/// The completion rows of `id` once durable.
fn completions(s: &Store, id: &str) -> Vec<Row> {
    sync(s);
    s.load_completions(id).unwrap().into_iter().map(|(i, e)| (i, e.value, e.code, e.message)).collect()
}

#[test]
fn attaching_to_a_running_invocation_waits_for_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t = started(&s, "inv_t");
    let a = started(&s, "inv_a");
    let b = started(&s, "inv_b");
    s.progress(&a, &[attach("inv_t")], &[]).unwrap();
    s.progress(&b, &[RUN, attach("inv_t")], &[]).unwrap();
    assert!(wakes(&s).is_empty(), "pending until the target finishes");
    assert!(completions(&s, "inv_a").is_empty());
    assert_eq!(s.load_journal("inv_a").unwrap()[1], Entry {
        kind: entry::ATTACH_INVOCATION,
        name: Some("inv_t".into()),
        value: None,
        code: 0,
        message: None,
    });

    let (seq, _) = s.complete(&t, &[], Some(b"\"done\""), 0, None, &[]).unwrap();
    let w = s.take_wakes();
    assert!(w.iter().all(|w| w.seq == seq), "completed by the target's finishing commit");
    let w: Vec<W> = w.into_iter().map(|w| (w.what, w.inv.id.clone(), w.index, w.value, w.code, w.message)).collect();
    assert_eq!(w, [delivered("inv_a", 1, Some(b"\"done\""), 0, None), delivered("inv_b", 2, Some(b"\"done\""), 0, None)]);
    assert_eq!(completions(&s, "inv_a"), [(1, Some(b"\"done\"".to_vec()), 0, None)]);
    assert_eq!(completions(&s, "inv_b"), [(2, Some(b"\"done\"".to_vec()), 0, None)]);
    // The attachers go on and finish normally.
    s.complete(&a, &[], Some(b"1"), 0, None, &[]).unwrap();
    s.complete(&b, &[], Some(b"2"), 0, None, &[]).unwrap();
}

#[test]
fn a_failed_target_hands_its_failure_to_the_attacher() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t = started(&s, "inv_t");
    let a = started(&s, "inv_a");
    s.progress(&a, &[attach("inv_t")], &[]).unwrap();
    s.complete(&t, &[], None, 422, Some("declined"), &[]).unwrap();
    assert_eq!(wakes(&s), [delivered("inv_a", 1, None, 422, Some("declined"))]);
    assert_eq!(completions(&s, "inv_a"), [(1, None, 422, Some("declined".into()))]);
}

#[test]
fn attaching_to_a_finished_invocation_completes_in_the_same_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let t = started(&s, "inv_t");
        s.complete(&t, &[], Some(b"42"), 0, None, &[]).unwrap();
        let f = started(&s, "inv_f");
        s.complete(&f, &[], None, 500, Some("boom"), &[]).unwrap();
        // Finished in this process: answered from memory (or the disk, once durable).
        let a = started(&s, "inv_a");
        wakes(&s);
        let seq = s.progress(&a, &[attach("inv_t"), attach("inv_f")], &[]).unwrap();
        let w = s.take_wakes();
        assert!(w.iter().all(|w| w.seq == seq));
        let w: Vec<W> = w.into_iter().map(|w| (w.what, w.inv.id.clone(), w.index, w.value, w.code, w.message)).collect();
        assert_eq!(w, [delivered("inv_a", 1, Some(b"42"), 0, None), delivered("inv_a", 2, None, 500, Some("boom"))]);
        s.close().unwrap();
    }
    // After a restart the completed records on disk answer.
    let (s, _) = reopen(dir.path());
    let b = started(&s, "inv_b");
    s.progress(&b, &[attach("inv_t"), attach("inv_f")], &[]).unwrap();
    assert_eq!(wakes(&s), [delivered("inv_b", 1, Some(b"42"), 0, None), delivered("inv_b", 2, None, 500, Some("boom"))]);
    assert_eq!(completions(&s, "inv_b"), [(1, Some(b"42".to_vec()), 0, None), (2, None, 500, Some("boom".into()))]);
}

#[test]
fn an_unknown_target_and_the_invocation_itself_fail_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = started(&s, "inv_a");
    s.progress(&a, &[attach("inv_nope"), attach("inv_a")], &[]).unwrap();
    let not_found = "invocation inv_nope not found";
    let itself = "invocation inv_a cannot attach to itself: it would wait for its own result forever";
    assert_eq!(wakes(&s), [delivered("inv_a", 1, None, 404, Some(not_found)), delivered("inv_a", 2, None, 400, Some(itself))]);
    assert_eq!(completions(&s, "inv_a"), [(1, None, 404, Some(not_found.into())), (2, None, 400, Some(itself.into()))]);
    // A purged invocation is unknown again.
    let t = started(&s, "inv_t");
    s.complete(&t, &[], Some(b"1"), 0, None, &[]).unwrap();
    sync(&s);
    assert_eq!(s.purge_completed(now_ms() + 1, 0, 10).unwrap(), 1);
    let b = started(&s, "inv_b");
    s.progress(&b, &[attach("inv_t")], &[]).unwrap();
    assert_eq!(wakes(&s), [delivered("inv_b", 1, None, 404, Some("invocation inv_t not found"))]);
}

#[test]
fn a_malformed_attach_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = started(&s, "inv_a");
    let nameless = EntryRef { kind: entry::ATTACH_INVOCATION, name: None, value: None, code: 0, message: None };
    assert!(matches!(s.progress(&a, &[nameless], &[]), Err(Error::InvalidArgument(_))));
    assert!(matches!(s.progress(&a, &[attach("")], &[]), Err(Error::InvalidArgument(_))));
    assert_eq!(a.state().journal_len, 1, "nothing journaled");
}

#[test]
fn a_suspended_attacher_is_resumed_by_the_targets_completion() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t = started(&s, "inv_t");
    let a = started(&s, "inv_a");
    s.progress(&a, &[attach("inv_t")], &[]).unwrap();
    assert!(s.suspend(&a, &[1]).unwrap().is_some());
    assert_eq!(a.state().status, STATUS_SUSPENDED);
    s.complete(&t, &[], Some(b"\"r\""), 0, None, &[]).unwrap();
    let w = wakes(&s);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].0, w[0].1.as_str(), w[0].2, w[0].3.as_deref()), (WAKE_RUN, "inv_a", 1, Some(&b"\"r\""[..])));
    assert_eq!(a.state().status, STATUS_RUNNING);
    assert_eq!(completions(&s, "inv_a"), [(1, Some(b"\"r\"".to_vec()), 0, None)], "the replay finds it");
}

#[test]
fn recovery_rebuilds_the_waiting_attachers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        started(&s, "inv_t");
        let a = started(&s, "inv_a");
        let b = started(&s, "inv_b");
        s.progress(&a, &[attach("inv_t")], &[]).unwrap();
        s.progress(&b, &[attach("inv_t")], &[]).unwrap();
        assert!(s.suspend(&b, &[1]).unwrap().is_some());
        sync(&s);
        // A crash: nothing more reaches the disk.
    }
    let (s, running) = reopen(dir.path());
    assert_eq!(running, ["inv_a", "inv_t"], "the suspended attacher stays suspended: it waits for something");
    let t = s.get_invocation("inv_t").unwrap().unwrap();
    let b = s.get_invocation("inv_b").unwrap().unwrap();
    assert_eq!(b.state().status, STATUS_SUSPENDED);
    s.complete(&t, &[], Some(b"7"), 0, None, &[]).unwrap();
    let mut w = wakes(&s);
    w.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(w, [delivered("inv_a", 1, Some(b"7"), 0, None), (WAKE_RUN, "inv_b".into(), 1, Some(b"7".to_vec()), 0, None)]);
    assert_eq!(completions(&s, "inv_a"), [(1, Some(b"7".to_vec()), 0, None)]);
    assert_eq!(completions(&s, "inv_b"), [(1, Some(b"7".to_vec()), 0, None)]);
}

#[test]
fn a_callee_sent_in_the_same_commit_can_be_attached_to() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = started(&s, "inv_a");
    let child = svc("inv_child");
    s.progress(&a, &[to(entry::SEND, "inv_child"), attach("inv_child")], &[(child.clone(), 0)]).unwrap();
    let w = wakes(&s);
    assert_eq!(w.len(), 1, "only the callee's start: {w:?}");
    assert_eq!((w[0].0, w[0].1.as_str()), (WAKE_RUN, "inv_child"));
    s.complete(&child, &[], Some(b"\"sent\""), 0, None, &[]).unwrap();
    assert_eq!(wakes(&s), [delivered("inv_a", 2, Some(b"\"sent\""), 0, None)]);
}

#[test]
fn a_killed_target_fails_its_attachers_and_a_gone_attacher_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t = started(&s, "inv_t");
    let a = started(&s, "inv_a");
    let b = started(&s, "inv_b");
    s.progress(&a, &[attach("inv_t")], &[]).unwrap();
    s.progress(&b, &[attach("inv_t")], &[]).unwrap();
    // Cancel and kill follow calls, not attaches: the target is not cancelled with its attacher.
    s.cancel("inv_a").unwrap();
    assert!(!t.state().cancel_requested);
    s.kill("inv_b").unwrap();
    assert_eq!(t.state().status, STATUS_RUNNING);
    wakes(&s);
    s.kill("inv_t").unwrap();
    let w = wakes(&s);
    assert!(w.contains(&delivered("inv_a", 1, None, 409, Some("killed"))), "{w:?}");
    assert!(!w.iter().any(|w| w.1 == "inv_b" && w.0 == WAKE_DELIVER), "killed before: nothing for it");
    assert!(completions(&s, "inv_b").is_empty());
    s.complete(&a, &[], None, 409, Some("cancelled"), &[]).unwrap();
}

#[test]
fn killing_an_attacher_and_its_target_together_wakes_neither() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let x = started(&s, "inv_x");
    // x calls t (entry 1), then a (entry 2); a attaches to t and is suspended.
    let t = callee("inv_t", "inv_x", 1);
    let a = callee("inv_a", "inv_x", 2);
    s.progress(&x, &[to(entry::CALL, "inv_t"), to(entry::CALL, "inv_a")], &[(t.clone(), 0), (a.clone(), 0)]).unwrap();
    s.progress(&a, &[attach("inv_t")], &[]).unwrap();
    assert!(s.suspend(&a, &[0]).unwrap().is_some());
    wakes(&s);
    s.kill("inv_x").unwrap();
    // t is killed before a: its result completes a's attach, but a is killed next.
    let w = wakes(&s);
    assert!(!w.iter().any(|w| w.0 == WAKE_RUN || w.0 == WAKE_DELIVER), "{w:?}");
    for m in [&x, &t, &a] {
        assert_eq!(m.state().status, STATUS_COMPLETED);
    }
    sync(&s);
    assert_eq!(s.get_output("inv_a").unwrap(), Some((None, 409, Some("killed".into()))));
}

#[test]
fn an_attach_journaled_by_the_completing_commit_has_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let t = started(&s, "inv_t");
    let a = started(&s, "inv_a");
    s.complete(&a, &[attach("inv_t")], Some(b"1"), 0, None, &[]).unwrap();
    wakes(&s);
    s.complete(&t, &[], Some(b"2"), 0, None, &[]).unwrap();
    assert!(wakes(&s).is_empty());
    sync(&s);
    assert_eq!(s.load_journal("inv_a").unwrap().len(), 2);
    assert!(completions(&s, "inv_a").is_empty());
}

#[test]
fn an_inboxed_target_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let obj = |id: &str| InvocationMeta::new(id.into(), "Obj".into(), "add".into(), "k".into(), KIND_EXCLUSIVE, b"{}", vec![], 1).unwrap();
    let (owner, queued) = (obj("inv_o1"), obj("inv_o2"));
    assert!(s.admit(&owner, true).unwrap().0);
    assert!(!s.admit(&queued, true).unwrap().0);
    let a = started(&s, "inv_a");
    s.progress(&a, &[attach("inv_o2")], &[]).unwrap();
    let (_, next) = s.complete(&owner, &[], Some(b"1"), 0, None, &[]).unwrap();
    assert_eq!(next.unwrap().id, "inv_o2");
    wakes(&s);
    s.complete(&queued, &[], Some(b"2"), 0, None, &[]).unwrap();
    assert_eq!(wakes(&s), [delivered("inv_a", 1, Some(b"2"), 0, None)]);
}
