//! The HTTP server: the portal at `/` ([`crate::portal`]), `/graphql` (a
//! query console on GET), the subscription socket at `/graphql/ws`,
//! `/healthz`, `/readyz`, `/metrics` (behind a token), the ID-porten login
//! under `/auth/idporten/`;
//! sessions by bearer token or cookie (with a CSRF header bound to the
//! session); the edge: JSON only, same-origin browsers only, security
//! headers, GraphQL-shaped bodies for every refusal; body-size, expansion,
//! depth, complexity and time limits; one server per data dir; graceful
//! shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_graphql_axum::GraphQLResponse;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;

use domain::password::PasswordPolicyKind;
use store::EventStore;

use crate::cookies::{DEVICE_COOKIE, bearer, cookie, session_token};
use crate::error::{ApiError, Lang};
use crate::graphql::{CaseledgerSchema, RequestContext, schema};
use crate::idporten::{IdPorten, IdPortenConfig};
use crate::lease::{Lease, LeaseSettings};
use crate::limits::{LimitSettings, Limits};
use crate::mail::{DEFAULT_FROM, MailSender, MailTransportConfig};
use crate::outbox::Outbox;
use crate::password_hashing::{HashParams, PasswordHasher, default_max_concurrent};
use crate::query_cache::ParsedQueries;
use crate::query_guard::QueryBounds;
use crate::services::{App, Settings};
use crate::subscription::{SubscriptionEndpoint, SubscriptionSettings};
use keys::Keyer;

/// Header that carries the caseworker service credential.
pub const SERVICE_TOKEN_HEADER: &str = "x-service-token";
/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a GraphQL request may take unless configured otherwise.
pub const DEFAULT_REQUEST_BUDGET: Duration = Duration::from_secs(5);
/// `Content-Security-Policy` of every response but the console page.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// `Strict-Transport-Security` when `--hsts` is given.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Everything `caseledger serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// The event store and the server secret (`--store`, `--secret-file`).
    pub store: crate::stores::StoreConfig,
    pub code_ttl: chrono::Duration,
    pub password_policy: PasswordPolicyKind,
    /// `file` or `smtp://host:port`.
    pub mail: String,
    pub session_idle: chrono::Duration,
    pub session_lifetime: chrono::Duration,
    /// How far ahead of now an appointment may start.
    pub booking_horizon: chrono::Duration,
    /// The caseworker service credential; caseworker operations are off without one.
    pub service_token: Option<String>,
    pub limits: LimitSettings,
    /// Codes and notices one email address may be sent over a window.
    pub recipient_mail_limit: domain::address::MailLimit,
    /// `synchronous=FULL` on the embedded store.
    pub durable: bool,
    /// How the read models use `<data-dir>/projections.snapshot` (only the
    /// server writes it; jobs and tests read it).
    pub projections: projections::SnapshotMode,
    /// Log in with ID-porten; off when `None`.
    pub idporten: Option<IdPortenConfig>,
    /// Most nodes a document may expand to (see [`crate::query_guard`]).
    pub max_query_nodes: u64,
    /// Longest one GraphQL request may take, parsing to answer.
    pub request_budget: Duration,
    /// Origins besides the server's own allowed to POST from a browser
    /// (`scheme://host[:port]`, lower case).
    pub allowed_origins: Vec<String>,
    /// Send `Strict-Transport-Security`.
    pub hsts: bool,
    /// The bearer token of `/metrics`; `/metrics` is off without one.
    pub metrics_token: Option<String>,
    /// The limits of the subscription socket at `/graphql/ws`.
    pub subscriptions: SubscriptionSettings,
}

impl ServeConfig {
    /// Defaults for a data dir (as the CLI's defaults).
    pub fn new(data_dir: PathBuf) -> ServeConfig {
        let settings = Settings::default();
        ServeConfig {
            store: crate::stores::StoreConfig::embedded(&data_dir),
            data_dir,
            code_ttl: settings.code_ttl,
            password_policy: settings.password_policy,
            mail: "file".into(),
            session_idle: settings.session_idle,
            session_lifetime: settings.session_lifetime,
            booking_horizon: settings.booking_horizon,
            service_token: None,
            limits: LimitSettings::default(),
            recipient_mail_limit: settings.recipient_mail_limit,
            durable: true,
            projections: projections::SnapshotMode::ReadOnly,
            idporten: None,
            max_query_nodes: crate::query_guard::DEFAULT_MAX_NODES,
            request_budget: DEFAULT_REQUEST_BUDGET,
            allowed_origins: Vec::new(),
            hsts: false,
            metrics_token: None,
            subscriptions: SubscriptionSettings::default(),
        }
    }
}

