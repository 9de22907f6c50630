//! Log in with ID-porten (OpenID Connect): the relying party behind
//! `GET /auth/idporten/login`, `GET /auth/idporten/callback` and
//! `GET /auth/idporten/logout`.
//!
//! The login is the authorization-code flow with PKCE (S256), `state`,
//! `nonce` and `acr_values=idporten-loa-high`. The PKCE verifier and the
//! nonce are derived from the server secret and `state` (HMAC), so nothing
//! secret is kept for a login; what is kept (when it started, and the
//! browser it belongs to) lives in the store beside the log, so the callback
//! may reach any node: found by the SHA-256 of `state`, each entry living at
//! most [`PENDING_TTL`] and used once; at most [`MAX_PENDING`] are kept (the
//! oldest gives way). The entry is also
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
//! session cookies and the login's log position (`Caseledger-Position` and
//! its cookie, as after a mutation); a client that asks for JSON
//! (`Accept: application/json`) gets `{token, expiresAt, viewer}`. A refusal is a small page (or JSON
//! `{error: {code, message, reason}}`) in English, or bokmål when
//! `Accept-Language` prefers it.
//!
//! The provider's discovery document and keys are read at start (a server
//! that cannot read them does not start); an ID token signed with a key not
//! known yet has them read again (at most every [`KEY_REFRESH_INTERVAL`]),
//! so a key rotation at the provider needs no restart.
//!
//! Logout ends the local session and sends the browser to the provider's
//! `end_session_endpoint` with `id_token_hint` (single logout), on whichever
//! node the logout lands (it first waits, as a GraphQL request does, for
//! the position the browser names, so that a login just made on another
//! node is seen): the ID token of each live ID-porten session is
//! kept for that alone in the store, sealed under the server secret and
//! bound to its session, until the session's end (see [`LogoutHints`]). The
//! other way round, the provider's front-channel logout
//! (`GET /auth/idporten/frontchannel-logout?iss=…&sid=…`) ends the sessions
//! that the node it reaches started under the provider's session `sid`.
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
/// Most live ID-porten sessions whose ID token is kept for single logout
/// (the store holds at most this many sealed tokens of some 1-2 KB).
pub const MAX_LOGOUT_HINTS: usize = 100_000;
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
        assert_eq!(taken.started_ms, NOW);
        assert!(take(&one, "s3", Some("browser-a")).await.is_none(), "once");
    }

    #[tokio::test]
    async fn a_pending_login_keeps_no_verifier_or_nonce_in_the_store() {
        let store = store();
        let keyer = keys::Keyer::new([5; 32]);
        let logins = PendingLogins::new(PENDING_TTL, 10);
        logins
            .insert(&store, "state-1", pending("browser-a"))
            .await
            .unwrap();
        let mut kept = Vec::new();
        for slot in 0..10 {
            if let Some(value) = store
                .read_value(&format!("idporten.pending.{slot}"))
                .await
                .unwrap()
            {
                kept.push(value);
            }
        }
        assert_eq!(kept.len(), 1);
        let secrets = login_secrets(&keyer, "state-1");
        let raw_verifier = keyer.login_secret("pkce", "state-1");
        for secret in [
            secrets.verifier.secret().as_bytes(),
            secrets.nonce.secret().as_bytes(),
            &raw_verifier[..],
            &raw_verifier[..8],
        ] {
            assert!(
                !kept[0].windows(secret.len()).any(|w| w == secret),
                "a secret of the login is in the store"
            );
        }
        assert_eq!(kept[0].len(), 72, "state digest, binding and start only");
        // Derived again the same on any node; another state, another verifier.
        assert_eq!(
            login_secrets(&keyer, "state-1").verifier.secret(),
            secrets.verifier.secret()
        );
        assert_ne!(
            login_secrets(&keyer, "state-2").verifier.secret(),
            secrets.verifier.secret()
        );
        assert_eq!(secrets.verifier.secret().len(), 43);
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

    #[tokio::test]
    async fn a_logout_hint_is_sealed_and_taken_once_on_any_node_until_the_session_ends() {
        let store = store();
        let keyer = keys::Keyer::new([3; 32]);
        let (one, two) = (LogoutHints::new(10), LogoutHints::new(10));
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJwaWQiOiIxMjM0NTY3ODkwMSJ9.c2lnbmF0dXJl";
        let session = SessionId(uuid::Uuid::now_v7());
        one.insert(&store, &keyer, session, token, NOW + 1_000, NOW)
            .await
            .unwrap();
        let mut kept = Vec::new();
        for slot in 0..10 {
            if let Some(value) = store
                .read_value(&format!("idporten.hint.{slot}"))
                .await
                .unwrap()
            {
                kept.push(value);
            }
        }
        assert_eq!(kept.len(), 1);
        assert!(
            !kept[0]
                .windows(20)
                .any(|w| token.as_bytes().windows(20).any(|t| t == w)),
            "the token is sealed"
        );
        let other = SessionId(uuid::Uuid::now_v7());
        assert_eq!(two.take(&store, &keyer, other, NOW).await.unwrap(), None);
        let wrong_secret = keys::Keyer::new([4; 32]);
        assert_eq!(
            two.take(&store, &wrong_secret, session, NOW).await.unwrap(),
            None,
            "another secret opens nothing (and the hint is used up)"
        );
        one.insert(&store, &keyer, session, token, NOW + 1_000, NOW)
            .await
            .unwrap();
        assert_eq!(
            two.take(&store, &keyer, session, NOW)
                .await
                .unwrap()
                .as_deref(),
            Some(token),
            "taken on the other node"
        );
        assert_eq!(
            one.take(&store, &keyer, session, NOW).await.unwrap(),
            None,
            "once"
        );
        one.insert(&store, &keyer, session, token, NOW + 1_000, NOW)
            .await
            .unwrap();
        assert_eq!(
            two.take(&store, &keyer, session, NOW + 1_000)
                .await
                .unwrap(),
            None,
            "the session has ended"
        );
    }

    #[tokio::test]
    async fn full_hint_slots_give_way_to_the_session_that_ends_first() {
        let store = store();
        let keyer = keys::Keyer::new([3; 32]);
        let hints = LogoutHints::new(3);
        let sessions: Vec<SessionId> = (0..5).map(|_| SessionId(uuid::Uuid::now_v7())).collect();
        for (n, session) in sessions.iter().enumerate() {
            let ends = NOW + 1_000 + if n == 0 { 10_000 } else { n as i64 };
            hints
                .insert(&store, &keyer, *session, "t", ends, NOW)
                .await
                .unwrap();
        }
        assert!(
            store.read_value("idporten.hint.3").await.unwrap().is_none(),
            "bounded"
        );
        let take =
            async |session: SessionId| hints.take(&store, &keyer, session, NOW).await.unwrap();
        assert!(take(sessions[0]).await.is_some(), "the longest-lived stays");
        assert!(
            take(sessions[1]).await.is_none(),
            "the first to end gave way"
        );
        assert!(take(sessions[4]).await.is_some(), "the newest is kept");
    }

    #[test]
    fn garbage_is_refused_as_a_private_key() {
        assert!(ClientAuth::private_key_jwt("not a key", None).is_err());
    }
}
