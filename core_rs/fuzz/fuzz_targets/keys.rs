//! Every key decoder of core_rs/src/keys.rs (the keys of every table: invocations,
//! journal, completions, state, inbox, timers, idempotency, promises) on the same
//! bytes. A key that decodes must be the one its encoder writes for those fields:
//! keys are canonical, so a scan never sees two keys for one row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stead_core::keys;
use stead_core_fuzz::ok_or_corrupt;

fuzz_target!(|key: &[u8]| {
    let r = keys::decode_invocation(key);
    ok_or_corrupt(&r, "invocation key");
    if let Ok(id) = r {
        assert_eq!(keys::invocation(id), key);
    }
    let r = keys::decode_journal(key);
    ok_or_corrupt(&r, "journal key");
    if let Ok((id, index)) = r {
        assert_eq!(keys::journal(id, index), key);
    }
    let r = keys::decode_completion(key);
    ok_or_corrupt(&r, "completion key");
    if let Ok((id, index)) = r {
        assert_eq!(keys::completion(id, index), key);
    }
    let r = keys::decode_state(key);
    ok_or_corrupt(&r, "state key");
    if let Ok((service, object, name)) = r {
        assert_eq!(keys::state(service, object, name), key);
    }
    let r = keys::decode_inbox(key);
    ok_or_corrupt(&r, "inbox key");
    if let Ok((service, object, seq)) = r {
        assert_eq!(keys::inbox(service, object, seq), key);
    }
    let r = keys::decode_timer(key);
    ok_or_corrupt(&r, "timer key");
    if let Ok((fire_ms, id, entry)) = r {
        assert_eq!(keys::timer(fire_ms, id, entry), key);
    }
    let r = keys::decode_idempotency(key);
    ok_or_corrupt(&r, "idempotency key");
    if let Ok((service, object, handler, idem)) = r {
        assert_eq!(keys::idempotency(service, object, handler, idem), key);
    }
    let r = keys::decode_promise(key);
    ok_or_corrupt(&r, "promise key");
    if let Ok((workflow, object, name)) = r {
        assert_eq!(keys::promise(workflow, object, name), key);
    }
});
