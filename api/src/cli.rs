//! The `caseledger` command line: `serve`, `schema`, `new-secret`,
//! `purge-inactive`, `import-legacy`, `seal-log`. Every flag is also an environment variable
//! `CASELEDGER_<FLAG>`. Every command creates its files owner-only.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use domain::password::PasswordPolicyKind;

use crate::idporten::{ClientAuth, IdPortenConfig};
use crate::limits::LimitSettings;
use crate::server::ServeConfig;
use crate::subscription::SubscriptionSettings;

/// caseledger: an event-sourced account and case system for a self-service
/// immigration portal.
#[derive(Debug, Parser)]
#[command(name = "caseledger", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Which password rules apply.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyName {
    /// At least 8 characters, A-Z, a-z and 0-9 each at least once, nothing else.
    Seed,
    /// NIST SP 800-63B: length, any characters, a blocklist of common passwords.
    Nist,
}

/// Where the data lives (shared by every command).
#[derive(Debug, clap::Args)]
pub struct DataDir {
    /// Directory of the embedded event store, its secret, the read models'
    /// snapshot and the file mail outbox.
    #[arg(long, env = "CASELEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The event store: `sqlite:<path>` for an embedded file, or
    /// `postgres://user@host:port/db` (with `?sslmode=require` and the
    /// like) for PostgreSQL; default: the embedded store in --data-dir.
    #[arg(long, env = "CASELEDGER_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// The server secret (hex; see `caseledger new-secret`); every node of
    /// one store must be given the same file. Default:
    /// <data-dir>/secret.key, created on first use.
    #[arg(long, env = "CASELEDGER_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
}

