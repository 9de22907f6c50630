//! The email directory (normalised email of an active password account ->
//! account) without a second copy of every address: an open-addressing
//! index (linear probing, at most 3/4 full) of 8-byte entries, the top 32
//! bits of a keyed 64-bit hash of the email (SipHash under a per-process
//! random key: emails are chosen by outsiders) and the account's slot. The
//! account's own email confirms a candidate, so two addresses with one tag
//! simply probe on. Removal shifts the following entries back (no
//! tombstones).

use std::hash::{BuildHasher, RandomState};

#[derive(Debug, Clone, Default)]
pub(crate) struct EmailDirectory {
    keys: RandomState,
    /// `tag << 32 | (slot + 1)`; zero is an empty cell.
    index: Vec<u64>,
    /// `32 - log2(index.len())`: a tag's top bits are its home cell.
    shift: u32,
    len: usize,
}

/// Smallest index length (a power of two).
const MIN_INDEX: usize = 16;

#[inline]
fn entry(tag: u32, slot: u32) -> u64 {
    u64::from(tag) << 32 | (u64::from(slot) + 1)
}

#[inline]
fn slot_of(entry: u64) -> u32 {
    (entry as u32).wrapping_sub(1)
}

impl EmailDirectory {
    /// The keyed 64-bit hash an email is filed under.
    pub(crate) fn fingerprint(&self, email: &str) -> u64 {
        self.keys.hash_one(email)
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        (tag >> self.shift) as usize
    }

