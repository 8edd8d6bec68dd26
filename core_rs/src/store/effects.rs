//! What one commit does: [`Tx`] gathers the rows of one commit together with
//! the in-memory changes and wakes that go with them, and knows the effects of
//! each journal entry kind, of completing an awaited entry, of admitting a new
//! invocation and of finishing one.

use std::sync::Arc;

use crate::admission::{Admit, Release};
use crate::awaiting::{Early, Pending, Wait, Wake, WAKE_DELIVER, WAKE_RUN};
use crate::commit::{Commit, Writer};
use crate::entry::{self, EntryRef};
use crate::error::Result;
use crate::invocation::{
    Completion, InvState, InvocationMeta, STATUS_BACKING_OFF, STATUS_COMPLETED, STATUS_INBOXED, STATUS_RUNNING, STATUS_SCHEDULED,
    STATUS_SUSPENDED,
};
use crate::keys::{self, RETRY_TIMER_ENTRY, SCHEDULED_TIMER_ENTRY};
use crate::proto::PromiseWaiter;
use crate::tables::completions::{self, Outcome};
use crate::tables::{idempotency, inbox, invocations, promises, timers};

use super::{AttachReads, Finished, Inner};

/// The failure message of a second completion of a workflow promise.
pub const PROMISE_ALREADY_COMPLETED: &str = "promise already completed";
/// The failure code of an attach to an unknown invocation (Restate's).
pub const ATTACH_NOT_FOUND_CODE: u32 = 404;
/// The failure code of an invocation's attach to itself, which would wait forever.
pub const ATTACH_SELF_CODE: u32 = 400;

/// One commit being built under the store lock.
pub(super) struct Tx<'a> {
    pub inner: &'a mut Inner,
    writer: &'a Writer,
    pub c: Commit,
    pub now: u64,
    wakes_from: usize,
}

impl<'a> Tx<'a> {
    pub fn new(inner: &'a mut Inner, writer: &'a Writer, c: Commit, now: u64) -> Self {
        let wakes_from = inner.wakes.len();
        Tx { inner, writer, c, now, wakes_from }
    }

    /// The sequence number `push` will return: every push happens under the store lock.
    pub fn next_seq(&self) -> u64 {
        self.writer.last_seq() + 1
    }

    /// The last sequence number handed out: every decision made so far is in a
    /// commit up to it.
    pub fn last_seq(&self) -> u64 {
        self.writer.last_seq()
    }

    /// Queue the commit; its wakes get its sequence number.
    pub fn push(self) -> Result<u64> {
        let Tx { inner, writer, c, wakes_from, .. } = self;
        match writer.push(c) {
            Ok(seq) => {
                for w in &mut inner.wakes[wakes_from..] {
                    w.seq = seq;
                }
                Ok(seq)
            }
            Err(e) => {
                inner.wakes.truncate(wakes_from);
                Err(e)
            }
        }
    }

    pub fn wake(&mut self, what: i32, inv: &Arc<InvocationMeta>, index: u32, o: &Outcome<'_>) {
        self.inner.wakes.push(Wake {
            what,
            inv: inv.clone(),
            index,
            value: o.value.map(<[u8]>::to_vec),
            code: o.code,
            message: o.message.map(str::to_string),
            seq: 0,
        });
    }

    /// Write `inv`'s record in state `st` (unfinished) and adopt `st`.
    pub fn set_state(&mut self, inv: &Arc<InvocationMeta>, st: InvState) {
        invocations::put(&mut self.c, inv, &st, self.now, None);
        inv.update(|s| *s = st);
    }

    /// Track a persisted invocation (no-op if tracked).
    pub fn register(&mut self, inv: &Arc<InvocationMeta>) {
        self.inner.live.insert(inv);
    }

    /// Track a newly admitted invocation and write its idempotency row, if it has one.
    pub fn register_new(&mut self, inv: &Arc<InvocationMeta>) {
        self.register(inv);
        if inv.has_idempotency_row() {
            let key = keys::idempotency(&inv.service, &inv.key, &inv.handler, &inv.idempotency_key);
            idempotency::put(&mut self.c, &key, &inv.id);
            let seq = self.next_seq();
            self.inner.idempotency.maybe_prune(self.writer.durable_seq());
            self.inner.idempotency.put(key, Some(inv.id.clone()), seq);
        }
    }

