//! `caseledger seal-log`: rewrites an embedded store written before
//! personal data was sealed (events with emails and names in clear) into
//! the sealed form, in a new file beside the old one, which is kept.
//!
//! The old file is never edited: its WAL is folded in, its write lock held
//! while the work runs, and it is copied (`VACUUM INTO`) to
//! `<file>.sealing`. In the copy, each event in clear that carries personal
//! data is encoded anew, sealed under its subject's data key, with its own
//! id, at its own position; the new keys are committed to the copy's key
//! table before the rewritten events; the chain is linked anew and the copy
//! vacuumed. Only when the copy holds the same events, in the same places,
//! decoding to the same domain events, does it take the old file's name;
//! the old file is kept as `<file>.before-seal-<UTC time>`.
//!
//! A person deleted by a purge before the log was sealed keeps their email
//! and name in the clear events written before their deletion: those are
//! sealed under a key that is never stored, so that they read as erased,
//! as the purge promised.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use keys::{KeyRing, Keyer};
use migrations::DomainEvent;
use migrations::sealed::{Opener, SEALED, Subject};
use store::StoreError;
use store::sqlite::rewrite::{self, PayloadRewriter};
use store::sqlite::{SqliteLogReader, SqliteOptions, SqliteStore};
use uuid::Uuid;

use crate::data_dir::ServeLock;
use crate::stores::{StoreConfig, StoreLocation};

/// Suffix of the new file while it is being written.
pub const SEALING_SUFFIX: &str = ".sealing";
/// Infix of the name the old file is kept under (`<file>.before-seal-<time>`).
pub const KEPT_INFIX: &str = ".before-seal-";

/// Events read from a log file per page.
const PAGE: usize = 4096;

/// Why a PostgreSQL store is not rewritten.
const POSTGRES_REFUSAL: &str = "seal-log rewrites embedded (SQLite) stores only; sealing a \
    PostgreSQL store is not supported yet. A PostgreSQL store first written by a release \
    without sealed personal data keeps the emails and names of those events in clear; one \
    created since seals every personal field as it is written and needs no rewrite";

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// An event of the old log to be sealed.
struct ToSeal {
    position: u64,
    id: Uuid,
    event: DomainEvent,
}

/// What the scan of the old log found.
#[derive(Default)]
struct Scan {
    events: u64,
    /// Position of the last event.
    head: u64,
    to_seal: Vec<ToSeal>,
    /// Reservation stream -> position of its last `Released` event.
    released: HashMap<String, u64>,
}

