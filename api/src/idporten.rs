//! Log in with ID-porten (OpenID Connect): the relying party behind
//! `GET /auth/idporten/login`, `GET /auth/idporten/callback` and
//! `GET /auth/idporten/logout`.
//!
//! The login is the authorization-code flow with PKCE (S256), `state`,
//! `nonce` and `acr_values=idporten-loa-high`. What the callback needs (the
//! PKCE verifier and the nonce) stays in this process, in a map keyed by the
//! SHA-256 of `state`, each entry living at most [`PENDING_TTL`] and used
//! once; the map holds at most [`MAX_PENDING`] (the oldest gives way). The entry is also
//! bound to the browser that started the login by a random value in the
//! HttpOnly cookie [`LOGIN_COOKIE`] (only its digest is kept), so a callback
//! link cannot be completed in another browser.
//!
//! The callback checks the `iss` of the answer, exchanges the code
//! (`client_secret_post` or `private_key_jwt`), verifies the ID token
//! (signature by the provider's JWKS, issuer, audience, expiry, nonce, and
//! the access-token hash), and hands the returned `acr` and `pid` to
//! [`App::login_idporten`], which accepts only `idporten-loa-high` and a
//! present `pid`. A browser is then sent to the post-login URL with the
//! session cookies; a client that asks for JSON (`Accept: application/json`)
//! gets `{token, expiresAt, viewer}`. A refusal is a small page (or JSON
//! `{error: {code, message, reason}}`) in English, or bokmål when
//! `Accept-Language` prefers it.
//!
//! The provider's discovery document and keys are read at start (a server
//! that cannot read them does not start); an ID token signed with a key not
//! known yet has them read again (at most every [`KEY_REFRESH_INTERVAL`]),
//! so a key rotation at the provider needs no restart.
//!
//! Logout ends the local session and sends the browser to the provider's
//! `end_session_endpoint` with `id_token_hint` (single logout); the ID token
//! of each live ID-porten session is kept in memory for that alone. The
//! other way round, the provider's front-channel logout
//! (`GET /auth/idporten/frontchannel-logout?iss=…&sid=…`) ends the sessions
//! started under its session `sid`.
//!
//! Nothing personal (pid, name, tokens, codes) is logged: log lines name
//! only the outcome and the kind of failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use chrono::Utc;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreRsaPrivateSigningKey, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse,
    CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, AuthType,
    AuthenticationContextClass, AuthorizationCode, ClaimsVerificationError, Client, ClientId,
    ClientSecret, CsrfToken, EmptyExtraTokenFields, EndSessionUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdToken, IdTokenFields, IssuerUrl, JsonWebKeyId, LanguageTag,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, PrivateSigningKey, ProviderMetadata, RedirectUrl, RequestTokenError,
    Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use domain::{LoginMethod, SessionId};

use crate::app::{App, Caller};
use crate::error::{ApiError, Lang};
use crate::limits::Limits;
use crate::server::{CSRF_COOKIE, SESSION_COOKIE, cleared_session_cookie, session_cookies};

/// The only level of ID-porten this service accepts (BankID, Buypass,
/// Commfides; the old level 4).
pub const LEVEL_HIGH: &str = "idporten-loa-high";
/// How long a started login may take before its callback is refused.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// Most logins that may be under way at once.
pub const MAX_PENDING: usize = 10_000;
/// Cookie that binds a started login to the browser that started it.
pub const LOGIN_COOKIE: &str = "caseledger_idporten_login";
/// Display name of an ID-porten account when the provider gives no name
/// (ID-porten itself sends none).
pub const FALLBACK_NAME: &str = "ID-porten";
/// Least time between two readings of the provider's keys after start.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Lifetime of a `private_key_jwt` client assertion.
const CLIENT_ASSERTION_TTL_SECONDS: i64 = 60;

/// How the server authenticates itself at the token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// `client_secret_post`: the secret in the request body.
    SecretPost(String),
    /// `private_key_jwt`: a client assertion signed (RS256) with this key.
    PrivateKeyJwt {
        /// The key, PKCS#1 PEM.
        pkcs1_pem: String,
        /// The `kid` of the key as registered with the provider.
        key_id: Option<String>,
    },
}

impl ClientAuth {
    /// `private_key_jwt` with an RSA key in PEM, PKCS#1 (`BEGIN RSA PRIVATE
    /// KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`).
    pub fn private_key_jwt(pem: &str, key_id: Option<String>) -> anyhow::Result<ClientAuth> {
        use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, LineEnding};
        use rsa::pkcs8::DecodePrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|_| anyhow::anyhow!("not an RSA private key in PEM (PKCS#1 or PKCS#8)"))?;
        let pkcs1_pem = key
            .to_pkcs1_pem(LineEnding::LF)
            .context("re-encoding the private key")?
            .to_string();
        // Fail at start, not at the first login.
        CoreRsaPrivateSigningKey::from_pem(&pkcs1_pem, None)
            .map_err(|e| anyhow::anyhow!("the private key cannot sign: {e}"))?;
        Ok(ClientAuth::PrivateKeyJwt {
            pkcs1_pem,
            key_id: key_id.filter(|k| !k.trim().is_empty()),
        })
    }

    fn method_name(&self) -> &'static str {
        match self {
            ClientAuth::SecretPost(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt { .. } => "private_key_jwt",
        }
    }
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the key.
        f.write_str(self.method_name())
    }
}

