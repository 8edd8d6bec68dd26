//! The introspection scans (every row of a table, in key order, as written) and
//! the admin's two writes: the edit of an object key's state (with its version)
//! and the purge of one completed invocation.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use stead_core::db::Cf;
use stead_core::entry::{self, Entry, EntryRef};
use stead_core::invocation::*;
use stead_core::keys;
use stead_core::proto::InvocationRecord;
use stead_core::store::{state_version_of, JournalRow, Store, PURGE_NOT_COMPLETED, SIGNAL_APPLIED, SIGNAL_UNKNOWN};
use stead_core::tables::completions::Outcome;
use stead_core::Error;

mod common;
use common::{obj, open, raw_rows, reopen, svc, AWAKEABLE, RUN};

fn sync(s: &Store) {
    s.wait_durable(s.last_seq()).unwrap();
}

fn e(kind: i32, name: Option<&'static str>, value: Option<&'static [u8]>) -> EntryRef<'static> {
    EntryRef { kind, name, value, code: 0, message: None }
}

fn set(name: &'static str, value: &'static [u8]) -> EntryRef<'static> {
    e(entry::SET_STATE, Some(name), Some(value))
}

fn sleep_until(fire_ms: &'static [u8; 8]) -> EntryRef<'static> {
    e(entry::SLEEP, None, Some(&fire_ms[..]))
}

fn inv(id: &str, service: &str, key: &str, kind: i32, links: Links) -> Arc<InvocationMeta> {
    InvocationMeta::with_links(id.into(), service.into(), "h".into(), key.into(), kind, b"{}", vec![], 1, links).unwrap()
}

fn object(id: &str, service: &str, key: &str) -> Arc<InvocationMeta> {
    inv(id, service, key, KIND_EXCLUSIVE, Links::default())
}

fn wf_run(id: &str, key: &str) -> Arc<InvocationMeta> {
    InvocationMeta::new(id.into(), "Wf".into(), "run".into(), key.into(), KIND_WORKFLOW, b"{}", vec![], 1).unwrap()
}

fn by_id(recs: &[InvocationRecord], id: &str) -> InvocationRecord {
    recs.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("{id} not scanned")).clone()
}

fn rows(s: &Store, service: &str, key: &str) -> Vec<(String, Vec<u8>)> {
    s.load_state(service, key).unwrap().0.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
}

fn version(rows: &[(&str, &[u8])]) -> String {
    state_version_of(rows.iter().copied())
}

/// Invocations of every status, with the fields the records carry.
fn populate(s: &Store) {
    let headers = vec![("content-type".to_string(), "application/json".to_string()), ("x-a".to_string(), "1".to_string())];
    let a = InvocationMeta::new("inv_a".into(), "Svc".into(), "greet".into(), "".into(), KIND_SERVICE, b"\"in\"", headers, 11).unwrap();
    s.progress(&a, &[RUN, RUN], &[]).unwrap();
    s.complete(&a, &[], Some(b"\"ok\""), 0, None, &[]).unwrap();
    // Running, journal longer than its record says (rewritten on status changes only).
    let b = inv("inv_b", "Obj", "k", KIND_EXCLUSIVE, Links { idempotency_key: "idem".into(), ..Default::default() });
    s.admit(&b, true).unwrap();
    s.pin_deployment(&b, "dp_1").unwrap();
    s.cancel("inv_b").unwrap();
    s.progress(&b, &[RUN, AWAKEABLE, set("s", b"1")], &[]).unwrap();
    let c = obj("inv_c");
    assert!(!s.admit(&c, false).unwrap().0, "inboxed behind inv_b");
    let d = inv("inv_d", "Svc", "", KIND_SERVICE, Links { caller_id: "inv_b".into(), caller_entry: 7, ..Default::default() });
    s.admit(&d, true).unwrap();
    s.complete(&d, &[], None, 500, Some("boom"), &[]).unwrap();
    let f = svc("inv_f");
    s.progress(&f, &[RUN], &[]).unwrap();
    s.backoff(&f, 3, 5_000).unwrap();
    sync(s);
}