impl DataDir {
    /// The store and secret these flags name.
    pub fn place(&self) -> anyhow::Result<crate::stores::StoreConfig> {
        Ok(crate::stores::StoreConfig {
            data_dir: self.data_dir.clone(),
            store: crate::stores::StoreLocation::parse(self.store.as_deref(), &self.data_dir)?,
            secret_file: self
                .secret_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join(keys::SECRET_FILE)),
            durable: true,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the GraphQL server on the embedded store.
    ///
    /// Example: caseledger serve --listen 127.0.0.1:8080 --data-dir ./data
    Serve(Box<ServeArgs>),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Write a fresh server secret (mode 0600) for the nodes of a store.
    ///
    /// Never overwrites a file. Example: caseledger new-secret --out /etc/caseledger/secret.key
    NewSecret {
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Delete every password account with no login for over two years, and
    /// warn those within 30 days of it.
    ///
    /// Safe to run twice and to resume after a crash. Example:
    /// caseledger purge-inactive --as-of 2027-01-01T00:00:00Z --dry-run
    PurgeInactive {
        #[command(flatten)]
        data: DataDir,
        /// The instant to judge inactivity at (RFC 3339); default now.
        #[arg(long, env = "CASELEDGER_AS_OF")]
        as_of: Option<DateTime<Utc>>,
        /// Say what would be done, change nothing.
        #[arg(long, env = "CASELEDGER_DRY_RUN")]
        dry_run: bool,
    },
    /// Import applications submitted before 1 April 2022 from the old portal.
    ///
    /// One JSON object a line: {"reference": "...", "submittedAt":
    /// "2021-06-01T10:00:00Z", "kind": "WORK", "email": "..."} (or "pid").
    /// Every line is checked first; a file with any bad line imports nothing.
    /// Importing the same file again changes nothing.
    ImportLegacy {
        #[command(flatten)]
        data: DataDir,
        /// The JSON-lines file.
        #[arg(long, env = "CASELEDGER_FILE")]
        file: PathBuf,
    },
    /// Rewrite an embedded event log written before personal data was sealed,
    /// so that no email or name in it stays in clear.
    ///
    /// A data dir written by an earlier release holds events with emails and
    /// names in clear; a purge cannot erase those. seal-log writes a new log
    /// beside the old one (<file>.sealing): the same events, in the same
    /// places, with the same ids, each email and name sealed under its
    /// person's data key (kept in the new log's key table under the server
    /// secret). Clear events of people whose account a purge already deleted
    /// are sealed so that they read as erased. It links the new log's hash
    /// chain anew, checks that every event decodes as before, and only then
    /// gives the new log the old one's name.
    ///
    /// Stop the server first: seal-log takes the data dir's serve.lock and
    /// refuses while a server holds it; run no job (purge-inactive,
    /// import-legacy) meanwhile.
    ///
    /// The old file is kept, unchanged, as <file>.before-seal-<UTC time>
    /// beside the new one until you remove it: it still holds emails and names
    /// in clear. The read models' snapshot (projections.snapshot) is removed;
    /// the server rebuilds it at its next start. The chain's head changes:
    /// save a new one with `replay-tool head --out FILE`.
    ///
    /// Running it on a sealed log seals nothing and renames nothing.
    /// Embedded (SQLite) stores only. Example: caseledger seal-log --data-dir ./data
    SealLog {
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CASELEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub data: DataDir,
    /// How long an emailed code is valid (e.g. 90s, 10m).
    #[arg(long, env = "CASELEDGER_CODE_TTL", default_value = "10m", value_parser = parse_duration)]
    pub code_ttl: chrono::Duration,
    /// Password rules.
    #[arg(
        long,
        env = "CASELEDGER_PASSWORD_POLICY",
        value_enum,
        default_value = "seed"
    )]
    pub password_policy: PolicyName,
    /// Minimum length under the nist policy (8 to 15).
    #[arg(long, env = "CASELEDGER_NIST_MIN_LENGTH", default_value_t = domain::password::NIST_DEFAULT_MIN_LENGTH)]
    pub nist_min_length: usize,
    /// `file` (one .eml per mail under <data-dir>/outbox/) or `smtp://host:port`.
    #[arg(long, env = "CASELEDGER_MAIL", default_value = "file")]
    pub mail: String,
    /// Idle timeout of sessions (ID-porten sessions: at most 30m).
    #[arg(long, env = "CASELEDGER_SESSION_IDLE_TIMEOUT", default_value = "60m", value_parser = parse_duration)]
    pub session_idle_timeout: chrono::Duration,
    /// Absolute lifetime of a session.
    #[arg(long, env = "CASELEDGER_SESSION_LIFETIME", default_value = "12h", value_parser = parse_duration)]
    pub session_lifetime: chrono::Duration,
    /// How far ahead an appointment may be booked or moved (e.g. 365d, 90d).
    #[arg(long, env = "CASELEDGER_BOOKING_HORIZON", default_value = "365d", value_parser = parse_duration)]
    pub booking_horizon: chrono::Duration,
    /// Credential of the caseworker systems (header X-Service-Token); caseworker operations are off without it.
    #[arg(long, env = "CASELEDGER_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,
    /// Mail-sending requests per minute per client address (0: no limit).
    #[arg(long, env = "CASELEDGER_RATE_LIMIT_MAIL", default_value_t = LimitSettings::default().mail_per_minute)]
    pub rate_limit_mail: u32,
    /// Login requests per minute per client address: password checks and ID-porten logins started (0: no limit).
    #[arg(long, env = "CASELEDGER_RATE_LIMIT_PASSWORD", default_value_t = LimitSettings::default().password_per_minute)]
    pub rate_limit_password: u32,
    /// Codes and notices one email address may be sent within
    /// --recipient-mail-window, however many requests, client addresses or
    /// nodes ask for them (0: none at all).
    #[arg(long, env = "CASELEDGER_RECIPIENT_MAIL_LIMIT", default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub recipient_mail_limit: u32,
    /// The sliding window of --recipient-mail-limit.
    #[arg(long, env = "CASELEDGER_RECIPIENT_MAIL_WINDOW", default_value = "1h", value_parser = parse_duration)]
    pub recipient_mail_window: chrono::Duration,
    /// Operations that send mail or check a password allowed in one request
    /// (GraphQL aliases repeat a mutation within one request; 0: no cap).
    #[arg(long, env = "CASELEDGER_MAX_COSTLY_PER_REQUEST", default_value_t = LimitSettings::default().costly_per_request)]
    pub max_costly_per_request: u32,
    #[command(flatten)]
    pub idporten: IdPortenArgs,
    /// Discard the read model snapshot and rebuild the projections from the
    /// whole log (otherwise the server starts from its snapshot).
    #[arg(long, env = "CASELEDGER_REBUILD_PROJECTIONS")]
    pub rebuild_projections: bool,
    #[command(flatten)]
    pub edge: EdgeArgs,
    #[command(flatten)]
    pub subscriptions: SubscriptionArgs,
}

/// The limits of the subscription socket (`GET /graphql/ws`).
#[derive(Debug, clap::Args)]
pub struct SubscriptionArgs {
    /// Subscriptions one socket may run at once; one more is refused
    /// (reason TOO_MANY_SUBSCRIPTIONS).
    #[arg(long, env = "CASELEDGER_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = SubscriptionSettings::default().max_per_connection as u32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_subscriptions_per_connection: u32,
    /// Subscription sockets one session may hold open at once; one more is
    /// closed with 4429.
    #[arg(long, env = "CASELEDGER_MAX_SUBSCRIPTION_SOCKETS_PER_SESSION", default_value_t = SubscriptionSettings::default().max_sockets_per_session as u32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_subscription_sockets_per_session: u32,
    /// Subscription sockets this node holds open at once, logged in or
    /// not; one more is answered 503.
    #[arg(long, env = "CASELEDGER_MAX_SUBSCRIPTION_SOCKETS", default_value_t = SubscriptionSettings::default().max_sockets as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_subscription_sockets: u32,
    /// How long a socket may stay open before its `connection_init`
    /// (closed with 4408 after).
    #[arg(long, env = "CASELEDGER_SUBSCRIPTION_INIT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub subscription_init_timeout: chrono::Duration,
}

impl SubscriptionArgs {
    fn settings(&self) -> anyhow::Result<SubscriptionSettings> {
        Ok(SubscriptionSettings {
            max_per_connection: self.max_subscriptions_per_connection as usize,
            max_sockets_per_session: self.max_subscription_sockets_per_session as usize,
            max_sockets: self.max_subscription_sockets as usize,
            init_timeout: self
                .subscription_init_timeout
                .to_std()
                .context("--subscription-init-timeout")?,
        })
    }
}

/// What the server lets in from the network.
#[derive(Debug, clap::Args)]
pub struct EdgeArgs {
    /// Most nodes a GraphQL document may come to with every fragment spread
    /// out (fields, spreads, inline fragments, directives, argument values);
    /// a larger one is refused before it is validated.
    #[arg(long, env = "CASELEDGER_MAX_QUERY_NODES", default_value_t = crate::query_guard::DEFAULT_MAX_NODES)]
    pub max_query_nodes: u64,
    /// Longest one GraphQL request may take, parsing, validation and
    /// execution together (e.g. 5s, 1500ms); a request over it is answered
    /// with an error (reason REQUEST_TOO_EXPENSIVE).
    #[arg(long, env = "CASELEDGER_REQUEST_BUDGET", default_value = "5s", value_parser = parse_duration)]
    pub request_budget: chrono::Duration,
    /// An origin (scheme://host[:port]) besides the server's own whose pages
    /// may POST to /graphql from a browser; repeatable (comma-separated in
    /// the environment).
    #[arg(
        long = "allowed-origin",
        value_name = "ORIGIN",
        env = "CASELEDGER_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Send Strict-Transport-Security (one year, subdomains included): give
    /// it only when the server is reached over HTTPS.
    #[arg(long, env = "CASELEDGER_HSTS")]
    pub hsts: bool,
    /// Token that `GET /metrics` requires (header `Authorization: Bearer
    /// <token>`); without it /metrics answers 404.
    #[arg(long, env = "CASELEDGER_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl EdgeArgs {
    /// The allowed origins, each checked to be `scheme://host[:port]`.
    fn origins(&self) -> anyhow::Result<Vec<String>> {
        self.allowed_origins
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/'))
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                let rest = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"));
                match rest {
                    Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '@']) => {
                        Ok(origin.to_ascii_lowercase())
                    }
                    _ => anyhow::bail!(
                        "--allowed-origin {origin}: give an origin such as https://portal.example.no (scheme, host and port only)"
                    ),
                }
            })
            .collect()
    }
}

