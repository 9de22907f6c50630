//! The GraphQL subscription at `GET /graphql/ws`: the `graphql-transport-ws`
//! protocol over WebSocket, telling a logged-in caller when one of their
//! applications changes.
//!
//! The upgrade passes the same cross-site check as a POST (in `server`);
//! the session is the `connection_init` payload's `authorization`
//! (`Bearer <token>`), else the upgrade request's `Authorization` header,
//! else its session cookie. Without a live session the socket is closed
//! with 4401. A socket whose session ends (logout, expiry, idle timeout)
//! is closed with 4401 within [`SESSION_CHECK_EVERY`]; it does not count as
//! a use of the session. Limits: sockets per node and per session,
//! subscriptions per socket, message size, time to `connection_init`; every
//! document passes the same nesting and expansion bounds as a POST, and
//! only subscription operations are taken (queries and mutations go to
//! `POST /graphql`).
//!
//! Changes come from the read models' runner
//! ([`projections::Projections::application_changes`]), sent once the
//! change is applied, whichever node of the store wrote it; a subscriber
//! that falls behind is sent the current state of every application of
//! the caller instead.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::parser::types::OperationType;
use async_graphql::{Context, Data, Executor, Response, Subscription};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{SinkExt, Stream, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use domain::{AccountId, ApplicationId, SessionId};
use projections::ApplicationChanged;

use crate::cookies::{SESSION_COOKIE, bearer, cookie};
use crate::error::{ApiError, Lang};
use crate::graphql::{Application, CaseledgerSchema, RequestContext};
use crate::query_guard::QueryBounds;
use crate::services::{App, Caller};

/// The one subprotocol spoken.
pub const PROTOCOL: &str = "graphql-transport-ws";
/// Largest message (and frame) a client may send.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How often an open socket checks that its session is still live.
pub const SESSION_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Longest a message may wait to be taken by the client before the
/// socket is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Close code: no session, or the session ended (and a subscribe before
/// `connection_ack`).
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code: a message that is not of the protocol.
pub const CLOSE_BAD_MESSAGE: u16 = 4400;
/// Close code: no `connection_init` in time.
pub const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// Close code: too many sockets of one session, or a second
/// `connection_init`.
pub const CLOSE_TOO_MANY: u16 = 4429;
/// Close code: the server is stopping.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// The limits of the subscription endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionSettings {
    /// Subscriptions one socket may run at once.
    pub max_per_connection: usize,
    /// Sockets one session may hold open at once (tabs of one browser).
    pub max_sockets_per_session: usize,
    /// Sockets this node holds open at once, logged in or not.
    pub max_sockets: usize,
    /// How long a socket may stay open without `connection_init`.
    pub init_timeout: Duration,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        SubscriptionSettings {
            max_per_connection: 10,
            max_sockets_per_session: 8,
            max_sockets: 10_000,
            init_timeout: Duration::from_secs(10),
        }
    }
}

/// The open sockets of this node.
pub struct Sockets {
    settings: SubscriptionSettings,
    open: AtomicUsize,
    per_session: Mutex<HashMap<SessionId, usize>>,
    stop: watch::Sender<bool>,
}

/// One open socket, counted until it is dropped.
struct NodePermit(Arc<Sockets>);

impl Drop for NodePermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One logged-in socket of a session, counted until it is dropped.
struct SessionPermit(Arc<Sockets>, SessionId);

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut open = self.0.per_session.lock().expect("socket count lock");
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

impl Sockets {
    /// No socket open yet.
    pub fn new(settings: SubscriptionSettings) -> Arc<Sockets> {
        Arc::new(Sockets {
            settings,
            open: AtomicUsize::new(0),
            per_session: Mutex::new(HashMap::new()),
            stop: watch::channel(false).0,
        })
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Close every socket (1001): the server is stopping. Waits up to
    /// `within` for them to be closed.
    pub async fn close_all(&self, within: Duration) {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + within;
        while self.open() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn admit(self: &Arc<Self>) -> Option<NodePermit> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.settings.max_sockets).then_some(open + 1)
            })
            .is_ok();
        admitted.then(|| NodePermit(self.clone()))
    }

    fn join_session(self: &Arc<Self>, session: SessionId) -> Option<SessionPermit> {
        let mut open = self.per_session.lock().expect("socket count lock");
        let count = open.entry(session).or_insert(0);
        if *count >= self.settings.max_sockets_per_session {
            return None;
        }
        *count += 1;
        Some(SessionPermit(self.clone(), session))
    }
}

