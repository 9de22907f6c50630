//! Runs the read models live: consume `subscribe_all` from a checkpoint,
//! apply events in batches under one write lock, publish the applied
//! position so callers can wait for their own writes, tell listeners which
//! applications changed, and (in the server only) keep the snapshot in the
//! data dir fresh.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use domain::{AccountId, ApplicationId};
use futures::StreamExt;
use keys::KeyRing;
use migrations::DomainEvent;
use migrations::sealed::Opener;
use store::{EventStore, SubscriptionItem};
use tokio::sync::{broadcast, watch};

use crate::snapshot;
use crate::{ReadModel, StreamKey};

/// How a process uses the snapshot in its data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// Start from the snapshot if there is a good one; never write it
    /// (batch jobs and tools).
    #[default]
    ReadOnly,
    /// Start from the snapshot and keep it fresh (the server).
    ReadWrite,
    /// Delete the snapshot, rebuild from zero, then keep it fresh (the
    /// server asked to rebuild its projections).
    Rebuild,
}

/// When the server writes the snapshot: after `every_events` new events,
/// or `every` after the last one when anything changed, and when the runner
/// stops (graceful shutdown).
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// The snapshot file (`<data-dir>/projections.snapshot`).
    pub path: PathBuf,
    /// Write after this many new log positions.
    pub every_events: u64,
    /// Write this long after the last snapshot when anything changed.
    pub every: Duration,
}

impl SnapshotSettings {
    /// Defaults for a data dir: every 500 000 events or 5 minutes.
    pub fn for_data_dir(data_dir: &Path) -> SnapshotSettings {
        SnapshotSettings {
            path: snapshot::snapshot_path(data_dir),
            every_events: 500_000,
            every: Duration::from_secs(300),
        }
    }
}

/// Why a wait for a position ended without reaching it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WaitError {
    #[error("the read models did not reach position {wanted} in time (at {reached})")]
    Timeout { wanted: u64, reached: u64 },
    #[error("the projection runner stopped")]
    Stopped,
}

/// Progress of the runner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Last applied global position.
    pub position: u64,
    /// The catch-up phase is over.
    pub caught_up: bool,
    /// Events that could not be decoded (never silently: each is logged).
    pub undecodable: u64,
}

/// One application changed: the read models have applied the event at
/// `position` of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplicationChanged {
    pub application: ApplicationId,
    /// The account that owns the application.
    pub owner: AccountId,
    /// Global position of the event that changed it.
    pub position: u64,
}

/// Changes kept for a listener that has not taken them yet; one that falls
/// further behind is told how many it missed (and reads the current state
/// instead).
pub const APPLICATION_CHANGES_BUFFER: usize = 4096;

/// The live read models.
#[derive(Clone)]
pub struct Projections {
    model: Arc<RwLock<ReadModel>>,
    progress: watch::Receiver<Progress>,
    changes: broadcast::Sender<ApplicationChanged>,
    started_from: u64,
}

/// Events applied under one write lock at most.
const BATCH: usize = 1024;

impl Projections {
    /// Start from `initial` (empty, or a snapshot) and follow the log live;
    /// never writes a snapshot.
    /// Sealed personal data reads as erased: [`Projections::start_with`]
    /// opens it with a key ring.
    pub fn start(store: Arc<dyn EventStore>, initial: ReadModel) -> Projections {
        Self::start_with(store, initial, None, None)
    }

    /// Start from the snapshot of `data_dir` as `mode` says. A snapshot of
    /// an older format version counts as none; one of a newer version or a
    /// corrupt one is logged; either way the models are rebuilt from zero;
    /// so is one ahead of the log (a log restored from an older backup).
    pub fn start_in_data_dir(
        store: Arc<dyn EventStore>,
        data_dir: &Path,
        mode: SnapshotMode,
        ring: Option<Arc<KeyRing>>,
    ) -> Projections {
        let settings = SnapshotSettings::for_data_dir(data_dir);
        let initial = initial_model(&settings.path, mode);
        let writes = matches!(mode, SnapshotMode::ReadWrite | SnapshotMode::Rebuild);
        Self::start_with(store, initial, writes.then_some(settings), ring)
    }

    /// Start from `initial`, writing snapshots as `snapshots` says (none
    /// when `None`), opening sealed personal data with `ring` (erased
    /// without one).
    pub fn start_with(
        store: Arc<dyn EventStore>,
        initial: ReadModel,
        snapshots: Option<SnapshotSettings>,
        ring: Option<Arc<KeyRing>>,
    ) -> Projections {
        let from = initial.position;
        let model = Arc::new(RwLock::new(initial));
        let (tx, rx) = watch::channel(Progress {
            position: from,
            ..Progress::default()
        });
        let (changes, _) = broadcast::channel(APPLICATION_CHANGES_BUFFER);
        let writer = model.clone();
        let snapshotter = snapshots.map(|settings| Snapshotter {
            settings,
            model: model.clone(),
            saved_at_position: from,
            saved_at: Instant::now(),
            writing: Arc::new(Mutex::new(())),
        });
        tokio::spawn(follow(
            store,
            writer,
            tx,
            changes.clone(),
            from,
            snapshotter,
            ring,
        ));
        Projections {
            model,
            progress: rx,
            changes,
            started_from: from,
        }
    }