#[test]
fn scan_invocations_gives_every_record_in_id_order_with_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    populate(&s);
    let all = s.scan_invocations("", 0).unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["inv_a", "inv_b", "inv_c", "inv_d", "inv_f"]);

    let a = by_id(&all, "inv_a");
    assert_eq!((a.service.as_str(), a.handler.as_str(), a.key.as_str(), a.kind), ("Svc", "greet", "", KIND_SERVICE));
    assert_eq!((a.status, a.journal_len, a.created_ms), (STATUS_COMPLETED, 2, 11));
    assert_eq!((a.output.as_deref(), a.failure_code, a.input.as_slice()), (Some(&b"\"ok\""[..]), 0, &b"\"in\""[..]));
    assert!(a.completed_ms > 0 && a.modified_ms >= a.completed_ms);
    let headers: Vec<(&str, &str)> = a.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
    assert_eq!(headers, [("content-type", "application/json"), ("x-a", "1")]);

    let b = by_id(&all, "inv_b");
    assert_eq!((b.status, b.idempotency_key.as_str(), b.deployment_id.as_str()), (STATUS_RUNNING, "idem", "dp_1"));
    assert!(b.cancel_requested);
    assert_eq!(b.journal_len, 3, "the journal's length, not the record's");
    assert_eq!(common::raw_record(dir.path(), "inv_b").unwrap().journal_len, 0, "the record lags");
    assert_eq!((b.completed_ms, b.output, b.failure_code), (0, None, 0));

    assert_eq!(by_id(&all, "inv_c").status, STATUS_INBOXED);
    let d = by_id(&all, "inv_d");
    assert_eq!((d.status, d.failure_code, d.failure_message.as_str(), d.output), (STATUS_COMPLETED, 500, "boom", None));
    assert_eq!((d.caller_id.as_str(), d.caller_entry), ("inv_b", 7));
    let f = by_id(&all, "inv_f");
    assert_eq!((f.status, f.retry_count, f.next_retry_ms, f.journal_len), (STATUS_BACKING_OFF, 3, 5_000, 1));
}

#[test]
fn scan_invocations_pages_after_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    populate(&s);
    let all = s.scan_invocations("", 0).unwrap();
    let mut paged = Vec::new();
    let mut after = String::new();
    for _ in 0..=all.len() {
        let page = s.scan_invocations(&after, 2).unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        paged.extend(page);
    }
    assert_eq!(paged, all);
    // Any id works as a cursor, present or not; a prefix of an id is before it.
    let ids = |after: &str| s.scan_invocations(after, 0).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids("inv_bb"), ["inv_c", "inv_d", "inv_f"]);
    assert_eq!(ids("inv_"), ["inv_a", "inv_b", "inv_c", "inv_d", "inv_f"]);
    assert_eq!(ids("inv_f"), Vec::<String>::new());
    assert_eq!(s.scan_invocations("inv_a", 1).unwrap()[0].id, "inv_b");
}

#[test]
fn scan_journal_and_completions_of_one_invocation_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (j1, j12) = (svc("inv_j1"), svc("inv_j12"));
    let failed = EntryRef { kind: entry::RUN, name: Some("charge"), value: None, code: 500, message: Some("declined") };
    s.progress(&j1, &[e(entry::RUN, Some("r"), Some(b"1")), sleep_until(&[0, 0, 0, 0, 0, 0, 0, 9]), AWAKEABLE, failed], &[]).unwrap();
    s.progress(&j12, &[AWAKEABLE, AWAKEABLE], &[]).unwrap();
    s.complete_awakeable("inv_j1", 2, &Outcome::ok(b"v")).unwrap();
    s.complete_awakeable("inv_j12", 1, &Outcome::failed(400, "no")).unwrap();
    assert_eq!(s.fire_timers(9).unwrap(), 1);
    sync(&s);

    let entry = |kind, name: Option<&str>, value: Option<&[u8]>, code, message: Option<&str>| Entry {
        kind,
        name: name.map(str::to_string),
        value: value.map(<[u8]>::to_vec),
        code,
        message: message.map(str::to_string),
    };
    let row = |id: &str, index: u32, e: Entry| -> JournalRow { (id.to_string(), index, e) };
    let one = s.scan_journal("inv_j1").unwrap();
    assert_eq!(
        one,
        vec![
            row("inv_j1", 0, entry(entry::RUN, Some("r"), Some(b"1"), 0, None)),
            row("inv_j1", 1, entry(entry::SLEEP, None, Some(&[0, 0, 0, 0, 0, 0, 0, 9]), 0, None)),
            row("inv_j1", 2, entry(entry::AWAKEABLE, None, None, 0, None)),
            row("inv_j1", 3, entry(entry::RUN, Some("charge"), None, 500, Some("declined"))),
        ]
    );
    assert_eq!(one.iter().map(|r| r.2.clone()).collect::<Vec<_>>(), s.load_journal("inv_j1").unwrap());
    let all = s.scan_journal("").unwrap();
    assert_eq!(all.len(), 6, "both journals, no completions: {all:?}");
    assert_eq!(all.iter().filter(|r| r.0 == "inv_j12").count(), 2);
    assert!(s.scan_journal("inv_j").unwrap().is_empty(), "an id's prefix is another id");

    let completions = s.scan_completions("inv_j1").unwrap();
    assert_eq!(
        completions,
        vec![row("inv_j1", 1, entry(entry::SLEEP, None, Some(b""), 0, None)), row("inv_j1", 2, entry(entry::AWAKEABLE, None, Some(b"v"), 0, None))]
    );
    let all = s.scan_completions("").unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&row("inv_j12", 1, entry(entry::AWAKEABLE, None, None, 400, Some("no")))));
    assert!(s.scan_completions("inv_nope").unwrap().is_empty());
}

