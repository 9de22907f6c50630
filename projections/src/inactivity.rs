//! The inactivity index: (last active, account slot) of the active password
//! accounts, oldest first, packed in 16-byte integers (see
//! [`crate::model::inactivity_entry`]).
//!
//! A login moves an account to the newest end. Instead of removing the old
//! entry from a tree (a walk to a random leaf at every login), a removal
//! only counts the entry as stale: entries are kept in an ascending vector
//! (a new entry is nearly always the newest, so it is pushed at the end, or
//! put in place a few entries before it when commit order was not quite
//! instant order), plus a small ordered set for one that arrives further
//! out of order.
//! Readers skip the entries the account no longer has, and once stale
//! entries outnumber live ones the index is compacted, in one sequential
//! pass, so it never holds more than about twice the live entries.

use std::collections::BTreeSet;

/// Where `entry` goes among `len` ascending values (`value(i)` is the
/// i-th), if that is among the last `window` (a binary search there): an
/// entry that arrives a little out of order is put in place with a short
/// move; one further back waits in an ordered set beside.
#[inline]
pub(crate) fn near_back<'a, T: Ord + 'a>(
    value: impl Fn(usize) -> &'a T,
    len: usize,
    window: usize,
    entry: &T,
) -> Option<usize> {
    let start = len.saturating_sub(window);
    let (mut low, mut high) = (start, len);
    // The first position whose value is above `entry`.
    while low < high {
        let mid = low + (high - low) / 2;
        if value(mid) <= entry {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    (low > start || start == 0).then_some(low)
}

/// Entries (16 bytes) an out-of-order one may be moved past: 4 KiB.
const NEAR_BACK: usize = 256;

/// Stale entries below this are never compacted away (small models).
const MIN_COMPACTION: usize = 4096;

/// See the module doc.
#[derive(Debug, Clone, Default)]
pub(crate) struct InactivityIndex {
    /// Ascending, stale entries included.
    sorted: Vec<u128>,
    /// Entries that arrived below the end of `sorted`.
    late: BTreeSet<u128>,
    /// Entries of `sorted` removed but still there.
    stale: usize,
}

impl InactivityIndex {
    /// An index of `entries`, which must be ascending and all live.
    pub(crate) fn from_sorted(entries: Vec<u128>) -> Self {
        debug_assert!(entries.is_sorted());
        InactivityIndex {
            sorted: entries,
            late: BTreeSet::new(),
            stale: 0,
        }
    }

    /// Add a live entry.
    #[inline]
    pub(crate) fn insert(&mut self, entry: u128) {
        let sorted = &self.sorted;
        match near_back(|i| &sorted[i], sorted.len(), NEAR_BACK, &entry) {
            Some(at) => self.sorted.insert(at, entry),
            None => {
                self.late.insert(entry);
            }
        }
    }

    /// Take back a live entry (it stays until the next compaction).
    #[inline]
    pub(crate) fn remove(&mut self, entry: u128) {
        if self.late.is_empty() || !self.late.remove(&entry) {
            self.stale += 1;
        }
    }

    /// Whether [`Self::compact`] is due.
    #[inline]
    pub(crate) fn needs_compaction(&self) -> bool {
        self.stale >= MIN_COMPACTION && self.stale * 2 > self.sorted.len()
    }

    /// Keep only the entries `live` says yes to, each once, in one
    /// ascending vector.
    pub(crate) fn compact(&mut self, live: impl Fn(u128) -> bool) {
        let late = std::mem::take(&mut self.late);
        self.sorted.retain(|e| live(*e));
        if !late.is_empty() {
            self.sorted.extend(late.into_iter().filter(|e| live(*e)));
            self.sorted.sort_unstable();
        }
        self.sorted.dedup();
        self.sorted.shrink_to(self.sorted.len() * 3 / 2);
        self.stale = 0;
    }

    /// Every entry, stale ones included (callers check them), ascending;
    /// an entry may appear twice.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        Merge {
            a: self.sorted.iter().copied().peekable(),
            b: self.late.iter().copied().peekable(),
        }
    }
}

/// Two ascending sequences as one.
struct Merge<A: Iterator<Item = u128>, B: Iterator<Item = u128>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = u128>, B: Iterator<Item = u128>> Iterator for Merge<A, B> {
    type Item = u128;

    fn next(&mut self) -> Option<u128> {
        match (self.a.peek(), self.b.peek()) {
            (Some(a), Some(b)) if b < a => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::workload::Rng;

    /// The index against a plain ordered set under random moves, removals
    /// and out-of-order entries, through several compactions.
    #[test]
    fn live_entries_are_those_of_a_plain_ordered_set() {
        let mut rng = Rng::new(7);
        let mut index = InactivityIndex::default();
        let mut plain = BTreeSet::new();
        // Current entry of each of 3000 "accounts" (the low 32 bits).
        let mut current: Vec<Option<u128>> = vec![None; 3000];
        let mut now = 1000u128;
        let mut compactions = 0;
        for _ in 0..200_000 {
            let slot = rng.below(current.len());
            // Mostly forward in time, now and then back (out of order).
            now += rng.below(3) as u128;
            let instant = if rng.percent(3) {
                now.saturating_sub(rng.below(500) as u128)
            } else {
                now
            };
            let next = if rng.percent(5) {
                None
            } else {
                Some(instant << 64 | slot as u128)
            };
            let before = current[slot];
            if before != next {
                if let Some(e) = before {
                    index.remove(e);
                    plain.remove(&e);
                }
                if let Some(e) = next {
                    index.insert(e);
                    plain.insert(e);
                }
                current[slot] = next;
            }
            let live = |e: u128| current[(e as u32) as usize] == Some(e);
            if index.needs_compaction() {
                index.compact(live);
                compactions += 1;
                assert!(index.sorted.len() <= plain.len());
            }
            if rng.percent(1) {
                let mut seen: Vec<u128> = index.iter().filter(|e| live(*e)).collect();
                assert!(seen.is_sorted());
                seen.dedup();
                assert_eq!(seen, plain.iter().copied().collect::<Vec<_>>());
            }
        }
        assert!(compactions > 5, "{compactions} compactions");
    }
}