/// What the subscription endpoint works with.
#[derive(Clone)]
pub struct SubscriptionEndpoint {
    app: App,
    schema: CaseledgerSchema,
    bounds: QueryBounds,
    sockets: Arc<Sockets>,
}

impl SubscriptionEndpoint {
    /// The endpoint over the services and the schema.
    pub fn new(
        app: App,
        schema: CaseledgerSchema,
        bounds: QueryBounds,
        settings: SubscriptionSettings,
    ) -> SubscriptionEndpoint {
        SubscriptionEndpoint {
            app,
            schema,
            bounds,
            sockets: Sockets::new(settings),
        }
    }

    /// This node's sockets.
    pub fn sockets(&self) -> &Arc<Sockets> {
        &self.sockets
    }

    /// Answer an upgrade request whose origin has been checked: refuse it
    /// (a GraphQL-shaped body) or switch to the protocol.
    pub fn upgrade(
        &self,
        upgrade: WebSocketUpgrade,
        headers: &HeaderMap,
        peer: SocketAddr,
        lang: Lang,
    ) -> HttpResponse {
        if !offers_protocol(headers) {
            let error = ApiError::new(
                "INVALID_INPUT",
                "Connect with the graphql-transport-ws subprotocol (header Sec-WebSocket-Protocol).",
                "Koble til med underprotokollen graphql-transport-ws (overskriften Sec-WebSocket-Protocol).",
            )
            .with("reason", json!("UNSUPPORTED_PROTOCOL"));
            return crate::server::error_response(StatusCode::BAD_REQUEST, &error, lang);
        }
        let Some(permit) = self.sockets.admit() else {
            tracing::warn!(
                limit = self.sockets.settings.max_sockets,
                "a subscription socket was refused: this node holds as many as it may"
            );
            let mut response = crate::server::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &ApiError::overloaded(),
                lang,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(5u64));
            return response;
        };
        let token = if headers.contains_key(header::AUTHORIZATION) {
            bearer(headers).map(str::to_owned)
        } else {
            cookie(headers, SESSION_COOKIE).map(str::to_owned)
        };
        let endpoint = self.clone();
        upgrade
            .protocols([PROTOCOL])
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_frame_size(MAX_MESSAGE_BYTES)
            .on_upgrade(move |socket| endpoint.serve(socket, token, lang, peer.ip(), permit))
            .into_response()
    }

    /// Run the protocol on one socket until either side closes it.
    async fn serve(
        self,
        socket: WebSocket,
        upgrade_token: Option<String>,
        lang: Lang,
        client_ip: IpAddr,
        _permit: NodePermit,
    ) {
        let (mut sink, incoming) = socket.split();
        let input = incoming
            .take_while(|message| futures::future::ready(message.is_ok()))
            .filter_map(|message| {
                futures::future::ready(match message {
                    Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                        Some(message.into_data())
                    }
                    _ => None,
                })
            });
        let phase = Arc::new(Mutex::new(Phase::AwaitingInit));
        let executor = ConnectionExecutor {
            schema: self.schema.clone(),
            app: self.app.clone(),
            bounds: self.bounds,
            running: Arc::new(AtomicUsize::new(0)),
            max_running: self.sockets.settings.max_per_connection,
            lang,
        };
        let init = {
            let endpoint = self.clone();
            let phase = phase.clone();
            move |payload: serde_json::Value| async move {
                endpoint
                    .init(payload, upgrade_token, lang, client_ip, phase)
                    .await
            }
        };
        let mut protocol =
            async_graphql::http::WebSocket::new(executor, input, WebSocketProtocols::GraphQLWS)
                .on_connection_init(init);
        let mut stop = self.sockets.stop.subscribe();
        if *stop.borrow_and_update() {
            return;
        }
        let init_deadline = tokio::time::sleep(self.sockets.settings.init_timeout);
        tokio::pin!(init_deadline);
        let mut checks = tokio::time::interval(SESSION_CHECK_EVERY);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (code, reason) = loop {
            let awaiting_init = matches!(*phase.lock().expect("phase lock"), Phase::AwaitingInit);
            tokio::select! {
                message = protocol.next() => match message {
                    Some(WsMessage::Text(text)) => {
                        // A client that does not read is let go: the
                        // socket's other duties (the session check) wait
                        // for the send.
                        let message = Message::Text(text.into());
                        let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            return;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => break refine(code, reason, &phase),
                    None => return,
                },
                () = &mut init_deadline, if awaiting_init => {
                    break (CLOSE_INIT_TIMEOUT, "Connection initialisation timeout".to_owned());
                }
                _ = checks.tick() => {
                    if !self.session_still_live(&phase).await {
                        break (CLOSE_UNAUTHORIZED, "Unauthorized: the session has ended".to_owned());
                    }
                }
                _ = stop.changed() => {
                    break (CLOSE_GOING_AWAY, "The server is stopping".to_owned());
                }
            }
        };
        let frame = CloseFrame {
            code,
            reason: bounded_reason(reason).into(),
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }

    /// `connection_init`: find and check the session, count the socket
    /// against the session's limit, and give the connection its data.
    async fn init(
        self,
        payload: serde_json::Value,
        upgrade_token: Option<String>,
        lang: Lang,
        client_ip: IpAddr,
        phase: Arc<Mutex<Phase>>,
    ) -> async_graphql::Result<Data> {
        *phase.lock().expect("phase lock") = Phase::Initialising;
        let refuse = |code: u16, reason: &str| {
            *phase.lock().expect("phase lock") = Phase::Refused {
                code,
                reason: reason.to_owned(),
            };
            Err(async_graphql::Error::new(reason))
        };
        let token = match payload_token(&payload) {
            PayloadToken::Given(token) => Some(token),
            PayloadToken::Malformed => None,
            PayloadToken::Absent => upgrade_token,
        };
        let Some(token) = token else {
            return refuse(CLOSE_UNAUTHORIZED, "Unauthorized: no session");
        };
        let Some(caller) = self.app.authenticate(&token).await else {
            return refuse(CLOSE_UNAUTHORIZED, "Unauthorized: no live session");
        };
        let Some(permit) = self.sockets.join_session(caller.session) else {
            return refuse(CLOSE_TOO_MANY, "Too many open connections for this session");
        };
        let digest = keys::token_digest(&token);
        let live_until = match self.app.session_live_until(&digest).await {
            Ok(Some(until)) => until,
            Ok(None) => return refuse(CLOSE_UNAUTHORIZED, "Unauthorized: no live session"),
            Err(_) => self.app.now(),
        };
        *phase.lock().expect("phase lock") = Phase::Live {
            digest,
            live_until,
            _permit: permit,
        };
        let mut data = Data::default();
        data.insert(RequestContext {
            caller: Some(caller),
            lang,
            service: None,
            client_ip,
            cookies: false,
            device_token: None,
            costly: Arc::default(),
        });
        data.insert(ConnectionSession { caller, digest });
        Ok(data)
    }

    /// Whether the socket's session (if it has one yet) is still live:
    /// cheaply from the read models every time, from the sessions' shared
    /// activity only when the idle timeout may have run out.
    async fn session_still_live(&self, phase: &Mutex<Phase>) -> bool {
        let (digest, live_until) = match &*phase.lock().expect("phase lock") {
            Phase::Live {
                digest, live_until, ..
            } => (*digest, *live_until),
            _ => return true,
        };
        let now = self.app.now();
        let expires_at = self
            .app
            .projections()
            .read(|m| m.session(&digest).map(|s| s.expires_at));
        if expires_at.is_none_or(|expires_at| now >= expires_at) {
            return false;
        }
        if now < live_until {
            return true;
        }
        match self.app.session_live_until(&digest).await {
            Ok(Some(until)) => {
                if let Phase::Live { live_until, .. } = &mut *phase.lock().expect("phase lock") {
                    *live_until = until;
                }
                true
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, "the sessions' shared activity could not be read; checking again soon");
                true
            }
        }
    }
}

