//! Snapshots of the read models: the whole state and its checkpoint (the
//! global position) in one file in the data dir, written atomically, so
//! state and checkpoint can never disagree; the digest of a state; and the
//! rebuild from zero.
//!
//! File layout (all integers little-endian):
//!
//! ```text
//! magic  b"CLPROJSN"       8 bytes
//! format version u32       FORMAT_VERSION
//! body length    u64
//! checksum                 32 bytes: SHA-256 of the section table
//! body                     the section table, then the sections
//! ```
//!
//! The section table lists, for each of the [`SECTIONS`] sections in file
//! order, its length (u64) and the SHA-256 of its bytes; so the checksum
//! covers every byte, and the sections can be read, checked and decoded
//! apart, on two threads. Each section is a hand-written, compact binary
//! rendering (postcard's LEB128 varints, zigzag for signed numbers,
//! length-prefixed strings, read and written by `migrations::wire`; every
//! enum as its stable one-byte tag from a table below, never its position):
//!
//! 0. the ids of all accounts, ascending (raw 16 bytes each);
//! 1. the position, the rest of each account in that order, the ID-porten
//!    directory sorted by subject key, sessions sorted by token digest,
//!    deleted unreleased accounts sorted by id, legacy records sorted by
//!    reference, the positions of events that owe a mail (ascending, as
//!    deltas);
//! 2. and on: the applications in creation (log) order, in
//!    [`APPLICATION_PARTS`] consecutive parts of whole pages; an owner that
//!    is an account is written as its index in section 0 (plus one), any
//!    other as 0 and its id.
//!
//! Indexes that follow from these (the id indexes, the email directory, the
//! inactivity index, each account's sessions, each owner's applications,
//! legacy records per owner) are derived on load. Being sorted, the body
//! does not depend on hash map order, so it is also what
//! [`ReadModel::digest`] hashes (the digest is the checksum).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use domain::application::{
    self, Applicant, Application, Appointment, AppointmentPurpose, CountryCode, Decision,
    DecisionOutcome, DeliveryChannel, Kind, MeetingPointKind, Relation, Status,
};
use domain::legacy::{LegacyOwner, LegacyRecord};
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, Email, LoginIdentity, LoginMethod, SessionId};
use migrations::DomainEvent;
use migrations::wire;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ReadModel;
use crate::model::{AccountStatus, AccountView, SessionView};
use crate::slots::Slots;
use crate::table::{PAGE, Slab, Table, tag_of};

/// Name of the snapshot file in the data dir.
pub const SNAPSHOT_FILE: &str = "projections.snapshot";

/// The format this build writes and reads. A file of an older version is
/// treated as absent, one of a newer version is refused
/// ([`SnapshotError::UnknownVersion`]); either way the models are rebuilt
/// from the log. 4: enums as stable tags (3 wrote their positions).
pub const FORMAT_VERSION: u32 = 4;

const MAGIC: &[u8; 8] = b"CLPROJSN";
const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// Parts the applications are written in (decoded in parallel on load).
pub const APPLICATION_PARTS: usize = 4;
/// Sections of the body: account ids, the rest of the accounts and the
/// small models, the application parts.
pub const SECTIONS: usize = 2 + APPLICATION_PARTS;
/// One section table entry: length and SHA-256.
const ENTRY_LEN: usize = 8 + 32;
const TABLE_LEN: usize = SECTIONS * ENTRY_LEN;

/// Where the snapshot of a data dir lives.
pub fn snapshot_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOT_FILE)
}