    /// Read the models under a shared lock.
    pub fn read<R>(&self, f: impl FnOnce(&ReadModel) -> R) -> R {
        f(&self.model.read().expect("read model lock"))
    }

    /// The position of the model the runner started from (0: from zero,
    /// else a snapshot's checkpoint).
    pub fn started_from(&self) -> u64 {
        self.started_from
    }

    /// Every application change from now on, each sent once the read
    /// models have applied it (and everything before it), in log order,
    /// whichever node wrote it. A receiver that falls more than
    /// [`APPLICATION_CHANGES_BUFFER`] changes behind gets
    /// `RecvError::Lagged` and should read the current state.
    pub fn application_changes(&self) -> broadcast::Receiver<ApplicationChanged> {
        self.changes.subscribe()
    }

    /// Current progress.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Wait until every event up to `position` is applied.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), WaitError> {
        let mut rx = self.progress.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| p.position >= position)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WaitError::Stopped),
            Err(_) => Err(WaitError::Timeout {
                wanted: position,
                reached: self.progress().position,
            }),
        }
    }

    /// Wait until the catch-up phase is over.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), WaitError> {
        let mut rx = self.progress.clone();
        match tokio::time::timeout(timeout, rx.wait_for(|p| p.caught_up)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WaitError::Stopped),
            Err(_) => Err(WaitError::Timeout {
                wanted: u64::MAX,
                reached: self.progress().position,
            }),
        }
    }
}

/// The model to start from, as `mode` says.
fn initial_model(path: &Path, mode: SnapshotMode) -> ReadModel {
    if mode == SnapshotMode::Rebuild {
        match std::fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "read model snapshot deleted; rebuilding from zero")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "could not delete the read model snapshot; rebuilding from zero anyway")
            }
        }
        return ReadModel::default();
    }
    let started = Instant::now();
    match snapshot::load(path) {
        Ok(Some(model)) => {
            tracing::info!(
                position = model.position,
                millis = started.elapsed().as_millis() as u64,
                "read models loaded from the snapshot"
            );
            model
        }
        Ok(None) => ReadModel::default(),
        Err(e) => {
            tracing::error!(error = %e, "read model snapshot unusable; rebuilding from zero");
            ReadModel::default()
        }
    }
}

/// Follow the log from `from`, applying batches and writing snapshots.
async fn follow(
    store: Arc<dyn EventStore>,
    writer: Arc<RwLock<ReadModel>>,
    tx: watch::Sender<Progress>,
    changes: broadcast::Sender<ApplicationChanged>,
    mut from: u64,
    mut snapshotter: Option<Snapshotter>,
    ring: Option<Arc<KeyRing>>,
) {
    if from == 0
        && let Some(ring) = &ring
        && let Err(error) = ring.load_all(store.as_ref()).await
    {
        // Each batch loads what it misses below.
        tracing::warn!(%error, "loading the data keys at once failed");
    }
    if from > 0
        && let Ok(head) = store.head_position().await
        && head < from
    {
        // A snapshot ahead of the log was made from another log (say the
        // log was restored from an older backup): its state cannot be right.
        tracing::error!(
            snapshot = from,
            head,
            "the read model snapshot is ahead of the log; rebuilding from zero"
        );
        *writer.write().expect("read model lock") = ReadModel::default();
        from = 0;
        if let Some(s) = &mut snapshotter {
            s.saved_at_position = 0;
        }
        let _ = tx.send(Progress::default());
    }
    let mut progress = Progress {
        position: from,
        ..Progress::default()
    };
    let mut items = store.subscribe_all(from).ready_chunks(BATCH);
    loop {
        let batch = match &mut snapshotter {
            Some(s) => {
                let due = tokio::time::Instant::from_std(s.saved_at + s.settings.every);
                tokio::select! {
                    batch = items.next() => batch,
                    _ = tokio::time::sleep_until(due) => {
                        if s.saved_at_position < progress.position {
                            s.save().await;
                        } else {
                            s.saved_at = Instant::now();
                        }
                        continue;
                    }
                }
            }
            None => items.next().await,
        };
        let Some(batch) = batch else { return };
        if let Some(ring) = &ring {
            load_keys(ring, store.as_ref(), &batch).await;
        }
        let opener = ring.as_deref().map(|ring| ring as &dyn Opener);
        let mut decoded = Vec::with_capacity(batch.len());
        for item in batch {
            match item {
                Ok(SubscriptionItem::Event(e)) => {
                    match migrations::sealed::decode_opened(
                        &e.type_name,
                        e.schema_version,
                        &e.payload,
                        e.id,
                        opener,
                    ) {
                        Ok(event) => decoded.push((e.position, e.stream, event)),
                        Err(err) => {
                            progress.undecodable += 1;
                            progress.position = e.position;
                            tracing::error!(position = e.position, error = %err, "event does not decode; read models skip it");
                        }
                    }
                }
                Ok(SubscriptionItem::CaughtUp) => progress.caught_up = true,
                Err(err) => {
                    tracing::error!(error = %err, "subscription to the log failed");
                    return;
                }
            }
        }
        // Nobody listens while the server starts or in batch jobs: the
        // changes are then not even worked out.
        let listened = changes.receiver_count() > 0;
        let mut changed = Vec::new();
        if let Some((last, _, _)) = decoded.last() {
            progress.position = progress.position.max(*last);
            let mut model = writer.write().expect("read model lock");
            for (position, stream, event) in &decoded {
                let key = StreamKey::of(stream);
                let fresh = *position > model.position;
                model.apply_keyed(*position, key, event);
                if listened
                    && fresh
                    && let (DomainEvent::Application(_), StreamKey::Application(id)) = (event, key)
                {
                    let application = ApplicationId(id);
                    if let Some(found) = model.application(application) {
                        changed.push(ApplicationChanged {
                            application,
                            owner: found.owner.account,
                            position: *position,
                        });
                    }
                }
            }
        }
        if tx.send(progress).is_err() {
            return;
        }
        // Sent once the models show the change (a query made on receipt
        // sees it); an error only means that nobody listens any more.
        for change in changed {
            let _ = changes.send(change);
        }
        if let Some(s) = &mut snapshotter
            && progress.position >= s.saved_at_position + s.settings.every_events
        {
            s.save().await;
        }
    }
}