#[test]
fn scan_state_of_all_one_service_or_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for (id, service, key, name) in [("inv_1", "Obj", "a", "x"), ("inv_2", "Obj", "ab", "y"), ("inv_3", "Objx", "a", "z")] {
        let o = object(id, service, key);
        s.admit(&o, false).unwrap();
        s.complete(&o, &[set(name, name.as_bytes()), set("n", b"0")], None, 0, None, &[]).unwrap();
    }
    sync(&s);
    let scan = |service: &str, key: &str| -> Vec<(String, String, String, Vec<u8>)> { s.scan_state(service, key).unwrap() };
    let row = |s: &str, k: &str, n: &str, v: &[u8]| (s.to_string(), k.to_string(), n.to_string(), v.to_vec());
    assert_eq!(
        scan("", ""),
        vec![
            row("Obj", "a", "n", b"0"),
            row("Obj", "a", "x", b"x"),
            row("Obj", "ab", "n", b"0"),
            row("Obj", "ab", "y", b"y"),
            row("Objx", "a", "n", b"0"),
            row("Objx", "a", "z", b"z"),
        ]
    );
    assert_eq!(scan("Obj", "").len(), 4, "not Objx's");
    assert_eq!(scan("Obj", "a"), vec![row("Obj", "a", "n", b"0"), row("Obj", "a", "x", b"x")], "not ab's");
    assert!(scan("Nope", "").is_empty());
    assert!(matches!(s.scan_state("", "a"), Err(Error::InvalidArgument(_))));
}

