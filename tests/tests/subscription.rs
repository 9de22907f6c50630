//! The subscription `myApplicationChanged` over a real WebSocket
//! (`graphql-transport-ws` at `/graphql/ws`) against the spawned server:
//! each change of the caller's own applications arrives, whoever made it
//! and whichever node of the store wrote it; sockets without a session or
//! from another site are refused; the end of the session closes the
//! socket; the limits hold. The PostgreSQL test needs
//! `CASELEDGER_TEST_POSTGRES` (see README).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, error_code, new_secret, postgres_database, program};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const PASSWORD: &str = "Sommer2026abc";
const SERVICE_TOKEN: &str = "caseworker-credential";
/// The operation the portal runs.
const CHANGES: &str = "subscription { myApplicationChanged { id status submittedAt feePaid refundRequested appointment { meetingPoint location startsAt purpose } decision { outcome } } }";
/// How long a change may take to arrive.
const ARRIVES_WITHIN: Duration = Duration::from_secs(10);
/// How long a socket is watched to show that nothing arrives.
const QUIET_FOR: Duration = Duration::from_millis(1500);

/// What a socket gave.
#[derive(Debug)]
enum Received {
    Message(Value),
    Closed(u16, String),
}

/// A client of the subscription socket.
struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Open a socket to `server` with these upgrade headers (besides the
/// subprotocol); the HTTP refusal's status and body otherwise.
async fn open(server: &Server, headers: &[(&str, &str)]) -> Result<Socket, (u16, Value)> {
    open_with(server, headers, Some("graphql-transport-ws")).await
}

async fn open_with(
    server: &Server,
    headers: &[(&str, &str)],
    protocol: Option<&str>,
) -> Result<Socket, (u16, Value)> {
    let url = format!("{}/graphql/ws", server.url.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("a WebSocket request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(protocol).unwrap(),
        );
    }
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, response)) => {
            assert_eq!(
                response.headers()["sec-websocket-protocol"],
                "graphql-transport-ws"
            );
            Ok(Socket { ws })
        }
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice(body).ok())
                .unwrap_or(Value::Null);
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("connecting to the subscription socket: {other}"),
    }
}

impl Socket {
    async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("send on the socket");
    }

    /// The next message or the close, within `within`; `None` on silence.
    async fn receive(&mut self, within: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(Received::Message(
                        serde_json::from_str(text.as_str()).expect("a JSON message"),
                    ));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Some(Received::Closed(code, reason));
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Some(Received::Closed(1006, error.to_string())),
                None => return Some(Received::Closed(1006, "the stream ended".into())),
            }
        }
    }

    /// The next message, which must come.
    async fn message(&mut self) -> Value {
        match self.receive(ARRIVES_WITHIN).await {
            Some(Received::Message(message)) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The close code, which must come within `within`.
    async fn closed(&mut self, within: Duration) -> (u16, String) {
        match self.receive(within).await {
            Some(Received::Closed(code, reason)) => (code, reason),
            Some(Received::Message(message)) => {
                panic!("expected the socket to close, got {message}")
            }
            None => panic!("the socket was not closed within {within:?}"),
        }
    }

    /// `connection_init` with `payload`; the `connection_ack` must follow.
    async fn init(&mut self, payload: Value) {
        self.send(json!({"type": "connection_init", "payload": payload}))
            .await;
        let ack = self.message().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    /// Subscribe as `id` with `query`, then a ping: once its pong is back
    /// the subscription is listening.
    async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({"id": id, "type": "subscribe", "payload": {"query": query}}))
            .await;
        self.send(json!({"type": "ping"})).await;
        let pong = self.message().await;
        assert_eq!(pong["type"], "pong", "{pong}");
    }

    /// Subscribe as `id` with `query`, which is refused: the errors'
    /// extensions (the subscription is then complete).
    async fn refused(&mut self, id: &str, query: &str) -> Value {
        self.send(json!({"id": id, "type": "subscribe", "payload": {"query": query}}))
            .await;
        let refusal = self.message().await;
        assert_eq!(refusal["type"], "next", "{refusal}");
        assert_eq!(refusal["id"], id, "{refusal}");
        assert!(refusal["payload"]["data"].is_null(), "{refusal}");
        let completed = self.message().await;
        assert_eq!(completed, json!({"type": "complete", "id": id}));
        refusal["payload"]["errors"][0]["extensions"].clone()
    }

    /// The next change of subscription `id`: the application as sent.
    async fn change(&mut self, id: &str) -> Value {
        let message = self.message().await;
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(message["id"], id, "{message}");
        assert!(message["payload"]["errors"].is_null(), "{message}");
        message["payload"]["data"]["myApplicationChanged"].clone()
    }

    /// Changes of subscription `id` to application `application` until one
    /// has `status` (changes that come quickly one after another may be
    /// sent as one, the application as it is after the last).
    async fn change_until(&mut self, id: &str, application: &str, status: &str) -> Value {
        loop {
            let change = self.change(id).await;
            assert_eq!(change["id"], application, "{change}");
            if change["status"] == status {
                return change;
            }
        }
    }

    /// Nothing arrives for a while.
    async fn quiet(&mut self) {
        if let Some(received) = self.receive(QUIET_FOR).await {
            panic!("expected nothing, got {received:?}");
        }
    }
}

