//! The HTTP server: `/graphql` (GraphiQL on GET), `/healthz`, `/readyz`,
//! `/metrics`, the ID-porten login under `/auth/idporten/`; sessions by
//! bearer token or cookie (with a CSRF header); body-size, depth,
//! complexity and time limits; graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;

use domain::password::PasswordPolicyKind;
use store::EventStore;
use store::sqlite::{SqliteOptions, SqliteStore};

use crate::app::{App, Settings};
use crate::error::Lang;
use crate::graphql::{CaseledgerSchema, RequestContext, schema};
use crate::idporten::{IdPorten, IdPortenConfig};
use crate::keys::Keyer;
use crate::limits::{LimitSettings, Limits};
use crate::mail::{DEFAULT_FROM, MailSender, MailTransportConfig};
use crate::outbox::Outbox;
use crate::password_hashing::{HashParams, PasswordHasher, default_max_concurrent};
use crate::query_cache::ParsedQueries;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "caseledger_session";
/// Name of the cookie that holds the CSRF token (readable by the page).
pub const CSRF_COOKIE: &str = "caseledger_csrf";
/// Header that must echo the CSRF cookie on cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Header that carries the caseworker service credential.
pub const SERVICE_TOKEN_HEADER: &str = "x-service-token";
/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything `caseledger serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub code_ttl: chrono::Duration,
    pub password_policy: PasswordPolicyKind,
    /// `file` or `smtp://host:port`.
    pub mail: String,
    pub session_idle: chrono::Duration,
    pub session_lifetime: chrono::Duration,
    /// The caseworker service credential; caseworker operations are off without one.
    pub service_token: Option<String>,
    pub limits: LimitSettings,
    /// `synchronous=FULL` on the embedded store.
    pub durable: bool,
    /// How the read models use `<data-dir>/projections.snapshot` (only the
    /// server writes it; jobs and tests read it).
    pub projections: projections::SnapshotMode,
    /// Log in with ID-porten; off when `None`.
    pub idporten: Option<IdPortenConfig>,
}

impl ServeConfig {
    /// Defaults for a data dir (as the CLI's defaults).
    pub fn new(data_dir: PathBuf) -> ServeConfig {
        let settings = Settings::default();
        ServeConfig {
            data_dir,
            code_ttl: settings.code_ttl,
            password_policy: settings.password_policy,
            mail: "file".into(),
            session_idle: settings.session_idle,
            session_lifetime: settings.session_lifetime,
            service_token: None,
            limits: LimitSettings::default(),
            durable: true,
            projections: projections::SnapshotMode::ReadOnly,
            idporten: None,
        }
    }
}

/// The embedded store of a data dir.
pub fn open_store(
    data_dir: &std::path::Path,
    durable: bool,
) -> anyhow::Result<Arc<dyn EventStore>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let options = SqliteOptions {
        synchronous_full: durable,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&data_dir.join("events.sqlite3"), options)
        .with_context(|| format!("opening the event store in {}", data_dir.display()))?;
    Ok(Arc::new(store))
}

/// Build the services over a store (also used by the batch jobs).
pub fn build_app(store: Arc<dyn EventStore>, keyer: Keyer, config: &ServeConfig) -> App {
    let projections = projections::Projections::start_in_data_dir(
        store.clone(),
        &config.data_dir,
        config.projections,
    );
    let hasher = PasswordHasher::new(HashParams::owasp(), default_max_concurrent());
    let settings = Settings {
        code_ttl: config.code_ttl,
        password_policy: config.password_policy,
        session_idle: config.session_idle,
        session_lifetime: config.session_lifetime,
        ..Settings::default()
    };
    App::new(store, projections, hasher, keyer, settings)
}

#[derive(Clone)]
struct ServerState {
    app: App,
    schema: CaseledgerSchema,
    service_token: Option<Arc<str>>,
    requests: Arc<AtomicU64>,
    outbox_position: watch::Receiver<u64>,
    idporten: Option<Arc<IdPorten>>,
    limits: Arc<Limits>,
    parsed_queries: Arc<ParsedQueries>,
}