/// Why a snapshot could not be written or read. Never a panic: a caller
/// logs it and rebuilds from zero.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is of a newer format version than this build's.
    #[error(
        "snapshot file {path} has format version {found}; this build reads version {FORMAT_VERSION}"
    )]
    UnknownVersion { path: PathBuf, found: u32 },
    /// Not a snapshot, truncated, checksum mismatch or undecodable body.
    #[error("snapshot file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl SnapshotError {
    fn io(path: &Path, source: io::Error) -> SnapshotError {
        SnapshotError::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn corrupt(path: &Path, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Corrupt {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Save and load
// ---------------------------------------------------------------------------

/// Write `model` to `path` atomically: a temporary file beside it, fsync,
/// rename over `path`, fsync of the directory. A crash leaves either the old
/// snapshot or the new one, never a mix.
pub fn save(path: &Path, model: &ReadModel) -> Result<(), SnapshotError> {
    let pending = write_unsynced(path, model)?;
    pending.commit()
}

/// A snapshot written to its temporary file but not yet synced nor renamed.
/// The runner writes it under a read lock and commits after releasing it.
pub struct PendingSnapshot {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
}

impl PendingSnapshot {
    /// fsync the file, rename it over the snapshot, fsync the directory.
    pub fn commit(self) -> Result<(), SnapshotError> {
        let PendingSnapshot { file, tmp, path } = self;
        let result = (|| {
            file.sync_all().map_err(|e| SnapshotError::io(&tmp, e))?;
            drop(file);
            std::fs::rename(&tmp, &path).map_err(|e| SnapshotError::io(&path, e))?;
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| SnapshotError::io(dir, e))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Write the whole file to a fresh temporary path beside `path`.
pub fn write_unsynced(path: &Path, model: &ReadModel) -> Result<PendingSnapshot, SnapshotError> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(name);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        // Header and section table zero first; the real ones are known at
        // the end.
        file.write_all(&[0u8; HEADER_LEN + TABLE_LEN])?;
        let sections = encode_sections(model, &mut FileSink(&mut file))?;
        let table = table_bytes(&sections);
        let body_len = TABLE_LEN as u64 + sections.iter().map(|s| s.len).sum::<u64>();
        let header = header(body_len, Sha256::digest(table).into());
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        file.write_all(&table)?;
        Ok(file)
    })();
    match result {
        Ok(file) => Ok(PendingSnapshot {
            file,
            tmp,
            path: path.to_owned(),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(SnapshotError::io(&tmp, e))
        }
    }
}

fn header(body_len: u64, checksum: [u8; 32]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&body_len.to_le_bytes());
    header[20..].copy_from_slice(&checksum);
    header
}

/// Read the snapshot at `path`: `None` when there is none or it is of an
/// older format version, an error when it is of a newer one or corrupt (bad magic, truncated, wrong
/// checksum, undecodable body). The sections are decoded as they stream
/// from the file (no copy of the whole file in memory), on this thread and
/// one more; the model is returned only when the checksum of every section
/// matches.
pub fn load(path: &Path) -> Result<Option<ReadModel>, SnapshotError> {
    let Some(opened) = open_checked(path)? else {
        return Ok(None);
    };
    decode_sections(&opened.file, &opened.sections)
        .map(Some)
        .map_err(|e| e.at(path))
}

/// What [`read_digest`] finds in a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotDigest {
    /// The global position the snapshot was taken at.
    pub position: u64,
    /// The snapshot's checksum, which is [`ReadModel::digest`] of its state.
    pub digest: [u8; 32],
}

/// The position and digest of the snapshot at `path` without decoding it
/// into a model: the file is checked as [`load`] checks it (magic, format
/// version, lengths, the table checksum and the SHA-256 of every section,
/// streamed from the file in chunks), and only the position is decoded.
/// `None` when there is no snapshot or an older one; the same errors as
/// [`load`] otherwise
/// (a body that decodes wrongly but hashes right is not detected here).
pub fn read_digest(path: &Path) -> Result<Option<SnapshotDigest>, SnapshotError> {
    let Some(opened) = open_checked(path)? else {
        return Ok(None);
    };
    let mut position = None;
    for (i, section) in opened.sections.iter().enumerate() {
        Dec::section(&opened.file, section, |d| {
            // Section 1 begins with the position.
            if i == 1 {
                position = Some(d.varint()?);
            }
            d.skip_rest()
        })
        .map_err(|e| e.at(path))?;
    }
    let position =
        position.ok_or_else(|| SnapshotError::corrupt(path, "the position was not read"))?;
    Ok(Some(SnapshotDigest {
        position,
        digest: opened.checksum,
    }))
}

/// A snapshot file whose header and section table have been checked.
struct Opened {
    file: File,
    /// The header's checksum (the SHA-256 of the section table).
    checksum: [u8; 32],
    /// Where each section lies in the file and its expected SHA-256.
    sections: [Section; SECTIONS],
}

/// Open the snapshot at `path` and check its header and section table:
/// `None` when there is no file or one of an older format version; the
/// sections themselves are not read.
fn open_checked(path: &Path) -> Result<Option<Opened>, SnapshotError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SnapshotError::io(path, e)),
    };
    let mut header = [0u8; HEADER_LEN];
    let filled = read_full_at(&file, &mut header, 0).map_err(|e| SnapshotError::io(path, e))?;
    if filled < HEADER_LEN || &header[..8] != MAGIC {
        return Err(SnapshotError::corrupt(path, "not a read model snapshot"));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version < FORMAT_VERSION {
        // An older build's snapshot: its bytes may mean something else
        // today, so it is as if there were none; the models are rebuilt
        // from the log and the next snapshot replaces it.
        tracing::info!(
            path = %path.display(),
            found = version,
            current = FORMAT_VERSION,
            "read model snapshot of an older format; treated as absent"
        );
        return Ok(None);
    }
    if version != FORMAT_VERSION {
        return Err(SnapshotError::UnknownVersion {
            path: path.to_owned(),
            found: version,
        });
    }
    let body_len = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    let file_len = file
        .metadata()
        .map_err(|e| SnapshotError::io(path, e))?
        .len();
    if file_len != HEADER_LEN as u64 + body_len || body_len < TABLE_LEN as u64 {
        return Err(SnapshotError::corrupt(
            path,
            format!(
                "body is {} bytes, the header says {body_len}",
                file_len.saturating_sub(HEADER_LEN as u64)
            ),
        ));
    }
    let mut table = [0u8; TABLE_LEN];
    let filled = read_full_at(&file, &mut table, HEADER_LEN as u64)
        .map_err(|e| SnapshotError::io(path, e))?;
    if filled < TABLE_LEN {
        return Err(SnapshotError::corrupt(path, "truncated section table"));
    }
    let checksum: [u8; 32] = Sha256::digest(table).into();
    if checksum[..] != header[20..HEADER_LEN] {
        return Err(SnapshotError::corrupt(path, "checksum does not match"));
    }
    let mut sections = [Section::default(); SECTIONS];
    let mut offset = (HEADER_LEN + TABLE_LEN) as u64;
    for (i, section) in sections.iter_mut().enumerate() {
        let entry = &table[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
        section.len = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        section.hash = entry[8..].try_into().expect("32 bytes");
        section.offset = offset;
        offset = offset.saturating_add(section.len);
    }
    if offset != file_len {
        return Err(SnapshotError::corrupt(
            path,
            "the sections do not fill the body",
        ));
    }
    Ok(Some(Opened {
        file,
        checksum,
        sections,
    }))
}

/// Read into `buf` from `offset` until it is full or the file ends;
/// returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_at(file, &mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A positioned read that leaves the file offset alone, so threads can
/// share one open file (and so one snapshot, even if it is replaced).
#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

// ---------------------------------------------------------------------------
// Digest and rebuild
// ---------------------------------------------------------------------------

impl ReadModel {
    /// SHA-256 of the canonical rendering of the whole state, position
    /// included: of the section table of a snapshot body of format
    /// [`FORMAT_VERSION`], which holds the SHA-256 of every section (the
    /// snapshot's own checksum). Equal
    /// digests mean equal positions and equal read models; it does not
    /// depend on hash map order or on how the state was reached (live, in
    /// any batch sizes, rebuilt from zero, or loaded from a snapshot). It
    /// changes only with the format version.
    pub fn digest(&self) -> [u8; 32] {
        let sections = encode_sections(self, &mut Discard).expect("hashing never fails");
        Sha256::digest(table_bytes(&sections)).into()
    }
}

/// Fold decoded events `(position, stream, event)` from an empty model.
pub fn rebuild<S, E>(events: impl IntoIterator<Item = (u64, S, E)>) -> ReadModel
where
    S: AsRef<str>,
    E: std::borrow::Borrow<DomainEvent>,
{
    let mut model = ReadModel::default();
    for (position, stream, event) in events {
        model.apply(position, stream.as_ref(), event.borrow());
    }
    model
}

/// The result of [`rebuild_from_log`].
#[derive(Debug)]
pub struct Rebuilt {
    /// The model at the head of the log.
    pub model: ReadModel,
    /// Positions of events that did not decode (skipped, as live).
    pub undecodable: Vec<u64>,
}

/// Fold the whole log of `store` from zero, as the live runner would, up to
/// the head at the time of the call.
pub async fn rebuild_from_log(store: &dyn store::EventStore) -> Result<Rebuilt, store::StoreError> {
    use futures::StreamExt;
    let mut model = ReadModel::default();
    let mut undecodable = Vec::new();
    let mut items = store.subscribe_all(0);
    while let Some(item) = items.next().await {
        match item? {
            store::SubscriptionItem::Event(e) => {
                match migrations::decode(&e.type_name, e.schema_version, &e.payload) {
                    Ok(event) => model.apply(e.position, &e.stream, &event),
                    Err(_) => undecodable.push(e.position),
                }
            }
            store::SubscriptionItem::CaughtUp => break,
        }
    }
    Ok(Rebuilt { model, undecodable })
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Where encoded bytes go.
trait Sink {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// Bytes that are only hashed (the digest).
struct Discard;

impl Sink for Discard {
    fn put(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

struct FileSink<'a>(&'a mut File);

impl Sink for FileSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
}

/// Counts and hashes the bytes of one section on their way to the sink.
struct Hashed<'a, S: Sink> {
    sink: &'a mut S,
    hash: Sha256,
    len: u64,
}

impl<S: Sink> Sink for Hashed<'_, S> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.len += bytes.len() as u64;
        self.sink.put(bytes)
    }
}