/// `caseledger seal-log` over `place`.
pub async fn seal_log(place: &StoreConfig) -> anyhow::Result<ExitCode> {
    let path = match &place.store {
        StoreLocation::Sqlite(path) => path.clone(),
        StoreLocation::Postgres(_) => anyhow::bail!("{POSTGRES_REFUSAL}"),
        #[cfg(feature = "kurrentdb")]
        StoreLocation::KurrentDb(_) => anyhow::bail!(
            "seal-log rewrites embedded (SQLite) stores only; a KurrentDB store was never \
             written without sealed personal data"
        ),
    };
    let _lock = ServeLock::acquire_advising(
        &place.data_dir,
        "seal-log rewrites the log only while no server runs on it: stop the server first",
    )?;
    anyhow::ensure!(path.is_file(), "no event store at {}", path.display());
    let sealing = with_suffix(&path, SEALING_SUFFIX);
    for leftover in [
        sealing.clone(),
        with_suffix(&sealing, "-wal"),
        with_suffix(&sealing, "-shm"),
    ] {
        anyhow::ensure!(
            !leftover.exists(),
            "{} is left from an earlier seal-log that did not finish; look into it, remove it \
             (the log {} was not changed by that run) and run seal-log again",
            leftover.display(),
            path.display()
        );
    }

    rewrite::checkpoint(&path).with_context(|| format!("checkpointing {}", path.display()))?;
    let hold = rewrite::hold_writes(&path)?;
    let scan = scan(&path)?;
    if scan.to_seal.is_empty() {
        hold.release()?;
        println!(
            "seal-log {}: read {} events, sealed 0: no event keeps personal data in clear; \
             nothing was changed or renamed",
            path.display(),
            scan.events
        );
        return Ok(ExitCode::SUCCESS);
    }

    let keyer = Keyer::load_file(&place.secret_file).with_context(|| {
        format!(
            "the server secret {} (seal-log needs the secret the server runs with)",
            place.secret_file.display()
        )
    })?;
    rewrite::copy_store(&path, &sealing)?;
    let outcome = rewrite_copy(place, &keyer, &scan, &sealing).await;
    let sealed = match outcome {
        Ok(sealed) => sealed,
        Err(error) => {
            hold.release()?;
            // Nothing of the copy was checked: it is of no use to anyone.
            for file in [
                sealing.clone(),
                with_suffix(&sealing, "-wal"),
                with_suffix(&sealing, "-shm"),
            ] {
                let _ = std::fs::remove_file(file);
            }
            return Err(error.context(format!(
                "sealing a copy of {} failed; the log is unchanged",
                path.display()
            )));
        }
    };
    if let Err(why) = compare(&path, &sealing, &keyer, &sealed.erased) {
        hold.release()?;
        anyhow::bail!(
            "the sealed copy {} does not hold the same events as {}: {why}. The log is \
             unchanged and stays in use; the copy is left for inspection (remove it before \
             running seal-log again)",
            sealing.display(),
            path.display()
        );
    }
    hold.release()?;
    let kept = replace(&path, &sealing, scan.head)?;

    remove_snapshots(&place.data_dir)?;
    let head = sealed.head.map_or_else(
        || "empty log".to_owned(),
        |head| format!("position {} link {}", head.position, hex::encode(head.link)),
    );
    println!(
        "seal-log {}: read {} events, sealed {}, keys made {}{}",
        path.display(),
        scan.events,
        scan.to_seal.len(),
        sealed.keys_made,
        if sealed.erased.is_empty() {
            String::new()
        } else {
            format!(
                ", {} event(s) of deleted accounts sealed as erased",
                sealed.erased.len()
            )
        }
    );
    println!(
        "old file kept at {} until you remove it: it still holds emails and names in clear; \
         delete it once the server runs on the sealed log and a backup of the new one is taken",
        kept.display()
    );
    println!(
        "the read models' snapshot (names and emails in clear) was removed; the server \
         rebuilds it from the sealed log at its next start"
    );
    println!(
        "new head of the chain: {head}; the chain changed, so save a new head with \
         `replay-tool head --out FILE` and discard heads saved before"
    );
    Ok(ExitCode::SUCCESS)
}

/// Remove the read models' snapshot of `data_dir` (it holds names and
/// emails in clear), and any temporary one a server left when it stopped
/// while writing it.
fn remove_snapshots(data_dir: &Path) -> anyhow::Result<()> {
    let snapshot = projections::snapshot::snapshot_path(data_dir);
    let temporary = format!("{}.tmp-", projections::snapshot::SNAPSHOT_FILE);
    let mut doomed = vec![snapshot];
    for entry in
        std::fs::read_dir(data_dir).with_context(|| format!("listing {}", data_dir.display()))?
    {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&temporary) {
            doomed.push(entry.path());
        }
    }
    for file in doomed {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "removing the read models' snapshot {} (it holds names and emails in \
                         clear; remove it before starting the server)",
                        file.display()
                    )
                });
            }
        }
    }
    Ok(())
}

