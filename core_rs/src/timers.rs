//! The in-memory index of timer deadlines (retry backoffs today; sleeps and
//! delayed sends use the same key shape). The `timers` table is the durable
//! copy; this index is rebuilt from it at start so that the runtime's timer
//! loop can ask for the earliest deadline without touching RocksDB.

use std::collections::BTreeMap;

/// (fire_ms, invocation id, journal entry index or `keys::RETRY_TIMER_ENTRY`),
/// ordered like the timers table's keys.
pub type TimerKey = (u64, String, u32);

#[derive(Debug)]
pub struct TimerIndex<V> {
    by_time: BTreeMap<TimerKey, V>,
}

impl<V> Default for TimerIndex<V> {
    fn default() -> Self {
        TimerIndex { by_time: BTreeMap::new() }
    }
}

impl<V> TimerIndex<V> {
    pub fn insert(&mut self, fire_ms: u64, inv_id: &str, entry: u32, v: V) {
        self.by_time.insert((fire_ms, inv_id.to_string(), entry), v);
    }

    pub fn remove(&mut self, fire_ms: u64, inv_id: &str, entry: u32) -> Option<V> {
        self.by_time.remove(&(fire_ms, inv_id.to_string(), entry))
    }

    /// The earliest deadline.
    pub fn next_ms(&self) -> Option<u64> {
        self.by_time.keys().next().map(|k| k.0)
    }

    /// Remove and return every timer due at `now_ms`, earliest first.
    pub fn pop_due(&mut self, now_ms: u64) -> Vec<(TimerKey, V)> {
        let mut due = Vec::new();
        while let Some(entry) = self.by_time.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            due.push(entry.remove_entry());
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_due_timers_in_time_order_and_next_is_the_minimum() {
        let mut t = TimerIndex::default();
        assert_eq!(t.next_ms(), None);
        t.insert(300, "c", 0, "c300");
        t.insert(100, "z", 0, "z100");
        t.insert(200, "a", 1, "a200");
        t.insert(100, "a", u32::MAX, "a100");
        assert_eq!(t.next_ms(), Some(100));
        assert!(t.pop_due(99).is_empty());
        let due: Vec<&str> = t.pop_due(200).into_iter().map(|(_, v)| v).collect();
        assert_eq!(due, vec!["a100", "z100", "a200"]);
        assert_eq!(t.next_ms(), Some(300));
        assert_eq!(t.remove(300, "c", 0), Some("c300"));
        assert!(t.is_empty());
        assert_eq!(t.next_ms(), None);
    }
}