/// Log in over HTTP as a browser does; the session cookie's value.
async fn browser_login(server: &Server, email: &str) -> String {
    let response = server
        .client
        .post(format!("{}/graphql", server.url))
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            "variables": {"e": email, "p": PASSWORD},
        }))
        .send()
        .await
        .expect("log in");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("caseledger_session="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .expect("a session cookie");
    assert!(!cookie.is_empty());
    cookie
}

/// A socket logged in with `token` through `connection_init`.
async fn logged_in_socket(server: &Server, token: &str) -> Socket {
    let mut socket = open(server, &[]).await.expect("the socket opens");
    socket
        .init(json!({"authorization": format!("Bearer {token}")}))
        .await;
    socket
}

fn in_two_weeks() -> String {
    (chrono::Utc::now() + chrono::Duration::days(14)).to_rfc3339()
}

const BOOK: &str = "mutation($id: ID!, $t: DateTime!) { bookAppointment(applicationId: $id, input: { meetingPoint: POLICE, location: \"Oslo politidistrikt\", startsAt: $t }) { location } }";

async fn book(server: &Server, token: &str, id: &str) {
    let booked = server
        .gql(Some(token), BOOK, json!({"id": id, "t": in_two_weeks()}))
        .await;
    assert_eq!(
        booked["data"]["bookAppointment"]["location"], "Oslo politidistrikt",
        "{booked}"
    );
}

async fn caseworker(server: &Server, mutation: &str, id: &str) -> Value {
    let answer = server
        .gql_with(
            &[("x-service-token", SERVICE_TOKEN)],
            mutation,
            json!({"id": id}),
        )
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    answer
}

