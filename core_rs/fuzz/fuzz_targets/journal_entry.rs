//! `entry::decode`: the values of the journal table and of completion rows (a
//! completion is a `JournalEntry` of the awaited entry's kind). An entry that
//! decodes has a known kind, and reads back unchanged once written again by
//! `entry::encode_into` (the encoder every journal write uses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stead_core::entry;
use stead_core_fuzz::ok_or_corrupt;

fuzz_target!(|bytes: &[u8]| {
    let r = entry::decode(bytes);
    ok_or_corrupt(&r, "journal entry");
    if let Ok(e) = r {
        assert!(entry::check_kind(e.kind).is_ok(), "decoded an entry of unknown kind {}", e.kind);
        let mut buf = Vec::new();
        entry::encode_into(&e.as_ref(), &mut buf);
        assert_eq!(entry::decode(&buf).expect("re-encoded entry decodes"), e);
    }
});