/// The ID-porten settings of `caseledger serve`.
#[derive(Debug, Clone)]
pub struct IdPortenConfig {
    /// Issuer URL (the discovery document is under
    /// `/.well-known/openid-configuration`); a full discovery URL is accepted too.
    pub issuer: String,
    /// Client id registered with the provider.
    pub client_id: String,
    /// How the server authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// This server's `/auth/idporten/callback`, as registered.
    pub redirect_uri: String,
    /// Where the browser goes after a successful login.
    pub post_login_url: String,
    /// Where the provider sends the browser after logout, as registered.
    pub post_logout_redirect_uri: Option<String>,
}

/// The claims of an ID-porten ID token beyond the standard ones.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct IdPortenClaims {
    /// The national identity number (fødselsnummer or d-nummer); absent for
    /// some logins (e.g. from the EU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// The provider's session, named again by its front-channel logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AdditionalClaims for IdPortenClaims {}

impl std::fmt::Debug for IdPortenClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pid is personal data: never in a log line.
        f.debug_struct("IdPortenClaims")
            .field("pid", &self.pid.as_ref().map(|_| "<redacted>"))
            .field("sid", &self.sid.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The discovery fields this relying party needs beyond the core ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdPortenProviderMetadata {
    /// Where logout at the provider starts (single logout).
    #[serde(default)]
    pub end_session_endpoint: Option<EndSessionUrl>,
    /// Whether every authorization answer carries `iss` (RFC 9207); then
    /// an answer without it is refused.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}

impl AdditionalProviderMetadata for IdPortenProviderMetadata {}

type Discovered = ProviderMetadata<
    IdPortenProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type IdPortenIdToken = IdToken<
    IdPortenClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type IdPortenTokenResponse = StandardTokenResponse<
    IdTokenFields<
        IdPortenClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type IdPortenClientWith<HasTokenUrl> = Client<
    IdPortenClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    IdPortenTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
    EndpointMaybeSet,
>;

type IdPortenClient = IdPortenClientWith<EndpointSet>;

/// A login under way: what the callback needs, kept here, never sent out.
struct PendingLogin {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    /// SHA-256 of the browser's [`LOGIN_COOKIE`].
    binding: [u8; 32],
    started: Instant,
}

/// The logins under way, keyed by the SHA-256 of their `state`: each lives
/// at most `ttl` and is taken once; when `capacity` live ones are under way,
/// the oldest gives way to a new one (a flood of started logins cannot stop
/// new ones, and nothing grows without bound).
struct PendingLogins {
    logins: Mutex<HashMap<[u8; 32], PendingLogin>>,
    ttl: Duration,
    capacity: usize,
}

impl PendingLogins {
    fn new(ttl: Duration, capacity: usize) -> PendingLogins {
        PendingLogins {
            logins: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn insert(&self, state: &str, login: PendingLogin) {
        let mut logins = self.logins.lock().expect("pending logins lock");
        if logins.len() >= self.capacity {
            logins.retain(|_, l| l.started.elapsed() < self.ttl);
        }
        if logins.len() >= self.capacity
            && let Some(oldest) = logins
                .iter()
                .min_by_key(|(_, l)| l.started)
                .map(|(key, _)| *key)
        {
            tracing::warn!("too many ID-porten logins under way: the oldest gives way");
            logins.remove(&oldest);
        }
        logins.insert(sha256(state.as_bytes()), login);
    }

    /// Take (once) the login of `state`, if it is live and `binding` is the
    /// one of the browser that started it.
    fn take(&self, state: &str, binding: Option<&str>) -> Option<PendingLogin> {
        let login = self
            .logins
            .lock()
            .expect("pending logins lock")
            .remove(&sha256(state.as_bytes()))?;
        if login.started.elapsed() >= self.ttl {
            return None;
        }
        let binding = sha256(binding?.as_bytes());
        domain::constant_time_eq(&binding, &login.binding).then_some(login)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.logins.lock().expect("pending logins lock").len()
    }
}

/// A live ID-porten session: its ID token for `id_token_hint` at logout,
/// and the provider's session (`sid`) for the provider's logout.
struct LiveSession {
    caller: Caller,
    id_token: IdPortenIdToken,
    sid: Option<String>,
    expires_at: chrono::DateTime<Utc>,
}

/// The relying party: the discovered provider and the logins under way.
pub struct IdPorten {
    /// Replaced when the provider's keys are read again.
    client: RwLock<Arc<IdPortenClient>>,
    last_key_refresh: Mutex<Option<Instant>>,
    http: openidconnect::reqwest::Client,
    /// The issuer as the provider names itself (accounts are keyed by it).
    issuer: String,
    iss_parameter_required: bool,
    end_session: Option<EndSessionUrl>,
    signing_key: Option<CoreRsaPrivateSigningKey>,
    key_id: Option<String>,
    client_id: String,
    config: IdPortenConfig,
    pending: PendingLogins,
    live_sessions: Mutex<HashMap<SessionId, LiveSession>>,
}

/// Why a callback was refused before the account layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Unknown, used, expired or foreign `state`, or another browser.
    State,
    /// The callback's `iss` is not the provider's.
    Issuer,
    /// The provider answered with an error, or the code exchange failed.
    Provider,
    /// The ID token's nonce is not this login's.
    Nonce,
    /// The ID token could not be verified.
    Token,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::State => "STATE_MISMATCH",
            Refusal::Issuer => "ISSUER_MISMATCH",
            Refusal::Provider => "PROVIDER_ERROR",
            Refusal::Nonce => "NONCE_MISMATCH",
            Refusal::Token => "TOKEN_INVALID",
        }
    }

    fn error(self) -> ApiError {
        let (en, nb) = match self {
            Refusal::State => (
                "This login attempt is unknown, already used, or has expired. Please start the login again.",
                "Dette innloggingsforsøket er ukjent, allerede brukt eller utløpt. Start innloggingen på nytt.",
            ),
            Refusal::Issuer => (
                "The answer did not come from ID-porten. Please start the login again.",
                "Svaret kom ikke fra ID-porten. Start innloggingen på nytt.",
            ),
            Refusal::Provider => (
                "ID-porten did not complete the login. Please try again.",
                "ID-porten fullførte ikke innloggingen. Prøv igjen.",
            ),
            Refusal::Nonce => (
                "The answer from ID-porten does not belong to this login attempt. Please start the login again.",
                "Svaret fra ID-porten hører ikke til dette innloggingsforsøket. Start innloggingen på nytt.",
            ),
            Refusal::Token => (
                "The answer from ID-porten could not be verified. Please try again.",
                "Svaret fra ID-porten kunne ikke bekreftes. Prøv igjen.",
            ),
        };
        ApiError::new("UNAUTHENTICATED", en, nb).with("reason", json!(self.reason()))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The issuer of an `--idporten-issuer` value (a discovery URL is cut back).
fn issuer_of(raw: &str) -> String {
    let raw = raw.trim();
    raw.strip_suffix("/.well-known/openid-configuration")
        .unwrap_or(raw)
        .to_owned()
}

impl IdPorten {
    /// Read the provider's discovery document and JWKS and set up the client.
    pub async fn discover(config: IdPortenConfig) -> anyhow::Result<IdPorten> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would open the token request to SSRF.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .context("building the HTTP client")?;
        if let Some(uri) = &config.post_logout_redirect_uri {
            PostLogoutRedirectUrl::new(uri.clone()).with_context(|| {
                format!("--idporten-post-logout-redirect-uri {uri:?} is not a URL")
            })?;
        }
        let (client, issuer, extras) = Self::fetch_client(&config, &http).await?;
        let (signing_key, key_id) = match &config.client_auth {
            ClientAuth::SecretPost(_) => (None, None),
            ClientAuth::PrivateKeyJwt { pkcs1_pem, key_id } => {
                let key = CoreRsaPrivateSigningKey::from_pem(
                    pkcs1_pem,
                    key_id.clone().map(JsonWebKeyId::new),
                )
                .map_err(|e| anyhow::anyhow!("the private key cannot sign: {e}"))?;
                (Some(key), key_id.clone())
            }
        };
        tracing::info!(
            issuer = %issuer,
            client_auth = config.client_auth.method_name(),
            single_logout = extras.end_session_endpoint.is_some(),
            "ID-porten login enabled"
        );
        Ok(IdPorten {
            client: RwLock::new(Arc::new(client)),
            last_key_refresh: Mutex::new(None),
            http,
            iss_parameter_required: extras
                .authorization_response_iss_parameter_supported
                .unwrap_or(false),
            end_session: extras.end_session_endpoint,
            issuer,
            signing_key,
            key_id,
            client_id: config.client_id.clone(),
            config,
            pending: PendingLogins::new(PENDING_TTL, MAX_PENDING),
            live_sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The discovery document and JWKS of the provider, as a client.
    async fn fetch_client(
        config: &IdPortenConfig,
        http: &openidconnect::reqwest::Client,
    ) -> anyhow::Result<(IdPortenClient, String, IdPortenProviderMetadata)> {
        let issuer_url = IssuerUrl::new(issuer_of(&config.issuer))
            .with_context(|| format!("--idporten-issuer {:?} is not a URL", config.issuer))?;
        let metadata = Discovered::discover_async(issuer_url, http)
            .await
            .with_context(|| format!("reading the discovery document of {}", config.issuer))?;
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .context("the provider's discovery document names no token_endpoint")?;
        let redirect = RedirectUrl::new(config.redirect_uri.clone()).with_context(|| {
            format!(
                "--idporten-redirect-uri {:?} is not a URL",
                config.redirect_uri
            )
        })?;
        let secret = match &config.client_auth {
            ClientAuth::SecretPost(secret) => Some(ClientSecret::new(secret.clone())),
            ClientAuth::PrivateKeyJwt { .. } => None,
        };
        let extras = metadata.additional_metadata().clone();
        let issuer = metadata.issuer().as_str().to_owned();
        let client = IdPortenClientWith::<EndpointMaybeSet>::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            secret,
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect)
        .set_auth_type(AuthType::RequestBody);
        Ok((client, issuer, extras))
    }

    fn client(&self) -> Arc<IdPortenClient> {
        self.client.read().expect("client lock").clone()
    }

    /// Read the provider's keys again (it has rotated them), at most once
    /// per [`KEY_REFRESH_INTERVAL`]; whether there are new ones to try.
    async fn refresh_keys(&self) -> bool {
        {
            let mut last = self.last_key_refresh.lock().expect("key refresh lock");
            if last.is_some_and(|at| at.elapsed() < KEY_REFRESH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match Self::fetch_client(&self.config, &self.http).await {
            Ok((client, issuer, _)) if issuer == self.issuer => {
                *self.client.write().expect("client lock") = Arc::new(client);
                tracing::info!("ID-porten signing keys refreshed");
                true
            }
            Ok(_) => {
                tracing::warn!("ID-porten changed its issuer; keys not refreshed");
                false
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "refreshing ID-porten signing keys failed");
                false
            }
        }
    }

    /// The issuer as the provider names itself.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Start a login: the provider URL to send the browser to. `binding` is
    /// the browser's [`LOGIN_COOKIE`] value.
    fn begin(&self, binding: &str, lang: Lang) -> String {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".to_owned()))
            .add_auth_context_value(AuthenticationContextClass::new(LEVEL_HIGH.to_owned()))
            .set_pkce_challenge(challenge);
        if lang == Lang::Nb {
            request = request.add_ui_locale(LanguageTag::new("nb".to_owned()));
        }
        let (url, state, nonce) = request.url();
        self.pending.insert(
            state.secret(),
            PendingLogin {
                verifier,
                nonce,
                binding: sha256(binding.as_bytes()),
                started: Instant::now(),
            },
        );
        url.to_string()
    }

    /// A `private_key_jwt` client assertion for the token endpoint.
    fn client_assertion(&self, key: &CoreRsaPrivateSigningKey) -> Result<String, ApiError> {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let now = Utc::now().timestamp();
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.issuer,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "exp": now + CLIENT_ASSERTION_TTL_SECONDS,
        });
        let input = format!(
            "{}.{}",
            engine.encode(header.to_string()),
            engine.encode(claims.to_string())
        );
        let signature = key
            .sign(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                input.as_bytes(),
            )
            .map_err(|e| crate::app::internal("signing the client assertion", e))?;
        Ok(format!("{input}.{}", engine.encode(signature)))
    }

    /// Exchange the code and verify the ID token: the token and its
    /// verified claims (acr, pid, name).
    async fn redeem(
        &self,
        code: String,
        login: PendingLogin,
    ) -> Result<(IdPortenIdToken, VerifiedLogin), Refusal> {
        let mut client = self.client();
        let mut request = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(login.verifier);
        if let Some(key) = &self.signing_key {
            let assertion = self.client_assertion(key).map_err(|_| Refusal::Provider)?;
            request = request
                .add_extra_param(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .add_extra_param("client_assertion", assertion);
        }
        let response = request.request_async(&self.http).await.map_err(|error| {
            let kind = match &error {
                RequestTokenError::ServerResponse(e) => e.error().to_string(),
                RequestTokenError::Request(_) => "transport".to_owned(),
                RequestTokenError::Parse(..) => "unreadable answer".to_owned(),
                RequestTokenError::Other(_) => "other".to_owned(),
            };
            tracing::warn!(failure = %kind, "ID-porten code exchange failed");
            Refusal::Provider
        })?;
        let id_token = response.id_token().cloned().ok_or_else(|| {
            tracing::warn!("ID-porten answered without an ID token");
            Refusal::Token
        })?;
        let mut verified = id_token.claims(&client.id_token_verifier(), &login.nonce);
        if let Err(ClaimsVerificationError::SignatureVerification(_)) = verified {
            // Signed with a key we do not know yet: the provider may have
            // rotated its keys since we read them.
            if self.refresh_keys().await {
                client = self.client();
                verified = id_token.claims(&client.id_token_verifier(), &login.nonce);
            }
        }
        let verifier = client.id_token_verifier();
        let claims = verified.map_err(|error| {
            let (refusal, kind) = match error {
                ClaimsVerificationError::InvalidNonce(_) => (Refusal::Nonce, "nonce"),
                ClaimsVerificationError::Expired(_) => (Refusal::Token, "expired"),
                ClaimsVerificationError::InvalidAudience(_) => (Refusal::Token, "audience"),
                ClaimsVerificationError::InvalidIssuer(_) => (Refusal::Token, "issuer"),
                ClaimsVerificationError::SignatureVerification(_) => (Refusal::Token, "signature"),
                _ => (Refusal::Token, "claims"),
            };
            tracing::warn!(failure = kind, "ID-porten ID token refused");
            refusal
        })?;
        if let Some(expected) = claims.access_token_hash() {
            let matches = id_token
                .signing_alg()
                .ok()
                .zip(id_token.signing_key(&verifier).ok())
                .and_then(|(alg, key)| {
                    AccessTokenHash::from_token(response.access_token(), alg, key).ok()
                })
                .is_some_and(|actual| actual == *expected);
            if !matches {
                tracing::warn!(failure = "at_hash", "ID-porten ID token refused");
                return Err(Refusal::Token);
            }
        }
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().trim().to_owned())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                let given = claims.given_name().and_then(|n| n.get(None));
                let family = claims.family_name().and_then(|n| n.get(None));
                let joined = [given.map(|g| g.as_str()), family.map(|f| f.as_str())]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (!joined.trim().is_empty()).then(|| joined.trim().to_owned())
            })
            .unwrap_or_else(|| FALLBACK_NAME.to_owned());
        let verified = VerifiedLogin {
            sid: claims.additional_claims().sid.clone(),
            acr: claims
                .auth_context_ref()
                .map(|acr| acr.as_str().to_owned())
                .unwrap_or_default(),
            pid: claims.additional_claims().pid.clone().unwrap_or_default(),
            name,
        };
        Ok((id_token, verified))
    }

    /// Keep the ID token and `sid` of a new session for logout; drop those
    /// of sessions past their lifetime.
    fn remember_session(
        &self,
        caller: Caller,
        id_token: IdPortenIdToken,
        sid: Option<String>,
        expires_at: chrono::DateTime<Utc>,
    ) {
        let now = Utc::now();
        let mut sessions = self.live_sessions.lock().expect("live sessions lock");
        sessions.retain(|_, s| s.expires_at > now);
        sessions.insert(
            caller.session,
            LiveSession {
                caller,
                id_token,
                sid,
                expires_at,
            },
        );
    }

    /// The sessions started under the provider's session `sid`, forgotten.
    fn take_sessions_of(&self, sid: &str) -> Vec<Caller> {
        let mut sessions = self.live_sessions.lock().expect("live sessions lock");
        let ended: Vec<SessionId> = sessions
            .iter()
            .filter(|(_, s)| {
                s.sid
                    .as_deref()
                    .is_some_and(|s| domain::constant_time_eq(s.as_bytes(), sid.as_bytes()))
            })
            .map(|(id, _)| *id)
            .collect();
        ended
            .into_iter()
            .filter_map(|id| sessions.remove(&id))
            .map(|s| s.caller)
            .collect()
    }

    fn take_id_token(&self, session: SessionId) -> Option<IdPortenIdToken> {
        self.live_sessions
            .lock()
            .expect("live sessions lock")
            .remove(&session)
            .map(|t| t.id_token)
    }

    /// The provider's end-session URL for a logout, if it has one.
    fn end_session_url(&self, id_token: Option<&IdPortenIdToken>) -> Option<String> {
        let endpoint = self.end_session.clone()?;
        let mut request = LogoutRequest::from(endpoint);
        request = match id_token {
            Some(id_token) => request.set_id_token_hint(id_token),
            None => request.set_client_id(ClientId::new(self.client_id.clone())),
        };
        if let Some(uri) = &self.config.post_logout_redirect_uri
            && let Ok(uri) = PostLogoutRedirectUrl::new(uri.clone())
        {
            request = request.set_post_logout_redirect_uri(uri);
        }
        Some(request.http_get_url().to_string())
    }
}

/// What a verified ID token says, for the account layer.
struct VerifiedLogin {
    sid: Option<String>,
    acr: String,
    pid: String,
    name: String,
}

/// State of the `/auth/idporten/*` routes.
#[derive(Clone)]
struct IdPortenState {
    app: App,
    idporten: Option<Arc<IdPorten>>,
    /// The per-address login limits; each started login counts as one try.
    limits: Option<Arc<Limits>>,
}

/// The `/auth/idporten/*` routes; without a configuration they answer 404
/// saying that ID-porten is not configured.
pub fn router<S>(
    app: App,
    idporten: Option<Arc<IdPorten>>,
    limits: Option<Arc<Limits>>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/auth/idporten/login", get(login))
        .route("/auth/idporten/callback", get(callback))
        .route("/auth/idporten/logout", get(logout))
        .route(
            "/auth/idporten/frontchannel-logout",
            get(frontchannel_logout),
        )
        .with_state(IdPortenState {
            app,
            idporten,
            limits,
        })
}

/// The parameters of the provider's answer. No `Debug`: the code is secret.
#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// How the client wants its answer.
#[derive(Clone, Copy)]
struct Answer {
    lang: Lang,
    json: bool,
}

impl Answer {
    fn of(headers: &HeaderMap) -> Answer {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Answer {
            lang: Lang::from_accept_language(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            ),
            json: accept.contains("application/json") && !accept.contains("text/html"),
        }
    }
}

fn not_configured(answer: Answer) -> Response {
    refusal_page(
        answer,
        StatusCode::NOT_FOUND,
        &ApiError::new(
            "NOT_FOUND",
            "Login with ID-porten is not configured on this server.",
            "Innlogging med ID-porten er ikke satt opp på denne serveren.",
        )
        .with("reason", json!("IDPORTEN_NOT_CONFIGURED")),
        "/",
    )
}

fn status_of(error: &ApiError) -> StatusCode {
    match error.code {
        "INSUFFICIENT_LEVEL" => StatusCode::FORBIDDEN,
        "INTERNAL" => StatusCode::INTERNAL_SERVER_ERROR,
        "TOO_MANY_ATTEMPTS" => StatusCode::SERVICE_UNAVAILABLE,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A refused login: a small page, or JSON `{error: {code, message, reason}}`.
fn refusal_page(answer: Answer, status: StatusCode, error: &ApiError, back: &str) -> Response {
    let message = error.message(answer.lang);
    let reason = error
        .extensions
        .iter()
        .find(|(k, _)| *k == "reason")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("");
    let mut response = if answer.json {
        let mut body = json!({ "code": error.code, "message": message });
        for (key, value) in &error.extensions {
            body[*key] = value.clone();
        }
        (status, axum::Json(json!({ "error": body }))).into_response()
    } else {
        let (lang, title, again, home) = match answer.lang {
            Lang::En => (
                "en",
                "You are not logged in",
                "Log in with ID-porten again",
                "Back",
            ),
            Lang::Nb => (
                "nb",
                "Du er ikke logget inn",
                "Logg inn med ID-porten på nytt",
                "Tilbake",
            ),
        };
        let page = format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n</head>\n<body>\n\
             <main data-code=\"{code}\" data-reason=\"{reason}\">\n<h1>{title}</h1>\n\
             <p id=\"message\">{message}</p>\n\
             <p><a href=\"/auth/idporten/login\">{again}</a> · <a href=\"{back}\">{home}</a></p>\n\
             </main>\n</body>\n</html>\n",
            code = html_escape(error.code),
            reason = html_escape(reason),
            message = html_escape(message),
            back = html_escape(back),
        );
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The callback URL holds the code: no Referer from this page.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn login_cookie(value: &str) -> String {
    format!(
        "{LOGIN_COOKIE}={value}; Path=/auth/idporten; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
        PENDING_TTL.as_secs()
    )
}

fn cleared_login_cookie() -> String {
    format!("{LOGIN_COOKIE}=; Path=/auth/idporten; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
}

fn cleared_csrf_cookie() -> String {
    format!("{CSRF_COOKIE}=; Path=/; Max-Age=0; Secure; SameSite=Strict")
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A well-formed login binding from the browser (64 hex digits).
fn existing_binding(headers: &HeaderMap) -> Option<&str> {
    crate::server::cookie(headers, LOGIN_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `GET /auth/idporten/login`: off to the provider.
async fn login(
    State(state): State<IdPortenState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let answer = Answer::of(&headers);
    let Some(idporten) = state.idporten else {
        return not_configured(answer);
    };
    // Every start keeps a pending login in memory: one address may not
    // start more than the login limit allows.
    if let Some(limits) = &state.limits
        && let Err(wait) = limits.check("password", peer.ip())
    {
        let mut response = refusal_page(
            answer,
            StatusCode::TOO_MANY_REQUESTS,
            &ApiError::too_many_attempts(Some(wait)),
            "/",
        );
        if let Ok(value) = HeaderValue::from_str(&wait.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    // One binding per browser, so that logins started in two tabs both work.
    let binding = existing_binding(&headers)
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>()));
    let mut response = redirect(&idporten.begin(&binding, answer.lang));
    set_cookie(&mut response, &login_cookie(&binding));
    response
}

/// `GET /auth/idporten/callback`: the provider's answer.
async fn callback(
    State(state): State<IdPortenState>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let answer = Answer::of(&headers);
    let Some(idporten) = state.idporten.clone() else {
        return not_configured(answer);
    };
    let back = idporten.config.post_login_url.clone();
    let mut response = match complete(&state.app, &idporten, &headers, params).await {
        Ok(session) => {
            tracing::info!(outcome = "logged in", "ID-porten login");
            let (session_cookie, csrf_cookie) =
                session_cookies(&state.app.keyer, &session.token, session.expires_at);
            let mut response = if answer.json {
                axum::Json(json!({
                    "token": session.token,
                    "expiresAt": session.expires_at.to_rfc3339(),
                    "viewer": {
                        "id": session.account.id.to_string(),
                        "loginMethod": "IDPORTEN",
                        "name": session.account.name,
                    },
                }))
                .into_response()
            } else {
                redirect(&back)
            };
            set_cookie(&mut response, &session_cookie);
            set_cookie(&mut response, &csrf_cookie);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.headers_mut().insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        Err(error) => {
            let reason = error
                .extensions
                .iter()
                .find(|(k, _)| *k == "reason")
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("");
            tracing::info!(
                outcome = "refused",
                code = error.code,
                reason,
                "ID-porten login"
            );
            refusal_page(answer, status_of(&error), &error, &back)
        }
    };
    set_cookie(&mut response, &cleared_login_cookie());
    response
}

async fn complete(
    app: &App,
    idporten: &IdPorten,
    headers: &HeaderMap,
    params: CallbackParams,
) -> Result<crate::app::IssuedSession, ApiError> {
    let state = params.state.as_deref().unwrap_or("");
    let login = idporten
        .pending
        .take(state, crate::server::cookie(headers, LOGIN_COOKIE))
        .ok_or_else(|| Refusal::State.error())?;
    match params.iss.as_deref() {
        Some(iss) if iss != idporten.issuer => return Err(Refusal::Issuer.error()),
        None if idporten.iss_parameter_required => return Err(Refusal::Issuer.error()),
        _ => {}
    }
    if let Some(error) = params.error.as_deref() {
        // The provider's error code is not personal; its description may be.
        let kind = match error {
            "access_denied"
            | "login_required"
            | "consent_required"
            | "invalid_request"
            | "server_error"
            | "temporarily_unavailable"
            | "interaction_required" => error,
            _ => "other",
        };
        tracing::info!(error = kind, "ID-porten answered with an error");
        return Err(Refusal::Provider.error());
    }
    let code = params
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Refusal::Provider.error())?;
    let (id_token, verified) = idporten.redeem(code, login).await.map_err(Refusal::error)?;
    let session = app
        .login_idporten(
            idporten.issuer(),
            &verified.pid,
            &verified.acr,
            &verified.name,
        )
        .await?;
    if let Some(caller) = app.authenticate(&session.token) {
        idporten.remember_session(caller, id_token, verified.sid, session.expires_at);
    }
    Ok(session)
}

/// The session token of a logout request: a bearer token or the session
/// cookie (a top-level navigation cannot send the CSRF header; the cookie is
/// `SameSite=Strict`, so another site cannot send it either).
fn logout_token(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned());
    }
    crate::server::cookie(headers, SESSION_COOKIE).map(str::to_owned)
}

/// `GET /auth/idporten/logout`: end the local session, then log out at
/// the provider (single logout).
async fn logout(State(state): State<IdPortenState>, headers: HeaderMap) -> Response {
    let answer = Answer::of(&headers);
    let Some(idporten) = state.idporten else {
        return not_configured(answer);
    };
    let caller = logout_token(&headers).and_then(|token| state.app.authenticate(&token));
    let mut id_token = None;
    if let Some(caller) = &caller {
        if caller.method == LoginMethod::IdPorten {
            id_token = idporten.take_id_token(caller.session);
        }
        if let Err(error) = state.app.logout(caller).await {
            return refusal_page(
                answer,
                status_of(&error),
                &error,
                &idporten.config.post_login_url,
            );
        }
    }
    tracing::info!(
        outcome = if caller.is_some() {
            "logged out"
        } else {
            "no session"
        },
        "ID-porten logout"
    );
    let end_session = idporten.end_session_url(id_token.as_ref());
    let mut response = if answer.json {
        axum::Json(json!({
            "loggedOut": caller.is_some(),
            "endSessionUrl": end_session,
        }))
        .into_response()
    } else {
        let target = end_session
            .clone()
            .or_else(|| idporten.config.post_logout_redirect_uri.clone())
            .unwrap_or_else(|| idporten.config.post_login_url.clone());
        redirect(&target)
    };
    set_cookie(&mut response, &cleared_session_cookie());
    set_cookie(&mut response, &cleared_csrf_cookie());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The parameters of the provider's front-channel logout.
#[derive(Deserialize)]
struct FrontchannelParams {
    iss: Option<String>,
    sid: Option<String>,
}

/// `GET /auth/idporten/frontchannel-logout?iss=…&sid=…`: the provider
/// ended its session `sid` (the person logged out there or at another
/// service); the sessions started under it end here too. Loaded by the
/// provider in a hidden frame, so it relies on no cookie.
async fn frontchannel_logout(
    State(state): State<IdPortenState>,
    headers: HeaderMap,
    Query(params): Query<FrontchannelParams>,
) -> Response {
    let answer = Answer::of(&headers);
    let Some(idporten) = state.idporten else {
        return not_configured(answer);
    };
    if params
        .iss
        .as_deref()
        .is_some_and(|iss| iss != idporten.issuer)
    {
        tracing::info!(
            outcome = "refused",
            reason = "ISSUER_MISMATCH",
            "ID-porten front-channel logout"
        );
        return (StatusCode::BAD_REQUEST, "unknown issuer").into_response();
    }
    let Some(sid) = params.sid.filter(|s| !s.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "sid is required").into_response();
    };
    let callers = idporten.take_sessions_of(&sid);
    for caller in &callers {
        if let Err(error) = state.app.logout(caller).await {
            tracing::warn!(
                code = error.code,
                "ending a session on the provider's logout failed"
            );
        }
    }
    tracing::info!(sessions = callers.len(), "ID-porten front-channel logout");
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Logged out</title></head><body></body></html>\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovery_url_is_cut_back_to_its_issuer() {
        assert_eq!(
            issuer_of("https://idporten.no/.well-known/openid-configuration"),
            "https://idporten.no"
        );
        assert_eq!(issuer_of(" https://idporten.no "), "https://idporten.no");
    }

    #[test]
    fn the_pid_never_shows_in_debug_output() {
        let claims = IdPortenClaims {
            pid: Some("12345678901".to_owned()),
            sid: Some("session-1".to_owned()),
        };
        assert!(!format!("{claims:?}").contains("session-1"));
        assert!(!format!("{claims:?}").contains("12345678901"));
        let auth = ClientAuth::SecretPost("very-secret".to_owned());
        assert!(!format!("{auth:?}").contains("very-secret"));
    }

    #[test]
    fn refusal_pages_escape_and_speak_bokmal_when_asked() {
        let answer = Answer {
            lang: Lang::Nb,
            json: false,
        };
        let response = refusal_page(
            answer,
            StatusCode::BAD_REQUEST,
            &Refusal::State.error(),
            "/\"><script>",
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::REFERRER_POLICY],
            HeaderValue::from_static("no-referrer")
        );
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    fn pending(binding: &str) -> PendingLogin {
        pending_at(binding, Instant::now())
    }

    fn pending_at(binding: &str, started: Instant) -> PendingLogin {
        PendingLogin {
            verifier: PkceCodeVerifier::new("v".repeat(43)),
            nonce: Nonce::new("n".to_owned()),
            binding: sha256(binding.as_bytes()),
            started,
        }
    }

    #[test]
    fn a_pending_login_is_taken_once_and_only_by_its_browser() {
        let logins = PendingLogins::new(PENDING_TTL, 10);
        logins.insert("s1", pending("browser-a"));
        assert!(
            logins.take("s1", Some("browser-b")).is_none(),
            "another browser"
        );
        assert!(
            logins.take("s1", Some("browser-a")).is_none(),
            "used up by the failed try"
        );
        logins.insert("s2", pending("browser-a"));
        assert!(logins.take("s2", None).is_none(), "no cookie");
        logins.insert("s3", pending("browser-a"));
        assert!(logins.take("unknown", Some("browser-a")).is_none());
        assert!(logins.take("s3", Some("browser-a")).is_some());
        assert!(logins.take("s3", Some("browser-a")).is_none(), "once");
    }

    #[test]
    fn an_expired_login_is_refused_and_a_full_map_makes_room_from_the_oldest() {
        let expired = PendingLogins::new(Duration::ZERO, 10);
        expired.insert("s", pending("b"));
        assert!(expired.take("s", Some("b")).is_none());

        let logins = PendingLogins::new(PENDING_TTL, 3);
        let start = Instant::now();
        for (n, state) in ["s1", "s2", "s3", "s4", "s5"].into_iter().enumerate() {
            let started = start + Duration::from_millis(n as u64);
            logins.insert(state, pending_at("b", started));
        }
        assert_eq!(logins.len(), 3);
        assert!(
            logins.take("s1", Some("b")).is_none(),
            "the oldest gave way"
        );
        assert!(logins.take("s2", Some("b")).is_none());
        assert!(logins.take("s5", Some("b")).is_some(), "the newest is kept");
    }

    #[test]
    fn garbage_is_refused_as_a_private_key() {
        assert!(ClientAuth::private_key_jwt("not a key", None).is_err());
    }
}