/// The embedded store of a data dir (no secret check: for tools and tests
/// that hold the store alone).
pub fn open_store(
    data_dir: &std::path::Path,
    durable: bool,
) -> anyhow::Result<Arc<dyn EventStore>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    Ok(Arc::new(crate::stores::open_sqlite(
        &data_dir.join(crate::stores::EMBEDDED_FILE),
        durable,
    )?))
}

/// Build the services over a store (also used by the batch jobs).
pub fn build_app(store: Arc<dyn EventStore>, keyer: Keyer, config: &ServeConfig) -> App {
    let ring = Arc::new(keys::KeyRing::new(keyer.clone()));
    let projections = projections::Projections::start_in_data_dir(
        store.clone(),
        &config.data_dir,
        config.projections,
        Some(ring.clone()),
    );
    let hasher = PasswordHasher::new(HashParams::owasp(), default_max_concurrent());
    let settings = Settings {
        code_ttl: config.code_ttl,
        password_policy: config.password_policy,
        session_idle: config.session_idle,
        session_lifetime: config.session_lifetime,
        recipient_mail_limit: config.recipient_mail_limit,
        booking_horizon: config.booking_horizon,
        ..Settings::default()
    };
    App::new(store, projections, hasher, keyer, ring, settings)
}

#[derive(Clone)]
struct ServerState {
    app: App,
    schema: CaseledgerSchema,
    service_token: Option<Arc<str>>,
    requests: Arc<AtomicU64>,
    outbox_position: watch::Receiver<u64>,
    /// Whether this node holds the mail lease.
    outbox_lease: watch::Receiver<bool>,
    idporten: Option<Arc<IdPorten>>,
    limits: Arc<Limits>,
    parsed_queries: Arc<ParsedQueries>,
    query_bounds: QueryBounds,
    request_budget: Duration,
    allowed_origins: Arc<[String]>,
    metrics_token: Option<Arc<str>>,
    subscriptions: SubscriptionEndpoint,
}