#[test]
fn scan_inbox_idempotency_and_promises() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let owner = obj("inv_o");
    s.admit(&owner, false).unwrap();
    for id in ["inv_w3", "inv_w1", "inv_w2"] {
        assert!(!s.admit(&obj(id), false).unwrap().0);
    }
    let other = object("inv_p", "Obj", "j");
    s.admit(&other, false).unwrap();
    s.admit(&object("inv_q", "Obj", "j"), false).unwrap();
    let idem = inv("inv_i", "Svc", "", KIND_SERVICE, Links { idempotency_key: "once".into(), ..Default::default() });
    s.admit(&idem, true).unwrap();
    let run = wf_run("inv_r", "w1");
    s.admit(&run, false).unwrap();
    let reject = EntryRef { kind: entry::COMPLETE_PROMISE, name: Some("r"), value: None, code: 400, message: Some("no") };
    s.progress(&run, &[e(entry::GET_PROMISE, Some("p"), None), e(entry::COMPLETE_PROMISE, Some("q"), Some(b"v")), reject], &[]).unwrap();
    let run2 = wf_run("inv_r2", "w2");
    s.admit(&run2, false).unwrap();
    s.progress(&run2, &[e(entry::COMPLETE_PROMISE, Some("p"), Some(b"2"))], &[]).unwrap();
    sync(&s);

    let inbox = s.scan_inbox().unwrap();
    let queue: Vec<(&str, &str, &str)> = inbox.iter().map(|(sv, k, _, id)| (sv.as_str(), k.as_str(), id.as_str())).collect();
    assert_eq!(queue, [("Obj", "j", "inv_q"), ("Obj", "k", "inv_w3"), ("Obj", "k", "inv_w1"), ("Obj", "k", "inv_w2")], "queue order per key");
    assert!(inbox[1].2 < inbox[2].2 && inbox[2].2 < inbox[3].2);
    s.complete(&owner, &[], None, 0, None, &[]).unwrap();
    sync(&s);
    assert_eq!(s.scan_inbox().unwrap().iter().filter(|r| r.1 == "k").map(|r| r.3.as_str()).collect::<Vec<_>>(), ["inv_w1", "inv_w2"]);

    let idem_rows = s.scan_idempotency().unwrap();
    let t = |a: &str, b: &str, c: &str, d: &str, id: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string(), id.to_string());
    // Key order: strings are length-prefixed, so a shorter service comes first.
    assert_eq!(idem_rows, vec![t("Wf", "w1", "run", "", "inv_r"), t("Wf", "w2", "run", "", "inv_r2"), t("Svc", "", "h", "once", "inv_i")]);

    let promises = s.scan_promises("", "").unwrap();
    let summary: Vec<_> = promises
        .iter()
        .map(|(w, k, n, r)| (w.as_str(), k.as_str(), n.as_str(), r.completed, r.value.clone(), r.failure_code, r.failure_message.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("Wf", "w1", "p", false, None, 0, ""),
            ("Wf", "w1", "q", true, Some(b"v".to_vec()), 0, ""),
            ("Wf", "w1", "r", true, None, 400, "no"),
            ("Wf", "w2", "p", true, Some(b"2".to_vec()), 0, ""),
        ]
    );
    assert_eq!(promises[0].3.waiters.len(), 1, "pending: its waiter");
    assert_eq!(s.scan_promises("Wf", "").unwrap().len(), 4);
    assert_eq!(s.scan_promises("Wf", "w2").unwrap().len(), 1);
    assert!(s.scan_promises("W", "").unwrap().is_empty());
    assert!(matches!(s.scan_promises("", "w1"), Err(Error::InvalidArgument(_))));
}

#[test]
fn count_timers_counts_sleeps_retries_and_delayed_sends() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        assert_eq!(s.count_timers(), 0);
        s.progress(&svc("inv_s"), &[sleep_until(&[0, 0, 0, 0, 0, 0, 0, 50])], &[]).unwrap();
        let r = svc("inv_r");
        s.progress(&r, &[RUN], &[]).unwrap();
        s.backoff(&r, 1, 60).unwrap();
        s.schedule(&svc("inv_d"), 70).unwrap();
        assert_eq!(s.count_timers(), 3);
        assert_eq!(s.fire_timers(55).unwrap(), 1);
        assert_eq!(s.count_timers(), 2);
        s.close().unwrap();
    }
    let (s, _) = reopen(dir.path());
    assert_eq!(s.count_timers(), 2, "rebuilt at recovery");
}

/// Every scan of a store, to compare two.
#[derive(Debug, PartialEq)]
struct Scans {
    invocations: Vec<InvocationRecord>,
    journal: Vec<JournalRow>,
    completions: Vec<JournalRow>,
    state: Vec<(String, String, String, Vec<u8>)>,
    inbox: Vec<(String, String, u64, String)>,
    idempotency: Vec<(String, String, String, String, String)>,
    promises: Vec<stead_core::store::PromiseRow>,
}

fn scan_all(s: &Store) -> Scans {
    Scans {
        invocations: s.scan_invocations("", 0).unwrap(),
        journal: s.scan_journal("").unwrap(),
        completions: s.scan_completions("").unwrap(),
        state: s.scan_state("", "").unwrap(),
        inbox: s.scan_inbox().unwrap(),
        idempotency: s.scan_idempotency().unwrap(),
        promises: s.scan_promises("", "").unwrap(),
    }
}

#[test]
fn a_scan_after_reopen_sees_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let s = open(dir.path());
        populate(&s);
        let run = wf_run("inv_r", "w");
        s.admit(&run, false).unwrap();
        s.progress(&run, &[set("a", b"1"), e(entry::COMPLETE_PROMISE, Some("p"), Some(b"v")), AWAKEABLE], &[]).unwrap();
        s.complete_awakeable("inv_r", 2, &Outcome::ok(b"x")).unwrap();
        sync(&s);
        before = scan_all(&s);
        s.close().unwrap();
    }
    assert!(before.invocations.len() == 6 && !before.journal.is_empty() && !before.completions.is_empty());
    assert!(!before.state.is_empty() && !before.inbox.is_empty() && !before.idempotency.is_empty() && !before.promises.is_empty());
    let (s, _) = reopen(dir.path());
    assert_eq!(scan_all(&s), before);
}

