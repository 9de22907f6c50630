//! Runs the read models live: consume `subscribe_all` from a checkpoint,
//! apply events in batches under one write lock, publish the applied
//! position so callers can wait for their own writes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use store::{EventStore, SubscriptionItem};
use tokio::sync::watch;

use crate::ReadModel;

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

/// The live read models.
#[derive(Clone)]
pub struct Projections {
    model: Arc<RwLock<ReadModel>>,
    progress: watch::Receiver<Progress>,
}

/// Events applied under one write lock at most.
const BATCH: usize = 1024;

impl Projections {
    /// Start from `initial` (empty, or a snapshot) and follow the log live.
    pub fn start(store: Arc<dyn EventStore>, initial: ReadModel) -> Projections {
        let from = initial.position;
        let model = Arc::new(RwLock::new(initial));
        let (tx, rx) = watch::channel(Progress {
            position: from,
            ..Progress::default()
        });
        let writer = model.clone();
        tokio::spawn(async move {
            let mut progress = Progress {
                position: from,
                ..Progress::default()
            };
            let mut items = store.subscribe_all(from).ready_chunks(BATCH);
            while let Some(batch) = items.next().await {
                let mut decoded = Vec::with_capacity(batch.len());
                for item in batch {
                    match item {
                        Ok(SubscriptionItem::Event(e)) => {
                            match migrations::decode(&e.type_name, e.schema_version, &e.payload) {
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
                if let Some((last, _, _)) = decoded.last() {
                    progress.position = progress.position.max(*last);
                    let mut model = writer.write().expect("read model lock");
                    for (position, stream, event) in &decoded {
                        model.apply(*position, stream, event);
                    }
                }
                if tx.send(progress).is_err() {
                    return;
                }
            }
        });
        Projections {
            model,
            progress: rx,
        }
    }

    /// Read the models under a shared lock.
    pub fn read<R>(&self, f: impl FnOnce(&ReadModel) -> R) -> R {
        f(&self.model.read().expect("read model lock"))
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