/// Where a socket stands.
enum Phase {
    /// No `connection_init` yet.
    AwaitingInit,
    /// `connection_init` is being checked.
    Initialising,
    /// `connection_init` was refused: close with this.
    Refused { code: u16, reason: String },
    /// Logged in: the session's token digest, and until when the session is
    /// live for sure.
    Live {
        digest: [u8; 32],
        live_until: DateTime<Utc>,
        _permit: SessionPermit,
    },
}

/// The session a socket was opened with (in the connection's data).
#[derive(Debug, Clone, Copy)]
struct ConnectionSession {
    caller: Caller,
    digest: [u8; 32],
}

/// The receiver of changes made when the subscription was taken, before
/// its stream first runs (so that nothing applied after the client's
/// `subscribe` is missed).
struct EarlyChanges(Mutex<Option<broadcast::Receiver<ApplicationChanged>>>);

enum PayloadToken {
    Given(String),
    Malformed,
    Absent,
}

/// The token of `connection_init`'s `{"authorization": "Bearer <token>"}`.
fn payload_token(payload: &serde_json::Value) -> PayloadToken {
    let given = payload
        .as_object()
        .and_then(|o| o.get("authorization").or_else(|| o.get("Authorization")));
    match given {
        None | Some(serde_json::Value::Null) => PayloadToken::Absent,
        Some(serde_json::Value::String(value)) => {
            match value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
            {
                Some(token) if !token.trim().is_empty() => {
                    PayloadToken::Given(token.trim().to_owned())
                }
                _ => PayloadToken::Malformed,
            }
        }
        Some(_) => PayloadToken::Malformed,
    }
}

