//! My applications per login identity, and legacy records per owner key.

use std::collections::HashMap;

use domain::application::{self, Application};
use domain::legacy::{self, LegacyOwner, LegacyRecord};
use domain::{AccountId, ApplicationId};

use crate::model::stream_id;

/// An application as "My applications" shows it.
pub type ApplicationView = Application;

#[derive(Debug, Default, Clone)]
pub(crate) struct Applications {
    by_id: HashMap<ApplicationId, application::State>,
    /// Each owner's applications in creation order (oldest first).
    by_owner: HashMap<AccountId, Vec<ApplicationId>>,
    legacy_by_owner: HashMap<LegacyOwner, Vec<LegacyRecord>>,
    legacy_by_reference: HashMap<String, LegacyRecord>,
}

impl Applications {
    pub(crate) fn apply(&mut self, stream: &str, event: &application::Event) {
        let Some(id) = stream_id(stream, "application").map(ApplicationId) else {
            return;
        };
        if let application::Event::Created { owner, .. } = event {
            self.by_owner.entry(*owner).or_default().push(id);
        }
        let state = self.by_id.entry(id).or_default();
        application::evolve(state, event);
    }

    pub(crate) fn apply_legacy(&mut self, event: &legacy::Event) {
        match event {
            legacy::Event::LegacyApplicationImported { record, .. } => {
                if self
                    .legacy_by_reference
                    .insert(record.reference.clone(), record.clone())
                    .is_none()
                {
                    self.legacy_by_owner
                        .entry(record.owner)
                        .or_default()
                        .push(record.clone());
                }
            }
        }
    }
}

impl crate::ReadModel {
    /// One application, whoever owns it (callers check ownership).
    pub fn application(&self, id: ApplicationId) -> Option<&ApplicationView> {
        self.applications.by_id.get(&id)?.application.as_ref()
    }

    /// A page of `owner`'s applications, newest first, starting after the
    /// application `after` (exclusive). Returns the page and whether more follow.
    pub fn my_applications(
        &self,
        owner: AccountId,
        first: usize,
        after: Option<ApplicationId>,
    ) -> (Vec<&ApplicationView>, bool) {
        let Some(ids) = self.applications.by_owner.get(&owner) else {
            return (Vec::new(), false);
        };
        let newest_first = ids.iter().rev();
        let mut rest: Box<dyn Iterator<Item = &ApplicationId>> = match after {
            Some(cursor) => Box::new(newest_first.skip_while(move |id| **id != cursor).skip(1)),
            None => Box::new(newest_first),
        };
        let mut page = Vec::with_capacity(first.min(100));
        for id in rest.by_ref() {
            if page.len() == first {
                return (page, true);
            }
            if let Some(app) = self.application(*id) {
                page.push(app);
            }
        }
        (page, false)
    }

    /// Number of applications `owner` has.
    pub fn application_count(&self, owner: AccountId) -> usize {
        self.applications.by_owner.get(&owner).map_or(0, Vec::len)
    }

    /// Legacy records of any of `keys`, oldest first.
    pub fn legacy_records(&self, keys: &[LegacyOwner]) -> Vec<&LegacyRecord> {
        let mut records: Vec<&LegacyRecord> = keys
            .iter()
            .filter_map(|k| self.applications.legacy_by_owner.get(k))
            .flatten()
            .collect();
        records.sort_by(|a, b| (a.submitted_at, &a.reference).cmp(&(b.submitted_at, &b.reference)));
        records
    }

    /// The legacy record with this reference.
    pub fn legacy_record(&self, reference: &str) -> Option<&LegacyRecord> {
        self.applications.legacy_by_reference.get(reference)
    }
}
