//! The values of the invocations table, read the three ways the store reads them:
//! `invocation::peek` (recovery and purge filter every record with it),
//! `invocation::decode_record` (prost) and `InvocationMeta::from_record` (recovery,
//! `get_invocation`). Where peek and the full decode both read a record they agree;
//! a record that from_record accepts is written back by `encode_record_into` (the
//! store's encoder, which splices pre-encoded fixed fields) as the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stead_core::invocation::{self, Completion, InvState, InvocationMeta};
use stead_core_fuzz::ok_or_corrupt;

fuzz_target!(|bytes: &[u8]| {
    let peeked = invocation::peek(bytes);
    ok_or_corrupt(&peeked, "invocation record");
    let decoded = invocation::decode_record(bytes);
    ok_or_corrupt(&decoded, "invocation record");
    let Ok(rec) = decoded else { return };
    if let Ok(p) = peeked {
        assert_eq!((p.status, p.completed_ms, p.retention_ms), (rec.status, rec.completed_ms, rec.retention_ms));
    }
    let meta = InvocationMeta::from_record(rec.clone());
    ok_or_corrupt(&meta, "invocation record");
    let Ok(meta) = meta else { return };
    let completion = Completion {
        output: rec.output.as_deref(),
        failure_code: rec.failure_code,
        failure_message: Some(rec.failure_message.as_str()),
        completed_ms: rec.completed_ms,
        retention_ms: rec.retention_ms,
    };
    let st: InvState = meta.state();
    let mut buf = Vec::new();
    meta.encode_record_into(&st, rec.modified_ms, Some(&completion), &mut buf);
    assert_eq!(invocation::decode_record(&buf).expect("a re-encoded record decodes"), rec);
});
