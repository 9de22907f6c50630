//! [`Slots`]: the application slots of one owner, ascending. Most owners
//! have one to three applications; those are kept inline, without an
//! allocation of their own (no extra cache miss or heap block per account).

use std::ops::Deref;

/// Slots kept inline before a vector is allocated.
const INLINE: usize = 3;

/// Application slots of one owner, ascending.
#[derive(Debug, Clone)]
pub(crate) struct Slots(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Inline { len: u8, items: [u32; INLINE] },
    Heap(Vec<u32>),
}

impl Default for Slots {
    fn default() -> Self {
        Slots(Repr::Inline {
            len: 0,
            items: [0; INLINE],
        })
    }
}

impl Slots {
    /// Append `slot` (callers keep the order).
    #[inline]
    pub(crate) fn push(&mut self, slot: u32) {
        match &mut self.0 {
            Repr::Inline { len, items } if usize::from(*len) < INLINE => {
                items[usize::from(*len)] = slot;
                *len += 1;
            }
            Repr::Inline { len, items } => {
                let mut all = Vec::with_capacity(INLINE * 2);
                all.extend_from_slice(&items[..usize::from(*len)]);
                all.push(slot);
                self.0 = Repr::Heap(all);
            }
            Repr::Heap(all) => all.push(slot),
        }
    }

    /// Change the slots as a vector (rare edits: a replaced application).
    pub(crate) fn edit(&mut self, change: impl FnOnce(&mut Vec<u32>)) {
        let mut all = match std::mem::take(self).0 {
            Repr::Inline { len, items } => items[..usize::from(len)].to_vec(),
            Repr::Heap(all) => all,
        };
        change(&mut all);
        *self = Slots::from(all);
    }
}

impl From<Vec<u32>> for Slots {
    fn from(all: Vec<u32>) -> Self {
        if all.len() <= INLINE {
            Slots::from(&all[..])
        } else {
            Slots(Repr::Heap(all))
        }
    }
}

impl From<&[u32]> for Slots {
    fn from(all: &[u32]) -> Self {
        if all.len() <= INLINE {
            let mut items = [0; INLINE];
            items[..all.len()].copy_from_slice(all);
            Slots(Repr::Inline {
                len: all.len() as u8,
                items,
            })
        } else {
            Slots(Repr::Heap(all.to_vec()))
        }
    }
}

impl Deref for Slots {
    type Target = [u32];

    #[inline]
    fn deref(&self) -> &[u32] {
        match &self.0 {
            Repr::Inline { len, items } => &items[..usize::from(*len)],
            Repr::Heap(all) => all,
        }
    }
}

/// Equal slots, however they are stored.
impl PartialEq for Slots {
    fn eq(&self, other: &Slots) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Slots {}

impl<'a> IntoIterator for &'a Slots {
    type Item = &'a u32;
    type IntoIter = std::slice::Iter<'a, u32>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_grow_past_the_inline_ones_and_shrink_back_on_edit() {
        let mut slots = Slots::default();
        assert!(slots.is_empty());
        for slot in 0..10 {
            slots.push(slot);
            assert_eq!(&slots[..], (0..=slot).collect::<Vec<_>>());
        }
        slots.edit(|all| all.retain(|s| *s % 4 == 0));
        assert_eq!(&slots[..], [0, 4, 8]);
        assert!(matches!(slots.0, Repr::Inline { len: 3, .. }));
        slots.edit(|all| all.insert(1, 2));
        assert_eq!(&slots[..], [0, 2, 4, 8]);
        assert_eq!(Slots::from(vec![7, 9]).to_vec(), [7, 9]);
        assert_eq!(
            std::mem::size_of::<Slots>(),
            std::mem::size_of::<Vec<u32>>()
        );
    }
}