#[test]
fn scan_of_100k_invocations() {
    const N: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let headers = vec![("content-type".to_string(), "application/json".to_string())];
    for i in 0..N {
        let m = InvocationMeta::new(format!("inv_{i:08}"), "Svc".into(), "h".into(), "".into(), KIND_SERVICE, b"{\"n\":1}", headers.clone(), 1).unwrap();
        s.complete(&m, &[], Some(b"\"ok\""), 0, None, &[]).unwrap();
    }
    sync(&s);
    let t = Instant::now();
    let all = s.scan_invocations("", 0).unwrap();
    let took = t.elapsed();
    assert_eq!(all.len(), N);
    assert_eq!(all[N - 1].id, format!("inv_{:08}", N - 1));
    println!("scan_invocations of {N} invocations: {:.1} ms", took.as_secs_f64() * 1e3);
}

// ---- state_version and overwrite_state

#[test]
fn state_version_names_the_content_of_a_keys_state() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        assert_eq!(s.state_version("Obj", "k").unwrap(), version(&[]), "an unknown key: the empty state's");
        let o = obj("inv_o");
        s.admit(&o, false).unwrap();
        s.complete(&o, &[set("b", b"2"), set("a", b"1")], None, 0, None, &[]).unwrap();
        sync(&s);
        let v = s.state_version("Obj", "k").unwrap();
        assert_eq!(v, version(&[("a", b"1"), ("b", b"2")]), "rows in name order");
        assert_ne!(v, version(&[]));
        assert_eq!(s.state_version("Obj", "other").unwrap(), version(&[]));
        s.close().unwrap();
    }
    let (s, _) = reopen(dir.path());
    assert_eq!(s.state_version("Obj", "k").unwrap(), version(&[("a", b"1"), ("b", b"2")]), "stable across restarts");
}

/// The key's rows, the last seq and the state CF's rows: what a refused edit must leave as is.
type Untouched = (Vec<(String, Vec<u8>)>, u64, Vec<(Vec<u8>, Vec<u8>)>);

fn untouched(s: &Store, dir: &Path) -> Untouched {
    sync(s);
    (rows(s, "Obj", "k"), s.last_seq(), raw_rows(dir, Cf::State, &keys::STATE))
}

#[test]
fn overwrite_state_replaces_the_whole_state_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let o = obj("inv_o");
        s.admit(&o, false).unwrap();
        s.complete(&o, &[set("old", b"1"), set("keep", b"1")], None, 0, None, &[]).unwrap();
        sync(&s);
        let v0 = s.state_version("Obj", "k").unwrap();
        let last = s.last_seq();
        let new_rows = vec![("keep".to_string(), b"2".to_vec()), ("new".to_string(), b"3".to_vec()), ("keep".to_string(), b"4".to_vec())];
        let (v1, seq) = s.overwrite_state("Obj", "k", new_rows, Some(&v0)).unwrap();
        assert_eq!(seq, last + 1, "one commit");
        assert_eq!(v1, version(&[("keep", b"4"), ("new", b"3")]), "the last value of a name wins");
        // Seen at once, written or not, and the next edit can build on the version it returned.
        assert_eq!(rows(&s, "Obj", "k"), vec![("keep".into(), b"4".to_vec()), ("new".into(), b"3".to_vec())]);
        assert_eq!(s.state_version("Obj", "k").unwrap(), v1);
        let (v2, _) = s.overwrite_state("Obj", "k", vec![("only".into(), b"5".to_vec())], Some(&v1)).unwrap();
        assert_eq!(s.state_version("Obj", "k").unwrap(), v2);
        // Without a version: unconditional. An empty state is a state too.
        let (v3, _) = s.overwrite_state("Obj", "k", vec![], None).unwrap();
        assert_eq!(v3, version(&[]));
        let (v4, _) = s.overwrite_state("Obj", "k", vec![("z".into(), b"9".to_vec())], None).unwrap();
        sync(&s);
        assert_eq!(raw_rows(dir.path(), Cf::State, &keys::state_prefix("Obj", "k")), vec![(keys::state("Obj", "k", "z"), b"9".to_vec())]);
        assert_eq!(s.state_version("Obj", "k").unwrap(), v4);
        // The next invocation of the key loads the edited state.
        let next = obj("inv_n");
        assert!(s.admit(&next, false).unwrap().0);
        assert_eq!(rows(&s, "Obj", "k"), vec![("z".into(), b"9".to_vec())]);
        s.complete(&next, &[set("y", b"8")], None, 0, None, &[]).unwrap();
        s.close().unwrap();
    }
    let (s, _) = reopen(dir.path());
    assert_eq!(rows(&s, "Obj", "k"), vec![("y".into(), b"8".to_vec()), ("z".into(), b"9".to_vec())]);
}

