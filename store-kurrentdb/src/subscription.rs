//! `subscribe_all` on a catch-up `subscribe_to_all`: from the checkpoint,
//! filtered server-side to the namespace's streams and client-side to
//! non-system events, with `CaughtUp` said once, `FellBehind` ridden out,
//! and reconnects that resume after the last position delivered (every
//! event exactly once, in order, duplicates after a reconnect dropped by
//! position).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use kurrentdb::{SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter};
use store::{RecordedEvent, StoreError, SubscriptionItem};
use tokio::sync::watch;

use crate::error::{Failure, classify};
use crate::mapping::{Interner, KurrentEvent, all_position, port_event};
use crate::{Shared, read_head};

/// How long a subscription waits before its first reconnect; it doubles up
/// to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnects.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The wait before reconnect number `attempt` (from 1).
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(
            1_u32
                .checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(MAX_BACKOFF)
}

/// What a subscription has delivered: the rules of exactly once, in order,
/// and of one `CaughtUp`, apart from any IO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    /// The position of the last event delivered (the checkpoint at first):
    /// where a reconnect resumes, always an event's own position.
    delivered: u64,
    /// How far the server is known to have looked: the last delivered
    /// position, or a later checkpoint of its filter or skipped event.
    scanned: u64,
    /// The head when the subscription started: reaching it is catching up.
    target: Option<u64>,
    caught_up: bool,
}

impl Follower {
    /// A subscription from `after`.
    pub fn new(after: u64) -> Follower {
        Follower {
            delivered: after,
            scanned: after,
            target: None,
            caught_up: false,
        }
    }

    /// The head the subscription must reach before it is caught up.
    pub fn set_target(&mut self, head: u64) {
        self.target = Some(head);
    }

    /// Whether the target is known.
    pub fn has_target(&self) -> bool {
        self.target.is_some()
    }

    /// The event to deliver, or `None` when it was delivered already (the
    /// server repeats what it sent before a reconnect).
    pub fn event(&mut self, event: RecordedEvent) -> Option<RecordedEvent> {
        if event.position <= self.delivered {
            return None;
        }
        self.delivered = event.position;
        self.scanned = self.scanned.max(event.position);
        Some(event)
    }

    /// A checkpoint of the server's filter, or an event of the namespace
    /// that is not the port's: nothing up to `position` is left to deliver.
    pub fn checkpoint(&mut self, position: u64) {
        self.scanned = self.scanned.max(position);
    }

    /// Whether to say `CaughtUp` now: once, when everything up to the
    /// head at the start was delivered, or when the server says it is
    /// caught up (`server`).
    pub fn caught_up_now(&mut self, server: bool) -> bool {
        if self.caught_up {
            return false;
        }
        let reached = self.target.is_some_and(|target| self.scanned >= target);
        if reached || (server && self.target.is_some()) {
            self.caught_up = true;
            return true;
        }
        false
    }

    /// Whether `CaughtUp` was said.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    /// The position a reconnect subscribes after: the last event
    /// delivered, so that it starts from a position the server handed out.
    pub fn resume_after(&self) -> u64 {
        self.delivered
    }
}

struct State {
    shared: Shared,
    closed: watch::Receiver<()>,
    follower: Follower,
    subscription: Option<kurrentdb::Subscription>,
    pending: std::collections::VecDeque<SubscriptionItem>,
    failures: u32,
    ended: bool,
}

/// The port's subscription over `shared`'s client; it ends with
/// [`StoreError::Closed`] once the store is dropped (`closed` fires) and
/// everything committed before was delivered.
pub(crate) fn subscribe(
    shared: Shared,
    closed: watch::Receiver<()>,
    after: u64,
) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
    let state = State {
        shared,
        closed,
        follower: Follower::new(after),
        subscription: None,
        pending: std::collections::VecDeque::new(),
        failures: 0,
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.ended {
            return None;
        }
        let item = state.next().await;
        // An error ends the subscription: the consumer subscribes again
        // from its checkpoint (outages are ridden out before this).
        state.ended = item.is_err();
        Some((item, state))
    })
    .boxed()
}