/// Whether the upgrade request offers [`PROTOCOL`].
fn offers_protocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|offered| offered.trim().eq_ignore_ascii_case(PROTOCOL))
}

/// The close code and reason the protocol asks for where the library closes
/// with a generic one.
fn refine(code: u16, reason: String, phase: &Mutex<Phase>) -> (u16, String) {
    if let Phase::Refused { code, reason } = &*phase.lock().expect("phase lock") {
        return (*code, reason.clone());
    }
    match code {
        // A subscribe before the connection was acknowledged.
        1011 => (CLOSE_UNAUTHORIZED, "Unauthorized".to_owned()),
        // A message that does not parse as one of the protocol.
        1002 => (CLOSE_BAD_MESSAGE, reason),
        _ => (code, reason),
    }
}

/// A close reason fits in 123 bytes.
fn bounded_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// Runs one socket's operations: bounds each document as a POST's, takes
/// subscriptions only, and counts them against the socket's limit.
#[derive(Clone)]
struct ConnectionExecutor {
    schema: CaseledgerSchema,
    app: App,
    bounds: QueryBounds,
    running: Arc<AtomicUsize>,
    max_running: usize,
    lang: Lang,
}

/// One running subscription of a socket, counted until dropped.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionExecutor {
    fn refusal(&self, error: ApiError) -> Response {
        let error = error.into_graphql(self.lang);
        let mut refused = async_graphql::ServerError::new(error.message, None);
        refused.extensions = error.extensions;
        Response::from_errors(vec![refused])
    }

    /// Why `request` is not run, if it is not.
    fn check(&self, request: &mut async_graphql::Request) -> Result<(), ApiError> {
        crate::nesting::check(&request.query).map_err(|message| {
            ApiError::invalid_input("query", message.clone(), message)
                .with("reason", json!("QUERY_TOO_DEEP"))
        })?;
        let wanted = request.operation_name.clone();
        // A text that does not parse is left to the schema, which reports it.
        let Ok(document) = request.parsed_query() else {
            return Ok(());
        };
        crate::query_guard::check(document, &self.bounds).map_err(|refusal| {
            tracing::info!(%refusal, "a subscription document was refused before validation");
            refusal.to_api_error()
        })?;
        let chosen = document.operations.iter().find(|(name, _)| match &wanted {
            Some(wanted) => name.is_some_and(|name| name.as_str() == wanted),
            None => true,
        });
        if let Some((_, operation)) = chosen
            && operation.node.ty != OperationType::Subscription
        {
            return Err(ApiError::invalid_input(
                "query",
                "Only subscriptions are taken here; send queries and mutations to POST /graphql.",
                "Her tas bare abonnementer imot; send spørringer og endringer til POST /graphql.",
            )
            .with("reason", json!("NOT_A_SUBSCRIPTION")));
        }
        Ok(())
    }
}

