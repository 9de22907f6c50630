//! Wire type of the legacy import event.

use domain::legacy::{Event as L, LegacyOwner, LegacyRecord};
use serde::{Deserialize, Serialize};

use crate::application::KindV1;
use crate::{CodecError, DomainEvent, Encoded, from_bytes, instant, micros, to_bytes};

pub(crate) const TYPES: &[(&str, u16)] = &[("LegacyApplicationImported", 1)];

#[derive(Serialize, Deserialize)]
enum OwnerV1 {
    EmailHash([u8; 32]),
    PidHash([u8; 32]),
}

#[derive(Serialize, Deserialize)]
struct LegacyApplicationImportedV1 {
    reference: String,
    submitted_at: i64,
    kind: KindV1,
    owner: OwnerV1,
    imported_at: i64,
}

pub(crate) fn encode(event: &L) -> Encoded {
    match event {
        L::LegacyApplicationImported {
            record,
            imported_at,
        } => Encoded {
            type_name: "LegacyApplicationImported",
            schema_version: 1,
            payload: to_bytes(&LegacyApplicationImportedV1 {
                reference: record.reference.clone(),
                submitted_at: micros(&record.submitted_at),
                kind: record.kind.into(),
                owner: match record.owner {
                    LegacyOwner::EmailHash(h) => OwnerV1::EmailHash(h),
                    LegacyOwner::PidHash(h) => OwnerV1::PidHash(h),
                },
                imported_at: micros(imported_at),
            }),
        },
    }
}

pub(crate) fn decode(
    type_name: &str,
    version: u16,
    p: &[u8],
) -> Option<Result<DomainEvent, CodecError>> {
    if type_name != "LegacyApplicationImported" {
        return None;
    }
    if version != 1 {
        return Some(Err(CodecError::UnknownVersion {
            type_name: type_name.to_owned(),
            version,
        }));
    }
    Some((|| {
        let w: LegacyApplicationImportedV1 = from_bytes(type_name, version, p)?;
        // Stored records were checked at import; decoding does not re-judge
        // them against today's rules.
        Ok(DomainEvent::Legacy(L::LegacyApplicationImported {
            record: LegacyRecord {
                reference: w.reference,
                submitted_at: instant(type_name, version, w.submitted_at)?,
                kind: w.kind.into(),
                owner: match w.owner {
                    OwnerV1::EmailHash(h) => LegacyOwner::EmailHash(h),
                    OwnerV1::PidHash(h) => LegacyOwner::PidHash(h),
                },
            },
            imported_at: instant(type_name, version, w.imported_at)?,
        }))
    })())
}