impl State {
    async fn next(&mut self) -> Result<SubscriptionItem, StoreError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(item);
            }
            if !self.follower.has_target() {
                match read_head(&self.shared).await {
                    Ok(head) => self.follower.set_target(head),
                    Err(error) => {
                        self.wait_or_fail(error).await?;
                        continue;
                    }
                }
                if self.follower.caught_up_now(false) {
                    return Ok(SubscriptionItem::CaughtUp);
                }
            }
            if self.subscription.is_none() {
                let resume = self.follower.resume_after();
                self.subscription = Some(open(&self.shared, resume).await);
            }
            let subscription = self.subscription.as_mut().expect("opened");
            let next = if self.follower.is_caught_up() {
                // Live: wait for the next event or the store's end.
                tokio::select! {
                    next = subscription.next_subscription_event() => next,
                    _ = self.closed.changed() => return Err(StoreError::Closed),
                }
            } else {
                // Catching up: deliver what was committed, then say so.
                subscription.next_subscription_event().await
            };
            match next {
                Ok(event) => {
                    self.failures = 0;
                    self.on_event(event)?;
                }
                Err(error) => {
                    self.subscription = None;
                    let store_error = match classify(&error) {
                        Failure::Unavailable(message) => {
                            StoreError::Unavailable(format!("KurrentDB: {message}"))
                        }
                        _ => crate::error::from_kurrent(&error, "$all"),
                    };
                    self.wait_or_fail(store_error).await?;
                }
            }
        }
    }

    fn on_event(&mut self, event: SubscriptionEvent) -> Result<(), StoreError> {
        let server_caught_up = match event {
            SubscriptionEvent::EventAppeared(resolved) => {
                if let Some(recorded) = resolved.event.as_ref() {
                    let mut interner = Interner::default();
                    let kurrent = KurrentEvent::of(recorded);
                    match port_event(&self.shared.names, &kurrent, &mut interner)? {
                        Some(event) => {
                            if let Some(event) = self.follower.event(event) {
                                self.pending.push_back(SubscriptionItem::Event(event));
                            }
                        }
                        // A tombstone or other system event of the namespace.
                        None => self.follower.checkpoint(recorded.position.commit),
                    }
                }
                false
            }
            SubscriptionEvent::Checkpoint(position) => {
                self.follower.checkpoint(position.commit);
                false
            }
            SubscriptionEvent::CaughtUp(_) => true,
            SubscriptionEvent::FellBehind(_) => {
                // The server went back to reading the log for this
                // subscription; the events still come in order.
                tracing::debug!(
                    namespace = self.shared.names.namespace(),
                    "a KurrentDB subscription fell behind the live log"
                );
                false
            }
            _ => false,
        };
        if self.follower.caught_up_now(server_caught_up) {
            self.pending.push_back(SubscriptionItem::CaughtUp);
        }
        Ok(())
    }

    /// After a failure: give up with `error` unless it is an outage, in
    /// which case wait (or end with the store) and try again.
    async fn wait_or_fail(&mut self, error: StoreError) -> Result<(), StoreError> {
        if !matches!(error, StoreError::Unavailable(_)) {
            return Err(error);
        }
        self.failures = self.failures.saturating_add(1);
        tracing::warn!(
            namespace = self.shared.names.namespace(),
            attempt = self.failures,
            %error,
            "KurrentDB subscription lost; resubscribing"
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff(self.failures)) => Ok(()),
            _ = self.closed.changed() => Err(StoreError::Closed),
        }
    }
}

