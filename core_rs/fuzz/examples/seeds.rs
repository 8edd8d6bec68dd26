//! Writes the seed corpus (corpus/<target>/seed-*) from stead_core's own encoders,
//! so every seed is bytes a real store writes. Run it after a change to an encoding
//! (and bump SCHEMA_VERSION if the change is incompatible):
//!
//!     cd core_rs/fuzz && cargo run --example seeds
//!
//! It replaces only the files named seed-*; inputs added by hand or kept from a
//! fuzz run (regressions) stay.

use std::fs;
use std::path::Path;

use prost::Message;
use stead_core::entry::{self, EntryRef};
use stead_core::invocation::{
    Completion, InvState, InvocationMeta, Links, KIND_EXCLUSIVE, KIND_SERVICE, KIND_SHARED, KIND_WORKFLOW,
    STATUS_BACKING_OFF, STATUS_COMPLETED, STATUS_INBOXED, STATUS_PAUSED, STATUS_RUNNING, STATUS_SCHEDULED,
    STATUS_SUSPENDED,
};
use stead_core::keys;
use stead_core::proto::{PromiseRecord, PromiseWaiter};

fn write(target: &str, seeds: Vec<(&str, Vec<u8>)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    for old in fs::read_dir(&dir).unwrap() {
        let path = old.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("seed-") {
            fs::remove_file(path).unwrap();
        }
    }
    let n = seeds.len();
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
    println!("corpus/{target}: {n} seeds");
}

fn keys() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("invocation", keys::invocation("inv_01JZ8Q3V5WQ2XK7Y9T4M6N8P0R")),
        ("invocation-empty", keys::invocation("")),
        ("journal", keys::journal("inv_01JZ8Q3V5WQ2XK7Y9T4M6N8P0R", 7)),
        ("journal-max", keys::journal("i", u32::MAX)),
        ("completion", keys::completion("inv_01JZ8Q3V5WQ2XK7Y9T4M6N8P0R", 3)),
        ("state", keys::state("Cart", "alice", "items")),
        ("state-unicode", keys::state("Çart", "ålice", "ïtems")),
        ("state-empty-name", keys::state("Counter", "", "")),
        ("inbox", keys::inbox("Cart", "alice", 42)),
        ("timer-sleep", keys::timer(1_760_000_000_000, "inv_01", 4)),
        ("timer-retry", keys::timer(1_760_000_000_000, "inv_01", keys::RETRY_TIMER_ENTRY)),
        ("timer-scheduled", keys::timer(0, "inv_02", keys::SCHEDULED_TIMER_ENTRY)),
        ("idempotency", keys::idempotency("Payments", "", "charge", "order-17")),
        ("promise", keys::promise("Signup", "bob", "email-verified")),
        ("meta", keys::meta("schema_version")),
    ]
}

fn journal_entries() -> Vec<(&'static str, Vec<u8>)> {
    let sleep_at = 1_760_000_000_000u64.to_be_bytes();
    let e = |kind, name, value, code, message| EntryRef { kind, name, value, code, message };
    let entries = [
        ("get-state", e(entry::GET_STATE, Some("count"), Some(&b"41"[..]), 0, None)),
        ("get-state-empty", e(entry::GET_STATE, Some("count"), None, 0, None)),
        ("set-state", e(entry::SET_STATE, Some("count"), Some(b"42"), 0, None)),
        ("clear-state", e(entry::CLEAR_STATE, Some("count"), None, 0, None)),
        ("clear-all", e(entry::CLEAR_ALL, None, None, 0, None)),
        ("state-keys", e(entry::STATE_KEYS, None, Some(b"[\"a\",\"b\"]"), 0, None)),
        ("run", e(entry::RUN, Some("charge"), Some(b"{\"ok\":true}"), 0, None)),
        ("run-failed", e(entry::RUN, Some("charge"), None, 409, Some("card declined"))),
        ("sleep", e(entry::SLEEP, None, Some(&sleep_at), 0, None)),
        ("call", e(entry::CALL, Some("Cart/add"), Some(b"inv_child"), 0, None)),
        ("send", e(entry::SEND, Some("Mail/send"), Some(b"inv_sent"), 0, None)),
        ("awakeable", e(entry::AWAKEABLE, None, None, 0, None)),
        ("complete-awakeable", e(entry::COMPLETE_AWAKEABLE, Some("sign_1abc"), Some(b"\"yes\""), 0, None)),
        ("get-promise", e(entry::GET_PROMISE, Some("email-verified"), None, 0, None)),
        ("peek-promise", e(entry::PEEK_PROMISE, Some("p"), Some(b"1"), 0, None)),
        ("complete-promise-failed", e(entry::COMPLETE_PROMISE, Some("p"), None, 500, Some("no"))),
        ("cancel", e(entry::CANCEL, None, None, 0, None)),
        ("combinator", e(entry::COMBINATOR, None, Some(b"[3,1]"), 0, None)),
        ("cancel-invocation", e(entry::CANCEL_INVOCATION, Some("inv_y"), None, 0, None)),
        ("attach-invocation", e(entry::ATTACH_INVOCATION, Some("inv_z"), None, 0, None)),
        // Completion rows: the awaited entry's kind with the outcome only.
        ("completion-sleep", e(entry::SLEEP, None, Some(b""), 0, None)),
        ("completion-call-failed", e(entry::CALL, None, None, 404, Some("handler Nope/x not found"))),
        ("completion-awakeable", e(entry::AWAKEABLE, None, Some(b"{\"v\":1}"), 0, None)),
    ];
    entries
        .into_iter()
        .map(|(name, e)| {
            let mut buf = Vec::new();
            entry::encode_into(&e, &mut buf);
            (name, buf)
        })
        .collect()
}

