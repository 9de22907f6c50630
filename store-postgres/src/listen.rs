//! Live following: a dedicated connection LISTENs for the commits of every
//! process and polls the head as a fallback; both wake the store's
//! subscriptions. The connection is opened again, with backoff, whenever it
//! is lost, and each new connection wakes the subscriptions once, so a
//! commit whose notification was lost with the old one is still read.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use crate::config::Target;
use crate::schema::CHANNEL;
use crate::writer::Backoff;

/// Run until aborted (the store's drop does that).
pub(crate) async fn run(target: Target, heads: watch::Sender<u64>, poll_interval: Duration) {
    let mut backoff = Backoff::new();
    loop {
        match follow(&target, &heads, poll_interval, &mut backoff).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(endpoint = %target.endpoint, %error, "the PostgreSQL listener reconnects");
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}

fn wake(heads: &watch::Sender<u64>) {
    heads.send_modify(|head| *head += 1);
}

/// One connection's life; `Ok` only when nobody listens any more.
async fn follow(
    target: &Target,
    heads: &watch::Sender<u64>,
    poll_interval: Duration,
    backoff: &mut Backoff,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = target.config.connect(target.tls.clone()).await?;
    let (notifications, mut notified) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if notifications.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "the listener's connection ended");
                    return;
                }
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        *backoff = Backoff::new();
        wake(heads);
        let head = client
            .prepare("SELECT coalesce(max(position), 0) FROM caseledger_events")
            .await?;
        let mut last_head: i64 = client.query_one(&head, &[]).await?.get(0);
        let mut poll = tokio::time::interval(poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = notified.recv() => match message {
                    Some(()) => {
                        while notified.try_recv().is_ok() {}
                        wake(heads);
                    }
                    // The connection ended: the query below reports why.
                    None => {
                        client.query_one(&head, &[]).await?;
                    }
                },
                _ = poll.tick() => {
                    let now: i64 = client.query_one(&head, &[]).await?.get(0);
                    if now != last_head {
                        last_head = now;
                        wake(heads);
                    }
                }
                () = heads.closed() => return Ok(()),
            }
        }
    }
    .await;
    driver.abort();
    result
}