#[tokio::test]
async fn a_browser_sees_each_change_it_makes_to_its_applications() {
    let server = Server::start(&[]);
    server.register("kari@example.no", PASSWORD, "Kari").await;
    let cookie = browser_login(&server, "kari@example.no").await;
    let origin = server.url.clone();
    // A browser: the session cookie and its own origin on the upgrade, no
    // token in `connection_init`.
    let mut socket = open(
        &server,
        &[
            ("origin", &origin),
            ("cookie", &format!("caseledger_session={cookie}")),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await
    .expect("the socket opens");
    socket.init(json!({})).await;
    socket.subscribe("mine", CHANGES).await;

    let id = server.create_application(&cookie, "SELF", false).await;
    let created = socket.change("mine").await;
    assert_eq!(created["id"], id.as_str());
    assert_eq!(created["status"], "DRAFT");
    assert!(created["submittedAt"].is_null());

    server
        .gql(
            Some(&cookie),
            "mutation($id: ID!) { submitApplication(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    let submitted = socket.change("mine").await;
    assert_eq!(submitted["status"], "SUBMITTED");
    assert!(submitted["submittedAt"].is_string(), "{submitted}");

    book(&server, &cookie, &id).await;
    let booked = socket.change("mine").await;
    assert_eq!(booked["status"], "APPOINTMENT_BOOKED");
    assert_eq!(booked["appointment"]["meetingPoint"], "POLICE");
    assert_eq!(booked["appointment"]["location"], "Oslo politidistrikt");
    assert_eq!(booked["appointment"]["purpose"], "APPLICATION");
    // A query made on receipt, without any position header, sees it.
    let read = server
        .gql(
            Some(&cookie),
            "query($id: ID!) { application(id: $id) { status appointment { location } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(read["data"]["application"]["status"], "APPOINTMENT_BOOKED");

    let cancelled = server
        .gql(
            Some(&cookie),
            "mutation($id: ID!) { cancelAppointment(applicationId: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        cancelled["data"]["cancelAppointment"]["status"], "SUBMITTED",
        "{cancelled}"
    );
    let after_cancel = socket.change("mine").await;
    assert_eq!(after_cancel["status"], "SUBMITTED");
    assert!(after_cancel["appointment"].is_null(), "{after_cancel}");

    // A refused mutation changes nothing, so nothing arrives.
    let refused = server
        .gql(
            Some(&cookie),
            "mutation($id: ID!) { requestRefund(applicationId: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&refused), "WRONG_STATE");
    socket.quiet().await;

    // The client ends its subscription: the server completes it.
    socket.send(json!({"id": "mine", "type": "complete"})).await;
    server.create_application(&cookie, "SELF", false).await;
    if let Some(Received::Message(message)) = socket.receive(QUIET_FOR).await {
        assert_eq!(message["type"], "complete", "{message}");
    }
    socket.quiet().await;
}

#[tokio::test]
async fn a_caseworkers_changes_reach_the_owner_without_polling() {
    let server = Server::start(&["--service-token", SERVICE_TOKEN]);
    let token = server.register("ola@example.no", PASSWORD, "Ola").await;
    let id = server.create_application(&token, "SELF", true).await;
    book(&server, &token, &id).await;
    // A client that is not a browser: the token in `connection_init`.
    let mut socket = logged_in_socket(&server, &token).await;
    socket.subscribe("1", CHANGES).await;

    caseworker(
        &server,
        "mutation($id: ID!) { registerFeePaid(applicationId: $id, amountNok: 6300) { feePaid } }",
        &id,
    )
    .await;
    let paid = socket.change("1").await;
    assert_eq!(paid["id"], id.as_str());
    assert_eq!(paid["feePaid"], true);

    caseworker(
        &server,
        "mutation($id: ID!) { registerDocumentsReceived(applicationId: $id) { status } }",
        &id,
    )
    .await;
    let received = socket.change("1").await;
    assert_eq!(received["status"], "DOCUMENTS_RECEIVED");

    let refund = server
        .gql(
            Some(&token),
            "mutation($id: ID!) { requestRefund(applicationId: $id) { refundRequested } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        refund["data"]["requestRefund"]["refundRequested"], true,
        "{refund}"
    );
    let refund_requested = socket.change("1").await;
    assert_eq!(refund_requested["refundRequested"], true);

    caseworker(
        &server,
        "mutation($id: ID!) { makeDecision(applicationId: $id, outcome: GRANTED, hasDigipost: true) { status } }",
        &id,
    )
    .await;
    let decided = socket.change("1").await;
    assert_eq!(decided["status"], "DECIDED");
    assert_eq!(decided["decision"]["outcome"], "GRANTED");
}

#[tokio::test]
async fn no_socket_goes_on_without_a_session() {
    let server = Server::start(&[]);
    let token = server.register("nils@example.no", PASSWORD, "Nils").await;

    // No session anywhere.
    let mut socket = open(&server, &[]).await.expect("the socket opens");
    socket.send(json!({"type": "connection_init"})).await;
    assert_eq!(socket.closed(ARRIVES_WITHIN).await.0, 4401);

    // A token that is not a session's, in the payload or on the upgrade.
    let mut socket = open(&server, &[]).await.expect("the socket opens");
    socket
        .send(json!({"type": "connection_init", "payload": {"authorization": "Bearer not-a-session"}}))
        .await;
    assert_eq!(socket.closed(ARRIVES_WITHIN).await.0, 4401);
    let mut socket = open(&server, &[("authorization", "Bearer not-a-session")])
        .await
        .expect("the socket opens");
    socket.send(json!({"type": "connection_init"})).await;
    assert_eq!(socket.closed(ARRIVES_WITHIN).await.0, 4401);
    // A payload that names no bearer token does not fall back to anything.
    let mut socket = open(&server, &[("authorization", &format!("Bearer {token}"))])
        .await
        .expect("the socket opens");
    socket
        .send(json!({"type": "connection_init", "payload": {"authorization": token}}))
        .await;
    assert_eq!(socket.closed(ARRIVES_WITHIN).await.0, 4401);

    // A subscribe before the connection is acknowledged.
    let mut socket = open(&server, &[]).await.expect("the socket opens");
    socket
        .send(json!({"id": "1", "type": "subscribe", "payload": {"query": CHANGES}}))
        .await;
    assert_eq!(socket.closed(ARRIVES_WITHIN).await.0, 4401);

    // The token of the upgrade's Authorization header is taken.
    let mut socket = open(&server, &[("authorization", &format!("Bearer {token}"))])
        .await
        .expect("the socket opens");
    socket.init(json!(null)).await;

    // A session that has ended.
    server
        .gql(Some(&token), "mutation { logout }", json!({}))
        .await;
    let mut socket = open(&server, &[]).await.expect("the socket opens");
    socket
        .send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}))
        .await;
    assert_eq!(socket.closed(ARRIVES_WITHIN).await.0, 4401);

    // Not a WebSocket, or not the protocol.
    let plain = server
        .client
        .get(format!("{}/graphql/ws", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 426);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["reason"], "NOT_A_WEBSOCKET");
    let (status, body) = open_with(&server, &[], Some("graphql-ws"))
        .await
        .err()
        .expect("the old protocol is refused");
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["extensions"]["reason"],
        "UNSUPPORTED_PROTOCOL"
    );
    assert!(open_with(&server, &[], None).await.is_err());
}

#[tokio::test]
async fn a_page_of_another_site_cannot_open_the_socket() {
    let server = Server::start(&["--allowed-origin", "https://portal.example.no"]);
    let token = server.register("siri@example.no", PASSWORD, "Siri").await;
    let cookie = format!("caseledger_session={token}");
    for headers in [
        vec![
            ("origin", "https://evil.example"),
            ("cookie", cookie.as_str()),
        ],
        vec![("origin", "null"), ("cookie", cookie.as_str())],
        vec![
            ("origin", server.url.as_str()),
            ("sec-fetch-site", "cross-site"),
            ("cookie", cookie.as_str()),
        ],
    ] {
        let (status, body) = open(&server, &headers)
            .await
            .err()
            .unwrap_or_else(|| panic!("a cross-site upgrade was taken: {headers:?}"));
        assert_eq!(status, 403, "{headers:?}");
        assert_eq!(body["errors"][0]["extensions"]["reason"], "CROSS_ORIGIN");
    }
    // The server's own pages and an allowed origin may.
    for origin in [server.url.as_str(), "https://portal.example.no"] {
        let mut socket = open(&server, &[("origin", origin), ("cookie", cookie.as_str())])
            .await
            .unwrap_or_else(|refused| panic!("{origin}: {refused:?}"));
        socket.init(json!({})).await;
    }
}

#[tokio::test]
async fn another_persons_applications_never_arrive() {
    let server = Server::start(&["--service-token", SERVICE_TOKEN]);
    let anna = server.register("anna@example.no", PASSWORD, "Anna").await;
    let bjorn = server.register("bjorn@example.no", PASSWORD, "Bjørn").await;
    let mut annas = logged_in_socket(&server, &anna).await;
    annas.subscribe("a", CHANGES).await;
    let mut bjorns = logged_in_socket(&server, &bjorn).await;
    bjorns.subscribe("b", CHANGES).await;

    let bjorns_application = server.create_application(&bjorn, "SELF", true).await;
    bjorns
        .change_until("b", &bjorns_application, "SUBMITTED")
        .await;
    caseworker(
        &server,
        "mutation($id: ID!) { registerDocumentsReceived(applicationId: $id) { status } }",
        &bjorns_application,
    )
    .await;
    assert_eq!(bjorns.change("b").await["status"], "DOCUMENTS_RECEIVED");
    annas.quiet().await;

    // Anna's socket works: her own change is the next thing it says.
    let annas_application = server.create_application(&anna, "SELF", false).await;
    assert_eq!(annas.change("a").await["id"], annas_application.as_str());
    bjorns.quiet().await;
}

#[tokio::test]
async fn the_end_of_the_session_closes_its_sockets() {
    let server = Server::start(&["--session-idle-timeout", "5s"]);
    server.register("per@example.no", PASSWORD, "Per").await;
    let first = server.login("per@example.no", PASSWORD).await.unwrap();
    let second = server.login("per@example.no", PASSWORD).await.unwrap();
    let mut first_socket = logged_in_socket(&server, &first).await;
    first_socket.subscribe("1", CHANGES).await;
    let mut second_socket = logged_in_socket(&server, &second).await;
    second_socket.subscribe("1", CHANGES).await;

    let logged_out = server
        .gql(Some(&first), "mutation { logout }", json!({}))
        .await;
    assert_eq!(logged_out["data"]["logout"], true, "{logged_out}");
    let began = Instant::now();
    let (code, _) = first_socket.closed(Duration::from_secs(5)).await;
    assert_eq!(code, 4401);
    assert!(began.elapsed() < Duration::from_secs(5));

    // The other session's socket goes on, and a change reaches it.
    let id = server.create_application(&second, "SELF", false).await;
    assert_eq!(second_socket.change("1").await["id"], id.as_str());

    // An open socket does not keep its session alive: once the session
    // has been idle for its timeout, the socket closes.
    let (code, _) = second_socket.closed(Duration::from_secs(12)).await;
    assert_eq!(code, 4401);
    let me = server.gql(Some(&second), "{ me { id } }", json!({})).await;
    assert!(me["data"]["me"].is_null(), "{me}");
}

#[tokio::test]
async fn subscriptions_and_sockets_are_limited() {
    let server = Server::start(&[
        "--max-subscriptions-per-connection",
        "2",
        "--max-subscription-sockets-per-session",
        "2",
        "--max-subscription-sockets",
        "3",
        "--subscription-init-timeout",
        "1s",
    ]);
    let token = server.register("liv@example.no", PASSWORD, "Liv").await;

    // Subscriptions per socket: a third is refused, and taken once one
    // of the others has ended.
    let mut socket = logged_in_socket(&server, &token).await;
    socket.subscribe("1", CHANGES).await;
    socket.subscribe("2", CHANGES).await;
    let refused = socket.refused("3", CHANGES).await;
    assert_eq!(refused["code"], "TOO_MANY_ATTEMPTS");
    assert_eq!(refused["reason"], "TOO_MANY_SUBSCRIPTIONS");
    assert_eq!(refused["limit"], 2);
    socket.send(json!({"id": "1", "type": "complete"})).await;
    // (The server confirms the end with a `complete` of its own.)
    assert_eq!(
        socket.message().await,
        json!({"type": "complete", "id": "1"})
    );
    socket.subscribe("4", CHANGES).await;
    let id = server.create_application(&token, "SELF", false).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let message = socket.message().await;
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(message["payload"]["data"]["myApplicationChanged"]["id"], id);
        seen.push(message["id"].as_str().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["2", "4"]);

    // Sockets per session: a third of the same session is closed.
    let _second = logged_in_socket(&server, &token).await;
    let mut third = open(&server, &[]).await.expect("the socket opens");
    third
        .send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}))
        .await;
    assert_eq!(third.closed(ARRIVES_WITHIN).await.0, 4429);
    drop(third);

    // Sockets per node: a fourth upgrade is answered 503 (the third one
    // above is gone once the server has seen it close).
    let deadline = Instant::now() + ARRIVES_WITHIN;
    let _idle = loop {
        match open(&server, &[]).await {
            Ok(socket) => break socket,
            Err((503, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(refused) => panic!("{refused:?}"),
        }
    };
    let (status, body) = open(&server, &[]).await.err().expect("over the node's cap");
    assert_eq!(status, 503);
    assert_eq!(body["errors"][0]["extensions"]["reason"], "OVERLOADED");

    // A socket that never sends `connection_init` is closed.
    let mut idle = _idle;
    let began = Instant::now();
    assert_eq!(idle.closed(Duration::from_secs(5)).await.0, 4408);
    assert!(began.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn subscription_documents_are_bounded_as_posts_are() {
    let server = Server::start(&["--max-query-nodes", "40", "--service-token", SERVICE_TOKEN]);
    let token = server.register("ida@example.no", PASSWORD, "Ida").await;
    let mut socket = logged_in_socket(&server, &token).await;

    // Too large once expanded.
    let fields = (0..60)
        .map(|i| format!("a{i}: status"))
        .collect::<Vec<_>>()
        .join(" ");
    let big = socket
        .refused(
            "big",
            &format!("subscription {{ myApplicationChanged {{ {fields} }} }}"),
        )
        .await;
    assert_eq!(big["code"], "INVALID_INPUT");
    assert_eq!(big["reason"], "QUERY_TOO_LARGE");
    // Nested too deeply for the parser.
    let deep = format!(
        "subscription {{ myApplicationChanged {}{} }}",
        "{ id ".repeat(100),
        "}".repeat(100)
    );
    assert_eq!(
        socket.refused("deep", &deep).await["reason"],
        "QUERY_TOO_DEEP"
    );
    // A document the schema does not validate: the contract's code too.
    let invalid = socket
        .refused("invalid", "subscription { myApplicationChanged { nope } }")
        .await;
    assert_eq!(invalid["code"], "INVALID_INPUT");
    // Queries and mutations go to POST /graphql.
    let mutation = socket
        .refused(
            "mutation",
            "mutation { createApplication(input: { kind: WORK, relation: SELF, applicant: { name: \"Ida\", birthDate: \"1990-01-01\", nationality: \"NOR\" } }) { id } }",
        )
        .await;
    assert_eq!(mutation["reason"], "NOT_A_SUBSCRIPTION");
    assert_eq!(
        socket.refused("query", "{ me { id } }").await["reason"],
        "NOT_A_SUBSCRIPTION"
    );
    let mine = server
        .gql(Some(&token), "{ myApplications { totalCount } }", json!({}))
        .await;
    assert_eq!(mine["data"]["myApplications"]["totalCount"], 0, "{mine}");

    // A message over the size limit ends the connection.
    socket
        .send(json!({"id": "x", "type": "subscribe", "payload": {"query": "#".repeat(100 * 1024)}}))
        .await;
    let (code, _) = socket.closed(ARRIVES_WITHIN).await;
    assert_ne!(code, 1000);
}

#[tokio::test]
async fn a_second_node_delivers_a_change_written_by_the_first() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("cluster.key");
    let made = new_secret(&secret);
    assert!(made.status.success(), "{made:?}");
    let database = postgres_database();
    let args = [
        "--store",
        database.as_str(),
        "--secret-file",
        secret.to_str().unwrap(),
        "--service-token",
        SERVICE_TOKEN,
    ];
    let first = Server::start(&args);
    let second = Server::start(&args);

    let token = first.register("eli@example.no", PASSWORD, "Eli").await;
    // The second node knows the session once its read models have the
    // registration.
    let deadline = Instant::now() + ARRIVES_WITHIN;
    loop {
        let me = second.gql(Some(&token), "{ me { id } }", json!({})).await;
        if !me["data"]["me"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second node never saw the session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut socket = logged_in_socket(&second, &token).await;
    socket.subscribe("1", CHANGES).await;

    let id = first.create_application(&token, "SELF", true).await;
    socket.change_until("1", &id, "SUBMITTED").await;
    caseworker(
        &first,
        "mutation($id: ID!) { registerDocumentsReceived(applicationId: $id) { status } }",
        &id,
    )
    .await;
    assert_eq!(socket.change("1").await["status"], "DOCUMENTS_RECEIVED");

    // Logging out on the first node closes the socket on the second.
    first
        .gql(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(socket.closed(Duration::from_secs(5)).await.0, 4401);
}

#[tokio::test]
async fn stopping_the_server_closes_its_sockets() {
    let mut server = Server::start(&[]);
    let token = server.register("tor@example.no", PASSWORD, "Tor").await;
    let mut socket = logged_in_socket(&server, &token).await;
    socket.subscribe("1", CHANGES).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert_eq!(socket.closed(ARRIVES_WITHIN).await.0, 1001);
    let exit = server
        .wait_exit(ARRIVES_WITHIN)
        .expect("the server stops on SIGTERM");
    assert!(exit.success(), "clean exit: {exit:?}");
}

#[test]
fn the_schema_command_prints_the_subscription() {
    let out = Command::new(program()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let sdl = String::from_utf8_lossy(&out.stdout);
    assert!(sdl.contains("subscription: SubscriptionRoot"), "{sdl}");
    assert!(sdl.contains("myApplicationChanged: Application!"), "{sdl}");
}
