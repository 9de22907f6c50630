//! Session lifetimes: the idle timeout ends a quiet session but activity
//! keeps it alive; the absolute lifetime ends it regardless.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::json;

async fn me_email(server: &Server, token: &str) -> Option<String> {
    server.gql(Some(token), "{ me { email } }", json!({})).await["data"]["me"]["email"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn the_idle_timeout_ends_a_quiet_session_and_activity_keeps_one_alive() {
    let server = Server::start(&["--session-idle-timeout", "2s"]);
    let quiet = server
        .register("quiet@example.no", "Sommer2026abc", "Quiet")
        .await;
    let busy = server
        .login("quiet@example.no", "Sommer2026abc")
        .await
        .unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            me_email(&server, &busy).await.is_some(),
            "an active session stays"
        );
    }
    assert!(
        me_email(&server, &quiet).await.is_none(),
        "a session idle for 3 s of 2 s ended"
    );
}

#[tokio::test]
async fn the_absolute_lifetime_ends_even_an_active_session() {
    let server = Server::start(&["--session-lifetime", "2s"]);
    let token = server
        .register("short@example.no", "Sommer2026abc", "Short")
        .await;
    assert!(me_email(&server, &token).await.is_some());
    let mut ended = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if me_email(&server, &token).await.is_none() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the session ended after its lifetime");
}