    /// Write an admission decision: running (and a WAKE_RUN if `wake`) or inboxed.
    /// Returns whether it runs now.
    pub fn place(&mut self, inv: &Arc<InvocationMeta>, decision: Admit, wake: bool) -> bool {
        let st = InvState { persisted: true, next_retry_ms: 0, ..inv.state() };
        match decision {
            Admit::RunNow => {
                self.set_state(inv, InvState { status: STATUS_RUNNING, ..st });
                if wake {
                    self.wake(WAKE_RUN, inv, 0, &Outcome::default());
                }
                true
            }
            Admit::Inboxed(inbox_seq) => {
                inbox::put(&mut self.c, &inv.service, &inv.key, inbox_seq, &inv.id);
                self.set_state(inv, InvState { status: STATUS_INBOXED, inbox_seq, ..st });
                false
            }
        }
    }

    pub fn schedule(&mut self, inv: &Arc<InvocationMeta>, fire_ms: u64) {
        let st = InvState { status: STATUS_SCHEDULED, next_retry_ms: fire_ms, persisted: true, ..inv.state() };
        self.set_state(inv, st);
        timers::put(&mut self.c, fire_ms, &inv.id, SCHEDULED_TIMER_ENTRY);
        self.inner.timers.insert(fire_ms, &inv.id, SCHEDULED_TIMER_ENTRY, inv.clone());
    }

    /// A callee of a CALL/SEND entry: written in the caller's commit and admitted.
    pub fn admit_child(&mut self, child: &Arc<InvocationMeta>, fire_ms: u64) {
        self.register_new(child);
        if fire_ms > 0 {
            self.schedule(child, fire_ms);
        } else {
            let decision = self.inner.admission.admit(child);
            self.place(child, decision, true);
        }
    }

    /// If `inv` waits for a retry timer, delete its row and index entry.
    pub fn cancel_retry_timer(&mut self, inv: &InvocationMeta, st: &InvState) {
        if st.status == STATUS_BACKING_OFF {
            timers::delete(&mut self.c, st.next_retry_ms, &inv.id, RETRY_TIMER_ENTRY);
            self.inner.timers.remove(st.next_retry_ms, &inv.id, RETRY_TIMER_ENTRY);
        }
    }

    /// Write the completion of entry `index` of `inv` and wake it according to
    /// its status: running -> WAKE_DELIVER; suspended -> running + WAKE_RUN;
    /// backing off or paused -> nothing (its retry or its resume replays the completion).
    pub fn deliver(&mut self, inv: &Arc<InvocationMeta>, index: u32, kind: i32, o: &Outcome<'_>) {
        completions::put(&mut self.c, &inv.id, index, kind, o);
        let st = inv.state();
        match st.status {
            STATUS_RUNNING => self.wake(WAKE_DELIVER, inv, index, o),
            STATUS_SUSPENDED => {
                self.set_state(inv, InvState { status: STATUS_RUNNING, ..st });
                self.wake(WAKE_RUN, inv, index, o);
            }
            _ => {}
        }
    }

    /// Complete pending entry `index` of `inv_id`. False if it is not pending
    /// (already completed, or the invocation finished).
    pub fn complete_entry(&mut self, inv_id: &str, index: u32, o: &Outcome<'_>) -> bool {
        let Some(p) = self.inner.live.take(inv_id, index) else { return false };
        let meta = self.inner.live.meta(inv_id).expect("a pending entry's invocation is tracked").clone();
        if let Wait::Timer(fire_ms) = p.wait {
            timers::delete(&mut self.c, fire_ms, inv_id, index);
            self.inner.timers.remove(fire_ms, inv_id, index);
        }
        self.deliver(&meta, index, p.kind, o);
        true
    }

