//! Compact storage for the large read models: values in fixed-size pages
//! (growth never copies or doubles the whole store), found through a small
//! id -> slot index with a fast hasher for random, server-made keys.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Hashes keys that are already random (uuids chosen by the server, SHA-256
/// digests): a folded multiply per 8 bytes. Not for keys an outsider
/// chooses (an email, a reference): those keep the std SipHash.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline]
fn fold(x: u64, y: u64) -> u64 {
    let m = u128::from(x) * u128::from(y);
    (m as u64) ^ ((m >> 64) as u64)
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = fold(self.0 ^ v, K);
        }
        for b in chunks.remainder() {
            self.0 = fold(self.0 ^ u64::from(*b), K);
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = fold(self.0 ^ v, K);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` over random, server-made keys.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A `HashSet` over random, server-made keys.
pub(crate) type IdSet<K> = std::collections::HashSet<K, BuildHasherDefault<IdHasher>>;

const PAGE_BITS: u32 = 14;
const PAGE: usize = 1 << PAGE_BITS;

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
}

/// Values by key, stored in a [`Slab`] in insertion order.
#[derive(Debug, Clone)]
pub(crate) struct Table<K, V> {
    index: IdMap<K, u32>,
    values: Slab<V>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            index: IdMap::default(),
            values: Slab::default(),
        }
    }
}

impl<K: Hash + Eq + Copy, V> Table<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
    }

    /// Insert or replace (a replaced value keeps its slot); one index
    /// lookup. Returns the slot and the replaced value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> (u32, Option<V>) {
        match self.index.entry(key) {
            Entry::Occupied(entry) => {
                let slot = *entry.get();
                let old = self
                    .values
                    .get_mut(slot)
                    .map(|old| std::mem::replace(old, value));
                (slot, old)
            }
            Entry::Vacant(entry) => {
                let slot = self.values.push(value);
                entry.insert(slot);
                (slot, None)
            }
        }
    }

    #[inline]
    pub(crate) fn slot(&self, key: &K) -> Option<u32> {
        self.index.get(key).copied()
    }

    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.values.get(*self.index.get(key)?)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.values.get_mut(*self.index.get(key)?)
    }

    #[inline]
    pub(crate) fn by_slot(&self, slot: u32) -> Option<&V> {
        self.values.get(slot)
    }

    /// Values in insertion order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter()
    }
}
