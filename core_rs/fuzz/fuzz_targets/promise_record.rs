//! `PromiseRecord` (proto/stead/journal.proto), the values of the promises table,
//! decoded by prost as tables/promises.rs does. A record that decodes reads back
//! unchanged once encoded again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use stead_core::proto::PromiseRecord;
use stead_core::Error;
use stead_core_fuzz::ok_or_corrupt;

fuzz_target!(|bytes: &[u8]| {
    let r = PromiseRecord::decode(bytes).map_err(Error::from);
    ok_or_corrupt(&r, "decode Protobuf message");
    if let Ok(rec) = r {
        assert_eq!(PromiseRecord::decode(rec.encode_to_vec().as_slice()).expect("re-encoded record decodes"), rec);
    }
});