/// A section: where it starts in the file (on load), its length and its
/// SHA-256.
#[derive(Debug, Clone, Copy, Default)]
struct Section {
    offset: u64,
    len: u64,
    hash: [u8; 32],
}

fn table_bytes(sections: &[Section; SECTIONS]) -> [u8; TABLE_LEN] {
    let mut table = [0u8; TABLE_LEN];
    for (entry, section) in table.chunks_exact_mut(ENTRY_LEN).zip(sections) {
        entry[..8].copy_from_slice(&section.len.to_le_bytes());
        entry[8..].copy_from_slice(&section.hash);
    }
    table
}

/// Encode one section through `body` into `sink`.
fn section<S: Sink>(
    sink: &mut S,
    body: impl FnOnce(&mut Enc<'_, Hashed<'_, S>>) -> io::Result<()>,
) -> io::Result<Section> {
    let mut hashed = Hashed {
        sink,
        hash: Sha256::new(),
        len: 0,
    };
    let mut e = Enc {
        buf: Vec::with_capacity(CHUNK + 4096),
        sink: &mut hashed,
    };
    body(&mut e)?;
    e.finish()?;
    Ok(Section {
        offset: 0,
        len: hashed.len,
        hash: hashed.hash.finalize().into(),
    })
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Buffers small writes and hands them to the sink in large chunks.
struct Enc<'a, S: Sink> {
    buf: Vec<u8>,
    sink: &'a mut S,
}

const CHUNK: usize = 1 << 18;

impl<S: Sink> Enc<'_, S> {
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.sink.put(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.sink.put(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn tag<T: Tagged>(&mut self, v: T) {
        self.u8(v.tag());
    }

    fn varint(&mut self, v: u64) {
        wire::write_u64(&mut self.buf, v);
    }

    fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }

    fn signed(&mut self, v: i64) {
        wire::write_i64(&mut self.buf, v);
    }

    fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    fn str(&mut self, v: &str) {
        self.len(v.len());
        self.bytes(v.as_bytes());
    }

    fn uuid(&mut self, v: &Uuid) {
        self.bytes(v.as_bytes());
    }

    fn time(&mut self, v: &DateTime<Utc>) {
        self.signed(v.timestamp());
        self.varint(u64::from(v.timestamp_subsec_nanos()));
    }

    fn opt_time(&mut self, v: &Option<DateTime<Utc>>) {
        match v {
            None => self.u8(0),
            Some(t) => {
                self.u8(1);
                self.time(t);
            }
        }
    }

    fn date(&mut self, v: &NaiveDate) {
        self.signed(i64::from(chrono::Datelike::num_days_from_ce(v)));
    }
}

// ---------------------------------------------------------------------------
// Stable tags
// ---------------------------------------------------------------------------

/// An enum the snapshot stores as a one-byte tag. Each variant's tag is
/// written once, in its type's table below, and never changes: the tag,
/// not the variant's position, carries the meaning, so a reordered enum
/// reads old snapshots the same; a variant without a tag does not compile
/// (the match in `tag` is exhaustive); a tag the table does not know is a
/// corrupt snapshot.
trait Tagged: Sized + Copy + PartialEq + std::fmt::Debug + 'static {
    /// What the value is, for errors.
    const WHAT: &'static str;
    /// Every variant with its tag, as in the table.
    #[cfg(test)]
    const TAGS: &'static [(Self, u8)];
    /// The tag of `self`.
    fn tag(self) -> u8;
    /// The variant of `tag`, if the table has it.
    fn from_tag(tag: u8) -> Option<Self>;
}

/// One table per enum: every variant with its tag, matched both ways.
macro_rules! tags {
    ($type:ty, $what:literal, { $($variant:path => $tag:literal,)+ }) => {
        impl Tagged for $type {
            const WHAT: &'static str = $what;
            #[cfg(test)]
            const TAGS: &'static [(Self, u8)] = &[$(($variant, $tag)),+];

            #[inline]
            fn tag(self) -> u8 {
                match self {
                    $($variant => $tag,)+
                }
            }

            #[inline]
            fn from_tag(tag: u8) -> Option<Self> {
                match tag {
                    $($tag => Some($variant),)+
                    _ => None,
                }
            }
        }
    };
}