/// Serve until `shutdown` completes; then stop taking requests, finish the
/// ones in flight, and stop the outbox. Prints where GraphiQL is.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Before anything else touches the data dir: a second server on it
    // would send every mail again and fight over the outbox checkpoint.
    let _serve_lock = crate::data_dir::ServeLock::acquire(&config.data_dir)?;
    let narrowed = crate::data_dir::tighten(&config.data_dir)?;
    if narrowed > 0 {
        tracing::info!(
            narrowed,
            "made files and directories of the data dir owner-only"
        );
    }
    // Discovery first: a server that cannot reach its configured ID-porten
    // does not start.
    let idporten = match &config.idporten {
        Some(idporten) => Some(Arc::new(
            IdPorten::discover(idporten.clone())
                .await
                .context("starting the ID-porten login")?,
        )),
        None => None,
    };
    let (keyer, store) = config.store.open().await?;
    let app = build_app(store.clone(), keyer.clone(), &config);

    let transport = MailTransportConfig::parse(&config.mail, &config.data_dir)
        .with_context(|| format!("--mail {}", config.mail))?;
    let from = DEFAULT_FROM.parse().context("the sender address")?;
    let sender = MailSender::new(transport, from)
        .await
        .context("starting the mail transport")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_rx_activity = stop_rx.clone();
    let (outbox_tx, outbox_rx) = watch::channel(0u64);
    let (lease_tx, lease_rx) = watch::channel(false);
    // An embedded store belongs to this server alone (one server per data
    // dir): a lease an earlier run left behind is taken at once.
    let exclusive = matches!(config.store.store, crate::stores::StoreLocation::Sqlite(_));
    let lease = Lease::new(store.clone(), LeaseSettings::default(), exclusive);
    let outbox = tokio::spawn(
        Outbox::new(
            keyer,
            sender,
            &config.data_dir,
            app.projections().clone(),
            app.codec.ring().clone(),
        )
        .run(store.clone(), lease, outbox_tx, lease_tx, stop_rx),
    );

    let activity = {
        let app = app.clone();
        let mut stop = stop_rx_activity;
        tokio::spawn(async move {
            let every = app.activity_flush_interval();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => app.share_session_activity().await,
                    _ = stop.changed() => {
                        app.share_session_activity().await;
                        return;
                    }
                }
            }
        })
    };
    let limits = Arc::new(Limits::new(config.limits));
    let shrinker = {
        let limits = limits.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                limits.shrink();
            }
        })
    };
    let schema = schema(Some(app.clone()), Some(limits.clone()));
    let query_bounds = QueryBounds::with_max_nodes(config.max_query_nodes);
    let subscriptions = SubscriptionEndpoint::new(
        app.clone(),
        schema.clone(),
        query_bounds,
        config.subscriptions,
    );
    let sockets = subscriptions.sockets().clone();
    let state = ServerState {
        schema,
        subscriptions,
        limits,
        app,
        service_token: config.service_token.as_deref().map(Arc::from),
        requests: Arc::new(AtomicU64::new(0)),
        outbox_position: outbox_rx,
        outbox_lease: lease_rx,
        idporten,
        parsed_queries: Arc::new(ParsedQueries::default()),
        query_bounds,
        request_budget: config.request_budget,
        allowed_origins: config.allowed_origins.clone().into(),
        metrics_token: config.metrics_token.as_deref().map(Arc::from),
    };
    let router = router(state, config.hsts);
    let address = listener.local_addr()?;
    println!(
        "caseledger listening on http://{address} (portal: http://{address}/, GraphiQL: http://{address}/graphql)"
    );
    tracing::info!(%address, "listening");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        // Upgraded sockets are not requests in flight: they are told to
        // close as soon as the server starts stopping.
        let sockets = sockets.clone();
        async move {
            shutdown.await;
            sockets.close_all(Duration::ZERO).await;
        }
    })
    .await
    .context("serving HTTP")?;
    sockets.close_all(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let _ = outbox.await;
    let _ = activity.await;
    shrinker.abort();
    tracing::info!("stopped");
    Ok(())
}

fn router(state: ServerState, hsts: bool) -> Router {
    let static_header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    let router = Router::new()
        .merge(crate::idporten::router(
            state.app.clone(),
            state.idporten.clone(),
            Some(state.limits.clone()),
        ))
        .merge(crate::portal::router(state.idporten.is_some()))
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(subscription_socket))
        .route("/graphql/console.js", get(console_js))
        .route("/graphql/console.css", get(console_css))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(graphql_shaped_refusals))
        // A page that sets its own (GraphiQL, the portal) keeps it.
        .layer(static_header(header::CONTENT_SECURITY_POLICY, API_CSP))
        .layer(static_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(static_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(static_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(static_header(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
        // Answers may carry session tokens; nothing here is for a cache.
        .layer(static_header(header::CACHE_CONTROL, "no-store"))
        .with_state(state);
    if hsts {
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ))
    } else {
        router
    }
}

/// The query console at `GET /graphql` (a GraphiQL-like page): plain HTML,
/// CSS and a little JavaScript embedded in the binary, loading nothing from
/// other hosts.
const CONSOLE_HTML: &str = include_str!("../assets/console.html");
const CONSOLE_JS: &str = include_str!("../assets/console.js");
const CONSOLE_CSS: &str = include_str!("../assets/console.css");
/// The console's policy: its own script and style, requests to this server.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

async fn graphiql() -> Response {
    (
        [(header::CONTENT_SECURITY_POLICY, CONSOLE_CSP)],
        Html(CONSOLE_HTML),
    )
        .into_response()
}

async fn console_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CONSOLE_JS,
    )
        .into_response()
}

async fn console_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CONSOLE_CSS,
    )
        .into_response()
}

/// A GraphQL-shaped error body: `{"errors":[{"message", "extensions":
/// {"code", ...}}]}`.
pub(crate) fn error_body(error: &ApiError, lang: Lang) -> serde_json::Value {
    let mut extensions = serde_json::Map::new();
    extensions.insert("code".into(), json!(error.code));
    for (key, value) in &error.extensions {
        extensions.insert((*key).into(), value.clone());
    }
    json!({ "errors": [{ "message": error.message(lang), "extensions": extensions }] })
}