/// Log in with ID-porten (OpenID Connect). Off when none of these is given;
/// the server refuses to start when some but not all that are needed are.
#[derive(Debug, clap::Args)]
pub struct IdPortenArgs {
    /// Issuer URL of ID-porten (its discovery document is read at start), e.g. https://idporten.no.
    #[arg(long, env = "CASELEDGER_IDPORTEN_ISSUER")]
    pub idporten_issuer: Option<String>,
    /// Client id registered with ID-porten.
    #[arg(long, env = "CASELEDGER_IDPORTEN_CLIENT_ID")]
    pub idporten_client_id: Option<String>,
    /// Client secret (client_secret_post); or use --idporten-private-key.
    #[arg(
        long,
        env = "CASELEDGER_IDPORTEN_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub idporten_client_secret: Option<String>,
    /// RSA private key, PEM file (PKCS#1 or PKCS#8), for private_key_jwt; or use --idporten-client-secret.
    #[arg(long, env = "CASELEDGER_IDPORTEN_PRIVATE_KEY")]
    pub idporten_private_key: Option<PathBuf>,
    /// Key id (`kid`) of the private key as registered with ID-porten.
    #[arg(long, env = "CASELEDGER_IDPORTEN_KEY_ID")]
    pub idporten_key_id: Option<String>,
    /// Redirect URI registered with ID-porten: this server's /auth/idporten/callback.
    #[arg(long, env = "CASELEDGER_IDPORTEN_REDIRECT_URI")]
    pub idporten_redirect_uri: Option<String>,
    /// Where the browser goes after a successful login.
    #[arg(long, env = "CASELEDGER_IDPORTEN_POST_LOGIN_URL", default_value = "/")]
    pub idporten_post_login_url: String,
    /// Where ID-porten sends the browser after logout (registered with ID-porten).
    #[arg(long, env = "CASELEDGER_IDPORTEN_POST_LOGOUT_REDIRECT_URI")]
    pub idporten_post_logout_redirect_uri: Option<String>,
}