/// Read the old log: count its events and find those in clear that carry
/// personal data, and the releases of reserved emails.
fn scan(path: &Path) -> anyhow::Result<Scan> {
    let mut reader = SqliteLogReader::open(path)?;
    let head = reader.head()?;
    let bar = crate::jobs::progress(head, "scan");
    let mut scan = Scan::default();
    let mut after = 0;
    loop {
        let mut last = None;
        let read = reader.for_each_between::<anyhow::Error>(after, u64::MAX, PAGE, |stored| {
            last = Some(stored.position);
            scan.events += 1;
            scan.head = stored.position;
            if stored.schema_version & SEALED != 0 {
                return Ok(());
            }
            let event = migrations::decode(stored.type_name, stored.schema_version, stored.payload)
                .with_context(|| {
                    format!(
                        "the event at position {} does not decode (run replay-tool verify)",
                        stored.position
                    )
                })?;
            if let DomainEvent::Reservation(domain::reservation::Event::Released { .. }) = &event {
                scan.released
                    .insert(stored.stream.to_owned(), stored.position);
            }
            if migrations::sealed::personal(&event).is_some() {
                scan.to_seal.push(ToSeal {
                    position: stored.position,
                    id: stored.id()?,
                    event,
                });
            }
            Ok(())
        })?;
        bar.inc(read as u64);
        match last {
            Some(position) if read == PAGE => after = position,
            _ => break,
        }
    }
    bar.finish_and_clear();
    Ok(scan)
}

/// What sealing the copy did.
struct Sealed {
    keys_made: usize,
    /// Positions of events sealed under a key never stored (their person
    /// was deleted before): they read as erased.
    erased: HashSet<u64>,
    head: Option<store::chain::ChainLink>,
}

/// Seal the events of `scan` in the copy at `sealing`, link its chain
/// anew and compact it.
async fn rewrite_copy(
    place: &StoreConfig,
    keyer: &Keyer,
    scan: &Scan,
    sealing: &Path,
) -> anyhow::Result<Sealed> {
    let copy = SqliteStore::open(sealing, SqliteOptions::default())?;
    crate::stores::check_secret(&copy, keyer, &place.secret_file).await?;
    let ring = KeyRing::new(keyer.clone());
    // Keys of this ring are never stored: what it seals reads as erased.
    let erasing = KeyRing::new(keyer.clone());
    let mut subjects = HashSet::new();
    let mut erased = HashSet::new();
    let mut encoded = Vec::with_capacity(scan.to_seal.len());
    for item in &scan.to_seal {
        let Some((subject, _)) = migrations::sealed::personal(&item.event) else {
            continue;
        };
        let deleted_since = match subject {
            Subject::Email(email) => scan
                .released
                .get(&keys::email_stream(&keyer.email_key(email)))
                .is_some_and(|released| *released > item.position),
            Subject::IdPorten(_) => false,
        };
        let sealer = if deleted_since {
            erased.insert(item.position);
            &erasing
        } else {
            subjects.insert(ring.subject_name(subject));
            &ring
        };
        let sealed =
            migrations::sealed::encode_sealed(&item.event, item.id, sealer).map_err(|why| {
                anyhow::anyhow!("sealing the event at position {}: {why}", item.position)
            })?;
        encoded.push((item.position, item.id, sealed));
    }
    // The keys are in the copy before any event sealed under them.
    ring.commit(&copy)
        .await
        .context("storing the new data keys")?;
    drop(copy);

    let bar = crate::jobs::progress(encoded.len() as u64, "seal");
    let mut rewriter = PayloadRewriter::begin(sealing)?;
    for (position, id, sealed) in &encoded {
        rewriter.replace(*position, *id, sealed.schema_version, &sealed.payload)?;
        bar.inc(1);
    }
    rewriter.commit()?;
    bar.finish_and_clear();
    let head = rewrite::rechain(sealing)?;
    rewrite::compact(sealing)?;
    Ok(Sealed {
        keys_made: subjects.len(),
        erased,
        head,
    })
}

/// One event as compared: everything stored but its payload and link, and
/// what it decodes to.
#[derive(Debug, Clone, PartialEq)]
struct Compared {
    position: u64,
    id: Vec<u8>,
    stream: String,
    revision: u64,
    type_name: String,
    recorded_at: i64,
    metadata: Vec<u8>,
    sealed: bool,
    event: DomainEvent,
}

