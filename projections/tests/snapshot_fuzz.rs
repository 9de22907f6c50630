//! Arbitrary bytes into the snapshot reader (`projections::snapshot::load`
//! and `read_digest` on a file): random files, a real snapshot altered, and
//! a real snapshot altered inside a section with its checksums made right
//! again, so the section decoders themselves meet the bad bytes. Each gives
//! a typed error or a model, never a panic. The campaign bench includes
//! this file for its long run.

#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use projections::snapshot::{self, SECTIONS, SnapshotError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sha2::{Digest, Sha256};
use test_support::workload::{Targets, Workload};

/// magic, format version, body length, checksum.
const HEADER_LEN: usize = 8 + 4 + 8 + 32;
/// One section table entry: length and SHA-256.
const ENTRY_LEN: usize = 8 + 32;

/// The bytes of a real snapshot of a small but varied model.
pub fn real_snapshot() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let events = Workload::new(
            11,
            Targets {
                accounts: 40,
                applications: 90,
            },
        )
        .take(600);
        let model = snapshot::rebuild(events.iter().map(|(p, s, e)| (*p, s.as_str(), e)));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = snapshot::snapshot_path(dir.path());
        snapshot::save(&path, &model).expect("save");
        std::fs::read(&path).expect("read the snapshot")
    })
}

/// The sections of a snapshot file, split by its table.
fn sections(file: &[u8]) -> Vec<Vec<u8>> {
    let mut offset = HEADER_LEN + SECTIONS * ENTRY_LEN;
    (0..SECTIONS)
        .map(|i| {
            let entry = HEADER_LEN + i * ENTRY_LEN;
            let len = u64::from_le_bytes(file[entry..entry + 8].try_into().expect("8 bytes"));
            let section = file[offset..offset + len as usize].to_vec();
            offset += len as usize;
            section
        })
        .collect()
}

/// A snapshot file of these sections with a right table and checksum.
fn assemble(header: &[u8], sections: &[Vec<u8>]) -> Vec<u8> {
    let mut table = Vec::with_capacity(SECTIONS * ENTRY_LEN);
    for section in sections {
        table.extend_from_slice(&(section.len() as u64).to_le_bytes());
        table.extend_from_slice(&Sha256::digest(section));
    }
    let body_len = table.len() + sections.iter().map(Vec::len).sum::<usize>();
    let mut file = header[..12].to_vec();
    file.extend_from_slice(&(body_len as u64).to_le_bytes());
    file.extend_from_slice(&Sha256::digest(&table));
    file.extend_from_slice(&table);
    for section in sections {
        file.extend_from_slice(section);
    }
    file
}

/// How the bytes of a file or a section are altered.
#[derive(Debug, Clone)]
pub enum Alteration {
    Flip {
        at: prop::sample::Index,
        bit: u8,
    },
    Set {
        at: prop::sample::Index,
        bytes: Vec<u8>,
    },
    Truncate {
        at: prop::sample::Index,
    },
    Extend {
        tail: Vec<u8>,
    },
    Remove {
        at: prop::sample::Index,
        len: usize,
    },
}

fn alteration() -> impl Strategy<Value = Alteration> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(at, bit)| Alteration::Flip { at, bit }),
        (
            any::<prop::sample::Index>(),
            proptest::collection::vec(any::<u8>(), 1..10)
        )
            .prop_map(|(at, bytes)| Alteration::Set { at, bytes }),
        any::<prop::sample::Index>().prop_map(|at| Alteration::Truncate { at }),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(|tail| Alteration::Extend { tail }),
        (any::<prop::sample::Index>(), 1usize..32)
            .prop_map(|(at, len)| Alteration::Remove { at, len }),
    ]
}

