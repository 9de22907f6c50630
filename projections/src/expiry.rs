//! [`ExpiryQueue`]: (absolute expiry, token digest) of started sessions,
//! oldest first. A session's expiry is nearly always the latest yet, so
//! entries go to the back of a queue and leave from its front; one that
//! arrives a little out of order (commit order is not quite the order of
//! the instants) is put in place near the back, one further out of order
//! waits in a small ordered set beside it.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, Utc};

use crate::inactivity::near_back;

/// (absolute expiry, token digest).
pub(crate) type Expiry = (DateTime<Utc>, [u8; 32]);

/// Entries (44 bytes) an out-of-order one may be moved past: about 4 KiB.
const NEAR_BACK: usize = 96;

/// See the module doc.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExpiryQueue {
    /// Ascending.
    queue: VecDeque<Expiry>,
    /// Entries that arrived below the back of `queue`.
    late: BTreeSet<Expiry>,
}

impl ExpiryQueue {
    /// A queue of `entries`, in any order.
    pub(crate) fn from_entries(mut entries: Vec<Expiry>) -> Self {
        entries.sort_unstable();
        entries.dedup();
        ExpiryQueue {
            queue: entries.into(),
            late: BTreeSet::new(),
        }
    }

    /// Add an entry.
    #[inline]
    pub(crate) fn push(&mut self, entry: Expiry) {
        let queue = &self.queue;
        match near_back(|i| &queue[i], queue.len(), NEAR_BACK, &entry) {
            Some(at) => self.queue.insert(at, entry),
            None => {
                self.late.insert(entry);
            }
        }
    }

    /// Take the oldest entry if it expires before `cutoff`.
    #[inline]
    pub(crate) fn pop_before(&mut self, cutoff: DateTime<Utc>) -> Option<Expiry> {
        let from_late = match (self.queue.front(), self.late.first()) {
            (Some(q), Some(l)) => l < q,
            (None, Some(_)) => true,
            _ => false,
        };
        if from_late {
            let first = self.late.first().filter(|e| e.0 < cutoff)?;
            let first = *first;
            self.late.remove(&first);
            Some(first)
        } else {
            self.queue.front().filter(|e| e.0 < cutoff)?;
            self.queue.pop_front()
        }
    }

    /// Every entry, ascending (an entry queued twice may appear twice).
    #[cfg(test)]
    pub(crate) fn sorted(&self) -> Vec<Expiry> {
        let mut all: Vec<Expiry> = self.queue.iter().chain(&self.late).copied().collect();
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_leave_oldest_first_when_some_arrive_late() {
        let at = |s: i64| DateTime::from_timestamp(s, 0).expect("instant");
        let mut queue = ExpiryQueue::default();
        for (s, d) in [(10, 1u8), (20, 2), (15, 3), (5, 4), (30, 5), (25, 6)] {
            queue.push((at(s), [d; 32]));
        }
        assert_eq!(queue.sorted().len(), 6);
        assert!(queue.late.is_empty(), "near the back: put in place");
        let mut left = Vec::new();
        while let Some((t, d)) = queue.pop_before(at(26)) {
            left.push((t.timestamp(), d[0]));
        }
        assert_eq!(left, [(5, 4), (10, 1), (15, 3), (20, 2), (25, 6)]);
        assert_eq!(queue.sorted(), [(at(30), [5; 32])]);
        // Far out of order: beside the queue, and still in order.
        let mut queue = ExpiryQueue::default();
        for s in 100..300 {
            queue.push((at(s), [0; 32]));
        }
        queue.push((at(50), [1; 32]));
        queue.push((at(280), [2; 32]));
        assert_eq!(queue.late.len(), 1);
        assert_eq!(queue.pop_before(at(1000)), Some((at(50), [1; 32])));
        assert_eq!(queue.pop_before(at(1000)), Some((at(100), [0; 32])));
        let all = queue.sorted();
        assert!(all.is_sorted() && all.contains(&(at(280), [2; 32])));
        let loaded = ExpiryQueue::from_entries(vec![(at(9), [1; 32]), (at(3), [2; 32])]);
        assert_eq!(loaded.sorted(), [(at(3), [2; 32]), (at(9), [1; 32])]);
    }
}