impl Executor for ConnectionExecutor {
    async fn execute(&self, _request: async_graphql::Request) -> Response {
        self.refusal(ApiError::invalid_input(
            "query",
            "Only subscriptions are taken here; send queries and mutations to POST /graphql.",
            "Her tas bare abonnementer imot; send spørringer og endringer til POST /graphql.",
        ))
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let refused = |response: Response| futures::stream::once(async { response }).boxed();
        if let Err(error) = self.check(&mut request) {
            return refused(self.refusal(error));
        }
        let taken = self
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < self.max_running).then_some(running + 1)
            })
            .is_ok();
        if !taken {
            let limit = self.max_running;
            return refused(
                self.refusal(
                    ApiError::new(
                        "TOO_MANY_ATTEMPTS",
                        format!(
                            "One connection may hold at most {limit} subscriptions. End one first."
                        ),
                        format!(
                            "Én tilkobling kan ha høyst {limit} abonnementer. Avslutt ett først."
                        ),
                    )
                    .with("reason", json!("TOO_MANY_SUBSCRIPTIONS"))
                    .with("limit", json!(limit)),
                ),
            );
        }
        let running = Running(self.running.clone());
        let request = request.data(EarlyChanges(Mutex::new(Some(
            self.app.projections().application_changes(),
        ))));
        self.schema
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(move |mut response| {
                let _counted = &running;
                // Parse and validation errors are bad input, as on POST.
                for error in &mut response.errors {
                    let extensions = error.extensions.get_or_insert_with(Default::default);
                    if extensions.get("code").is_none() {
                        extensions.set("code", "INVALID_INPUT");
                    }
                }
                response
            })
            .boxed()
    }
}

/// The subscriptions.
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// One of the caller's applications as it is once a change to it
    /// (status, appointment booked or cancelled, documents received,
    /// decision, fee, refund) has been applied, so that a query made on
    /// receipt sees the change. Only over `GET /graphql/ws`, with a session.
    async fn my_application_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<BoxStream<'static, Application>> {
        let lang = ctx
            .data_opt::<RequestContext>()
            .map(|r| r.lang)
            .unwrap_or_default();
        let Some(session) = ctx.data_opt::<ConnectionSession>().copied() else {
            return Err(ApiError::unauthenticated().into_graphql(lang));
        };
        let app = ctx.data::<App>()?.clone();
        let changes = ctx
            .data_opt::<EarlyChanges>()
            .and_then(|early| early.0.lock().expect("early changes lock").take())
            .unwrap_or_else(|| app.projections().application_changes());
        Ok(changes_of(app, session, changes).boxed())
    }
}

/// The caller's changed applications, read when they are sent.
struct Follow {
    app: App,
    owner: AccountId,
    digest: [u8; 32],
    changes: broadcast::Receiver<ApplicationChanged>,
    due: VecDeque<ApplicationId>,
}

impl Follow {
    fn take(&mut self, change: ApplicationChanged) {
        if change.owner == self.owner && !self.due.contains(&change.application) {
            self.due.push_back(change.application);
        }
    }

    /// Changes were missed: every application of the caller is due.
    fn reread(&mut self) {
        let all: Vec<ApplicationId> = self.app.projections().read(|m| {
            let (page, _) = m.my_applications(self.owner, usize::MAX, None);
            page.iter().rev().map(|a| a.id).collect()
        });
        tracing::info!(
            applications = all.len(),
            "a subscription fell behind the changes; sending the current state"
        );
        for id in all {
            if !self.due.contains(&id) {
                self.due.push_back(id);
            }
        }
    }

