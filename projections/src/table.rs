//! Compact storage for the large read models: values in fixed-size pages
//! (growth never copies or doubles the whole store), found through a small
//! index of 8-byte (tag, slot) entries with a fast hasher (rustc-hash's
//! `FxHasher`) for random, server-made keys; the value itself confirms the key, so the index holds
//! no copy of it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use rustc_hash::{FxBuildHasher, FxHasher};

/// A `HashMap` over random, server-made keys (uuids chosen by the server,
/// SHA-256 digests). Not for keys an outsider chooses (an email, a
/// reference): those keep the std SipHash.
pub(crate) type IdMap<K, V> = HashMap<K, V, FxBuildHasher>;

/// A `HashSet` over random, server-made keys.
pub(crate) type IdSet<K> = std::collections::HashSet<K, FxBuildHasher>;

const PAGE_BITS: u32 = 14;
/// Values per page of a [`Slab`].
pub(crate) const PAGE: usize = 1 << PAGE_BITS;

/// Values in insertion order, in pages of [`PAGE`]: a slot never moves.
#[derive(Debug, Clone)]
pub(crate) struct Slab<V> {
    pages: Vec<Vec<V>>,
    len: usize,
}

impl<V> Default for Slab<V> {
    fn default() -> Self {
        Slab {
            pages: Vec::new(),
            len: 0,
        }
    }
}

impl<V> Slab<V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, value: V) -> u32 {
        let slot = u32::try_from(self.len).expect("fewer than 2^32 values");
        match self.pages.last_mut() {
            Some(page) if page.len() < PAGE => page.push(value),
            _ => {
                let mut page = Vec::with_capacity(PAGE);
                page.push(value);
                self.pages.push(page);
            }
        }
        self.len += 1;
        slot
    }

    #[inline]
    pub(crate) fn get(&self, slot: u32) -> Option<&V> {
        let slot = slot as usize;
        self.pages.get(slot >> PAGE_BITS)?.get(slot & (PAGE - 1))
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut V> {
        let slot = slot as usize;
        self.pages
            .get_mut(slot >> PAGE_BITS)?
            .get_mut(slot & (PAGE - 1))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &V> {
        self.pages.iter().flatten()
    }

    /// Move the values of `other` to the end (its pages as they are when
    /// this slab ends on a page boundary).
    pub(crate) fn append(&mut self, other: Slab<V>) {
        if self.len.is_multiple_of(PAGE) {
            self.len += other.len;
            self.pages.extend(other.pages);
        } else {
            for value in other.pages.into_iter().flatten() {
                self.push(value);
            }
        }
    }
}

/// A value that carries its own key: a [`Table`] keeps no copy of the keys
/// and checks a candidate slot against the value stored there.
pub(crate) trait Keyed<K> {
    /// The key this value is filed under (`None`: not filed).
    fn key(&self) -> Option<K>;
}

/// The 32-bit tag of a key: its home in the index (top bits) and a filter
/// that spares most comparisons with the stored value.
#[inline]
pub(crate) fn tag_of<K: Hash>(key: &K) -> u32 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    (hasher.finish() >> 32) as u32
}

/// Smallest index length (a power of two).
const MIN_INDEX: usize = 16;

/// An index entry: `tag << 32 | (slot + 1)`; zero is an empty cell.
#[inline]
fn entry(tag: u32, slot: u32) -> u64 {
    u64::from(tag) << 32 | (u64::from(slot) + 1)
}

/// Values by key, stored in a [`Slab`] in insertion order, found through
/// an open-addressing index (linear probing, at most 3/4 full) of 8-byte
/// entries: a key's tag and its slot. A lookup reads one or two adjacent
/// cache lines of the index, then the value itself (which it needs
/// anyway) to confirm the key. Insert-only: nothing is ever removed.
#[derive(Debug, Clone)]
pub(crate) struct Table<K, V> {
    index: Vec<u64>,
    /// `32 - log2(index.len())`: a tag's top bits are its home cell.
    shift: u32,
    values: Slab<V>,
    key: PhantomData<K>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            index: Vec::new(),
            shift: 32,
            values: Slab::default(),
            key: PhantomData,
        }
    }
}

