//! The snapshot's stable tags: every variant of every enum it stores has
//! one tag and comes back from it; golden snapshot files in
//! `test_data/snapshots/` decode to their known state (a rendering beside
//! each) and encode again to the same bytes, and together hold every
//! variant. A tag table that lost a variant does not compile; one that
//! fell back on positions, or changed a tag, fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::*;

/// Every variant of `T` round-trips through its tag, the tags are
/// distinct, and no other byte decodes.
fn check_table<T: Tagged>(every_variant: &[T]) {
    let mut seen = BTreeSet::new();
    for (variant, tag) in T::TAGS {
        assert_eq!(variant.tag(), *tag, "{variant:?}");
        assert_eq!(T::from_tag(*tag), Some(*variant), "{variant:?}");
        assert!(seen.insert(*tag), "{} tag {tag:#04x} given twice", T::WHAT);
    }
    for variant in every_variant {
        assert!(
            T::TAGS.iter().any(|(v, _)| v == variant),
            "{variant:?} has no tag"
        );
    }
    assert_eq!(T::TAGS.len(), every_variant.len(), "{}", T::WHAT);
    for byte in 0..=u8::MAX {
        if !seen.contains(&byte) {
            assert_eq!(T::from_tag(byte), None, "{} tag {byte:#04x}", T::WHAT);
        }
    }
}

#[test]
fn every_variant_has_one_tag_and_comes_back_from_it() {
    check_table(&[LoginMethod::Password, LoginMethod::IdPorten]);
    check_table(&[AccountStatus::Active, AccountStatus::Deleted]);
    check_table(&Kind::ALL);
    check_table(&Relation::ALL);
    check_table(&Status::ALL);
    check_table(&MeetingPointKind::ALL);
    check_table(&AppointmentPurpose::ALL);
    check_table(&[DecisionOutcome::Granted, DecisionOutcome::Refused]);
    check_table(&[DeliveryChannel::Digipost, DeliveryChannel::Post]);
    assert_ne!(LEGACY_OWNER_EMAIL, LEGACY_OWNER_PID);
}

/// The tags met in a model, per enum (by `Tagged::WHAT`).
#[derive(Default)]
struct Seen(BTreeSet<(&'static str, u8)>);

impl Seen {
    fn add<T: Tagged>(&mut self, v: T) {
        self.0.insert((T::WHAT, v.tag()));
    }

    fn model(&mut self, model: &ReadModel) {
        for account in model.accounts.values() {
            self.add(account.method);
            self.add(account.status);
        }
        for session in model.sessions.values() {
            self.add(session.method);
        }
        for record in model.applications.legacy_by_reference.values() {
            self.add(record.kind);
            let owner = match record.owner {
                LegacyOwner::EmailHash(_) => LEGACY_OWNER_EMAIL,
                LegacyOwner::PidHash(_) => LEGACY_OWNER_PID,
            };
            self.0.insert(("legacy owner", owner));
        }
        for app in model
            .applications
            .all
            .values()
            .filter_map(|s| s.application.as_ref())
        {
            self.add(app.owner.method);
            self.add(app.kind);
            self.add(app.relation);
            self.add(app.status);
            for appointment in [&app.appointment, &app.photo_appointment]
                .into_iter()
                .flatten()
            {
                self.add(appointment.meeting_point);
                self.add(appointment.purpose);
            }
            if let Some(decision) = &app.decision {
                self.add(decision.outcome);
                self.add(decision.channel);
            }
        }
    }

    /// Every tag of every table.
    fn all() -> BTreeSet<(&'static str, u8)> {
        fn of<T: Tagged>() -> impl Iterator<Item = (&'static str, u8)> {
            T::TAGS.iter().map(|(_, tag)| (T::WHAT, *tag))
        }
        of::<LoginMethod>()
            .chain(of::<AccountStatus>())
            .chain(of::<Kind>())
            .chain(of::<Relation>())
            .chain(of::<Status>())
            .chain(of::<MeetingPointKind>())
            .chain(of::<AppointmentPurpose>())
            .chain(of::<DecisionOutcome>())
            .chain(of::<DeliveryChannel>())
            .chain([
                ("legacy owner", LEGACY_OWNER_EMAIL),
                ("legacy owner", LEGACY_OWNER_PID),
            ])
            .collect()
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/snapshots")
}

/// The golden snapshots of this format version, by name.
fn golden_files() -> Vec<PathBuf> {
    let prefix = format!("v{FORMAT_VERSION}-");
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("test_data/snapshots")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "snapshot")
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    files.sort();
    files
}

/// Each golden snapshot loads to the state its rendering (`.txt` beside
/// it) shows, and that state encodes to the very same bytes; together they
/// hold every variant of every tagged enum.
#[test]
fn golden_snapshots_decode_to_their_known_state() {
    let files = golden_files();
    assert!(
        !files.is_empty(),
        "no golden snapshot of version {FORMAT_VERSION}"
    );
    let mut seen = Seen::default();
    for path in files {
        let model = load(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .expect("a snapshot");
        let rendering = std::fs::read_to_string(path.with_extension("txt")).expect("rendering");
        assert!(
            model.render() == rendering,
            "{} does not decode to its rendering",
            path.display()
        );
        let bytes = std::fs::read(&path).expect("golden file");
        assert_eq!(
            canonical_bytes(&model),
            bytes[HEADER_LEN..],
            "{} encodes to other bytes",
            path.display()
        );
        seen.model(&model);
    }
    let missing: Vec<_> = Seen::all().difference(&seen.0).copied().collect();
    assert!(
        missing.is_empty(),
        "no golden snapshot holds {missing:?}: add one that does"
    );
}

/// A model of a generated workload large enough to hold every variant,
/// from which the first golden snapshot of a format version is made.
fn golden_model() -> ReadModel {
    let workload = test_support::workload::Workload::new(
        0x601d,
        test_support::workload::Targets {
            accounts: 40,
            applications: 60,
        },
    )
    .take(900);
    rebuild(workload.iter().map(|(p, s, e)| (*p, s.as_str(), e)))
}

/// Writes the first golden snapshot of this format version when there is
/// none (then fails, so that it is looked at and committed); never
/// overwrites one.
#[test]
fn a_format_version_has_a_golden_snapshot() {
    if !golden_files().is_empty() {
        return;
    }
    let model = golden_model();
    let path = golden_dir().join(format!("v{FORMAT_VERSION}-workload.snapshot"));
    save(&path, &model).expect("write the golden snapshot");
    std::fs::write(path.with_extension("txt"), model.render()).expect("write its rendering");
    panic!("wrote {}; check it in", path.display());
}