tags!(LoginMethod, "login method", {
    LoginMethod::Password => b'P',
    LoginMethod::IdPorten => b'I',
});

tags!(AccountStatus, "account status", {
    AccountStatus::Active => b'A',
    AccountStatus::Deleted => b'D',
});

tags!(Kind, "kind", {
    Kind::Work => b'W',
    Kind::Family => b'F',
    Kind::Study => b'S',
    Kind::Visit => b'V',
    Kind::Protection => b'P',
    Kind::Citizenship => b'C',
});

tags!(Relation, "relation", {
    Relation::Myself => b'M',
    Relation::FamilyMember => b'F',
    Relation::Employee => b'E',
    Relation::Other => b'O',
});

tags!(Status, "status", {
    Status::Draft => b'D',
    Status::Submitted => b'S',
    Status::AppointmentBooked => b'B',
    Status::DocumentsReceived => b'R',
    Status::Decided => b'V',
});

tags!(MeetingPointKind, "meeting point", {
    MeetingPointKind::Police => b'P',
    MeetingPointKind::Sua => b'S',
    MeetingPointKind::Embassy => b'E',
    MeetingPointKind::VisaCentre => b'V',
});

tags!(AppointmentPurpose, "appointment purpose", {
    AppointmentPurpose::Application => b'A',
    AppointmentPurpose::ResidenceCardPhoto => b'R',
});

tags!(DecisionOutcome, "outcome", {
    DecisionOutcome::Granted => b'G',
    DecisionOutcome::Refused => b'R',
});

tags!(DeliveryChannel, "channel", {
    DeliveryChannel::Digipost => b'D',
    DeliveryChannel::Post => b'P',
});

/// Tag of a legacy record owned by the keyed hash of an email.
const LEGACY_OWNER_EMAIL: u8 = b'E';
/// Tag of a legacy record owned by the keyed hash of a pid.
const LEGACY_OWNER_PID: u8 = b'P';

/// Applications per part (a whole number of pages) for `total` of them.
fn application_part_len(total: usize) -> usize {
    total.div_ceil(APPLICATION_PARTS).div_ceil(PAGE).max(1) * PAGE
}

/// Encode the sections one after the other into `sink`.
fn encode_sections<S: Sink>(model: &ReadModel, sink: &mut S) -> io::Result<[Section; SECTIONS]> {
    let mut accounts: Vec<&AccountView> = model.accounts.values().collect();
    accounts.sort_unstable_by_key(|a| a.id);
    let ids: Vec<AccountId> = accounts.iter().map(|a| a.id).collect();
    let mut sections = [Section::default(); SECTIONS];
    sections[0] = section(sink, |e| {
        e.len(ids.len());
        for id in &ids {
            e.uuid(&id.0);
            e.spill()?;
        }
        Ok(())
    })?;
    sections[1] = section(sink, |e| encode_rest(model, &accounts, e))?;

    // Each application's owner as an index into `ids` (plus one), from the
    // accounts' own lists: no lookup per application.
    let all = &model.applications.all;
    let mut owners = vec![0u32; all.len()];
    for (i, account) in accounts.iter().enumerate() {
        for slot in &account.applications {
            if let Some(owner) = owners.get_mut(*slot as usize) {
                *owner = i as u32 + 1;
            }
        }
    }
    let total = all.values().filter(|s| s.application.is_some()).count();
    let part_len = application_part_len(total);
    let mut apps = all
        .values()
        .zip(&owners)
        .filter_map(|(s, owner)| Some((s.application.as_ref()?, *owner)));
    for part in 0..APPLICATION_PARTS {
        let count = part_len.min(total.saturating_sub(part * part_len));
        sections[2 + part] = section(sink, |e| {
            e.len(count);
            for (app, owner) in apps.by_ref().take(count) {
                // The index is used only when it names the owner.
                let owner = match owner.checked_sub(1).and_then(|i| ids.get(i as usize)) {
                    Some(id) if *id == app.owner.account => owner,
                    _ => 0,
                };
                encode_application(e, app, owner);
                e.spill()?;
            }
            Ok(())
        })?;
    }
    Ok(sections)
}

/// Section 1: the position, the accounts (without their ids, in id order)
/// and the small models.
fn encode_rest<S: Sink>(
    model: &ReadModel,
    accounts: &[&AccountView],
    e: &mut Enc<'_, S>,
) -> io::Result<()> {
    e.varint(model.position);
    for a in accounts {
        e.tag(a.method);
        e.tag(a.status);
        let in_directory = a
            .email
            .as_ref()
            .is_some_and(|m| model.filed_under(m.as_str()) == Some(a.id));
        let flags = u8::from(a.email.is_some())
            | u8::from(in_directory) << 1
            | u8::from(a.last_login_at.is_some()) << 2
            | u8::from(a.warned_at.is_some()) << 3
            | u8::from(a.pid_key.is_some()) << 4;
        e.u8(flags);
        if let Some(email) = &a.email {
            e.str(email.as_str());
        }
        e.str(&a.name);
        e.time(&a.created_at);
        if let Some(t) = &a.last_login_at {
            e.time(t);
        }
        if let Some(t) = &a.warned_at {
            e.time(t);
        }
        if let Some(k) = &a.pid_key {
            e.bytes(k);
        }
        e.spill()?;
    }

    let mut idporten: Vec<(&[u8; 32], &AccountId)> = model.idporten_directory.iter().collect();
    idporten.sort_unstable();
    e.len(idporten.len());
    for (subject, id) in idporten {
        e.bytes(subject);
        e.uuid(&id.0);
        e.spill()?;
    }

    let mut sessions: Vec<(&[u8; 32], &SessionView)> = model.sessions.iter().collect();
    sessions.sort_unstable_by_key(|(digest, _)| *digest);
    e.len(sessions.len());
    for (digest, s) in sessions {
        e.bytes(digest);
        e.uuid(&s.account.0);
        e.uuid(&s.id.0);
        e.tag(s.method);
        e.time(&s.started_at);
        e.time(&s.expires_at);
        e.varint(u64::from(s.idle_timeout_seconds));
        e.spill()?;
    }

    let mut unreleased: Vec<&AccountId> = model.deleted_unreleased.iter().collect();
    unreleased.sort_unstable();
    e.len(unreleased.len());
    for id in unreleased {
        e.uuid(&id.0);
    }
    e.spill()?;

    let mut legacy: Vec<&LegacyRecord> = model.applications.legacy_by_reference.values().collect();
    legacy.sort_unstable_by(|a, b| a.reference.cmp(&b.reference));
    e.len(legacy.len());
    for r in legacy {
        e.str(&r.reference);
        e.time(&r.submitted_at);
        e.tag(r.kind);
        match &r.owner {
            LegacyOwner::EmailHash(h) => {
                e.u8(LEGACY_OWNER_EMAIL);
                e.bytes(h);
            }
            LegacyOwner::PidHash(h) => {
                e.u8(LEGACY_OWNER_PID);
                e.bytes(h);
            }
        }
        e.spill()?;
    }

    e.len(model.mail_owed.len());
    let mut previous = 0;
    for position in &model.mail_owed {
        e.varint(position - previous);
        previous = *position;
        e.spill()?;
    }
    Ok(())
}