#[test]
fn overwrite_state_is_refused_while_the_key_is_owned() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let o = obj("inv_o");
    s.admit(&o, false).unwrap();
    s.progress(&o, &[set("s", b"1"), AWAKEABLE], &[]).unwrap();
    let before = untouched(&s, dir.path()).0;
    let v = s.state_version("Obj", "k").unwrap();
    let edit = |expected: Option<&str>| {
        let last = s.last_seq();
        let r = s.overwrite_state("Obj", "k", vec![("s".into(), b"2".to_vec())], expected);
        assert_eq!(s.last_seq(), last, "no commit");
        r
    };
    let busy = |r: Result<(String, u64), Error>| match r {
        Err(Error::KeyBusy(msg)) => msg,
        other => panic!("expected KeyBusy, got {other:?}"),
    };
    // Running.
    assert!(busy(edit(Some(&v))).contains("inv_o"));
    assert!(busy(edit(None)).contains("inv_o"));
    // Suspended.
    s.suspend(&o, &[1]).unwrap().unwrap();
    busy(edit(None));
    // Backing off (running again first: an awakeable completion wakes it).
    s.complete_awakeable("inv_o", 1, &Outcome::ok(b"")).unwrap();
    s.backoff(&o, 1, now_ms() + 60_000).unwrap();
    busy(edit(Some(&v)));
    // A workflow run's key likewise; another key of the object is free.
    let run = wf_run("inv_r", "w");
    s.admit(&run, false).unwrap();
    assert!(matches!(s.overwrite_state("Wf", "w", vec![], None), Err(Error::KeyBusy(_))));
    assert_eq!(before, untouched(&s, dir.path()).0, "nothing written");
    assert!(raw_rows(dir.path(), Cf::State, &keys::state_prefix("Obj", "k")).len() == 1);
    s.overwrite_state("Obj", "other", vec![], None).unwrap();
    drop(s);
    // After a restart the owner found on disk still holds the key.
    let (s, _) = reopen(dir.path());
    assert!(matches!(s.overwrite_state("Obj", "k", vec![], None), Err(Error::KeyBusy(_))));
    assert!(matches!(s.overwrite_state("Wf", "w", vec![], None), Err(Error::KeyBusy(_))));
}

#[test]
fn overwrite_state_is_refused_while_invocations_wait_for_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (o, w) = (obj("inv_o"), obj("inv_w"));
    s.admit(&o, false).unwrap();
    assert!(!s.admit(&w, false).unwrap().0);
    s.complete(&o, &[set("s", b"1")], None, 0, None, &[]).unwrap(); // hands the key to inv_w
    assert!(matches!(s.overwrite_state("Obj", "k", vec![], None), Err(Error::KeyBusy(_))));
    // The last one finishes: the key is free (once its commit is durable, for a checked edit).
    s.complete(&w, &[set("s", b"2")], None, 0, None, &[]).unwrap();
    sync(&s);
    let v = s.state_version("Obj", "k").unwrap();
    assert_eq!(v, version(&[("s", b"2")]));
    assert!(s.overwrite_state("Obj", "k", vec![], Some(&v)).is_ok());
}