/// A refusal with a GraphQL-shaped JSON body.
pub(crate) fn error_response(status: StatusCode, error: &ApiError, lang: Lang) -> Response {
    (status, axum::Json(error_body(error, lang))).into_response()
}

fn lang_of(headers: &HeaderMap) -> Lang {
    Lang::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

async fn unknown_route(headers: HeaderMap) -> Response {
    let error = ApiError::new(
        "NOT_FOUND",
        "There is nothing at this address.",
        "Det finnes ingenting på denne adressen.",
    );
    error_response(StatusCode::NOT_FOUND, &error, lang_of(&headers))
}

/// The refusal a client error of the HTTP layers stands for.
fn refusal_of_status(status: StatusCode) -> ApiError {
    let (en, nb) = match status {
        StatusCode::BAD_REQUEST => ("The request is not valid.", "Forespørselen er ikke gyldig."),
        StatusCode::NOT_FOUND => (
            "There is nothing at this address.",
            "Det finnes ingenting på denne adressen.",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "This address does not take this method.",
            "Denne adressen tar ikke imot denne metoden.",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "The request took too long and was stopped.",
            "Forespørselen tok for lang tid og ble stoppet.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("The request is too large.", "Forespørselen er for stor.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "Send the request as application/json.",
            "Send forespørselen som application/json.",
        ),
        StatusCode::FORBIDDEN => (
            "This request is not allowed from here.",
            "Denne forespørselen er ikke tillatt herfra.",
        ),
        _ => ("The request was refused.", "Forespørselen ble avvist."),
    };
    let code = if status == StatusCode::NOT_FOUND {
        "NOT_FOUND"
    } else {
        "INVALID_INPUT"
    };
    ApiError::new(code, en, nb)
}

/// Gives every client error of the HTTP layers (and of handlers that answer
/// with plain text or nothing) a GraphQL-shaped JSON body. Pages (HTML) and
/// JSON answers pass unchanged.
async fn graphql_shaped_refusals(request: Request, next: Next) -> Response {
    let lang = lang_of(request.headers());
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_client_error() {
        return response;
    }
    let plain = match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value.as_bytes().starts_with(b"text/plain"),
    };
    if !plain {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let body = error_body(&refusal_of_status(status), lang).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<ServerState>) -> Response {
    let progress = state.app.projections().progress();
    let head = state.app.store.head_position().await.unwrap_or(u64::MAX);
    if progress.caught_up && progress.position >= head {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("catching up: {} of {}", progress.position, head),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let lang = lang_of(&headers);
    let Some(expected) = &state.metrics_token else {
        return unknown_route(headers).await;
    };
    if !bearer(&headers)
        .is_some_and(|given| domain::constant_time_eq(given.as_bytes(), expected.as_bytes()))
    {
        let error = ApiError::new(
            "UNAUTHENTICATED",
            "The metrics need the metrics token (Authorization: Bearer <token>).",
            "Målingene krever målingstokenet (Authorization: Bearer <token>).",
        );
        let mut response = error_response(StatusCode::UNAUTHORIZED, &error, lang);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let progress = state.app.projections().progress();
    let head = state.app.store.head_position().await.unwrap_or(0);
    let (accounts, sessions) = state.app.projections().read(|m| m.counts());
    let outbox_position = *state.outbox_position.borrow();
    let pending = state
        .app
        .projections()
        .read(|m| m.mail_outbox(outbox_position).pending);
    let lease_held = u8::from(*state.outbox_lease.borrow());
    let hasher = &state.app.hasher;
    let body = format!(
        "# HELP caseledger_http_graphql_requests_total GraphQL requests served.\n\
         # TYPE caseledger_http_graphql_requests_total counter\n\
         caseledger_http_graphql_requests_total {}\n\
         # HELP caseledger_log_head_position Global position of the last event in the log.\n\
         # TYPE caseledger_log_head_position gauge\n\
         caseledger_log_head_position {head}\n\
         # HELP caseledger_projection_position Global position the read models have applied.\n\
         # TYPE caseledger_projection_position gauge\n\
         caseledger_projection_position {}\n\
         # HELP caseledger_projection_undecodable_total Events the read models could not decode.\n\
         # TYPE caseledger_projection_undecodable_total counter\n\
         caseledger_projection_undecodable_total {}\n\
         # HELP caseledger_outbox_position Global position of the last mail handled.\n\
         # TYPE caseledger_outbox_position gauge\n\
         caseledger_outbox_position {}\n\
         # HELP caseledger_outbox_pending Mails the log owes that are not sent yet.\n\
         # TYPE caseledger_outbox_pending gauge\n\
         caseledger_outbox_pending {pending}\n\
         # HELP caseledger_outbox_lease_held 1 on the one node that sends mail, 0 on the others.\n\
         # TYPE caseledger_outbox_lease_held gauge\n\
         caseledger_outbox_lease_held {lease_held}\n\
         # HELP caseledger_accounts Accounts known to the read models.\n\
         # TYPE caseledger_accounts gauge\n\
         caseledger_accounts {accounts}\n\
         # HELP caseledger_sessions Live sessions.\n\
         # TYPE caseledger_sessions gauge\n\
         caseledger_sessions {sessions}\n\
         # HELP caseledger_password_hashes_in_flight Password hashes running now.\n\
         # TYPE caseledger_password_hashes_in_flight gauge\n\
         caseledger_password_hashes_in_flight {}\n\
         # HELP caseledger_password_hashes_waiting Password hashes waiting for a core.\n\
         # TYPE caseledger_password_hashes_waiting gauge\n\
         caseledger_password_hashes_waiting {}\n\
         # HELP caseledger_graphql_parsed_query_hits_total GraphQL requests whose query text was parsed before.\n\
         # TYPE caseledger_graphql_parsed_query_hits_total counter\n\
         caseledger_graphql_parsed_query_hits_total {}\n\
         # HELP caseledger_subscription_sockets Subscription sockets open on this node.\n\
         # TYPE caseledger_subscription_sockets gauge\n\
         caseledger_subscription_sockets {}\n",
        state.requests.load(Ordering::Relaxed),
        progress.position,
        progress.undecodable,
        outbox_position,
        hasher.in_flight(),
        hasher.waiting(),
        state.parsed_queries.hits(),
        state.subscriptions.sockets().open(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Whether a browser request comes from a page of this server or of an
/// allowed origin. Requests without `Origin` (curl, other servers) pass;
/// `Sec-Fetch-Site: cross-site` never does.
fn same_origin(headers: &HeaderMap, uri: &Uri, allowed: &[String]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().to_ascii_lowercase();
    let host = header("host")
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()));
    if let Some(host) = host {
        let host = host.trim().to_ascii_lowercase();
        if origin == format!("http://{host}") || origin == format!("https://{host}") {
            return true;
        }
    }
    allowed.contains(&origin)
}

/// Whether the body is declared as JSON: `application/json` (or the
/// GraphQL-over-HTTP draft's `application/graphql+json`), UTF-8 if a charset
/// is named. Types a cross-site form or a simple `fetch` may send
/// (`text/plain`, form encodings) are not.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && essence != "application/graphql+json" {
        return false;
    }
    parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    })
}