/// Writes the server's snapshot from the live model: serialised under a
/// read lock (queries go on; the runner waits, so the model does not move),
/// then synced and renamed off the async runtime while the runner goes on.
/// When the runner stops (graceful shutdown drops it), a last snapshot is
/// written if anything changed since the previous one.
struct Snapshotter {
    settings: SnapshotSettings,
    model: Arc<RwLock<ReadModel>>,
    saved_at_position: u64,
    saved_at: Instant,
    /// Held while a snapshot is written: one at a time.
    writing: Arc<Mutex<()>>,
}

impl Snapshotter {
    async fn save(&mut self) {
        let model = self.model.clone();
        let path = self.settings.path.clone();
        let writing = self.writing.clone();
        let (released_tx, released_rx) = tokio::sync::oneshot::channel();
        let position = model.read().expect("read model lock").position;
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = writing.lock().unwrap_or_else(|e| e.into_inner());
            let started = Instant::now();
            if newer_on_disk(&path, position) {
                let _ = released_tx.send(());
                return;
            }
            let written = {
                let model = model.read().expect("read model lock");
                snapshot::write_unsynced(&path, &model)
            };
            let _ = released_tx.send(());
            match written.and_then(snapshot::PendingSnapshot::commit) {
                Ok(()) => tracing::info!(
                    position,
                    millis = started.elapsed().as_millis() as u64,
                    "read model snapshot written"
                ),
                Err(e) => tracing::error!(error = %e, "could not write the read model snapshot"),
            }
        });
        let _ = released_rx.await;
        self.saved_at_position = position;
        self.saved_at = Instant::now();
    }
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(model) = self.model.read() else { return };
        if model.position <= self.saved_at_position
            || newer_on_disk(&self.settings.path, model.position)
        {
            return;
        }
        match snapshot::save(&self.settings.path, &model) {
            Ok(()) => tracing::info!(
                position = model.position,
                "read model snapshot written at stop"
            ),
            Err(e) => {
                tracing::error!(error = %e, "could not write the read model snapshot at stop")
            }
        }
    }
}

/// Whether the snapshot at `path` is ahead of `position`: written by
/// another process of the data dir (a purge rewrites it), it is never
/// replaced by an older state.
fn newer_on_disk(path: &Path, position: u64) -> bool {
    matches!(snapshot::read_digest(path), Ok(Some(on_disk)) if on_disk.position > position)
}

/// Load the data keys `batch` is sealed under, waiting out a store that
/// cannot be reached (the models must not skip a person's data).
async fn load_keys(
    ring: &KeyRing,
    store: &dyn EventStore,
    batch: &[Result<SubscriptionItem, store::StoreError>],
) {
    let sealed: Vec<&store::RecordedEvent> = batch
        .iter()
        .filter_map(|item| match item {
            Ok(SubscriptionItem::Event(e))
                if migrations::sealed::sealed_key(e.schema_version, &e.payload).is_some() =>
            {
                Some(e)
            }
            _ => None,
        })
        .collect();
    if sealed.is_empty() {
        return;
    }
    let mut wait = std::time::Duration::from_millis(100);
    while let Err(error) = ring.load_for(store, &sealed).await {
        tracing::warn!(%error, "loading data keys failed; trying again");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(5));
    }
}