#[test]
fn overwrite_state_with_a_stale_version_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let o = obj("inv_o");
    s.admit(&o, false).unwrap();
    s.complete(&o, &[set("s", b"1")], None, 0, None, &[]).unwrap();
    sync(&s);
    let stale = s.state_version("Obj", "k").unwrap();
    let o2 = obj("inv_o2");
    s.admit(&o2, false).unwrap();
    s.complete(&o2, &[set("s", b"2")], None, 0, None, &[]).unwrap();
    let before = untouched(&s, dir.path());
    match s.overwrite_state("Obj", "k", vec![("s".into(), b"3".to_vec())], Some(&stale)) {
        Err(Error::VersionMismatch { expected, found, .. }) => {
            assert_eq!(expected, stale);
            assert_eq!(found, version(&[("s", b"2")]));
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    assert!(matches!(s.overwrite_state("Obj", "k", vec![], Some("garbage")), Err(Error::VersionMismatch { .. })));
    assert_eq!(before, untouched(&s, dir.path()), "nothing written");
}

// ---- purge_invocation

/// Every row of `id` in the tables an invocation owns.
fn rows_of(dir: &Path, id: &str) -> usize {
    raw_rows(dir, Cf::Invocations, &keys::invocation(id)).len()
        + raw_rows(dir, Cf::Journal, &keys::journal_prefix(id)).len()
        + raw_rows(dir, Cf::Journal, &keys::completion_prefix(id)).len()
}

#[test]
fn purge_of_an_unknown_or_unfinished_invocation_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert_eq!(s.purge_invocation("inv_nope").unwrap(), (SIGNAL_UNKNOWN, 0));
    let (o, w) = (obj("inv_o"), obj("inv_w"));
    s.admit(&o, false).unwrap();
    s.progress(&o, &[RUN, AWAKEABLE], &[]).unwrap();
    s.admit(&w, false).unwrap();
    let b = svc("inv_b");
    s.progress(&b, &[RUN], &[]).unwrap();
    s.backoff(&b, 1, now_ms() + 60_000).unwrap();
    sync(&s);
    let last = s.last_seq();
    let rows_before: Vec<usize> = ["inv_o", "inv_w", "inv_b"].iter().map(|id| rows_of(dir.path(), id)).collect();
    for id in ["inv_o", "inv_w", "inv_b"] {
        let (answer, seq) = s.purge_invocation(id).unwrap();
        assert_eq!(answer, PURGE_NOT_COMPLETED, "{id}");
        assert!(seq <= last, "no commit of its own");
    }
    s.suspend(&o, &[1]).unwrap().unwrap();
    assert_eq!(s.purge_invocation("inv_o").unwrap().0, PURGE_NOT_COMPLETED, "suspended");
    sync(&s);
    let rows_after: Vec<usize> = ["inv_o", "inv_w", "inv_b"].iter().map(|id| rows_of(dir.path(), id)).collect();
    assert_eq!(rows_before, rows_after);
    assert!(rows_after.iter().all(|n| *n > 0));
    // Running in memory without a durable point: unknown to the store, as for `cancel`.
    let m = svc("inv_m");
    s.admit(&m, false).unwrap();
    assert_eq!(s.purge_invocation("inv_m").unwrap(), (SIGNAL_UNKNOWN, 0));
}

#[test]
fn purge_of_a_completed_invocation_removes_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let links = Links { idempotency_key: "once".into(), ..Default::default() };
    let i = inv("inv_i", "Svc", "", KIND_SERVICE, links);
    s.admit(&i, true).unwrap();
    s.progress(&i, &[RUN, AWAKEABLE], &[]).unwrap();
    s.complete_awakeable("inv_i", 1, &Outcome::ok(b"v")).unwrap();
    s.complete(&i, &[], Some(b"\"out\""), 0, None, &[]).unwrap();
    let keep = svc("inv_keep");
    s.progress(&keep, &[RUN], &[]).unwrap();
    s.complete(&keep, &[], None, 0, None, &[]).unwrap();
    sync(&s);
    assert!(rows_of(dir.path(), "inv_i") >= 4, "record, 2 entries, 1 completion");
    let (answer, seq) = s.purge_invocation("inv_i").unwrap();
    assert_eq!((answer, seq), (SIGNAL_APPLIED, s.last_seq()));
    s.wait_durable(seq).unwrap();
    assert_eq!(rows_of(dir.path(), "inv_i"), 0);
    assert!(raw_rows(dir.path(), Cf::Idempotency, &keys::IDEMPOTENCY).is_empty());
    assert_eq!(s.idempotency_lookup("Svc", "", "h", "once").unwrap().0, None);
    assert!(rows_of(dir.path(), "inv_keep") > 0, "another invocation stays");
    // Forgotten: signals, attaches, reads and a second purge.
    assert_eq!(s.purge_invocation("inv_i").unwrap(), (SIGNAL_UNKNOWN, 0));
    assert_eq!(s.cancel("inv_i").unwrap(), (SIGNAL_UNKNOWN, 0));
    assert_eq!(s.kill("inv_i").unwrap(), (SIGNAL_UNKNOWN, 0));
    assert!(s.get_invocation("inv_i").unwrap().is_none() && s.get_output("inv_i").unwrap().is_none());
    let a = svc("inv_a");
    s.progress(&a, &[e(entry::ATTACH_INVOCATION, Some("inv_i"), None)], &[]).unwrap();
    assert_eq!(s.take_wakes().last().map(|w| w.code), Some(404));
    drop(s);
    let (s, _) = reopen(dir.path());
    assert!(s.get_invocation("inv_i").unwrap().is_none());
    assert_eq!(s.purge_invocation("inv_i").unwrap(), (SIGNAL_UNKNOWN, 0));
}