fn alter(bytes: &mut Vec<u8>, alteration: &Alteration) {
    let len = bytes.len();
    match alteration {
        Alteration::Flip { at, bit } if len > 0 => bytes[at.index(len)] ^= 1 << bit,
        Alteration::Set { at, bytes: new } if len > 0 => {
            let at = at.index(len);
            for (slot, byte) in bytes[at..].iter_mut().zip(new) {
                *slot = *byte;
            }
        }
        Alteration::Truncate { at } => bytes.truncate(at.index(len + 1)),
        Alteration::Extend { tail } => bytes.extend_from_slice(tail),
        Alteration::Remove { at, len: n } if len > 0 => {
            let at = at.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        _ => {}
    }
}

/// Snapshot files: random bytes (some behind a right header), the real
/// snapshot altered anywhere, and the real snapshot altered inside one
/// section with the checksums fixed so the decoders run.
pub fn snapshot_inputs() -> impl Strategy<Value = Vec<u8>> {
    let real = real_snapshot();
    let random = proptest::collection::vec(any::<u8>(), 0..400);
    let behind_header = proptest::collection::vec(any::<u8>(), 0..400).prop_map(move |tail| {
        let mut file = real[..12].to_vec();
        file.extend_from_slice(&tail);
        file
    });
    let altered = proptest::collection::vec(alteration(), 1..3).prop_map(move |alterations| {
        let mut file = real.to_vec();
        for a in &alterations {
            alter(&mut file, a);
        }
        file
    });
    let resealed = (0..SECTIONS, proptest::collection::vec(alteration(), 1..4)).prop_map(
        move |(section, alterations)| {
            let mut parts = sections(real);
            for a in &alterations {
                alter(&mut parts[section], a);
            }
            assemble(real, &parts)
        },
    );
    let random_sections = proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..64),
        SECTIONS..=SECTIONS,
    )
    .prop_map(move |parts| assemble(real, &parts));
    prop_oneof![
        1 => random,
        1 => behind_header,
        2 => altered,
        5 => resealed,
        1 => random_sections,
    ]
}

/// What reading one file gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Model,
    Error,
}

/// Write `bytes` to `path` and read it back as a snapshot: a model (whose
/// digest [`snapshot::read_digest`] also reads) or a `Corrupt` or
/// `UnknownVersion` error, never `None` for a file that is there.
pub fn check_snapshot(path: &Path, bytes: &[u8]) -> Result<Read, TestCaseError> {
    std::fs::write(path, bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let digest = snapshot::read_digest(path);
    match snapshot::load(path) {
        Ok(Some(model)) => {
            let digest = match digest {
                Ok(Some(digest)) => digest,
                other => return Err(TestCaseError::fail(format!("loaded, yet {other:?}"))),
            };
            prop_assert_eq!(digest.position, model.position);
            Ok(Read::Model)
        }
        Ok(None) => Err(TestCaseError::fail("a file that is there read as none")),
        Err(SnapshotError::Corrupt { .. } | SnapshotError::UnknownVersion { .. }) => {
            prop_assert!(!matches!(digest, Ok(None)));
            Ok(Read::Error)
        }
        Err(SnapshotError::Io { source, .. }) => Err(TestCaseError::fail(format!(
            "I/O error on a readable file: {source}"
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any snapshot file loads or gives a typed error.
    #[test]
    fn any_snapshot_file_loads_or_is_a_typed_error(bytes in snapshot_inputs()) {
        let dir = tempfile::tempdir().expect("temp dir");
        check_snapshot(&snapshot::snapshot_path(dir.path()), &bytes)?;
    }
}

#[test]
fn the_real_snapshot_loads_and_resealed_sections_reach_the_decoders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = snapshot::snapshot_path(dir.path());
    let real = real_snapshot();
    assert_eq!(check_snapshot(&path, real).expect("checked"), Read::Model);
    // Reassembled unchanged, the file is byte for byte the real one.
    assert_eq!(assemble(real, &sections(real)), real);
    // A section cut short behind a right checksum is refused by its decoder.
    let mut parts = sections(real);
    let cut = parts[1].len() / 2;
    parts[1].truncate(cut);
    match snapshot::load(&{
        std::fs::write(&path, assemble(real, &parts)).expect("write");
        path.clone()
    }) {
        Err(SnapshotError::Corrupt { reason, .. }) => {
            assert!(!reason.contains("checksum"), "{reason}")
        }
        other => panic!("{:?}", other.map(|m| m.map(|m| m.position))),
    }
}