/// Check that the copy at `sealing` holds the events of `original`, in the
/// same places, each decoding (with the copy's keys) to the same domain
/// event, its personal data sealed (and erased where `erased` says so).
fn compare(
    original: &Path,
    sealing: &Path,
    keyer: &Keyer,
    erased: &HashSet<u64>,
) -> Result<(), String> {
    let fail = |error: StoreError| error.to_string();
    let mut old = SqliteLogReader::open(original).map_err(fail)?;
    let mut new = SqliteLogReader::open(sealing).map_err(fail)?;
    let ring = KeyRing::new(keyer.clone());
    ring.hold(&new.data_keys().map_err(fail)?).map_err(fail)?;
    ring.treat_missing_as_destroyed();
    let old_head = old.head().map_err(fail)?;
    let new_head = new.head().map_err(fail)?;
    if old_head != new_head {
        return Err(format!(
            "the log ends at position {old_head}, the copy at {new_head}"
        ));
    }
    let bar = crate::jobs::progress(old_head, "check");
    let mut after = 0;
    loop {
        let old_page = page(&mut old, after, &ring)?;
        let new_page = page(&mut new, after, &ring)?;
        if old_page.len() != new_page.len() {
            return Err(format!(
                "after position {after} the log holds {} events, the copy {}",
                old_page.len(),
                new_page.len()
            ));
        }
        for (was, now) in old_page.iter().zip(&new_page) {
            let position = was.position;
            let expected = if erased.contains(&position) {
                migrations::sealed::redact(&was.event)
            } else {
                was.event.clone()
            };
            let personal = migrations::sealed::personal(&was.event).is_some();
            let same_place = Compared {
                sealed: now.sealed,
                event: expected.clone(),
                ..was.clone()
            };
            if same_place != *now {
                return Err(format!(
                    "the event at position {position} differs (id, stream, revision, type, \
                     time, metadata or what it decodes to)"
                ));
            }
            if personal && !now.sealed {
                return Err(format!(
                    "the event at position {position} still holds personal data in clear"
                ));
            }
        }
        bar.inc(old_page.len() as u64);
        match old_page.last() {
            Some(last) if old_page.len() == PAGE => after = last.position,
            _ => break,
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// A page of events after `after`, decoded with `ring`.
fn page(reader: &mut SqliteLogReader, after: u64, ring: &KeyRing) -> Result<Vec<Compared>, String> {
    let mut events = Vec::with_capacity(PAGE);
    let read = reader.for_each_between::<anyhow::Error>(after, u64::MAX, PAGE, |stored| {
        let id = stored.id()?;
        let event = migrations::sealed::decode_opened(
            stored.type_name,
            stored.schema_version,
            stored.payload,
            id,
            Some(ring as &dyn Opener),
        )
        .with_context(|| format!("position {}", stored.position))?;
        events.push(Compared {
            position: stored.position,
            id: stored.id_bytes.to_vec(),
            stream: stored.stream.to_owned(),
            revision: stored.revision,
            type_name: stored.type_name.to_owned(),
            recorded_at: stored.recorded_at_micros,
            metadata: stored.metadata_bytes.to_vec(),
            sealed: stored.schema_version & SEALED != 0,
            event,
        });
        Ok(())
    });
    read.map_err(|error| format!("{error:#}"))?;
    Ok(events)
}

/// Give the sealed copy the log's name, keeping the old file under a name
/// of its own; returns that name. The log's name always names a whole log:
/// the old file is linked to its kept name first, then the copy renamed
/// over it.
fn replace(path: &Path, sealing: &Path, head: u64) -> anyhow::Result<PathBuf> {
    // Nothing was appended since the scan (the write hold is let go now;
    // positions are handed out in order, so a later append moves the head).
    let now = SqliteLogReader::open(path)?.head()?;
    let (wal, shm) = (with_suffix(path, "-wal"), with_suffix(path, "-shm"));
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    anyhow::ensure!(
        now == head && wal_len == 0,
        "{} was written to while seal-log ran; the log is unchanged and stays in use; remove \
         {} and run seal-log again with the server and every job stopped",
        path.display(),
        sealing.display()
    );
    // The WALs are folded in and empty; the old file's must not stay
    // beside the new file under its name, nor the copy's under no file.
    let (sealing_wal, sealing_shm) = (with_suffix(sealing, "-wal"), with_suffix(sealing, "-shm"));
    let sealing_wal_len = std::fs::metadata(&sealing_wal)
        .map(|m| m.len())
        .unwrap_or(0);
    anyhow::ensure!(
        sealing_wal_len == 0,
        "{} was written to after it was checked; the log is unchanged and stays in use",
        sealing.display()
    );
    for file in [&wal, &shm, &sealing_wal, &sealing_shm] {
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("removing {}", file.display()));
            }
        }
    }
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let kept = with_suffix(path, &format!("{KEPT_INFIX}{stamp}"));
    if std::fs::hard_link(path, &kept).is_err() {
        // A file system without hard links: move the old file aside first.
        std::fs::rename(path, &kept)
            .with_context(|| format!("keeping {} as {}", path.display(), kept.display()))?;
    }
    std::fs::rename(sealing, path).with_context(|| {
        format!(
            "renaming {} to {}; the old log is kept as {}: give one of the two the log's name \
             before starting the server",
            sealing.display(),
            path.display(),
            kept.display()
        )
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};

    /// A data dir whose log holds every golden sample in clear, one stream
    /// each; its store config.
    async fn clear_log(dir: &Path) -> StoreConfig {
        let place = StoreConfig::embedded(dir);
        Keyer::create_new(&place.secret_file).expect("secret");
        let StoreLocation::Sqlite(path) = &place.store else {
            unreachable!("embedded")
        };
        let store = SqliteStore::open(path, SqliteOptions::default()).expect("log");
        for (index, (_, _, event)) in migrations::samples::all().iter().enumerate() {
            let encoded = migrations::encode(event);
            store
                .append(
                    &format!("sample-{index}"),
                    ExpectedRevision::NoStream,
                    vec![NewEvent {
                        id: Uuid::now_v7(),
                        type_name: encoded.type_name.to_owned(),
                        schema_version: encoded.schema_version,
                        metadata: EventMetadata {
                            actor: "test".into(),
                            correlation_id: Uuid::nil(),
                            causation_id: None,
                            occurred_at: Utc::now(),
                        },
                        payload: encoded.payload,
                    }],
                )
                .await
                .expect("append");
        }
        place
    }

    #[tokio::test]
    async fn a_copy_that_differs_from_the_log_in_any_event_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let place = clear_log(dir.path()).await;
        let path = dir.path().join(crate::stores::EMBEDDED_FILE);
        let keyer = Keyer::load_file(&place.secret_file).expect("secret");
        let scan = scan(&path).expect("scan");
        assert_eq!(scan.to_seal.len(), 3);
        let sealing = with_suffix(&path, SEALING_SUFFIX);
        rewrite::copy_store(&path, &sealing).expect("copy");
        let sealed = rewrite_copy(&place, &keyer, &scan, &sealing)
            .await
            .expect("seal the copy");
        assert_eq!(sealed.keys_made, 2);
        compare(&path, &sealing, &keyer, &sealed.erased).expect("the same events");

        // The registration read as erased is not the registration.
        let registration = scan.to_seal[0].position;
        let erased_too = HashSet::from([registration]);
        let refused = compare(&path, &sealing, &keyer, &erased_too).unwrap_err();
        assert!(
            refused.contains(&format!("position {registration}")),
            "{refused}"
        );

        // Another event's bytes, at the place of the last one.
        let mut reader = SqliteLogReader::open(&sealing).expect("copy");
        let (mut last, mut first) = (None, None);
        reader
            .for_each_between::<StoreError>(0, u64::MAX, usize::MAX, |stored| {
                let row = (stored.position, stored.id().expect("id"));
                first.get_or_insert((stored.schema_version, stored.payload.to_vec()));
                last = Some(row);
                Ok(())
            })
            .expect("scan copy");
        let ((position, id), (version, payload)) = (last.unwrap(), first.unwrap());
        let mut rewriter = PayloadRewriter::begin(&sealing).expect("rewrite");
        rewriter
            .replace(position, id, version, &payload)
            .expect("replace");
        rewriter.commit().expect("commit");
        let refused = compare(&path, &sealing, &keyer, &sealed.erased).unwrap_err();
        assert!(
            refused.contains(&format!("position {position}")),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_copy_left_by_an_unfinished_run_is_not_overwritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let place = clear_log(dir.path()).await;
        let path = dir.path().join(crate::stores::EMBEDDED_FILE);
        let before = std::fs::read(&path).expect("log");
        let sealing = with_suffix(&path, SEALING_SUFFIX);
        std::fs::write(&sealing, b"left over").expect("leftover");
        let refused = seal_log(&place).await.unwrap_err().to_string();
        assert!(refused.contains("did not finish"), "{refused}");
        assert_eq!(std::fs::read(&sealing).expect("kept"), b"left over");
        assert_eq!(std::fs::read(&path).expect("log"), before);
        std::fs::remove_file(&sealing).expect("remove");
        assert_eq!(seal_log(&place).await.expect("seal"), ExitCode::SUCCESS);
        assert!(!sealing.exists());
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().to_string_lossy().into_owned();
                name.contains(KEPT_INFIX).then_some(name)
            })
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(
            std::fs::read(dir.path().join(&kept[0])).expect("kept"),
            before
        );
    }

    #[tokio::test]
    async fn a_log_of_schema_version_2_is_sealed_and_upgraded_in_the_copy_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let place = clear_log(dir.path()).await;
        let path = dir.path().join(crate::stores::EMBEDDED_FILE);
        {
            // As written before the hash chain and the key table.
            let connection = rusqlite::Connection::open(&path).expect("open");
            connection
                .execute_batch(
                    "DROP TABLE data_keys; ALTER TABLE events DROP COLUMN chain; \
                     PRAGMA user_version = 2;",
                )
                .expect("downgrade");
        }
        let events = migrations::samples::all().len() as u64;
        assert_eq!(seal_log(&place).await.expect("seal"), ExitCode::SUCCESS);

        let mut sealed = SqliteLogReader::open(&path).expect("sealed log");
        assert_eq!(sealed.schema_version(), store::sqlite::SCHEMA_VERSION);
        assert_eq!(sealed.data_keys().expect("keys").len(), 2);
        let head = sealed.chain_head().expect("chain").expect("a head");
        assert_eq!(head.position, events);
        let mut link = store::chain::genesis();
        sealed
            .for_each_between::<StoreError>(0, u64::MAX, usize::MAX, |stored| {
                link = store::chain::link(&link, &stored.chained());
                assert_eq!(stored.chain, &link[..], "position {}", stored.position);
                Ok(())
            })
            .expect("scan");
        let kept = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .find(|path| path.to_string_lossy().contains(KEPT_INFIX))
            .expect("the old log kept");
        let old = SqliteLogReader::open(&kept).expect("old log");
        assert_eq!(old.schema_version(), 2, "the old file is not upgraded");
    }

    #[tokio::test]
    async fn another_secret_is_refused_and_leaves_the_log_as_it_was() {
        let dir = tempfile::tempdir().expect("temp dir");
        let place = clear_log(dir.path()).await;
        let path = dir.path().join(crate::stores::EMBEDDED_FILE);
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).expect("log");
            let other = Keyer::new([7; 32]);
            crate::stores::check_secret(&store, &other, &place.secret_file)
                .await
                .expect("the store remembers the other secret");
        }
        let before = std::fs::read(&path).expect("log");
        let refused = format!("{:#}", seal_log(&place).await.unwrap_err());
        assert!(refused.contains("not the one this store"), "{refused}");
        assert!(refused.contains("the log is unchanged"), "{refused}");
        assert_eq!(std::fs::read(&path).expect("log"), before);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(SEALING_SUFFIX) || name.contains(KEPT_INFIX))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