/// Two values with one key while building an index in bulk.
#[derive(Debug)]
pub(crate) struct DuplicateKey;

/// Put `e` in the first empty cell from its home on.
#[inline]
fn place(index: &mut [u64], shift: u32, e: u64) {
    let mask = index.len() - 1;
    let mut i = ((e >> 32) as u32 >> shift) as usize;
    while index[i] != 0 {
        i = (i + 1) & mask;
    }
    index[i] = e;
}

/// Index length for `n` entries (at most 3/4 full).
fn index_len(n: usize) -> usize {
    let mut len = MIN_INDEX;
    while n > len / 4 * 3 {
        len *= 2;
    }
    len
}

impl<K: Hash + Eq + Copy, V: Keyed<K>> Table<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    fn regrow(&mut self, len: usize) {
        let shift = 32 - len.trailing_zeros();
        let mut index = vec![0u64; len];
        for e in self.index.iter().copied().filter(|e| *e != 0) {
            place(&mut index, shift, e);
        }
        self.index = index;
        self.shift = shift;
    }

    /// The slot of `key` (`Ok`), or the empty cell where it would go.
    #[inline]
    fn find(&self, key: &K, tag: u32) -> Result<u32, usize> {
        if self.index.is_empty() {
            return Err(usize::MAX);
        }
        let mask = self.index.len() - 1;
        let mut i = (tag >> self.shift) as usize;
        loop {
            let e = self.index[i];
            if e == 0 {
                return Err(i);
            }
            if (e >> 32) as u32 == tag {
                let slot = (e as u32).wrapping_sub(1);
                if self
                    .values
                    .get(slot)
                    .is_some_and(|v| v.key().as_ref() == Some(key))
                {
                    return Ok(slot);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert under the value's own key, or replace the value filed there
    /// (a replaced value keeps its slot); one index lookup. Returns the slot
    /// and the replaced value. A value without a key is not stored.
    pub(crate) fn insert(&mut self, value: V) -> Option<(u32, Option<V>)> {
        let key = value.key()?;
        let tag = tag_of(&key);
        match self.find(&key, tag) {
            Ok(slot) => {
                let old = self
                    .values
                    .get_mut(slot)
                    .map(|old| std::mem::replace(old, value));
                Some((slot, old))
            }
            Err(cell) => {
                let slot = self.values.push(value);
                let e = entry(tag, slot);
                if self.len() > self.index.len() / 4 * 3 {
                    // The empty cell found belongs to the old index.
                    self.regrow(index_len(self.len()).max(self.index.len() * 2));
                    place(&mut self.index, self.shift, e);
                } else {
                    self.index[cell] = e;
                }
                Some((slot, None))
            }
        }
    }

    /// A table of `values` (in slot order) whose keys have the tags `tags`
    /// (one per value, see [`tag_of`]): the index is built in bulk, in the
    /// order of the cells, so it is written almost sequentially. Fails when
    /// two values have one key.
    pub(crate) fn from_values(values: Slab<V>, tags: &[u32]) -> Result<Self, DuplicateKey> {
        assert_eq!(values.len(), tags.len(), "one tag per value");
        let len = index_len(values.len());
        let shift = 32 - len.trailing_zeros();
        // Counting sort by the top bits of the tag (the home region).
        const BITS: u32 = 12;
        let mut counts = vec![0usize; (1 << BITS) + 1];
        for tag in tags {
            counts[(tag >> (32 - BITS)) as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut sorted = vec![0u64; tags.len()];
        for (slot, tag) in tags.iter().enumerate() {
            let bucket = &mut counts[(tag >> (32 - BITS)) as usize];
            sorted[*bucket] = entry(*tag, slot as u32);
            *bucket += 1;
        }
        let mut table = Table {
            index: vec![0u64; len],
            shift,
            values,
            key: PhantomData,
        };
        let mask = len - 1;
        for e in sorted {
            let tag = (e >> 32) as u32;
            let mut i = (tag >> shift) as usize;
            while table.index[i] != 0 {
                let other = table.index[i];
                if (other >> 32) as u32 == tag {
                    let key = |e: u64| table.values.get((e as u32).wrapping_sub(1))?.key();
                    if key(other) == key(e) {
                        return Err(DuplicateKey);
                    }
                }
                i = (i + 1) & mask;
            }
            table.index[i] = e;
        }
        Ok(table)
    }

    #[inline]
    pub(crate) fn slot(&self, key: &K) -> Option<u32> {
        self.find(key, tag_of(key)).ok()
    }

    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.values.get(self.slot(key)?)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let slot = self.slot(key)?;
        self.values.get_mut(slot)
    }

    #[inline]
    pub(crate) fn by_slot(&self, slot: u32) -> Option<&V> {
        self.values.get(slot)
    }

    #[inline]
    pub(crate) fn by_slot_mut(&mut self, slot: u32) -> Option<&mut V> {
        self.values.get_mut(slot)
    }

    /// Values in insertion order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Item(u64, &'static str);

    impl Keyed<u64> for Item {
        fn key(&self) -> Option<u64> {
            Some(self.0)
        }
    }

    fn slab(keys: std::ops::Range<u64>) -> Slab<Item> {
        let mut slab = Slab::default();
        for key in keys {
            slab.push(Item(key, "v"));
        }
        slab
    }

    #[test]
    fn appended_slabs_keep_their_order_on_and_off_page_boundaries() {
        for first in [PAGE as u64, PAGE as u64 + 3, 5] {
            let mut all = slab(0..first);
            all.append(slab(first..first + PAGE as u64 + 7));
            all.push(Item(u64::MAX, "last"));
            let keys: Vec<u64> = all.iter().map(|i| i.0).collect();
            let mut expected: Vec<u64> = (0..first + PAGE as u64 + 7).collect();
            expected.push(u64::MAX);
            assert_eq!(keys, expected);
            assert_eq!(all.len(), expected.len());
        }
    }

    #[test]
    fn a_table_built_in_bulk_finds_every_key_and_refuses_a_repeated_one() {
        let values = slab(0..50_000);
        let tags: Vec<u32> = (0..50_000u64).map(|k| tag_of(&k)).collect();
        let mut table = Table::from_values(values, &tags).expect("distinct keys");
        for key in (0..50_000u64).step_by(97) {
            assert_eq!(table.slot(&key), Some(key as u32));
        }
        assert_eq!(table.get(&50_000), None);
        let (slot, old) = table.insert(Item(7, "new")).unwrap();
        assert_eq!((slot, old), (7, Some(Item(7, "v"))));
        let (slot, old) = table.insert(Item(50_000, "appended")).unwrap();
        assert_eq!((slot, old), (50_000, None));
        assert_eq!(table.get(&50_000), Some(&Item(50_000, "appended")));

        let mut repeated = slab(0..10);
        repeated.push(Item(3, "again"));
        let tags: Vec<u32> = repeated.iter().map(|i| tag_of(&i.0)).collect();
        assert!(Table::from_values(repeated, &tags).is_err());
    }

    #[test]
    fn a_growing_table_finds_every_key() {
        let mut table: Table<u64, Item> = Table::default();
        for key in 0..100_000u64 {
            assert_eq!(table.insert(Item(key * 7919, "v")).unwrap().0, key as u32);
        }
        for key in 0..100_000u64 {
            assert_eq!(table.slot(&(key * 7919)), Some(key as u32));
            assert_eq!(table.slot(&(key * 7919 + 1)), None);
        }
    }
}