fn invocation_records() -> Vec<(&'static str, Vec<u8>)> {
    let headers = vec![("content-type".to_string(), "application/json".to_string()), ("x-empty".into(), "".into())];
    let cart = InvocationMeta::new(
        "inv_cart".into(), "Cart".into(), "add".into(), "alice".into(), KIND_EXCLUSIVE, b"{\"item\":1}", headers, 1_760_000_000_000,
    )
    .unwrap();
    let greeter = InvocationMeta::new("inv_svc".into(), "Greeter".into(), "greet".into(), "".into(), KIND_SERVICE, b"", vec![], 5).unwrap();
    let links = Links { caller_id: "inv_cart".into(), caller_entry: 3, idempotency_key: "order-17".into() };
    let child =
        InvocationMeta::with_links("inv_child".into(), "Cart".into(), "get".into(), "bob".into(), KIND_SHARED, b"null", vec![], 9, links)
            .unwrap();
    let flow = InvocationMeta::new("inv_wf".into(), "Signup".into(), "run".into(), "bob".into(), KIND_WORKFLOW, b"\"bob\"", vec![], 7).unwrap();
    flow.set_deployment("dp_01");

    let st = |status| InvState { status, persisted: true, ..Default::default() };
    let record = |m: &InvocationMeta, st: InvState, done: Option<Completion<'_>>| {
        let mut buf = Vec::new();
        m.encode_record_into(&st, 1_760_000_000_500, done.as_ref(), &mut buf);
        buf
    };
    let ok = Completion { output: Some(b"{\"total\":3}"), completed_ms: 1_760_000_001_000, ..Default::default() };
    let failed = Completion {
        output: None,
        failure_code: 409,
        failure_message: Some("out of stock"),
        completed_ms: 1_760_000_001_000,
        retention_ms: Some(0),
    };
    vec![
        ("inboxed", record(&cart, InvState { inbox_seq: 12, ..st(STATUS_INBOXED) }, None)),
        ("running", record(&cart, InvState { journal_len: 4, ..st(STATUS_RUNNING) }, None)),
        ("backing-off", record(&cart, InvState { retry_count: 2, next_retry_ms: 1_760_000_002_000, ..st(STATUS_BACKING_OFF) }, None)),
        ("suspended-cancelled", record(&child, InvState { journal_len: 2, cancel_requested: true, ..st(STATUS_SUSPENDED) }, None)),
        ("scheduled", record(&greeter, InvState { next_retry_ms: 1_760_000_060_000, ..st(STATUS_SCHEDULED) }, None)),
        ("paused", record(&flow, InvState { retry_count: 10, ..st(STATUS_PAUSED) }, None)),
        ("completed", record(&cart, st(STATUS_COMPLETED), Some(ok))),
        ("completed-failed", record(&child, st(STATUS_COMPLETED), Some(failed))),
        ("completed-empty-output", record(&greeter, st(STATUS_COMPLETED), Some(Completion { output: Some(b""), ..ok }))),
    ]
}

fn promise_records() -> Vec<(&'static str, Vec<u8>)> {
    let waiter = |id: &str, entry| PromiseWaiter { invocation_id: id.into(), entry };
    let records = [
        ("pending", PromiseRecord { waiters: vec![waiter("inv_wf", 3), waiter("inv_other", 0)], ..Default::default() }),
        ("resolved", PromiseRecord { completed: true, value: Some(b"\"ok\"".to_vec()), ..Default::default() }),
        ("resolved-empty", PromiseRecord { completed: true, value: Some(vec![]), ..Default::default() }),
        ("rejected", PromiseRecord { completed: true, failure_code: 500, failure_message: "expired".into(), ..Default::default() }),
    ];
    records.into_iter().map(|(name, r)| (name, r.encode_to_vec())).collect()
}

fn main() {
    write("keys", keys());
    write("journal_entry", journal_entries());
    write("invocation_record", invocation_records());
    write("promise_record", promise_records());
}
