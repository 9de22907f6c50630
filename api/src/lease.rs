//! The right to send mail: one node of a cluster at a time holds a lease
//! kept as a value beside the log ([`LEASE_VALUE`]), renewed by
//! compare-and-set.
//!
//! The value names its holder and a renewal counter, so every renewal
//! changes it. A node that wants the lease watches the value and takes it
//! when it is free (never written, or released at a clean shutdown) or has
//! not changed for a whole [`LeaseSettings::ttl`] by the watcher's own
//! clock: no two nodes need agreeing clocks. The holder counts its lease as
//! valid only for two thirds of the ttl after the start of its last
//! successful renewal, so it stops sending before anyone may take over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use store::{EventStore, StoreError};

/// The value beside the log that holds the mail lease.
pub const LEASE_VALUE: &str = "outbox.lease";
/// The lease's value once its holder has let it go.
const FREE: &[u8] = b"free";

/// How long a lease lasts and how often it is renewed and watched.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// A lease unchanged this long may be taken over.
    pub ttl: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// How often a node without the lease looks at it.
    pub poll_every: Duration,
}

impl Default for LeaseSettings {
    /// A dead holder is replaced within `ttl + poll_every` (11 s).
    fn default() -> LeaseSettings {
        LeaseSettings {
            ttl: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
            poll_every: Duration::from_secs(1),
        }
    }
}

/// One node's claim on the lease.
pub struct Lease {
    store: Arc<dyn EventStore>,
    holder: Uuid,
    settings: LeaseSettings,
    /// No other process can use this store (an embedded store, owned by
    /// one server): a lease left by an earlier run is taken at once.
    exclusive: bool,
}

/// A lease this node holds; renewed in the background until
/// [`HeldLease::release`] or until it is lost.
pub struct HeldLease {
    valid_until: Arc<Mutex<Instant>>,
    lost: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    /// `None` once released.
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Lease {
    pub fn new(store: Arc<dyn EventStore>, settings: LeaseSettings, exclusive: bool) -> Lease {
        Lease {
            store,
            holder: Uuid::now_v7(),
            settings,
            exclusive,
        }
    }

    /// Wait until this node holds the lease; `None` when `stop` turns true
    /// first. `waiting` is called after each look at the lease.
    pub async fn acquire<F>(
        &self,
        stop: &mut watch::Receiver<bool>,
        mut waiting: impl FnMut() -> F,
    ) -> Option<HeldLease>
    where
        F: std::future::Future<Output = ()>,
    {
        // The value last seen and since when, by this node's clock.
        let mut observed: Option<(Vec<u8>, Instant)> = None;
        loop {
            if *stop.borrow() {
                return None;
            }
            match self.try_take(&mut observed).await {
                Ok(Some(held)) => return Some(held),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not look at the mail lease"),
            }
            waiting().await;
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll_every) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn try_take(
        &self,
        observed: &mut Option<(Vec<u8>, Instant)>,
    ) -> Result<Option<HeldLease>, StoreError> {
        let current = self.store.read_value(LEASE_VALUE).await?;
        let takeable = match &current {
            None => true,
            Some(value) if value == FREE || self.exclusive => true,
            Some(value) => match observed {
                Some((seen, since)) if seen == value => since.elapsed() >= self.settings.ttl,
                _ => {
                    *observed = Some((value.clone(), Instant::now()));
                    false
                }
            },
        };
        if !takeable {
            return Ok(None);
        }
        let started = Instant::now();
        let mine = self.value(0);
        if !self
            .store
            .swap_value(LEASE_VALUE, current.as_deref(), &mine)
            .await?
        {
            *observed = None;
            return Ok(None);
        }
        tracing::info!(holder = %self.holder, "this node holds the mail lease");
        Ok(Some(self.hold(mine, started)))
    }

    fn value(&self, counter: u64) -> Vec<u8> {
        format!("{} {counter}", self.holder).into_bytes()
    }

    fn hold(&self, mine: Vec<u8>, started: Instant) -> HeldLease {
        let validity = self.settings.ttl * 2 / 3;
        let valid_until = Arc::new(Mutex::new(started + validity));
        let (lost_tx, lost) = watch::channel(false);
        let (stop, mut stop_rx) = watch::channel(false);
        let renewer = {
            let store = self.store.clone();
            let settings = self.settings;
            let valid_until = valid_until.clone();
            let holder = self.holder;
            tokio::spawn(async move {
                let mut current = mine;
                let mut counter = 0u64;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(settings.renew_every) => {}
                        _ = stop_rx.changed() => {
                            match store.swap_value(LEASE_VALUE, Some(&current), FREE).await {
                                Ok(true) => tracing::info!("mail lease released"),
                                Ok(false) => {}
                                Err(e) => tracing::warn!(error = %e, "could not release the mail lease"),
                            }
                            return;
                        }
                    }
                    counter += 1;
                    let next = format!("{holder} {counter}").into_bytes();
                    let started = Instant::now();
                    match store.swap_value(LEASE_VALUE, Some(&current), &next).await {
                        Ok(true) => {
                            current = next;
                            *valid_until.lock().expect("lease lock") = started + validity;
                        }
                        Ok(false) => {
                            tracing::warn!("another node took the mail lease");
                            let _ = lost_tx.send(true);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not renew the mail lease");
                            if Instant::now() >= *valid_until.lock().expect("lease lock") {
                                tracing::warn!("the mail lease ran out");
                                let _ = lost_tx.send(true);
                                return;
                            }
                        }
                    }
                }
            })
        };
        HeldLease {
            valid_until,
            lost,
            stop,
            renewer: Some(renewer),
        }
    }
}