/// Parse `90s`, `10m`, `1h30m`, ... into a positive duration.
pub fn parse_duration(raw: &str) -> Result<chrono::Duration, String> {
    let std = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("{e} (examples: 90s, 10m, 2h)"))?;
    if std.is_zero() {
        return Err("the duration must be positive".into());
    }
    chrono::Duration::from_std(std).map_err(|_| "the duration is too long".into())
}

impl ServeArgs {
    pub fn config(&self) -> anyhow::Result<ServeConfig> {
        let password_policy = match self.password_policy {
            PolicyName::Seed => PasswordPolicyKind::Seed,
            PolicyName::Nist => {
                PasswordPolicyKind::nist(self.nist_min_length).context("--nist-min-length")?
            }
        };
        Ok(ServeConfig {
            data_dir: self.data.data_dir.clone(),
            store: self.data.place()?,
            code_ttl: self.code_ttl,
            password_policy,
            mail: self.mail.clone(),
            session_idle: self.session_idle_timeout,
            session_lifetime: self.session_lifetime,
            booking_horizon: self.booking_horizon,
            service_token: self.service_token.clone().filter(|t| !t.is_empty()),
            limits: LimitSettings {
                mail_per_minute: self.rate_limit_mail,
                password_per_minute: self.rate_limit_password,
                costly_per_request: self.max_costly_per_request,
            },
            recipient_mail_limit: domain::address::MailLimit {
                max: self.recipient_mail_limit,
                window: self.recipient_mail_window,
            },
            durable: true,
            projections: if self.rebuild_projections {
                projections::SnapshotMode::Rebuild
            } else {
                projections::SnapshotMode::ReadWrite
            },
            idporten: self.idporten.config()?,
            max_query_nodes: self.edge.max_query_nodes,
            request_budget: self
                .edge
                .request_budget
                .to_std()
                .context("--request-budget")?,
            allowed_origins: self.edge.origins()?,
            hsts: self.edge.hsts,
            metrics_token: self.edge.metrics_token.clone().filter(|t| !t.is_empty()),
            subscriptions: self.subscriptions.settings()?,
        })
    }
}

