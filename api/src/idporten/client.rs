//! The OpenID Connect client: discovery, the provider's keys, the
//! authorization URL, the code exchange and the ID token's verification.

use super::*;

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

pub(super) type Discovered = ProviderMetadata<
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

pub(super) type IdPortenIdToken = IdToken<
    IdPortenClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

pub(super) type IdPortenTokenResponse = StandardTokenResponse<
    IdTokenFields<
        IdPortenClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

pub(super) type IdPortenClientWith<HasTokenUrl> = Client<
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

pub(super) type IdPortenClient = IdPortenClientWith<EndpointSet>;

/// The relying party: the discovered provider and the logins under way.
pub struct IdPorten {
    /// Replaced when the provider's keys are read again.
    pub(super) client: RwLock<Arc<IdPortenClient>>,
    pub(super) last_key_refresh: Mutex<Option<Instant>>,
    pub(super) http: openidconnect::reqwest::Client,
    /// The issuer as the provider names itself (accounts are keyed by it).
    pub(super) issuer: String,
    pub(super) iss_parameter_required: bool,
    pub(super) end_session: Option<EndSessionUrl>,
    pub(super) signing_key: Option<CoreRsaPrivateSigningKey>,
    pub(super) key_id: Option<String>,
    pub(super) client_id: String,
    pub(super) config: IdPortenConfig,
    pub(super) pending: PendingLogins,
    pub(super) hints: LogoutHints,
    pub(super) live_sessions: Mutex<HashMap<SessionId, LiveSession>>,
}

/// Why a callback was refused before the account layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
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
    pub(super) fn reason(self) -> &'static str {
        match self {
            Refusal::State => "STATE_MISMATCH",
            Refusal::Issuer => "ISSUER_MISMATCH",
            Refusal::Provider => "PROVIDER_ERROR",
            Refusal::Nonce => "NONCE_MISMATCH",
            Refusal::Token => "TOKEN_INVALID",
        }
    }

    pub(super) fn error(self) -> ApiError {
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

pub(super) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The issuer of an `--idporten-issuer` value (a discovery URL is cut back).
pub(super) fn issuer_of(raw: &str) -> String {
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
            hints: LogoutHints::new(MAX_LOGOUT_HINTS),
            live_sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The discovery document and JWKS of the provider, as a client.
    pub(super) async fn fetch_client(
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

    pub(super) fn client(&self) -> Arc<IdPortenClient> {
        self.client.read().expect("client lock").clone()
    }

    /// Read the provider's keys again (it has rotated them), at most once
    /// per [`KEY_REFRESH_INTERVAL`]; whether there are new ones to try.
    pub(super) async fn refresh_keys(&self) -> bool {
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
    pub(super) async fn begin(
        &self,
        store: &dyn store::EventStore,
        keyer: &keys::Keyer,
        binding: &str,
        lang: Lang,
    ) -> Result<String, store::StoreError> {
        let state = CsrfToken::new_random();
        let LoginSecrets { verifier, nonce } = login_secrets(keyer, state.secret());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let client = self.client();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || state,
                move || nonce,
            )
            .add_scope(Scope::new("profile".to_owned()))
            .add_auth_context_value(AuthenticationContextClass::new(LEVEL_HIGH.to_owned()))
            .set_pkce_challenge(challenge);
        if lang == Lang::Nb {
            request = request.add_ui_locale(LanguageTag::new("nb".to_owned()));
        }
        let (url, state, _) = request.url();
        self.pending
            .insert(
                store,
                state.secret(),
                PendingLogin {
                    binding: sha256(binding.as_bytes()),
                    started_ms: Utc::now().timestamp_millis(),
                },
            )
            .await?;
        Ok(url.to_string())
    }

    /// A `private_key_jwt` client assertion for the token endpoint.
    pub(super) fn client_assertion(
        &self,
        key: &CoreRsaPrivateSigningKey,
    ) -> Result<String, ApiError> {
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
            .map_err(|e| crate::services::internal("signing the client assertion", e))?;
        Ok(format!("{input}.{}", engine.encode(signature)))
    }

    /// Exchange the code and verify the ID token: the token and its
    /// verified claims (acr, pid, name).
    pub(super) async fn redeem(
        &self,
        code: String,
        login: LoginSecrets,
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

    /// Keep the `sid` of a new session for the provider's logout; drop
    /// those of sessions past their lifetime.
    pub(super) fn remember_session(
        &self,
        caller: Caller,
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
                sid,
                expires_at,
            },
        );
    }

    /// The sessions started under the provider's session `sid`, forgotten.
    pub(super) fn take_sessions_of(&self, sid: &str) -> Vec<Caller> {
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

    /// The ID token of `session` for `id_token_hint`, taken from the store
    /// (the login may have been on another node); `None` when none is kept
    /// or the store cannot be read (the logout then names the client).
    pub(super) async fn take_id_token(
        &self,
        store: &dyn store::EventStore,
        keyer: &keys::Keyer,
        session: SessionId,
    ) -> Option<IdPortenIdToken> {
        self.live_sessions
            .lock()
            .expect("live sessions lock")
            .remove(&session);
        match self
            .hints
            .take(store, keyer, session, Utc::now().timestamp_millis())
            .await
        {
            Ok(token) => token.and_then(|token| token.parse().ok()),
            Err(error) => {
                tracing::warn!(error = %error, "reading the ID token for single logout failed");
                None
            }
        }
    }

    /// The provider's end-session URL for a logout, if it has one.
    pub(super) fn end_session_url(&self, id_token: Option<&IdPortenIdToken>) -> Option<String> {
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
pub(super) struct VerifiedLogin {
    pub(super) sid: Option<String>,
    pub(super) acr: String,
    pub(super) pid: String,
    pub(super) name: String,
}