impl HeldLease {
    /// Whether this node may still act as the holder now.
    pub fn is_valid(&self) -> bool {
        !*self.lost.borrow() && Instant::now() < *self.valid_until.lock().expect("lease lock")
    }

    /// Completes once the lease is lost (taken over, or not renewed in time).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Stop renewing and let the lease go, so another node takes it at once.
    pub async fn release(mut self) {
        let _ = self.stop.send(true);
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.await;
        }
    }

    /// Stop renewing without a word, as a node that dies.
    #[cfg(test)]
    fn die(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> LeaseSettings {
        LeaseSettings {
            ttl: Duration::from_millis(600),
            renew_every: Duration::from_millis(100),
            poll_every: Duration::from_millis(50),
        }
    }

    async fn take(lease: &Lease) -> Option<HeldLease> {
        let (_stop_tx, mut stop) = watch::channel(false);
        tokio::time::timeout(
            Duration::from_secs(5),
            lease.acquire(&mut stop, || async {}),
        )
        .await
        .ok()
        .flatten()
    }

    #[tokio::test]
    async fn one_node_holds_the_lease_while_it_renews_and_another_takes_it_once_it_dies() {
        let store: Arc<dyn EventStore> = Arc::new(store::memory::MemoryStore::new());
        let first = Lease::new(store.clone(), quick(), false);
        let second = Lease::new(store.clone(), quick(), false);
        let mut held = take(&first).await.expect("a free lease is taken");
        assert!(held.is_valid());

        // While the first renews, the second never gets it.
        let (_stop_tx, mut stop) = watch::channel(false);
        let waited = tokio::time::timeout(
            Duration::from_millis(1500),
            second.acquire(&mut stop, || async {}),
        )
        .await;
        assert!(waited.is_err(), "the second node got a renewed lease");
        assert!(held.is_valid());

        // The first dies without a word: the second takes over after the ttl,
        // and the first, had it lived on, would know it lost.
        held.die();
        let began = Instant::now();
        let mut taken_over = take(&second).await.expect("taken over");
        assert!(began.elapsed() >= quick().ttl);
        assert!(began.elapsed() < quick().ttl * 3);
        assert!(taken_over.is_valid());
        tokio::time::sleep(quick().ttl).await;
        assert!(!held.is_valid(), "the dead holder's lease ran out");
        assert!(taken_over.is_valid(), "the new holder keeps renewing");
        tokio::time::timeout(Duration::from_millis(10), taken_over.lost())
            .await
            .expect_err("not lost");
    }

    #[tokio::test]
    async fn a_released_lease_is_taken_at_once_and_a_holder_that_was_overtaken_knows() {
        let store: Arc<dyn EventStore> = Arc::new(store::memory::MemoryStore::new());
        let first = Lease::new(store.clone(), quick(), false);
        let second = Lease::new(store.clone(), quick(), false);
        take(&first).await.expect("taken").release().await;
        let began = Instant::now();
        let mut held = take(&second).await.expect("taken");
        assert!(
            began.elapsed() < quick().ttl / 2,
            "no wait for a released lease"
        );

        // Someone else writes the lease behind the holder's back.
        let current = store.read_value(LEASE_VALUE).await.unwrap();
        assert!(
            store
                .swap_value(LEASE_VALUE, current.as_deref(), b"intruder 0")
                .await
                .unwrap()
        );
        tokio::time::timeout(Duration::from_secs(2), held.lost())
            .await
            .expect("the holder learns it lost the lease");
        assert!(!held.is_valid());
    }

    #[tokio::test]
    async fn on_an_exclusive_store_a_lease_left_by_an_earlier_run_is_taken_at_once() {
        let store: Arc<dyn EventStore> = Arc::new(store::memory::MemoryStore::new());
        let earlier = Lease::new(store.clone(), quick(), true);
        let mut held = take(&earlier).await.expect("taken");
        held.die();
        let began = Instant::now();
        take(&Lease::new(store.clone(), quick(), true))
            .await
            .expect("taken");
        assert!(began.elapsed() < quick().ttl / 2);
    }
}