impl IdPortenArgs {
    /// The ID-porten configuration: `None` when no ID-porten flag is given,
    /// an error naming what is missing when the configuration is incomplete.
    pub fn config(&self) -> anyhow::Result<Option<IdPortenConfig>> {
        let given = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        let any = given(&self.idporten_issuer)
            || given(&self.idporten_client_id)
            || given(&self.idporten_client_secret)
            || self.idporten_private_key.is_some()
            || given(&self.idporten_key_id)
            || given(&self.idporten_redirect_uri)
            || given(&self.idporten_post_logout_redirect_uri);
        if !any {
            return Ok(None);
        }
        let mut missing = Vec::new();
        if !given(&self.idporten_issuer) {
            missing.push("--idporten-issuer");
        }
        if !given(&self.idporten_client_id) {
            missing.push("--idporten-client-id");
        }
        if !given(&self.idporten_redirect_uri) {
            missing.push("--idporten-redirect-uri");
        }
        let secret = self
            .idporten_client_secret
            .clone()
            .filter(|s| !s.trim().is_empty());
        let client_auth = match (secret, &self.idporten_private_key) {
            (Some(_), Some(_)) => anyhow::bail!(
                "incomplete ID-porten configuration: give either --idporten-client-secret or --idporten-private-key, not both"
            ),
            (Some(secret), None) => Some(ClientAuth::SecretPost(secret)),
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("--idporten-private-key {}", path.display()))?;
                Some(
                    ClientAuth::private_key_jwt(&pem, self.idporten_key_id.clone())
                        .with_context(|| format!("--idporten-private-key {}", path.display()))?,
                )
            }
            (None, None) => {
                missing.push("--idporten-client-secret or --idporten-private-key");
                None
            }
        };
        if !missing.is_empty() {
            anyhow::bail!(
                "incomplete ID-porten configuration: {} missing (give all of them, or none to run without ID-porten)",
                missing.join(", ")
            );
        }
        let required = |value: &Option<String>| value.clone().unwrap_or_default().trim().to_owned();
        Ok(Some(IdPortenConfig {
            issuer: required(&self.idporten_issuer),
            client_id: required(&self.idporten_client_id),
            client_auth: client_auth.context("client authentication")?,
            redirect_uri: required(&self.idporten_redirect_uri),
            post_login_url: self.idporten_post_login_url.clone(),
            post_logout_redirect_uri: self
                .idporten_post_logout_redirect_uri
                .clone()
                .filter(|u| !u.trim().is_empty()),
        }))
    }
}

