//! My applications per login identity, and legacy records per owner key.
//!
//! Applications live in one dense vector in creation (log) order; an id
//! index and per-owner lists of vector slots point into it. Creation order
//! is global log order, so each owner's list is the subsequence of the
//! vector with that owner: a snapshot stores the vector alone and the
//! indexes are derived again on load.

use std::collections::HashMap;

use domain::application::{self, Application};
use domain::legacy::{self, LegacyOwner, LegacyRecord};
use domain::{AccountId, ApplicationId};

use crate::model::StreamKey;
use crate::slots::Slots;
use crate::table::{IdMap, Keyed, Table};

/// Where a created application went, for the owner lists.
pub(crate) struct Created {
    slot: u32,
    owner: AccountId,
    /// The owner of the application it replaced, if any.
    before: Option<AccountId>,
}

/// An application as "My applications" shows it.
pub type ApplicationView = Application;

impl Keyed<ApplicationId> for application::State {
    #[inline]
    fn key(&self) -> Option<ApplicationId> {
        self.application.as_ref().map(|a| a.id)
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Applications {
    /// Every application by id, in creation order (each state holds one).
    pub(crate) all: Table<ApplicationId, application::State>,
    /// Slots in `all` of owners that are not (yet) accounts here, ascending;
    /// an account's own list lives in its view.
    pub(crate) orphans: IdMap<AccountId, Slots>,
    /// Legacy records by reference (the first import of a reference wins,
    /// as the legacy decider refuses a conflicting one).
    pub(crate) legacy_by_reference: HashMap<String, LegacyRecord>,
    /// Owner key -> references of its legacy records.
    legacy_by_owner: HashMap<LegacyOwner, Vec<String>>,
}

impl Applications {
    /// Apply one event; a creation is returned for [`ReadModel::file_application`].
    pub(crate) fn apply(
        &mut self,
        stream: StreamKey,
        event: &application::Event,
    ) -> Option<Created> {
        let StreamKey::Application(id) = stream else {
            return None;
        };
        let id = ApplicationId(id);
        if let application::Event::Created { .. } = event {
            let mut state = application::State::default();
            application::evolve(&mut state, event);
            return state
                .application
                .and_then(|created| self.insert_created(created));
        }
        if let Some(state) = self.all.get_mut(&id) {
            application::evolve(state, event);
        }
        None
    }

    /// Store a created application under its own id (a repeated creation,
    /// which the decider refuses, replaces it in its slot).
    pub(crate) fn insert_created(&mut self, created: Application) -> Option<Created> {
        let owner = created.owner.account;
        let (slot, replaced) = self.all.insert(application::State {
            application: Some(created),
        })?;
        Some(Created {
            slot,
            owner,
            before: replaced
                .and_then(|s| s.application)
                .map(|a| a.owner.account),
        })
    }

    pub(crate) fn apply_legacy(&mut self, event: &legacy::Event) {
        match event {
            legacy::Event::LegacyApplicationImported { record, .. } => {
                self.insert_legacy(record.clone());
            }
        }
    }

    pub(crate) fn insert_legacy(&mut self, record: LegacyRecord) {
        if self.legacy_by_reference.contains_key(&record.reference) {
            return;
        }
        self.legacy_by_owner
            .entry(record.owner)
            .or_default()
            .push(record.reference.clone());
        self.legacy_by_reference
            .insert(record.reference.clone(), record);
    }
}

impl crate::ReadModel {
    /// Put a created application in its owner's list.
    pub(crate) fn file_application(&mut self, created: Created) {
        let Created {
            slot,
            owner,
            before,
        } = created;
        match before {
            None => self.owner_slots_mut(owner).push(slot),
            Some(before) if before != owner => {
                self.owner_slots_mut(before)
                    .edit(|slots| slots.retain(|s| *s != slot));
                self.owner_slots_mut(owner).edit(|slots| {
                    let at = slots.partition_point(|s| *s < slot);
                    slots.insert(at, slot);
                });
            }
            Some(_) => {}
        }
    }

    fn owner_slots_mut(&mut self, owner: AccountId) -> &mut Slots {
        match self.accounts.get_mut(&owner) {
            Some(account) => &mut account.applications,
            None => self.applications.orphans.entry(owner).or_default(),
        }
    }

    fn owner_slots(&self, owner: AccountId) -> Option<&Slots> {
        match self.accounts.get(&owner) {
            Some(account) => Some(&account.applications),
            None => self.applications.orphans.get(&owner),
        }
    }

    /// One application, whoever owns it (callers check ownership).
    pub fn application(&self, id: ApplicationId) -> Option<&ApplicationView> {
        self.applications.all.get(&id)?.application.as_ref()
    }

    /// A page of `owner`'s applications, newest first, starting after the
    /// application `after` (exclusive). Returns the page and whether more follow.
    pub fn my_applications(
        &self,
        owner: AccountId,
        first: usize,
        after: Option<ApplicationId>,
    ) -> (Vec<&ApplicationView>, bool) {
        let Some(slots) = self.owner_slots(owner) else {
            return (Vec::new(), false);
        };
        // Slots ascend, so the cursor is found by binary search.
        let end = match after {
            None => slots.len(),
            Some(cursor) => match self.applications.all.slot(&cursor) {
                Some(slot) => match slots.binary_search(&slot) {
                    Ok(i) => i,
                    Err(_) => return (Vec::new(), false),
                },
                None => return (Vec::new(), false),
            },
        };
        let older = &slots[..end];
        let take = first.min(older.len());
        let page = older
            .iter()
            .rev()
            .take(take)
            .filter_map(|slot| self.applications.all.by_slot(*slot)?.application.as_ref())
            .collect();
        (page, older.len() > take)
    }

    /// Number of applications `owner` has.
    pub fn application_count(&self, owner: AccountId) -> usize {
        self.owner_slots(owner).map_or(0, |slots| slots.len())
    }

    /// Number of applications of anyone.
    pub fn total_applications(&self) -> usize {
        self.applications.all.len()
    }

    /// Legacy records of any of `keys`, oldest first.
    pub fn legacy_records(&self, keys: &[LegacyOwner]) -> Vec<&LegacyRecord> {
        let mut records: Vec<&LegacyRecord> = keys
            .iter()
            .filter_map(|k| self.applications.legacy_by_owner.get(k))
            .flatten()
            .filter_map(|reference| self.applications.legacy_by_reference.get(reference))
            .collect();
        records.sort_by(|a, b| (a.submitted_at, &a.reference).cmp(&(b.submitted_at, &b.reference)));
        records.dedup_by(|a, b| a.reference == b.reference);
        records
    }

    /// The legacy record with this reference.
    pub fn legacy_record(&self, reference: &str) -> Option<&LegacyRecord> {
        self.applications.legacy_by_reference.get(reference)
    }
}
