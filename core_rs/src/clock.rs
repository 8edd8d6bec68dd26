//! The wall clock every reader of "now" in core_rs (and, through `runtime._core`, in
//! the runtime and an in-process SDK) consults: the system clock plus an offset. The
//! process's clock ([`now_ms`]) has an offset of 0 except under a time-skipping test
//! harness (pysdk/harness.py `create_test_harness(app, time_skipping=True)`), which moves
//! it forward so that timers, completion times and retention follow a virtual clock
//! without anything patched from outside. Monotonic clocks (timeouts measured by the
//! runtime) do not read it.

use std::sync::atomic::{AtomicI64, Ordering};

/// The system clock plus an offset in milliseconds.
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub const fn new() -> Self {
        Clock { offset_ms: AtomicI64::new(0) }
    }

    /// Now, in milliseconds since the Unix epoch: the system clock plus the offset.
    pub fn now_ms(&self) -> u64 {
        let now = system_ms() as i64 + self.offset_ms.load(Ordering::Relaxed);
        now.max(0) as u64
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn set_offset_ms(&self, ms: i64) {
        self.offset_ms.store(ms, Ordering::Relaxed);
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's clock.
static CLOCK: Clock = Clock::new();

/// The system clock in milliseconds since the Unix epoch, without any offset.
pub fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now by the process's clock, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    CLOCK.now_ms()
}

/// The process's clock offset, in milliseconds.
pub fn offset_ms() -> i64 {
    CLOCK.offset_ms()
}

/// Set the process's clock offset (every reader of "now" sees it at once).
pub fn set_offset_ms(ms: i64) {
    CLOCK.set_offset_ms(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    // A clock of its own: the process's is shared by every test running beside this one.
    #[test]
    fn the_offset_moves_now() {
        let clock = Clock::new();
        let before = clock.now_ms();
        assert!(before.abs_diff(system_ms()) < DAY_MS);
        clock.set_offset_ms(30 * DAY_MS as i64);
        assert_eq!(clock.offset_ms(), 30 * DAY_MS as i64);
        assert!(clock.now_ms() >= before + 30 * DAY_MS);
        clock.set_offset_ms(0);
        assert!(clock.now_ms() < before + DAY_MS);
    }

    #[test]
    fn now_never_goes_below_the_epoch() {
        let clock = Clock::new();
        clock.set_offset_ms(i64::MIN / 2);
        assert_eq!(clock.now_ms(), 0);
    }

    #[test]
    fn the_process_clock_starts_real() {
        assert_eq!(offset_ms(), 0); // nothing in core_rs's own tests moves it
        assert!(now_ms().abs_diff(system_ms()) < DAY_MS);
    }
}