/// Run the command line; the process exit code comes from the result.
pub async fn main(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.config()?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            crate::server::run(listener, config, shutdown_signal()).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::NewSecret { out } => {
            let keyer = keys::Keyer::create_new(&out)
                .with_context(|| format!("writing a new secret to {}", out.display()))?;
            println!(
                "wrote a new server secret to {} (fingerprint {})",
                out.display(),
                keyer.fingerprint()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!("{}", crate::graphql::schema(None, None).sdl());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::PurgeInactive {
            data,
            as_of,
            dry_run,
        } => {
            crate::jobs::purge_inactive(&data.place()?, as_of.unwrap_or_else(Utc::now), dry_run)
                .await
        }
        Command::ImportLegacy { data, file } => {
            crate::jobs::import_legacy(&data.place()?, &file).await
        }
        Command::SealLog { data } => crate::seal_log::seal_log(&data.place()?).await,
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

/// The whole program: logging to stderr as JSON lines (filter with
/// `CASELEDGER_LOG`, default `info`), parse the arguments, run.
pub fn run_from_env() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CASELEDGER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .json()
        .init();
    let cli = Cli::parse();
    crate::data_dir::create_owner_only();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("caseledger: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("caseledger: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idporten(args: &[&str]) -> anyhow::Result<Option<IdPortenConfig>> {
        let mut argv = vec!["caseledger", "serve"];
        argv.extend(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(serve) => serve.idporten.config(),
            _ => unreachable!("serve"),
        }
    }

    fn serve(args: &[&str]) -> anyhow::Result<ServeConfig> {
        let mut argv = vec!["caseledger", "serve"];
        argv.extend(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(serve) => serve.config(),
            _ => unreachable!("serve"),
        }
    }

    #[test]
    fn the_edge_flags_have_safe_defaults_and_check_their_values() {
        let defaults = serve(&[]).unwrap();
        assert_eq!(defaults.max_query_nodes, 1000);
        assert_eq!(defaults.request_budget, std::time::Duration::from_secs(5));
        assert!(defaults.allowed_origins.is_empty());
        assert!(!defaults.hsts);
        assert!(defaults.metrics_token.is_none());

        let given = serve(&[
            "--request-budget",
            "1500ms",
            "--allowed-origin",
            "https://Portal.example.no/",
            "--allowed-origin",
            "http://localhost:3000",
            "--hsts",
            "--metrics-token",
            "t",
        ])
        .unwrap();
        assert_eq!(given.request_budget, std::time::Duration::from_millis(1500));
        assert_eq!(
            given.allowed_origins,
            ["https://portal.example.no", "http://localhost:3000"]
        );
        assert!(given.hsts);
        assert_eq!(given.metrics_token.as_deref(), Some("t"));

        for bad in [
            "portal.example.no",
            "https://portal.example.no/app",
            "ftp://x",
        ] {
            let refused = serve(&["--allowed-origin", bad]).unwrap_err().to_string();
            assert!(refused.contains("--allowed-origin"), "{bad}: {refused}");
        }
        assert!(
            serve(&["--metrics-token", ""])
                .unwrap()
                .metrics_token
                .is_none()
        );
    }

    #[test]
    fn id_porten_is_off_without_flags_and_complete_or_refused_with_them() {
        assert!(idporten(&[]).unwrap().is_none());
        let partial = idporten(&["--idporten-issuer", "https://idporten.example"])
            .unwrap_err()
            .to_string();
        assert!(partial.contains("--idporten-client-id"), "{partial}");
        assert!(partial.contains("--idporten-redirect-uri"), "{partial}");
        let complete = [
            "--idporten-issuer",
            "https://idporten.example",
            "--idporten-client-id",
            "caseledger",
            "--idporten-redirect-uri",
            "https://caseledger.example/auth/idporten/callback",
        ];
        let mut both = complete.to_vec();
        both.extend([
            "--idporten-client-secret",
            "s",
            "--idporten-private-key",
            "k.pem",
        ]);
        let both = idporten(&both).unwrap_err().to_string();
        assert!(both.contains("not both"), "{both}");
        let mut secret = complete.to_vec();
        secret.extend(["--idporten-client-secret", "s3cret"]);
        let config = idporten(&secret).unwrap().expect("configured");
        assert_eq!(config.client_id, "caseledger");
        assert_eq!(config.post_login_url, "/");
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "no secret in Debug"
        );
    }
}