/// `GET /graphql/ws`: the subscription socket, for pages of this server or
/// an allowed origin (a browser always sends `Origin` on an upgrade) and
/// for clients that are not browsers.
async fn subscription_socket(
    State(state): State<ServerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let lang = lang_of(&headers);
    if !same_origin(&headers, &uri, &state.allowed_origins) {
        let error = ApiError::new(
            "INVALID_INPUT",
            "Connections from other sites are not accepted.",
            "Tilkoblinger fra andre nettsteder tas ikke imot.",
        )
        .with("reason", json!("CROSS_ORIGIN"));
        return error_response(StatusCode::FORBIDDEN, &error, lang);
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_not_an_upgrade) => {
            let error = ApiError::new(
                "INVALID_INPUT",
                "Open a WebSocket here with the graphql-transport-ws subprotocol; send queries and mutations to POST /graphql.",
                "Åpne en WebSocket her med underprotokollen graphql-transport-ws; send spørringer og endringer til POST /graphql.",
            )
            .with("reason", json!("NOT_A_WEBSOCKET"));
            return error_response(StatusCode::UPGRADE_REQUIRED, &error, lang);
        }
    };
    state.subscriptions.upgrade(upgrade, &headers, peer, lang)
}

async fn graphql(
    State(state): State<ServerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = lang_of(&headers);
    if !same_origin(&headers, &uri, &state.allowed_origins) {
        let error = ApiError::new(
            "INVALID_INPUT",
            "Requests from other sites are not accepted.",
            "Forespørsler fra andre nettsteder tas ikke imot.",
        )
        .with("reason", json!("CROSS_ORIGIN"));
        return error_response(StatusCode::FORBIDDEN, &error, lang);
    }
    if !json_content_type(&headers) {
        let error = ApiError::new(
            "INVALID_INPUT",
            "Send GraphQL requests with Content-Type: application/json.",
            "Send GraphQL-forespørsler med Content-Type: application/json.",
        )
        .with("reason", json!("UNSUPPORTED_MEDIA_TYPE"));
        return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, &error, lang);
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let error = ApiError::new(
                "INVALID_INPUT",
                format!("The body is not a GraphQL request in JSON ({error})."),
                format!("Innholdet er ikke en GraphQL-forespørsel i JSON ({error})."),
            );
            return error_response(StatusCode::BAD_REQUEST, &error, lang);
        }
    };
    state.requests.fetch_add(1, Ordering::Relaxed);
    if let Err(not_reached) =
        crate::positions::reach_requested(state.app.projections(), &headers).await
    {
        return not_reached_response(not_reached, |status, error| {
            error_response(status, error, lang)
        });
    }
    let budget = state.request_budget;
    let work = crate::positions::tracking(execute(&state, peer, &headers, request, lang));
    match tokio::time::timeout(budget, work).await {
        Ok((mut response, written)) => {
            if written > 0 {
                response.headers_mut().insert(
                    crate::positions::POSITION_HEADER,
                    HeaderValue::from(written),
                );
                if let Ok(cookie) = HeaderValue::from_str(&crate::positions::cookie(written)) {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
            response
        }
        Err(_elapsed) => {
            tracing::warn!(
                budget_ms = budget.as_millis() as u64,
                "a GraphQL request ran over its budget"
            );
            let error = ApiError::new(
                "INVALID_INPUT",
                "The request needed more time than one request may take. Please ask for less at once.",
                "Forespørselen trengte mer tid enn én forespørsel kan få. Be om mindre på én gang.",
            )
            .with("reason", json!("REQUEST_TOO_EXPENSIVE"))
            .with("limitMs", json!(budget.as_millis() as u64));
            error_response(StatusCode::OK, &error, lang)
        }
    }
}

/// The answer to a request whose asked position was not reached, as
/// `render` shows an error: 400 for a header that is no position, else 503
/// with `Retry-After`.
pub(crate) fn not_reached_response(
    not_reached: crate::positions::NotReached,
    render: impl FnOnce(StatusCode, &ApiError) -> Response,
) -> Response {
    let (status, error) = match not_reached {
        crate::positions::NotReached::NotAPosition => (
            StatusCode::BAD_REQUEST,
            ApiError::invalid_input(
                "Caseledger-Min-Position",
                "Caseledger-Min-Position must be a log position (a whole number).",
                "Caseledger-Min-Position må være en posisjon i loggen (et heltall).",
            ),
        ),
        crate::positions::NotReached::TooLate => (
            StatusCode::SERVICE_UNAVAILABLE,
            ApiError::new(
                crate::error::UNAVAILABLE,
                "This server has not caught up with your last change yet. Please try again in a moment.",
                "Denne serveren har ikke fått med seg den siste endringen din ennå. Prøv igjen om litt.",
            )
            .with("retryAfterSeconds", json!(1))
            .with("reason", json!("POSITION_NOT_REACHED")),
        ),
    };
    let mut response = render(status, &error);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    }
    response
}