    /// Room for `additional` more entries without growing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self.len + additional;
        let mut len = self.index.len().max(MIN_INDEX);
        while needed > len / 4 * 3 {
            len *= 2;
        }
        if len != self.index.len() {
            self.regrow(len);
        }
    }

    fn regrow(&mut self, len: usize) {
        let old = std::mem::replace(&mut self.index, vec![0; len]);
        self.shift = 32 - len.trailing_zeros();
        let mask = len - 1;
        for e in old.into_iter().filter(|e| *e != 0) {
            let mut i = self.home((e >> 32) as u32);
            while self.index[i] != 0 {
                i = (i + 1) & mask;
            }
            self.index[i] = e;
        }
    }

    /// The cell holding `email` (`Ok`), or the empty cell where it would go.
    #[inline]
    fn find<'a>(
        &self,
        tag: u32,
        email: &str,
        email_of: impl Fn(u32) -> Option<&'a str>,
    ) -> Result<usize, usize> {
        if self.index.is_empty() {
            return Err(usize::MAX);
        }
        let mask = self.index.len() - 1;
        let mut i = self.home(tag);
        loop {
            let e = self.index[i];
            if e == 0 {
                return Err(i);
            }
            if (e >> 32) as u32 == tag && email_of(slot_of(e)) == Some(email) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot of the account filed under `email`; `email_of` gives the
    /// email of the account in a slot.
    pub(crate) fn get<'a>(
        &self,
        email: &str,
        email_of: impl Fn(u32) -> Option<&'a str>,
    ) -> Option<u32> {
        let tag = (self.fingerprint(email) >> 32) as u32;
        let cell = self.find(tag, email, email_of).ok()?;
        Some(slot_of(self.index[cell]))
    }

    /// File the account in `slot` under `email` (replacing whoever was
    /// there).
    pub(crate) fn insert<'a>(
        &mut self,
        email: &str,
        slot: u32,
        email_of: impl Fn(u32) -> Option<&'a str>,
    ) {
        self.insert_fingerprinted(self.fingerprint(email), email, slot, email_of);
    }

    /// [`Self::insert`] with the fingerprint of `email` already computed.
    pub(crate) fn insert_fingerprinted<'a>(
        &mut self,
        fingerprint: u64,
        email: &str,
        slot: u32,
        email_of: impl Fn(u32) -> Option<&'a str>,
    ) {
        let tag = (fingerprint >> 32) as u32;
        match self.find(tag, email, &email_of) {
            Ok(cell) => self.index[cell] = entry(tag, slot),
            Err(cell) => {
                self.len += 1;
                if self.len > self.index.len() / 4 * 3 {
                    // The empty cell found belongs to the old index.
                    self.reserve(1);
                    let Err(cell) = self.find(tag, email, &email_of) else {
                        unreachable!("the email was not filed");
                    };
                    self.index[cell] = entry(tag, slot);
                } else {
                    self.index[cell] = entry(tag, slot);
                }
            }
        }
    }

    /// Remove `email` if it is filed under `slot`.
    pub(crate) fn remove<'a>(
        &mut self,
        email: &str,
        slot: u32,
        email_of: impl Fn(u32) -> Option<&'a str>,
    ) {
        let tag = (self.fingerprint(email) >> 32) as u32;
        let Ok(mut hole) = self.find(tag, email, email_of) else {
            return;
        };
        if slot_of(self.index[hole]) != slot {
            return;
        }
        // Backward shift: move each following entry of the run into the
        // hole unless its home lies cyclically after the hole.
        let mask = self.index.len() - 1;
        self.index[hole] = 0;
        self.len -= 1;
        let mut i = (hole + 1) & mask;
        loop {
            let e = self.index[i];
            if e == 0 {
                return;
            }
            let home = self.home((e >> 32) as u32);
            // Distance from home to i and from the hole to i, cyclically.
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.index[hole] = e;
                self.index[i] = 0;
                hole = i;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use test_support::workload::Rng;

    /// The directory against a plain map under random filing, refiling and
    /// removal, with tags forced to collide now and then (tiny index homes
    /// collide all the time).
    #[test]
    fn the_directory_is_a_map_from_email_to_slot() {
        let mut rng = Rng::new(11);
        // Slot -> its email (several slots may share one).
        let emails: Vec<String> = (0..400).map(|i| format!("p{}@x.no", i % 300)).collect();
        let email_of = |slot: u32| emails.get(slot as usize).map(String::as_str);
        let mut directory = EmailDirectory::default();
        let mut plain: HashMap<&str, u32> = HashMap::new();
        for step in 0..100_000 {
            let slot = rng.below(emails.len()) as u32;
            let email = emails[slot as usize].as_str();
            if rng.percent(55) {
                directory.insert(email, slot, email_of);
                plain.insert(email, slot);
            } else {
                directory.remove(email, slot, email_of);
                if plain.get(email) == Some(&slot) {
                    plain.remove(email);
                }
            }
            if step % 97 == 0 {
                for email in &emails {
                    assert_eq!(
                        directory.get(email, email_of),
                        plain.get(email.as_str()).copied(),
                        "{email} at step {step}"
                    );
                }
                assert_eq!(directory.len, plain.len());
            }
        }
    }

    #[test]
    fn two_emails_with_one_tag_are_both_found_and_removed_exactly() {
        let email_of = |slot: u32| match slot {
            0 => Some("a@example.no"),
            1 => Some("b@example.no"),
            _ => None,
        };
        let mut directory = EmailDirectory::default();
        directory.reserve(1);
        // b's tag in a's place, as a collision would have it.
        let tag_b = (directory.fingerprint("b@example.no") >> 32) as u32;
        directory.insert("a@example.no", 0, email_of);
        for cell in directory.index.iter_mut().filter(|e| **e != 0) {
            *cell = entry(tag_b, 0);
        }
        directory.regrow(directory.index.len());
        directory.insert("b@example.no", 1, email_of);
        assert_eq!(directory.get("b@example.no", email_of), Some(1));
        directory.remove("b@example.no", 0, email_of);
        assert_eq!(directory.get("b@example.no", email_of), Some(1), "not a's");
        directory.remove("b@example.no", 1, email_of);
        assert_eq!(directory.get("b@example.no", email_of), None);
        assert_eq!(directory.len, 1);
    }
}
