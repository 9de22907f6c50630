//! The email directory (normalised email of an active password account ->
//! account) without a second copy of every address: entries are keyed by a
//! 64-bit keyed hash of the email (SipHash under a per-process random key)
//! and checked against the account's own email on lookup. Two addresses
//! with one fingerprint (about 1 in 10^7 at a million accounts) keep the
//! later one in a small exact map.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use domain::AccountId;

use crate::table::IdMap;

#[derive(Debug, Clone, Default)]
pub(crate) struct EmailDirectory {
    keys: RandomState,
    by_fingerprint: IdMap<u64, AccountId>,
    collisions: HashMap<String, AccountId>,
}

impl EmailDirectory {
    /// The keyed 64-bit hash an email is filed under.
    pub(crate) fn fingerprint(&self, email: &str) -> u64 {
        self.keys.hash_one(email)
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        self.by_fingerprint.reserve(additional);
    }

    /// The account filed under `email`; `email_of` gives an account's email.
    pub(crate) fn get<'a>(
        &self,
        email: &str,
        email_of: impl Fn(AccountId) -> Option<&'a str>,
    ) -> Option<AccountId> {
        match self.by_fingerprint.get(&self.fingerprint(email)) {
            Some(id) if email_of(*id) == Some(email) => Some(*id),
            _ => self.collisions.get(email).copied(),
        }
    }

    /// File `id` under `email` (replacing whoever was there).
    pub(crate) fn insert<'a>(
        &mut self,
        email: &str,
        id: AccountId,
        email_of: impl Fn(AccountId) -> Option<&'a str>,
    ) {
        self.insert_fingerprinted(self.fingerprint(email), email, id, email_of);
    }

    /// [`Self::insert`] with the fingerprint of `email` already computed.
    pub(crate) fn insert_fingerprinted<'a>(
        &mut self,
        fingerprint: u64,
        email: &str,
        id: AccountId,
        email_of: impl Fn(AccountId) -> Option<&'a str>,
    ) {
        match self.by_fingerprint.get(&fingerprint) {
            Some(other) if email_of(*other) != Some(email) => {
                self.collisions.insert(email.to_owned(), id);
            }
            _ => {
                self.collisions.remove(email);
                self.by_fingerprint.insert(fingerprint, id);
            }
        }
    }

    /// Remove `email` if it is filed under `id`.
    pub(crate) fn remove<'a>(
        &mut self,
        email: &str,
        id: AccountId,
        email_of: impl Fn(AccountId) -> Option<&'a str>,
    ) {
        let fingerprint = self.fingerprint(email);
        match self.by_fingerprint.get(&fingerprint) {
            Some(filed) if *filed == id && email_of(id) == Some(email) => {
                self.by_fingerprint.remove(&fingerprint);
            }
            _ => {
                if self.collisions.get(email) == Some(&id) {
                    self.collisions.remove(email);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn two_emails_with_one_fingerprint_are_both_found_and_removed_exactly() {
        let (a, b) = (AccountId(Uuid::from_u128(1)), AccountId(Uuid::from_u128(2)));
        let email_of = |id: AccountId| match id {
            x if x == a => Some("a@example.no"),
            x if x == b => Some("b@example.no"),
            _ => None,
        };
        let mut directory = EmailDirectory::default();
        // Make b's fingerprint point at a, as a collision would.
        let fingerprint = directory.fingerprint("b@example.no");
        directory.by_fingerprint.insert(fingerprint, a);
        directory.insert("b@example.no", b, email_of);
        assert_eq!(directory.get("b@example.no", email_of), Some(b));
        assert_eq!(directory.collisions.len(), 1);
        directory.remove("b@example.no", a, email_of);
        assert_eq!(directory.get("b@example.no", email_of), Some(b), "not a's");
        directory.remove("b@example.no", b, email_of);
        assert_eq!(directory.get("b@example.no", email_of), None);
        directory.insert("a@example.no", a, email_of);
        assert_eq!(directory.get("a@example.no", email_of), Some(a));
        directory.remove("a@example.no", a, email_of);
        assert_eq!(directory.get("a@example.no", email_of), None);
    }
}