/// Serve until `shutdown` completes; then stop taking requests, finish the
/// ones in flight, and stop the outbox. Prints where GraphiQL is.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
    let keyer = Keyer::load_or_create(&config.data_dir)?;
    let store = open_store(&config.data_dir, config.durable)?;
    let app = build_app(store.clone(), keyer.clone(), &config);

    let transport = MailTransportConfig::parse(&config.mail, &config.data_dir)
        .with_context(|| format!("--mail {}", config.mail))?;
    let from = DEFAULT_FROM.parse().context("the sender address")?;
    let sender = MailSender::new(transport, from)
        .await
        .context("starting the mail transport")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (outbox_tx, outbox_rx) = watch::channel(0u64);
    let outbox = tokio::spawn(Outbox::new(keyer, sender, &config.data_dir).run(
        store.clone(),
        outbox_tx,
        stop_rx,
    ));

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
    let state = ServerState {
        schema: schema(Some(app.clone()), Some(limits.clone())),
        limits,
        app,
        service_token: config.service_token.as_deref().map(Arc::from),
        requests: Arc::new(AtomicU64::new(0)),
        outbox_position: outbox_rx,
        idporten,
        parsed_queries: Arc::new(ParsedQueries::default()),
    };
    let router = router(state);
    let address = listener.local_addr()?;
    println!("caseledger listening on http://{address} (GraphiQL: http://{address}/graphql)");
    tracing::info!(%address, "listening");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving HTTP")?;
    let _ = stop_tx.send(true);
    let _ = outbox.await;
    shrinker.abort();
    tracing::info!("stopped");
    Ok(())
}

fn router(state: ServerState) -> Router {
    Router::new()
        .merge(crate::idporten::router(
            state.app.clone(),
            state.idporten.clone(),
            Some(state.limits.clone()),
        ))
        .route("/graphql", get(graphiql).post(graphql))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
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

async fn metrics(State(state): State<ServerState>) -> Response {
    let progress = state.app.projections().progress();
    let head = state.app.store.head_position().await.unwrap_or(0);
    let (accounts, sessions) = state.app.projections().read(|m| m.counts());
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
         caseledger_graphql_parsed_query_hits_total {}\n",
        state.requests.load(Ordering::Relaxed),
        progress.position,
        progress.undecodable,
        *state.outbox_position.borrow(),
        hasher.in_flight(),
        hasher.waiting(),
        state.parsed_queries.hits(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session token of a request: a bearer token, or the session cookie
/// when the CSRF header echoes the CSRF cookie.
fn session_token(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))?;
        return Some(token.trim().to_owned());
    }
    let session = cookie(headers, SESSION_COOKIE)?;
    let csrf_cookie = cookie(headers, CSRF_COOKIE)?;
    let csrf_header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())?;
    domain::constant_time_eq(csrf_cookie.as_bytes(), csrf_header.as_bytes())
        .then(|| session.to_owned())
}

/// The `Set-Cookie` values of a new session: the HttpOnly session cookie and
/// the CSRF cookie the page echoes in the `X-CSRF-Token` header.
pub fn session_cookies(token: &str, expires_at: DateTime<Utc>) -> (String, String) {
    let expires = expires_at.format("%a, %d %b %Y %H:%M:%S GMT");
    let csrf: [u8; 16] = rand::random();
    (
        format!(
            "{SESSION_COOKIE}={token}; Path=/; Expires={expires}; HttpOnly; Secure; SameSite=Strict"
        ),
        format!(
            "{CSRF_COOKIE}={}; Path=/; Expires={expires}; Secure; SameSite=Strict",
            hex::encode(csrf)
        ),
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

async fn graphql(
    State(state): State<ServerState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let caller = session_token(&headers).and_then(|token| state.app.authenticate(&token));
    let lang = Lang::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
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
    };
    let mut request = request.into_inner();
    // Refused before the parser sees it: it would recurse past the stack.
    let mut response = match crate::nesting::check(&request.query) {
        Err(message) => {
            async_graphql::Response::from_errors(vec![async_graphql::ServerError::new(
                message, None,
            )])
        }
        Ok(()) => {
            state.parsed_queries.prepare(&mut request);
            state.schema.execute(request.data(context)).await
        }
    };
    // Parse and validation errors (a bad enum value, a missing argument)
    // are bad input too: give them the contract's code.
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "INVALID_INPUT");
        }
    }
    response.into()
}
