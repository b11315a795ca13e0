//! When a proxy has converged to a config change, for
//! `sextant_proxy_convergence_seconds`: a small state machine per stream,
//! free of I/O, fed by the stream task.
//!
//! A change is pending on a stream from the moment the stream picks up a
//! snapshot of a new IR generation. It counts as pushed once a response goes
//! out after that, and as converged at the first poll after which nothing
//! is left to send and no response is waiting for an answer, that is, when
//! the proxy has ACKed the last response the change caused. The time is
//! measured from when the change was observed on disk
//! ([`crate::cache::ProxySnapshot::changed_at`]). A change that sends this
//! proxy nothing is not observed, nor one that the proxy NACKs. While a
//! change is pending, later changes fold into it: the time runs from the
//! oldest change the proxy does not run yet.

use std::time::{Duration, Instant};

/// The oldest config change one stream has not converged to.
#[derive(Debug, Default)]
pub(super) struct Convergence {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    /// When the change was observed.
    changed_at: Instant,
    /// A response went out since.
    pushed: bool,
}

impl Convergence {
    /// The stream picked up the snapshot of a change observed at
    /// `changed_at` (`None`: not a change, nothing to measure).
    pub(super) fn changed(&mut self, changed_at: Option<Instant>) {
        if self.pending.is_none() {
            self.pending = changed_at.map(|changed_at| Pending {
                changed_at,
                pushed: false,
            });
        }
    }

    /// The proxy NACKed a response: if the pending change was pushed, the
    /// proxy will not run it, and it is dropped unmeasured.
    pub(super) fn nacked(&mut self) {
        if self.pending.as_ref().is_some_and(|p| p.pushed) {
            self.pending = None;
        }
    }

    /// After a poll that sent `sent` responses, with `awaiting` telling
    /// whether any response of the stream is unanswered: the convergence
    /// time, at `now`, if the proxy has just converged to a pushed change.
    pub(super) fn polled(&mut self, sent: usize, awaiting: bool, now: Instant) -> Option<Duration> {
        let pending = self.pending.as_mut()?;
        if sent > 0 {
            pending.pushed = true;
            return None;
        }
        if awaiting {
            return None;
        }
        let pending = self.pending.take()?;
        pending
            .pushed
            .then(|| now.saturating_duration_since(pending.changed_at))
    }
}

#[cfg(test)]
mod tests;
