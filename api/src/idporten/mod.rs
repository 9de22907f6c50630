//! Log in with ID-porten (OpenID Connect): the relying party behind
//! `GET /auth/idporten/login`, `GET /auth/idporten/callback` and
//! `GET /auth/idporten/logout`.
//!
//! The login is the authorization-code flow with PKCE (S256), `state`,
//! `nonce` and `acr_values=idporten-loa-high`. What the callback needs (the
//! PKCE verifier and the nonce) is kept in the store beside the log, so the
//! callback may reach any node: found by the SHA-256 of `state`, each entry
//! living at most [`PENDING_TTL`] and used once; at most [`MAX_PENDING`] are
//! kept (the oldest gives way). The entry is also
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

use crate::cookies::{CSRF_COOKIE, SESSION_COOKIE, cleared_session_cookie, session_cookies};
use crate::error::{ApiError, Lang};
use crate::limits::Limits;
use crate::services::{App, Caller};

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

mod client;
mod page;
mod pending;
mod routes;

#[allow(unused_imports)]
use client::*;
pub use client::{IdPorten, IdPortenClaims, IdPortenProviderMetadata};
#[allow(unused_imports)]
use page::*;
#[allow(unused_imports)]
use pending::*;
pub use routes::router;
#[allow(unused_imports)]
use routes::*;

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

    use store::EventStore as _;

    const NOW: i64 = 1_790_000_000_000;

    fn pending(binding: &str) -> PendingLogin {
        pending_at(binding, NOW)
    }

    fn pending_at(binding: &str, started_ms: i64) -> PendingLogin {
        PendingLogin {
            verifier: PkceCodeVerifier::new("v".repeat(43)),
            nonce: Nonce::new("n".to_owned()),
            binding: sha256(binding.as_bytes()),
            started_ms,
        }
    }

    fn store() -> store::memory::MemoryStore {
        store::memory::MemoryStore::new()
    }

    #[tokio::test]
    async fn a_pending_login_is_taken_once_and_only_by_its_browser_on_any_node() {
        let store = store();
        // Two nodes: each its own `PendingLogins`, one store.
        let one = PendingLogins::new(PENDING_TTL, 10);
        let two = PendingLogins::new(PENDING_TTL, 10);
        let take = async |logins: &PendingLogins, state: &str, binding: Option<&str>| {
            logins.take(&store, state, binding, NOW + 1).await.unwrap()
        };
        one.insert(&store, "s1", pending("browser-a"))
            .await
            .unwrap();
        assert!(
            take(&two, "s1", Some("browser-b")).await.is_none(),
            "another browser"
        );
        assert!(
            take(&one, "s1", Some("browser-a")).await.is_none(),
            "used up by the failed try"
        );
        one.insert(&store, "s2", pending("browser-a"))
            .await
            .unwrap();
        assert!(take(&two, "s2", None).await.is_none(), "no cookie");
        one.insert(&store, "s3", pending("browser-a"))
            .await
            .unwrap();
        assert!(take(&two, "unknown", Some("browser-a")).await.is_none());
        let taken = take(&two, "s3", Some("browser-a"))
            .await
            .expect("taken on node two");
        assert_eq!(taken.verifier.secret(), &"v".repeat(43));
        assert_eq!(taken.nonce.secret(), "n");
        assert!(take(&one, "s3", Some("browser-a")).await.is_none(), "once");
    }

    #[tokio::test]
    async fn an_expired_login_is_refused_and_full_slots_make_room_from_the_oldest() {
        let store = store();
        let logins = PendingLogins::new(PENDING_TTL, 10);
        logins
            .insert(
                &store,
                "s",
                pending_at("b", NOW - PENDING_TTL.as_millis() as i64),
            )
            .await
            .unwrap();
        assert!(
            logins
                .take(&store, "s", Some("b"), NOW)
                .await
                .unwrap()
                .is_none()
        );

        let logins = PendingLogins::new(PENDING_TTL, 3);
        for (n, state) in ["s1", "s2", "s3", "s4", "s5"].into_iter().enumerate() {
            logins
                .insert(&store, state, pending_at("b", NOW + n as i64))
                .await
                .unwrap();
        }
        for slot in 0..3 {
            assert!(
                store
                    .read_value(&format!("idporten.pending.{slot}"))
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        assert!(
            store
                .read_value("idporten.pending.3")
                .await
                .unwrap()
                .is_none(),
            "bounded"
        );
        let take = async |state: &str| {
            logins
                .take(&store, state, Some("b"), NOW + 10)
                .await
                .unwrap()
        };
        assert!(take("s1").await.is_none(), "the oldest gave way");
        assert!(take("s2").await.is_none());
        assert!(take("s5").await.is_some(), "the newest is kept");
    }

    #[test]
    fn garbage_is_refused_as_a_private_key() {
        assert!(ClientAuth::private_key_jwt("not a key", None).is_err());
    }
}