#[test]
fn purge_right_after_completion_forgets_the_finished_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // Never persisted before its completion, which may not be written yet.
    let i = svc("inv_i");
    s.admit(&i, false).unwrap();
    let (done, _) = s.complete(&i, &[], Some(b"1"), 0, None, &[]).unwrap();
    let (answer, seq) = s.purge_invocation("inv_i").unwrap();
    assert_eq!(answer, SIGNAL_APPLIED);
    assert!(seq > done);
    let (again, again_seq) = s.purge_invocation("inv_i").unwrap();
    assert_eq!(again, SIGNAL_UNKNOWN);
    assert!(again_seq == seq || again_seq == 0, "the purge to wait for, if not durable yet");
    let (k, kseq) = s.kill("inv_i").unwrap();
    assert_eq!(k, SIGNAL_UNKNOWN, "not answered from the finished invocations any more");
    assert!(kseq == seq || kseq == 0);
    let a = svc("inv_a");
    s.progress(&a, &[e(entry::ATTACH_INVOCATION, Some("inv_i"), None)], &[]).unwrap();
    let w = s.take_wakes();
    assert_eq!(w.last().map(|w| (w.inv.id.as_str(), w.code)), Some(("inv_a", 404)), "its result is forgotten too");
    sync(&s);
    assert_eq!(rows_of(dir.path(), "inv_i"), 0);
}

#[test]
fn purge_of_a_workflow_run_takes_its_key_unless_a_newer_run_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let r1 = wf_run("inv_r1", "w");
    s.admit(&r1, false).unwrap();
    s.progress(&r1, &[set("s", b"1"), e(entry::COMPLETE_PROMISE, Some("p"), Some(b"v"))], &[]).unwrap();
    s.complete(&r1, &[], None, 0, None, &[]).unwrap();
    let other = wf_run("inv_x", "x");
    s.admit(&other, false).unwrap();
    s.complete(&other, &[set("s", b"x")], None, 0, None, &[]).unwrap();
    sync(&s);
    assert_eq!(s.purge_invocation("inv_r1").unwrap().0, SIGNAL_APPLIED);
    sync(&s);
    assert!(raw_rows(dir.path(), Cf::State, &keys::state_prefix("Wf", "w")).is_empty());
    assert!(raw_rows(dir.path(), Cf::Promises, &keys::promise_prefix("Wf", "w")).is_empty());
    assert!(raw_rows(dir.path(), Cf::Idempotency, &keys::idempotency("Wf", "w", "run", "")).is_empty());
    assert_eq!(rows_of(dir.path(), "inv_r1"), 0);
    assert_eq!(raw_rows(dir.path(), Cf::State, &keys::state_prefix("Wf", "x")).len(), 1, "another key stays");

    // A newer run holds the key (the store does not check idempotency rows at admission).
    let r2 = wf_run("inv_r2", "x");
    s.admit(&r2, false).unwrap();
    s.progress(&r2, &[set("t", b"2")], &[]).unwrap();
    assert_eq!(s.purge_invocation("inv_x").unwrap().0, SIGNAL_APPLIED);
    sync(&s);
    assert_eq!(rows_of(dir.path(), "inv_x"), 0);
    assert_eq!(raw_rows(dir.path(), Cf::State, &keys::state_prefix("Wf", "x")).len(), 2, "the key's state stays with the newer run");
    assert_eq!(s.idempotency_lookup("Wf", "x", "run", "").unwrap().0.as_deref(), Some("inv_r2"));
}