fn encode_appointment<S: Sink>(e: &mut Enc<'_, S>, a: &Appointment) {
    e.tag(a.meeting_point);
    e.str(&a.location);
    e.time(&a.starts_at);
    e.tag(a.purpose);
}

/// One application; `owner` is the owner's index in section 0 plus one, or
/// 0 to write the owner's id.
fn encode_application<S: Sink>(e: &mut Enc<'_, S>, app: &Application, owner: u32) {
    e.uuid(&app.id.0);
    e.varint(u64::from(owner));
    if owner == 0 {
        e.uuid(&app.owner.account.0);
    }
    e.tag(app.owner.method);
    e.tag(app.kind);
    e.tag(app.relation);
    e.tag(app.status);
    e.str(app.applicant.name.as_str());
    e.date(&app.applicant.birth_date);
    e.str(app.applicant.nationality.as_str());
    e.time(&app.created_at);
    e.time(&app.updated_at);
    e.opt_time(&app.submitted_at);
    match &app.appointment {
        None => e.u8(0),
        Some(a) => {
            e.u8(1);
            encode_appointment(e, a);
        }
    }
    match &app.photo_appointment {
        None => e.u8(0),
        Some(a) => {
            e.u8(1);
            encode_appointment(e, a);
        }
    }
    e.opt_time(&app.documents_received_at);
    match app.fee_paid_nok {
        None => e.u8(0),
        Some(n) => {
            e.u8(1);
            e.varint(u64::from(n));
        }
    }
    e.opt_time(&app.fee_paid_at);
    e.opt_time(&app.refund_requested_at);
    match &app.decision {
        None => e.u8(0),
        Some(d) => {
            e.u8(1);
            e.tag(d.outcome);
            e.tag(d.channel);
            e.time(&d.at);
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

struct DecodeError(String);

type Decoded<T> = Result<T, DecodeError>;

fn bad<T>(what: impl Into<String>) -> Decoded<T> {
    Err(DecodeError(what.into()))
}

/// Decodes one section as it streams from the file, hashing each byte read.
struct Dec<'a> {
    file: &'a File,
    /// File offset of the next byte to read.
    offset: u64,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    hash: Sha256,
    /// Section bytes not yet read from the file.
    remaining: u64,
    /// Section bytes consumed by the decoder.
    at: u64,
    io_error: Option<io::Error>,
    /// Country codes seen so far (parsing each again would cost more).
    countries: HashMap<[u8; 3], CountryCode>,
}

/// Why a section could not be loaded.
enum LoadError {
    Io(io::Error),
    Corrupt(String),
}

impl LoadError {
    /// The error as a [`SnapshotError`] of the file at `path`.
    fn at(self, path: &Path) -> SnapshotError {
        match self {
            LoadError::Io(e) => SnapshotError::io(path, e),
            LoadError::Corrupt(reason) => SnapshotError::corrupt(path, reason),
        }
    }
}

impl<'a> Dec<'a> {
    fn new(file: &'a File, section: &Section) -> Dec<'a> {
        Dec {
            file,
            offset: section.offset,
            buf: vec![0; (1 << 20).min(section.len as usize).max(64)],
            start: 0,
            end: 0,
            hash: Sha256::new(),
            remaining: section.len,
            at: 0,
            io_error: None,
            countries: HashMap::new(),
        }
    }

    /// Decode `section` with `decode`: all of it, and only if its SHA-256
    /// is the one in the table.
    fn section<T>(
        file: &'a File,
        section: &Section,
        decode: impl FnOnce(&mut Dec<'a>) -> Decoded<T>,
    ) -> Result<T, LoadError> {
        let mut d = Dec::new(file, section);
        let decoded = decode(&mut d);
        if let Some(e) = d.io_error.take() {
            return Err(LoadError::Io(e));
        }
        let value = decoded.map_err(|e| LoadError::Corrupt(e.0))?;
        if d.remaining != 0 || d.start != d.end {
            return Err(LoadError::Corrupt(
                "bytes after the end of a section".into(),
            ));
        }
        let hash: [u8; 32] = d.hash.finalize().into();
        if hash != section.hash {
            return Err(LoadError::Corrupt("checksum does not match".into()));
        }
        Ok(value)
    }

    /// Make `n` bytes available in `buf[start..]`.
    fn fill(&mut self, n: usize) -> Decoded<()> {
        if self.end - self.start >= n {
            return Ok(());
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n {
            let room = (self.buf.len() - self.end)
                .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            if room == 0 {
                return bad(format!("truncated at body byte {}", self.at));
            }
            match read_at(
                self.file,
                &mut self.buf[self.end..self.end + room],
                self.offset,
            ) {
                Ok(0) => return bad(format!("truncated at body byte {}", self.at)),
                Ok(read) => {
                    self.hash.update(&self.buf[self.end..self.end + read]);
                    self.offset += read as u64;
                    self.end += read;
                    self.remaining -= read as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let message = e.to_string();
                    self.io_error = Some(e);
                    return bad(message);
                }
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Decoded<&[u8]> {
        self.fill(n)?;
        let bytes = &self.buf[self.start..self.start + n];
        self.start += n;
        self.at += n as u64;
        Ok(bytes)
    }

    /// Consume the rest of the section a buffer at a time, hashing it
    /// without decoding it.
    fn skip_rest(&mut self) -> Decoded<()> {
        loop {
            self.at += (self.end - self.start) as u64;
            self.start = self.end;
            if self.remaining == 0 {
                return Ok(());
            }
            let chunk = usize::try_from(self.remaining)
                .map_or(self.buf.len(), |remaining| remaining.min(self.buf.len()));
            self.fill(chunk)?;
        }
    }

    fn left(&self) -> u64 {
        self.remaining + (self.end - self.start) as u64
    }

    fn u8(&mut self) -> Decoded<u8> {
        if self.start < self.end {
            let v = self.buf[self.start];
            self.start += 1;
            self.at += 1;
            return Ok(v);
        }
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Decoded<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => bad(format!("option tag {other} at byte {}", self.at - 1)),
        }
    }

    /// A value read by `read` from the buffered bytes: as many as the
    /// longest varint, or the rest of the section.
    #[inline]
    fn read<T>(&mut self, read: impl FnOnce(&mut &[u8]) -> Option<T>) -> Decoded<T> {
        let wanted = usize::try_from(self.left())
            .map_or(wire::MAX_VARINT_LEN, |left| left.min(wire::MAX_VARINT_LEN));
        self.fill(wanted)?;
        let mut window = &self.buf[self.start..self.end];
        let before = window.len();
        match read(&mut window) {
            Some(value) => {
                let used = before - window.len();
                self.start += used;
                self.at += used as u64;
                Ok(value)
            }
            None => bad(format!("bad or cut-short varint at byte {}", self.at)),
        }
    }

    fn varint(&mut self) -> Decoded<u64> {
        self.read(wire::read_u64)
    }

    fn len(&mut self) -> Decoded<usize> {
        let n = self.varint()?;
        // Every counted item takes at least one byte.
        match usize::try_from(n) {
            Ok(n) if n as u64 <= self.left() => Ok(n),
            _ => bad(format!("count {n} exceeds the file at byte {}", self.at)),
        }
    }

    fn signed(&mut self) -> Decoded<i64> {
        self.read(wire::read_i64)
    }

    fn array<const N: usize>(&mut self) -> Decoded<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn str(&mut self) -> Decoded<&str> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).or_else(|_| bad("text is not UTF-8"))
    }

    fn uuid(&mut self) -> Decoded<Uuid> {
        Ok(Uuid::from_bytes(self.array::<16>()?))
    }

    fn time(&mut self) -> Decoded<DateTime<Utc>> {
        let secs = self.signed()?;
        let nanos = u32::try_from(self.varint()?).or_else(|_| bad("nanoseconds out of range"))?;
        DateTime::from_timestamp(secs, nanos).map_or_else(|| bad("instant out of range"), Ok)
    }

    fn opt_time(&mut self) -> Decoded<Option<DateTime<Utc>>> {
        if self.flag()? {
            Ok(Some(self.time()?))
        } else {
            Ok(None)
        }
    }

    fn date(&mut self) -> Decoded<NaiveDate> {
        let days = i32::try_from(self.signed()?).or_else(|_| bad("date out of range"))?;
        NaiveDate::from_num_days_from_ce_opt(days).map_or_else(|| bad("date out of range"), Ok)
    }

    fn tagged<T: Tagged>(&mut self) -> Decoded<T> {
        let tag = self.u8()?;
        T::from_tag(tag).map_or_else(|| bad(format!("unknown {} tag {tag:#04x}", T::WHAT)), Ok)
    }

    fn country(&mut self) -> Decoded<CountryCode> {
        let key: [u8; 3] = self
            .str()?
            .as_bytes()
            .try_into()
            .or_else(|_| bad("nationality is not three letters"))?;
        if let Some(code) = self.countries.get(&key) {
            return Ok(*code);
        }
        let raw = std::str::from_utf8(&key).or_else(|_| bad("nationality is not text"))?;
        let code = CountryCode::parse(raw).or_else(|_| bad("unknown nationality"))?;
        self.countries.insert(key, code);
        Ok(code)
    }
}

/// Section 0: the account ids, strictly ascending.
fn decode_ids(d: &mut Dec) -> Decoded<Vec<AccountId>> {
    let count = d.len()?;
    let mut ids = Vec::with_capacity(count.min(1 << 24));
    for _ in 0..count {
        let id = AccountId(d.uuid()?);
        if ids.last().is_some_and(|last| *last >= id) {
            return bad("account ids out of order or repeated");
        }
        ids.push(id);
    }
    Ok(ids)
}

fn decode_account(d: &mut Dec, id: AccountId) -> Decoded<(AccountView, bool)> {
    let method = d.tagged()?;
    let status = d.tagged()?;
    let flags = d.u8()?;
    if flags >> 5 != 0 {
        return bad(format!("unknown account flags {flags:#x}"));
    }
    let email = if flags & 1 != 0 {
        let raw = d.str()?;
        match Email::parse(raw) {
            Ok(email) if email.as_str() == raw => Some(email),
            _ => return bad("an account email is not a normalised address"),
        }
    } else {
        None
    };
    if flags & 2 != 0 && email.is_none() {
        return bad("directory flag on an account without email");
    }
    let name = d.str()?.to_owned();
    let created_at = d.time()?;
    let last_login_at = if flags & 4 != 0 {
        Some(d.time()?)
    } else {
        None
    };
    let warned_at = if flags & 8 != 0 {
        Some(d.time()?)
    } else {
        None
    };
    let pid_key = if flags & 16 != 0 {
        Some(d.array::<32>()?)
    } else {
        None
    };
    let account = AccountView {
        id,
        method,
        email,
        name,
        status,
        created_at,
        last_login_at,
        warned_at,
        pid_key,
        applications: Slots::default(),
    };
    Ok((account, flags & 2 != 0))
}

/// Section 1: the model without its applications (accounts with their
/// indexes, directories, sessions, legacy records, owed mails).
fn decode_rest(d: &mut Dec, ids: &[AccountId]) -> Decoded<ReadModel> {
    let mut model = ReadModel {
        position: d.varint()?,
        ..ReadModel::default()
    };
    let mut values = Slab::default();
    let mut tags = Vec::with_capacity(ids.len());
    let mut inactivity = Vec::with_capacity(ids.len());
    // (fingerprint, slot) of the accounts filed in the email directory.
    let mut filed = Vec::with_capacity(ids.len());
    for id in ids {
        let (account, in_directory) = decode_account(d, *id)?;
        if let Some(key) = crate::model::inactivity_key(&account, values.len() as u32) {
            inactivity.push(key);
        }
        if in_directory && let Some(email) = &account.email {
            let fingerprint = model.email_directory.fingerprint(email.as_str());
            filed.push((fingerprint, values.len() as u32));
        }
        tags.push(tag_of(id));
        values.push(account);
    }
    model.accounts =
        Table::from_values(values, &tags).or_else(|_| bad("an account appears twice"))?;
    drop(tags);
    inactivity.sort_unstable();
    model.inactivity = crate::inactivity::InactivityIndex::from_sorted(inactivity);
    model.email_directory.reserve(filed.len());
    for (fingerprint, slot) in filed {
        let accounts = &model.accounts;
        if let Some(email) = crate::model::account_email(accounts, slot) {
            model
                .email_directory
                .insert_fingerprinted(fingerprint, email, slot, |slot| {
                    crate::model::account_email(accounts, slot)
                });
        }
    }

    let count = d.len()?;
    for _ in 0..count {
        let subject = d.array::<32>()?;
        let id = AccountId(d.uuid()?);
        model.idporten_directory.insert(subject, id);
    }

    let count = d.len()?;
    let mut expiries = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let digest = d.array::<32>()?;
        let session = SessionView {
            account: AccountId(d.uuid()?),
            id: SessionId(d.uuid()?),
            method: d.tagged()?,
            started_at: d.time()?,
            expires_at: d.time()?,
            idle_timeout_seconds: u32::try_from(d.varint()?)
                .or_else(|_| bad("idle timeout out of range"))?,
        };
        if model.accounts.get(&session.account).is_none() {
            return bad("a session of an unknown account");
        }
        model.list_session(session.account, digest);
        expiries.push((session.expires_at, digest));
        model.sessions.insert(digest, session);
    }
    model.session_expiry = crate::expiry::ExpiryQueue::from_entries(expiries);

    let count = d.len()?;
    for _ in 0..count {
        model.deleted_unreleased.insert(AccountId(d.uuid()?));
    }

    let count = d.len()?;
    for _ in 0..count {
        let reference = d.str()?.to_owned();
        let submitted_at = d.time()?;
        let kind = d.tagged()?;
        let owner = match d.u8()? {
            LEGACY_OWNER_EMAIL => LegacyOwner::EmailHash(d.array::<32>()?),
            LEGACY_OWNER_PID => LegacyOwner::PidHash(d.array::<32>()?),
            other => return bad(format!("unknown legacy owner tag {other:#04x}")),
        };
        model.applications.insert_legacy(LegacyRecord {
            reference,
            submitted_at,
            kind,
            owner,
        });
    }

    let count = d.len()?;
    let mut position = 0u64;
    model.mail_owed.reserve(count);
    for _ in 0..count {
        position = position
            .checked_add(d.varint()?)
            .map_or_else(|| bad("mail position out of range"), Ok)?;
        if model.mail_owed.last().is_some_and(|last| *last >= position) {
            return bad("mail positions out of order");
        }
        model.mail_owed.push(position);
    }
    Ok(model)
}

/// One part of the applications, decoded.
#[derive(Default)]
struct ApplicationPart {
    values: Slab<application::State>,
    /// [`tag_of`] each application's id.
    tags: Vec<u32>,
    /// Each owner's index in section 0 plus one, or 0 (any other owner).
    owners: Vec<u32>,
}

/// A part of the applications (sections 2 and on).
fn decode_applications(d: &mut Dec, ids: &[AccountId]) -> Decoded<ApplicationPart> {
    let count = d.len()?;
    let mut part = ApplicationPart {
        values: Slab::default(),
        tags: Vec::with_capacity(count),
        owners: Vec::with_capacity(count),
    };
    for _ in 0..count {
        let (app, owner) = decode_application(d, ids)?;
        part.tags.push(tag_of(&app.id));
        part.owners.push(owner);
        part.values.push(application::State {
            application: Some(app),
        });
    }
    Ok(part)
}

/// What one decoding task gives.
enum DecodedSection {
    Rest(Box<ReadModel>),
    Applications(usize, ApplicationPart),
}

/// Decode sections 1 and on on this thread and one more (each takes the
/// next section not yet taken, the large section 1 first), then join the
/// parts and derive the application indexes.
fn decode_sections(file: &File, sections: &[Section; SECTIONS]) -> Result<ReadModel, LoadError> {
    use std::sync::atomic::AtomicUsize;
    let ids = Dec::section(file, &sections[0], decode_ids)?;
    let next = AtomicUsize::new(1);
    let work = || -> Result<Vec<DecodedSection>, LoadError> {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(section) = sections.get(i) else {
                return Ok(done);
            };
            let decoded = if i == 1 {
                Dec::section(file, section, |d| decode_rest(d, &ids))
                    .map(|model| DecodedSection::Rest(Box::new(model)))
            } else {
                Dec::section(file, section, |d| decode_applications(d, &ids))
                    .map(|part| DecodedSection::Applications(i - 2, part))
            };
            match decoded {
                Ok(decoded) => done.push(decoded),
                Err(e) => {
                    // The other thread takes no more.
                    next.store(SECTIONS, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    };
    let (mine, theirs) = std::thread::scope(|scope| {
        let other = scope.spawn(work);
        let mine = work();
        let theirs = other
            .join()
            .unwrap_or_else(|_| Err(LoadError::Corrupt("a decoding thread panicked".into())));
        (mine, theirs)
    });
    let mut model = None;
    let mut parts: Vec<Option<ApplicationPart>> = Vec::new();
    parts.resize_with(APPLICATION_PARTS, || None);
    for decoded in mine?.into_iter().chain(theirs?) {
        match decoded {
            DecodedSection::Rest(rest) => model = Some(*rest),
            DecodedSection::Applications(i, part) => parts[i] = Some(part),
        }
    }
    let mut model =
        model.ok_or_else(|| LoadError::Corrupt("the accounts section was not decoded".into()))?;
    let mut all = ApplicationPart::default();
    for part in parts.into_iter().flatten() {
        all.values.append(part.values);
        all.tags.extend(part.tags);
        all.owners.extend(part.owners);
    }
    file_applications(&mut model, all).map_err(|e| LoadError::Corrupt(e.0))?;
    Ok(model)
}

/// Put the decoded applications in the model: the id index (on a second
/// thread) and each owner's list, from the owner indexes in bulk (the
/// accounts are in id order, so an account's slot is its index).
fn file_applications(model: &mut ReadModel, part: ApplicationPart) -> Decoded<()> {
    let ApplicationPart {
        values,
        tags,
        mut owners,
    } = part;
    // Owners given by id: an account after all, or not (yet) one.
    for (slot, owner) in owners.iter_mut().enumerate() {
        if *owner != 0 {
            continue;
        }
        let Some(id) = values
            .get(slot as u32)
            .and_then(|s| s.application.as_ref())
            .map(|a| a.owner.account)
        else {
            continue;
        };
        match model.accounts.slot(&id) {
            Some(account) => *owner = account + 1,
            None => model
                .applications
                .orphans
                .entry(id)
                .or_default()
                .push(slot as u32),
        }
    }
    let accounts = &mut model.accounts;
    let index = std::thread::scope(|scope| {
        let index = scope.spawn(move || Table::from_values(values, &tags));
        // Counting sort of the slots by owner: count each account's
        // applications at its index plus one, then turn the counts into
        // starts (`ends[i + 1]` is where account i starts in `flat`).
        let n = accounts.len();
        let mut ends = vec![0usize; n + 1];
        for owner in &owners {
            if let Some(end) = ends.get_mut(*owner as usize).filter(|_| *owner != 0) {
                *end += 1;
            }
        }
        let mut total = 0;
        for end in &mut ends {
            total += *end;
            *end = total - *end;
        }
        // Fill from the starts; `at[i + 1]` ends as where account i ends.
        let mut at = ends.clone();
        let mut flat = vec![0u32; total];
        for (slot, owner) in owners.iter().enumerate() {
            if *owner != 0 && (*owner as usize) <= n {
                let cursor = &mut at[*owner as usize];
                flat[*cursor] = slot as u32;
                *cursor += 1;
            }
        }
        for i in 0..n {
            let (start, end) = (ends[i + 1], at[i + 1]);
            if start < end
                && let Some(account) = accounts.by_slot_mut(i as u32)
            {
                account.applications = Slots::from(&flat[start..end]);
            }
        }
        index.join()
    });
    model.applications.all = match index {
        Ok(Ok(index)) => index,
        Ok(Err(_)) => return bad("an application appears twice"),
        Err(_) => return bad("building the application index panicked"),
    };
    Ok(())
}

fn decode_appointment(d: &mut Dec) -> Decoded<Option<Appointment>> {
    if !d.flag()? {
        return Ok(None);
    }
    Ok(Some(Appointment {
        meeting_point: d.tagged()?,
        location: d.str()?.to_owned(),
        starts_at: d.time()?,
        purpose: d.tagged()?,
    }))
}

/// One application and its owner's index in section 0 plus one (0: an
/// owner given by id).
fn decode_application(d: &mut Dec, ids: &[AccountId]) -> Decoded<(Application, u32)> {
    let id = ApplicationId(d.uuid()?);
    let index = u32::try_from(d.varint()?).or_else(|_| bad("owner out of range"))?;
    let account = match index.checked_sub(1) {
        None => AccountId(d.uuid()?),
        Some(i) => match ids.get(i as usize) {
            Some(id) => *id,
            None => return bad("an application of an unknown account"),
        },
    };
    let owner = LoginIdentity {
        account,
        method: d.tagged()?,
    };
    let kind = d.tagged()?;
    let relation = d.tagged()?;
    let status = d.tagged()?;
    let name = d.str()?;
    let name = match PersonName::from_recorded(name) {
        Ok(parsed) if parsed.as_str() == name => parsed,
        _ => return bad("an applicant name is not valid"),
    };
    let birth_date = d.date()?;
    let nationality = d.country()?;
    let created_at = d.time()?;
    let updated_at = d.time()?;
    let submitted_at = d.opt_time()?;
    let appointment = decode_appointment(d)?;
    let photo_appointment = decode_appointment(d)?;
    let documents_received_at = d.opt_time()?;
    let fee_paid_nok = if d.flag()? {
        Some(u32::try_from(d.varint()?).or_else(|_| bad("fee out of range"))?)
    } else {
        None
    };
    let fee_paid_at = d.opt_time()?;
    let refund_requested_at = d.opt_time()?;
    let decision = if d.flag()? {
        Some(Decision {
            outcome: d.tagged()?,
            channel: d.tagged()?,
            at: d.time()?,
        })
    } else {
        None
    };
    let app = Application {
        id,
        owner,
        kind,
        relation,
        applicant: Applicant {
            name,
            birth_date,
            nationality,
        },
        status,
        created_at,
        submitted_at,
        appointment,
        photo_appointment,
        documents_received_at,
        fee_paid_nok,
        fee_paid_at,
        refund_requested_at,
        decision,
        updated_at,
    };
    Ok((app, index))
}

/// The canonical body of `model` in memory (tests and tools).
pub fn canonical_bytes(model: &ReadModel) -> Vec<u8> {
    let mut sections = Vec::new();
    let table = encode_sections(model, &mut sections).expect("writing to memory never fails");
    let mut out = table_bytes(&table).to_vec();
    out.extend_from_slice(&sections);
    out
}

#[cfg(test)]
mod tests;
