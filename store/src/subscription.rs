//! The catch-up-then-live subscription to the global log, written once for
//! every adapter that can read `$all` by position and announce new heads.
//!
//! The algorithm relies on one property of the adapters: a read of the
//! global log after position `p` returns a gap-free prefix of everything
//! committed after `p` (true for the in-memory log and for SQLite, which has
//! one writer, so commit order is position order). The subscription keeps the
//! last delivered position and only ever reads after it, so no event is
//! delivered twice and none is skipped, across the catch-up to live switch.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::watch;

use crate::{RecordedEvent, StoreError, SubscriptionItem};

/// Events read per page, in catch-up and live mode alike.
pub const SUBSCRIPTION_PAGE: usize = 1024;

/// What a subscription needs from an adapter.
pub trait LogReader: Send + Sync + 'static {
    /// Up to `limit` events with position > `after`, in position order.
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>>;

    /// The position of the last committed event.
    fn head(&self) -> BoxFuture<'static, Result<u64, StoreError>>;
}

enum Phase {
    /// Not polled yet: the catch-up target is read on the first poll.
    Start,
    /// Reading pages until `target` (the head when the subscription started).
    CatchingUp {
        target: u64,
    },
    /// Following live: read, and wait for a new head when nothing is there.
    Live,
    /// The adapter has gone away: deliver what is left, then end.
    Draining,
    Done,
}

struct State {
    reader: Arc<dyn LogReader>,
    heads: watch::Receiver<u64>,
    last_delivered: u64,
    phase: Phase,
    buffer: VecDeque<RecordedEvent>,
}

type Next = Option<(Result<SubscriptionItem, StoreError>, State)>;

/// Subscribe to the global log after position `after`.
///
/// `heads` must be bumped (to any value larger than before) after every
/// commit the adapter wants its subscribers to notice; it is only a wake-up
/// signal, the events themselves are always read from `reader`. When its
/// sender is dropped the subscription drains what is readable and ends with
/// [`StoreError::Closed`].
pub fn follow_all(
    reader: Arc<dyn LogReader>,
    heads: watch::Receiver<u64>,
    after: u64,
) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
    let state = State {
        reader,
        heads,
        last_delivered: after,
        phase: Phase::Start,
        buffer: VecDeque::new(),
    };
    stream::unfold(state, next_item).boxed()
}

async fn next_item(mut state: State) -> Next {
    loop {
        if let Some(event) = state.buffer.pop_front() {
            state.last_delivered = event.position;
            return Some((Ok(SubscriptionItem::Event(event)), state));
        }
        match state.phase {
            Phase::Done => return None,
            Phase::Start => match state.reader.head().await {
                Ok(target) => state.phase = Phase::CatchingUp { target },
                Err(error) => return fail(state, error),
            },
            Phase::CatchingUp { target } => {
                if state.last_delivered >= target {
                    state.phase = Phase::Live;
                    return Some((Ok(SubscriptionItem::CaughtUp), state));
                }
                match read_page(&state).await {
                    // The head moved backwards: impossible for a log that
                    // only grows, but never spin on it.
                    Ok(page) if page.is_empty() => {
                        state.phase = Phase::Live;
                        return Some((Ok(SubscriptionItem::CaughtUp), state));
                    }
                    Ok(page) => state.buffer = page.into(),
                    Err(error) => return fail(state, error),
                }
            }
            Phase::Live => {
                // Mark the current head as seen *before* reading, so a commit
                // that lands after the read still wakes us up below.
                state.heads.borrow_and_update();
                match read_page(&state).await {
                    Ok(page) if page.is_empty() => {
                        if state.heads.changed().await.is_err() {
                            state.phase = Phase::Draining;
                        }
                    }
                    Ok(page) => state.buffer = page.into(),
                    Err(error) => return fail(state, error),
                }
            }
            Phase::Draining => match read_page(&state).await {
                Ok(page) if page.is_empty() => return fail(state, StoreError::Closed),
                Ok(page) => state.buffer = page.into(),
                Err(error) => return fail(state, error),
            },
        }
    }
}

async fn read_page(state: &State) -> Result<Vec<RecordedEvent>, StoreError> {
    let page = state
        .reader
        .read_after(state.last_delivered, SUBSCRIPTION_PAGE)
        .await?;
    debug_assert!(page.windows(2).all(|w| w[0].position < w[1].position));
    debug_assert!(
        page.first()
            .is_none_or(|e| e.position > state.last_delivered)
    );
    Ok(page)
}

fn fail(mut state: State, error: StoreError) -> Next {
    state.phase = Phase::Done;
    Some((Err(error), state))
}