/// Parse (or take from the cache), bound the document's expansion, then
/// validate and run it.
async fn execute(
    state: &ServerState,
    peer: SocketAddr,
    headers: &HeaderMap,
    mut request: async_graphql::Request,
    lang: Lang,
) -> Response {
    // Refused before the parser sees it: it would recurse past the stack.
    if let Err(message) = crate::nesting::check(&request.query) {
        let error = ApiError::invalid_input("query", message.clone(), message)
            .with("reason", json!("QUERY_TOO_DEEP"));
        return error_response(StatusCode::OK, &error, lang);
    }
    state.parsed_queries.prepare(&mut request);
    // A text that does not parse is left to the schema, which reports it.
    if let Ok(document) = request.parsed_query()
        && let Err(refusal) = crate::query_guard::check(document, &state.query_bounds)
    {
        tracing::info!(%refusal, "a GraphQL document was refused before validation");
        return error_response(StatusCode::OK, &refusal.to_api_error(), lang);
    }
    let caller = match session_token(headers, &state.app.keyer) {
        Some(token) => state.app.authenticate(&token).await,
        None => None,
    };
    let service = match (&state.service_token, headers.get(SERVICE_TOKEN_HEADER)) {
        (Some(expected), Some(given)) if caller.is_none() => {
            domain::constant_time_eq(expected.as_bytes(), given.as_bytes())
                .then(|| "caseworker".to_owned())
        }
        _ => None,
    };
    let context = RequestContext {
        caller,
        lang,
        service,
        client_ip: peer.ip(),
        cookies: true,
        device_token: cookie(headers, DEVICE_COOKIE).map(str::to_owned),
        costly: Default::default(),
    };
    let mut response = state.schema.execute(request.data(context)).await;
    // Parse and validation errors (a bad enum value, a missing argument)
    // are bad input too: give them the contract's code.
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "INVALID_INPUT");
        }
    }
    let unavailable = response.errors.iter().any(|error| {
        error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
            == Some(&async_graphql::Value::from(crate::error::UNAVAILABLE))
    });
    let mut http = GraphQLResponse::from(response).into_response();
    if unavailable {
        *http.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        http.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECONDS),
        );
    }
    http
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_json_bodies_are_taken() {
        for ok in [
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/json;charset=\"utf-8\"",
            "application/graphql+json",
        ] {
            assert!(json_content_type(&headers(&[("content-type", ok)])), "{ok}");
        }
        for refused in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "application/jsonx",
        ] {
            assert!(
                !json_content_type(&headers(&[("content-type", refused)])),
                "{refused}"
            );
        }
        assert!(!json_content_type(&HeaderMap::new()));
    }

    #[test]
    fn browsers_may_post_from_this_server_or_an_allowed_origin_only() {
        let uri: Uri = "/graphql".parse().unwrap();
        let allowed = ["https://portal.example.no".to_owned()];
        let check =
            |pairs: &[(&'static str, &'static str)]| same_origin(&headers(pairs), &uri, &allowed);
        assert!(check(&[]), "no Origin: not a browser's cross-site request");
        assert!(check(&[
            ("host", "api.example.no"),
            ("origin", "https://api.example.no")
        ]));
        assert!(check(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ]));
        assert!(check(&[
            ("host", "api.example.no"),
            ("origin", "https://portal.example.no")
        ]));
        assert!(!check(&[
            ("host", "api.example.no"),
            ("origin", "https://evil.example")
        ]));
        assert!(!check(&[("host", "api.example.no"), ("origin", "null")]));
        assert!(!check(&[
            ("host", "api.example.no"),
            ("origin", "https://api.example.no.evil.example")
        ]));
        assert!(!check(&[("sec-fetch-site", "cross-site")]));
        assert!(!check(&[
            ("host", "api.example.no"),
            ("origin", "https://api.example.no"),
            ("sec-fetch-site", "cross-site")
        ]));
    }

    #[test]
    fn the_console_loads_nothing_from_other_hosts_and_has_no_inline_script() {
        for asset in [CONSOLE_HTML, CONSOLE_JS, CONSOLE_CSS] {
            assert!(!asset.contains("http://") && !asset.contains("https://"));
            assert!(!asset.contains("//unpkg") && !asset.contains("//cdn"));
        }
        // No inline script, no inline event handler: `script-src 'self'`
        // would block them.
        for tag in CONSOLE_HTML.split("<script").skip(1) {
            let (attributes, _) = tag.split_once('>').unwrap();
            assert!(attributes.contains("src="), "an inline script: {tag}");
        }
        let handlers = CONSOLE_HTML
            .split(" on")
            .skip(1)
            .filter(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            })
            .count();
        assert_eq!(handlers, 0, "no inline event handlers");
        assert!(CONSOLE_CSP.contains("script-src 'self'"));
        assert!(!CONSOLE_CSP.contains("unsafe"));
    }
}