    /// The effects of `entries`, journaled by `inv` from index `start`, beyond
    /// the state table (see `progress` in runtime/_core.pyi). With `finishing`
    /// the invocation completes in this commit: nothing new waits and its own
    /// entries get no completions. `attach_reads`: what RocksDB holds for the
    /// attach targets that memory cannot answer (`Inner::read_attach_targets`).
    pub fn apply_entries(
        &mut self,
        inv: &Arc<InvocationMeta>,
        start: u32,
        entries: &[EntryRef<'_>],
        finishing: bool,
        attach_reads: &AttachReads,
    ) {
        for (i, e) in entries.iter().enumerate() {
            let index = start + i as u32;
            let waits = |kind, wait| Pending { kind, wait };
            match e.kind {
                entry::SLEEP if !finishing => {
                    let fire_ms = entry::sleep_fire_ms(e.value).expect("checked");
                    timers::put(&mut self.c, fire_ms, &inv.id, index);
                    self.inner.timers.insert(fire_ms, &inv.id, index, inv.clone());
                    self.inner.live.await_entry(&inv.id, index, waits(e.kind, Wait::Timer(fire_ms)));
                }
                entry::CALL if !finishing => {
                    let callee = std::str::from_utf8(e.value.unwrap_or_default()).expect("checked").to_string();
                    self.inner.live.await_entry(&inv.id, index, waits(e.kind, Wait::Callee(callee)));
                }
                entry::AWAKEABLE if !finishing => {
                    self.inner.live.await_entry(&inv.id, index, waits(e.kind, Wait::Other));
                }
                entry::COMPLETE_AWAKEABLE => {
                    let o = Outcome { value: e.value, code: e.code, message: e.message };
                    // Not applicable (already completed, unknown, ...): nothing to do.
                    if let Some((target, at)) = e.name.and_then(awakeable_target) {
                        let _ = self.resolve_awakeable(&target, at, &o);
                    }
                }
                entry::GET_PROMISE if !finishing => self.get_promise(inv, index, e.name.unwrap_or("")),
                entry::COMPLETE_PROMISE => {
                    let o = Outcome { value: e.value, code: e.code, message: e.message };
                    let accepted = self.complete_promise(inv, e.name.unwrap_or(""), &o);
                    if !finishing {
                        let own = if accepted { Outcome::ok(b"") } else { Outcome::failed(409, PROMISE_ALREADY_COMPLETED) };
                        self.deliver(inv, index, e.kind, &own);
                    }
                }
                entry::CANCEL if !finishing => {
                    let st = inv.state();
                    if st.cancel_requested {
                        self.set_state(inv, InvState { cancel_requested: false, ..st });
                    }
                }
                entry::CANCEL_INVOCATION => {
                    self.cancel(e.name.unwrap_or(""));
                }
                entry::ATTACH_INVOCATION if !finishing => self.attach(inv, index, e.name.unwrap_or(""), attach_reads),
                _ => {}
            }
        }
    }

    /// The early completions (see `resolve_awakeable`) at the indices `entries` take,
    /// journaled by `inv` from `start`. Those whose entry is not an AWAKEABLE are
    /// dropped (their rows deleted here, before the entries' own effects may write
    /// a completion at that index); the awakeable ones are returned, for
    /// `deliver_early` once the entries are applied.
    pub fn take_early(&mut self, inv: &InvocationMeta, start: u32, entries: &[EntryRef<'_>]) -> Vec<(u32, Early)> {
        let mut early = self.inner.live.take_early(&inv.id, start, start + entries.len() as u32);
        early.retain(|(index, _)| {
            let awakeable = entries[(index - start) as usize].kind == entry::AWAKEABLE;
            if !awakeable {
                completions::delete(&mut self.c, &inv.id, *index);
            }
            awakeable
        });
        early
    }

    /// Complete the AWAKEABLE entries just journaled that had early completions:
    /// at once, in this commit, like a GET_PROMISE of a completed promise.
    pub fn deliver_early(&mut self, inv: &InvocationMeta, early: Vec<(u32, Early)>) {
        for (index, e) in early {
            let o = Outcome { value: e.value.as_deref(), code: e.code, message: e.message.as_deref() };
            self.complete_entry(&inv.id, index, &o);
        }
    }

    /// ATTACH_INVOCATION entry `index` of `inv` waits for `target`'s result: given
    /// now if the target is done, else by the target's finishing commit.
    fn attach(&mut self, inv: &Arc<InvocationMeta>, index: u32, target: &str, attach_reads: &AttachReads) {
        let kind = entry::ATTACH_INVOCATION;
        if target == inv.id {
            let message = format!("invocation {target} cannot attach to itself: it would wait for its own result forever");
            self.deliver(inv, index, kind, &Outcome::failed(ATTACH_SELF_CODE, &message));
            return;
        }
        if self.inner.live.get(target).is_some() {
            self.inner.live.await_entry(&inv.id, index, Pending { kind, wait: Wait::Attach(target.to_string()) });
            return;
        }
        // Finished: from memory until its completed record is durable, else as read.
        let done = match self.inner.finished.get_with_seq(target.as_bytes()) {
            Some((f, _)) => Some(f.output.clone()),
            None => attach_reads.get(target).cloned().flatten(),
        };
        match done {
            Some((value, code, message)) => {
                let o = Outcome { value: value.as_deref(), code, message: message.as_deref() };
                self.deliver(inv, index, kind, &o);
            }
            None => {
                let message = format!("invocation {target} not found");
                self.deliver(inv, index, kind, &Outcome::failed(ATTACH_NOT_FOUND_CODE, &message));
            }
        }
    }

    fn get_promise(&mut self, inv: &Arc<InvocationMeta>, index: u32, name: &str) {
        let key = keys::promise(&inv.service, &inv.key, name);
        let seq = self.next_seq();
        let rec = self.inner.promises.get_mut(&key).expect("prefetched");
        if rec.completed {
            let (value, code, message) = (rec.value.clone(), rec.failure_code, rec.failure_message.clone());
            let message = (code != 0 || !message.is_empty()).then_some(message.as_str());
            self.deliver(inv, index, entry::GET_PROMISE, &Outcome { value: value.as_deref(), code, message });
            return;
        }
        rec.waiters.push(PromiseWaiter { invocation_id: inv.id.clone(), entry: index });
        promises::put(&mut self.c, &key, rec);
        self.inner.promises.touch(&key, seq);
        self.inner.live.await_entry(&inv.id, index, Pending { kind: entry::GET_PROMISE, wait: Wait::Other });
    }

    /// First completion wins: record the outcome and complete the waiters.
    /// Returns whether this completion was the first.
    fn complete_promise(&mut self, inv: &InvocationMeta, name: &str, o: &Outcome<'_>) -> bool {
        let key = keys::promise(&inv.service, &inv.key, name);
        let seq = self.next_seq();
        let rec = self.inner.promises.get_mut(&key).expect("prefetched");
        if rec.completed {
            return false;
        }
        rec.completed = true;
        rec.value = o.value.map(<[u8]>::to_vec);
        rec.failure_code = o.code;
        rec.failure_message = o.message.unwrap_or("").to_string();
        let waiters = std::mem::take(&mut rec.waiters);
        promises::put(&mut self.c, &key, rec);
        self.inner.promises.touch(&key, seq);
        for w in waiters {
            self.complete_entry(&w.invocation_id, w.entry, o);
        }
        true
    }

    /// Complete `inv` in this commit with outcome `o`: out of its inbox or timer,
    /// untracked (its sleep timers deleted), the completed record (kept for
    /// `retention_ms`, None: the default), its caller's completion, its attachers'
    /// completions, and the hand-over of its key: the next owner (written running)
    /// is returned.
    pub fn finish(
        &mut self,
        inv: &Arc<InvocationMeta>,
        journal_len: u32,
        o: &Outcome<'_>,
        retention_ms: Option<u64>,
    ) -> Option<Arc<InvocationMeta>> {
        let st = inv.state();
        match st.status {
            STATUS_BACKING_OFF => self.cancel_retry_timer(inv, &st),
            STATUS_SCHEDULED => {
                timers::delete(&mut self.c, st.next_retry_ms, &inv.id, SCHEDULED_TIMER_ENTRY);
                self.inner.timers.remove(st.next_retry_ms, &inv.id, SCHEDULED_TIMER_ENTRY);
            }
            // Finished while still waiting (e.g. cancelled): it leaves the inbox.
            STATUS_INBOXED if self.inner.admission.remove_inboxed(inv) => {
                inbox::delete(&mut self.c, &inv.service, &inv.key, st.inbox_seq);
            }
            _ => {}
        }
        // Signals and attaches for it are answered from here until its record is durable.
        let seq = self.next_seq();
        let result = (o.value.map(<[u8]>::to_vec), o.code, o.message.map(str::to_string));
        self.inner.finished.put(inv.id.as_bytes().to_vec(), Finished { output: result, meta: inv.clone() }, seq);
        if st.persisted {
            if let Some(live) = self.inner.live.remove(&inv.id) {
                for (index, p) in live.pending {
                    if let Wait::Timer(fire_ms) = p.wait {
                        timers::delete(&mut self.c, fire_ms, &inv.id, index);
                        self.inner.timers.remove(fire_ms, &inv.id, index);
                    }
                }
            }
        }
        let done = InvState {
            status: STATUS_COMPLETED,
            persisted: true,
            next_retry_ms: 0,
            inbox_seq: 0,
            cancel_requested: false,
            journal_len,
            ..st
        };
        let completion = Completion {
            output: o.value,
            failure_code: o.code,
            failure_message: o.message,
            completed_ms: self.now,
            retention_ms,
        };
        invocations::put(&mut self.c, inv, &done, self.now, Some(&completion));
        inv.update(|s| *s = done);
        if !inv.caller_id.is_empty() {
            self.complete_entry(&inv.caller_id, inv.caller_entry, o);
        }
        for (attacher, index) in self.inner.live.take_attachers(&inv.id) {
            self.complete_entry(&attacher, index, o);
        }
        let next = match self.inner.admission.release(inv) {
            Release::Next(next) => next,
            Release::Freed => {
                // Free now, but RocksDB may lack this commit's state writes until it is
                // durable: an edit of the key's state must not trust RocksDB until then.
                self.inner.freed.prune(self.writer.durable_seq());
                self.inner.freed.put(keys::state_prefix(&inv.service, &inv.key), (), seq);
                return None;
            }
            Release::Unchanged => return None,
        };
        let ns = next.state();
        inbox::delete(&mut self.c, &next.service, &next.key, ns.inbox_seq);
        self.set_state(&next, InvState { status: STATUS_RUNNING, inbox_seq: 0, persisted: true, ..ns });
        Some(next)
    }
}

/// The (invocation id, entry index) an awakeable id names: "sign_1" + unpadded
/// URL-safe base64 of "{id}/{index}" (pysdk/_ids.py). None if malformed.
pub fn awakeable_target(awakeable: &str) -> Option<(String, u32)> {
    let body = awakeable.strip_prefix("sign_1")?;
    let mut raw = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for ch in body.bytes() {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            raw.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let raw = String::from_utf8(raw).ok()?;
    let (id, index) = raw.rsplit_once('/')?;
    if !id.starts_with("inv_") {
        return None;
    }
    Some((id.to_string(), index.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awakeable_ids_decode_like_pysdk() {
        // pysdk._ids.awakeable_id("inv_abc", 3) and ("inv_0123456789", 12)
        assert_eq!(awakeable_target("sign_1aW52X2FiYy8z"), Some(("inv_abc".into(), 3)));
        assert_eq!(awakeable_target("sign_1aW52XzAxMjM0NTY3ODkvMTI"), Some(("inv_0123456789".into(), 12)));
        assert_eq!(awakeable_target("sign_1!!"), None);
        assert_eq!(awakeable_target("nope"), None);
        assert_eq!(awakeable_target("sign_1eC8z"), None, "x/3: not an invocation id");
    }
}