    /// Everything already waiting in the channel, each application once.
    fn drain(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(change) => self.take(change),
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.reread(),
                Err(_) => return,
            }
        }
    }
}

fn changes_of(
    app: App,
    session: ConnectionSession,
    changes: broadcast::Receiver<ApplicationChanged>,
) -> impl Stream<Item = Application> {
    let follow = Follow {
        app,
        owner: session.caller.account,
        digest: session.digest,
        changes,
        due: VecDeque::new(),
    };
    futures::stream::unfold(follow, |mut follow| async move {
        loop {
            if let Some(id) = follow.due.pop_front() {
                // Nothing more once the session has ended.
                let found = follow.app.projections().read(|m| {
                    m.session(&follow.digest).map(|_| {
                        m.application(id)
                            .filter(|a| a.owner.account == follow.owner)
                            .cloned()
                    })
                });
                match found {
                    None => return None,
                    Some(None) => continue,
                    Some(Some(view)) => return Some((Application(view), follow)),
                }
            }
            match follow.changes.recv().await {
                Ok(change) => follow.take(change),
                Err(broadcast::error::RecvError::Lagged(_)) => follow.reread(),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
            follow.drain();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_payload_as_a_bearer_token() {
        let token = |payload: serde_json::Value| match payload_token(&payload) {
            PayloadToken::Given(token) => Some(Some(token)),
            PayloadToken::Malformed => Some(None),
            PayloadToken::Absent => None,
        };
        assert_eq!(
            token(json!({"authorization": "Bearer abc"})),
            Some(Some("abc".to_owned()))
        );
        assert_eq!(
            token(json!({"Authorization": "bearer abc "})),
            Some(Some("abc".to_owned()))
        );
        assert_eq!(token(json!({"authorization": "abc"})), Some(None));
        assert_eq!(token(json!({"authorization": "Bearer "})), Some(None));
        assert_eq!(token(json!({"authorization": 7})), Some(None));
        assert_eq!(token(json!({})), None);
        assert_eq!(token(json!(null)), None);
        assert_eq!(token(json!({"authorization": null})), None);
    }

    #[test]
    fn only_the_graphql_transport_ws_protocol_is_spoken() {
        let offered = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(value),
            );
            offers_protocol(&headers)
        };
        assert!(offered("graphql-transport-ws"));
        assert!(offered("graphql-ws, graphql-transport-ws"));
        assert!(!offered("graphql-ws"));
        assert!(!offered("graphql-transport-wsx"));
        assert!(!offers_protocol(&HeaderMap::new()));
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = "é".repeat(100);
        let bounded = bounded_reason(long);
        assert!(bounded.len() <= 123);
        assert!(bounded.chars().all(|c| c == 'é'));
        assert_eq!(bounded_reason("short".into()), "short");
    }

    #[test]
    fn library_closes_are_given_the_protocol_codes() {
        let waiting = Mutex::new(Phase::AwaitingInit);
        assert_eq!(
            refine(1011, "The handshake is not completed.".into(), &waiting).0,
            CLOSE_UNAUTHORIZED
        );
        assert_eq!(refine(1002, "bad".into(), &waiting).0, CLOSE_BAD_MESSAGE);
        assert_eq!(refine(4429, "again".into(), &waiting).0, 4429);
        let refused = Mutex::new(Phase::Refused {
            code: CLOSE_UNAUTHORIZED,
            reason: "Unauthorized: no session".into(),
        });
        assert_eq!(
            refine(1002, "Unauthorized: no session".into(), &refused),
            (CLOSE_UNAUTHORIZED, "Unauthorized: no session".to_owned())
        );
    }

    /// Services over an in-memory store with one registered person; their
    /// session.
    async fn app_with_a_person() -> (App, Caller, [u8; 32]) {
        let store: Arc<dyn store::EventStore> = Arc::new(store::memory::MemoryStore::new());
        let keyer = keys::Keyer::new([9; 32]);
        let ring = Arc::new(keys::KeyRing::new(keyer.clone()));
        let projections = projections::Projections::start_with(
            store.clone(),
            projections::ReadModel::default(),
            None,
            Some(ring.clone()),
        );
        let hasher = crate::password_hashing::PasswordHasher::new(
            crate::password_hashing::HashParams::new(4096, 1, 1).expect("parameters"),
            2,
        );
        let app = App::new(
            store.clone(),
            projections,
            hasher,
            keyer.clone(),
            ring.clone(),
            crate::services::Settings::default(),
        );
        let started = app.start_registration("lag@example.no").await.unwrap();
        let (flow, _) = store::command::load::<domain::flow::Flow, _>(
            store.as_ref(),
            &crate::codec::EventCodec::new(ring.clone()),
            &started.flow_id.stream(),
        )
        .await
        .unwrap();
        let code = keyer.code(started.flow_id, &flow.code.unwrap().nonce);
        let flow_id = started.flow_id.to_string();
        app.verify_code(domain::flow::FlowKind::Registration, &flow_id, &code)
            .await
            .unwrap();
        let session = app
            .complete_registration(&flow_id, "Sommer2026abc", "Lagging Reader")
            .await
            .unwrap();
        let caller = app.authenticate(&session.token).await.expect("a session");
        (app, caller, keys::token_digest(&session.token))
    }

    async fn create(app: &App, caller: &Caller) -> ApplicationId {
        app.create_application(
            caller,
            crate::case_services::NewApplication {
                kind: domain::application::Kind::Work,
                relation: domain::application::Relation::Myself,
                applicant_name: "Lagging Reader".into(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1990, 5, 17).unwrap(),
                nationality: "SWE".into(),
            },
        )
        .await
        .unwrap()
        .id
    }

    fn ids(sent: &[Application]) -> Vec<ApplicationId> {
        sent.iter().map(|a| a.0.id).collect()
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_every_application_as_it_is_now() {
        let (app, caller, digest) = app_with_a_person().await;
        let first = create(&app, &caller).await;
        let second = create(&app, &caller).await;
        let session = ConnectionSession { caller, digest };
        // A channel of four: six changes of someone else's leave the
        // receiver behind, and the caller's own were among those lost.
        let (changes, receiver) = broadcast::channel(4);
        for position in 0..6 {
            changes
                .send(ApplicationChanged {
                    application: ApplicationId(uuid::Uuid::from_u128(position)),
                    owner: AccountId(uuid::Uuid::from_u128(7)),
                    position: u64::try_from(position).unwrap(),
                })
                .unwrap();
        }
        let mut stream = changes_of(app.clone(), session, receiver).boxed();
        let sent: Vec<Application> = (&mut stream).take(2).collect().await;
        assert_eq!(ids(&sent), [first, second], "oldest first");

        // Then changes as they come, the caller's own only, each once.
        for _ in 0..2 {
            changes
                .send(ApplicationChanged {
                    application: second,
                    owner: caller.account,
                    position: 100,
                })
                .unwrap();
        }
        changes
            .send(ApplicationChanged {
                application: first,
                owner: AccountId(uuid::Uuid::from_u128(7)),
                position: 101,
            })
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a change")
            .expect("the stream goes on");
        assert_eq!(next.0.id, second);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), stream.next())
                .await
                .is_err(),
            "the same application is sent once for changes that came together, and another owner's never"
        );

        // Nothing more once the session has ended.
        app.logout(&caller).await.unwrap();
        changes
            .send(ApplicationChanged {
                application: first,
                owner: caller.account,
                position: 200,
            })
            .unwrap();
        let after = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the stream ends");
        assert!(after.is_none());
    }

    #[tokio::test]
    async fn the_read_models_tell_each_applied_change_of_an_application() {
        let (app, caller, _) = app_with_a_person().await;
        let mut changes = app.projections().application_changes();
        let id = create(&app, &caller).await;
        let change = changes.recv().await.unwrap();
        assert_eq!(change.application, id);
        assert_eq!(change.owner, caller.account);
        // Sent once the models have applied it.
        assert!(app.projections().progress().position >= change.position);
        assert!(app.projections().read(|m| m.application(id).is_some()));
        // Changes of other streams (a login, say) are not told.
        app.logout(&caller).await.unwrap();
        assert!(matches!(
            changes.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
    }
}
