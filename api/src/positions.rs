//! Read-your-writes across requests and nodes: every response to a
//! mutation says the global position of the last event it wrote
//! (`Caseledger-Position`, and a cookie for browsers), and a request that
//! names a position (`Caseledger-Min-Position`, or that cookie) is answered
//! only once the read models have applied it.

use std::cell::Cell;

use axum::http::HeaderMap;

/// Response header: the position of the last event the request wrote.
pub const POSITION_HEADER: &str = "caseledger-position";
/// Request header: answer only once the read models have this position.
pub const MIN_POSITION_HEADER: &str = "caseledger-min-position";
/// The cookie that carries a browser's last written position.
pub const POSITION_COOKIE: &str = "caseledger_position";
/// Longest a request waits for the read models to reach its position.
pub const MIN_POSITION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

tokio::task_local! {
    static WRITTEN: Cell<u64>;
}

/// Run `work`, returning its output and the highest position it wrote (0:
/// none).
pub async fn tracking<F: std::future::Future>(work: F) -> (F::Output, u64) {
    WRITTEN
        .scope(Cell::new(0), async move {
            let output = work.await;
            (output, WRITTEN.with(Cell::get))
        })
        .await
}

/// Note that the current request wrote an event at `position`.
pub fn wrote(position: u64) {
    let _ = WRITTEN.try_with(|written| written.set(written.get().max(position)));
}

/// A `Caseledger-Min-Position` header that is not a log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAPosition;

/// The position a request asks to see: the header, else the browser's
/// cookie.
pub fn requested(headers: &HeaderMap) -> Result<Option<u64>, NotAPosition> {
    if let Some(value) = headers.get(MIN_POSITION_HEADER) {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or(NotAPosition);
    }
    Ok(crate::cookies::cookie(headers, POSITION_COOKIE).and_then(|v| v.trim().parse().ok()))
}

/// Why a request was not let through by [`reach_requested`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReached {
    /// The header names no log position.
    NotAPosition,
    /// The read models did not reach the position in time.
    TooLate,
}

/// Wait (at most [`MIN_POSITION_WAIT`]) until the read models have applied
/// the position `headers` ask for, if any.
pub async fn reach_requested(
    projections: &projections::Projections,
    headers: &HeaderMap,
) -> Result<(), NotReached> {
    match requested(headers) {
        Err(NotAPosition) => Err(NotReached::NotAPosition),
        Ok(None) => Ok(()),
        Ok(Some(position)) => match projections.wait_for(position, MIN_POSITION_WAIT).await {
            Ok(()) => Ok(()),
            Err(error) => {
                tracing::info!(position, %error, "read models not at the asked position");
                Err(NotReached::TooLate)
            }
        },
    }
}

/// The `Set-Cookie` value that carries `position` for a browser's next
/// requests (a session cookie; not secret).
pub fn cookie(position: u64) -> String {
    format!("{POSITION_COOKIE}={position}; Path=/; HttpOnly; Secure; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_highest_position_written_inside_the_scope_is_kept() {
        let ((), written) = tracking(async {
            wrote(7);
            wrote(3);
            tokio::task::yield_now().await;
            wrote(9);
        })
        .await;
        assert_eq!(written, 9);
        // Outside a scope nothing happens.
        wrote(11);
        let ((), none) = tracking(async {}).await;
        assert_eq!(none, 0);
    }

    #[test]
    fn a_header_wins_over_the_cookie_and_garbage_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "caseledger_position=12".parse().unwrap());
        assert_eq!(requested(&headers), Ok(Some(12)));
        headers.insert(MIN_POSITION_HEADER, "40".parse().unwrap());
        assert_eq!(requested(&headers), Ok(Some(40)));
        headers.insert(MIN_POSITION_HEADER, "soon".parse().unwrap());
        assert_eq!(requested(&headers), Err(NotAPosition));
    }
}
