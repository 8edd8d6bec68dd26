//! What every target asserts of a decoder that refuses its input: the error is
//! `Error::Corrupt` with a message naming what was being decoded, never another
//! variant. A panic, a timeout or an allocation over libFuzzer's limits
//! (`-malloc_limit_mb`, `-rss_limit_mb`, see scripts/fuzz) is reported by libFuzzer.

use stead_core::Error;

/// Panic unless `r` is Ok, or an `Error::Corrupt` whose message contains `names`.
pub fn ok_or_corrupt<T>(r: &Result<T, Error>, names: &str) {
    if let Err(e) = r {
        match e {
            Error::Corrupt(msg) if msg.contains(names) => {}
            other => panic!("decoding a {names} gave {other:?}, not Error::Corrupt naming it"),
        }
    }
}