/// A catch-up subscription after `after`. Reconnects are the adapter's,
/// not the client's, so that they resume after what was delivered.
async fn open(shared: &Shared, after: u64) -> kurrentdb::Subscription {
    let options = SubscribeToAllOptions::default()
        .position(all_position(after))
        .filter(SubscriptionFilter::on_stream_name().add_prefix(shared.names.events_prefix()));
    shared.client.subscribe_to_all(&options).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chrono::DateTime;
    use store::EventMetadata;
    use uuid::Uuid;

    fn event(position: u64) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::from_u128(u128::from(position)),
            stream: "s".into(),
            revision: 0,
            position,
            type_name: "Happened".into(),
            schema_version: 1,
            recorded_at: DateTime::from_timestamp(0, 0).unwrap(),
            metadata: EventMetadata {
                actor: "system".into(),
                correlation_id: Uuid::nil(),
                causation_id: None,
                occurred_at: DateTime::from_timestamp(0, 0).unwrap(),
            },
            payload: Bytes::new(),
        }
    }

    fn positions(follower: &mut Follower, incoming: &[u64]) -> Vec<u64> {
        incoming
            .iter()
            .filter_map(|&position| follower.event(event(position)))
            .map(|event| event.position)
            .collect()
    }

    #[test]
    fn events_at_or_before_the_checkpoint_are_not_delivered() {
        let mut follower = Follower::new(500);
        assert_eq!(
            positions(&mut follower, &[100, 500, 700, 900]),
            vec![700, 900]
        );
    }

    #[test]
    fn a_reconnect_resumes_after_the_last_delivered_and_drops_repeats() {
        let mut follower = Follower::new(0);
        assert_eq!(positions(&mut follower, &[10, 20, 30]), vec![10, 20, 30]);
        assert_eq!(follower.resume_after(), 30);
        // The server repeats part of what it had sent before the drop.
        assert_eq!(positions(&mut follower, &[20, 30, 40, 50]), vec![40, 50]);
        assert_eq!(follower.resume_after(), 50);
    }

    #[test]
    fn checkpoints_deliver_nothing_and_a_reconnect_resumes_at_an_event() {
        let mut follower = Follower::new(0);
        follower.set_target(80);
        assert_eq!(positions(&mut follower, &[10]), vec![10]);
        follower.checkpoint(40);
        assert!(!follower.caught_up_now(false));
        assert_eq!(follower.resume_after(), 10);
        follower.checkpoint(80);
        assert!(
            follower.caught_up_now(false),
            "the server looked past the head"
        );
        // A checkpoint never moves anything back.
        follower.checkpoint(20);
        assert_eq!(follower.resume_after(), 10);
        assert_eq!(positions(&mut follower, &[90]), vec![90]);
        assert_eq!(follower.resume_after(), 90);
    }

    #[test]
    fn caught_up_is_said_once_when_the_start_head_is_reached() {
        let mut follower = Follower::new(0);
        assert!(!follower.caught_up_now(true), "no target yet");
        follower.set_target(30);
        assert!(!follower.caught_up_now(false));
        positions(&mut follower, &[10, 20]);
        assert!(!follower.caught_up_now(false));
        positions(&mut follower, &[30]);
        assert!(follower.caught_up_now(false));
        assert!(follower.is_caught_up());
        assert!(!follower.caught_up_now(false));
        assert!(
            !follower.caught_up_now(true),
            "the server's CaughtUp after a reconnect"
        );
    }

    #[test]
    fn an_empty_log_or_a_checkpoint_at_the_head_is_caught_up_at_once() {
        let mut empty = Follower::new(0);
        empty.set_target(0);
        assert!(empty.caught_up_now(false));
        let mut at_head = Follower::new(700);
        at_head.set_target(700);
        assert!(at_head.caught_up_now(false));
    }

    #[test]
    fn the_server_saying_caught_up_counts_and_so_does_a_checkpoint_past_the_head() {
        let mut follower = Follower::new(0);
        follower.set_target(50);
        assert!(follower.caught_up_now(true));
        let mut follower = Follower::new(0);
        follower.set_target(50);
        follower.checkpoint(60);
        assert!(follower.caught_up_now(false));
    }

    #[test]
    fn reconnects_back_off_up_to_a_bound() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(4), FIRST_BACKOFF * 8);
        assert_eq!(backoff(40), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert!((1..60).all(|attempt| backoff(attempt) <= backoff(attempt + 1)));
    }
}
