//! The `/auth/idporten/*` routes: login, callback, logout and the
//! provider's front-channel logout.

use super::*;

/// State of the `/auth/idporten/*` routes.
#[derive(Clone)]
pub(super) struct IdPortenState {
    pub(super) app: App,
    pub(super) idporten: Option<Arc<IdPorten>>,
    /// The per-address login limits; each started login counts as one try.
    pub(super) limits: Option<Arc<Limits>>,
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
pub(super) struct CallbackParams {
    pub(super) code: Option<String>,
    pub(super) state: Option<String>,
    pub(super) iss: Option<String>,
    pub(super) error: Option<String>,
}

pub(super) fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

pub(super) fn login_cookie(value: &str) -> String {
    format!(
        "{LOGIN_COOKIE}={value}; Path=/auth/idporten; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
        PENDING_TTL.as_secs()
    )
}

pub(super) fn cleared_login_cookie() -> String {
    format!("{LOGIN_COOKIE}=; Path=/auth/idporten; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
}

pub(super) fn cleared_csrf_cookie() -> String {
    format!("{CSRF_COOKIE}=; Path=/; Max-Age=0; Secure; SameSite=Strict")
}

pub(super) fn redirect(location: &str) -> Response {
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
pub(super) fn existing_binding(headers: &HeaderMap) -> Option<&str> {
    crate::cookies::cookie(headers, LOGIN_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `GET /auth/idporten/login`: off to the provider.
pub(super) async fn login(
    State(state): State<IdPortenState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let answer = Answer::of(&headers);
    let Some(idporten) = state.idporten else {
        return not_configured(answer);
    };
    // Every start keeps a pending login in the store: one address may not
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
    let url = match idporten
        .begin(
            state.app.store.as_ref(),
            &state.app.keyer,
            &binding,
            answer.lang,
        )
        .await
    {
        Ok(url) => url,
        Err(error) => {
            let error = crate::services::store_error("starting an ID-porten login", error);
            return refusal_page(answer, status_of(&error), &error, "/");
        }
    };
    let mut response = redirect(&url);
    set_cookie(&mut response, &login_cookie(&binding));
    response
}

/// `GET /auth/idporten/callback`: the provider's answer.
pub(super) async fn callback(
    State(state): State<IdPortenState>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let answer = Answer::of(&headers);
    let Some(idporten) = state.idporten.clone() else {
        return not_configured(answer);
    };
    let back = idporten.config.post_login_url.clone();
    let (completed, written) =
        crate::positions::tracking(complete(&state.app, &idporten, &headers, params)).await;
    let mut response = match completed {
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
            // The next request sees the login, on whichever node.
            if written > 0 {
                response.headers_mut().insert(
                    crate::positions::POSITION_HEADER,
                    HeaderValue::from(written),
                );
                set_cookie(&mut response, &crate::positions::cookie(written));
            }
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

pub(super) async fn complete(
    app: &App,
    idporten: &IdPorten,
    headers: &HeaderMap,
    params: CallbackParams,
) -> Result<crate::services::IssuedSession, ApiError> {
    let state = params.state.as_deref().unwrap_or("");
    idporten
        .pending
        .take(
            app.store.as_ref(),
            state,
            crate::cookies::cookie(headers, LOGIN_COOKIE),
            Utc::now().timestamp_millis(),
        )
        .await
        .map_err(|error| crate::services::store_error("finishing an ID-porten login", error))?
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
    let (id_token, verified) = idporten
        .redeem(code, login_secrets(&app.keyer, state))
        .await
        .map_err(Refusal::error)?;
    let session = app
        .login_idporten(
            idporten.issuer(),
            &verified.pid,
            &verified.acr,
            &verified.name,
        )
        .await?;
    if let Some(caller) = app.authenticate(&session.token).await {
        let now_ms = Utc::now().timestamp_millis();
        if let Err(error) = idporten
            .hints
            .insert(
                app.store.as_ref(),
                &app.keyer,
                caller.session,
                &id_token.to_string(),
                session.expires_at.timestamp_millis(),
                now_ms,
            )
            .await
        {
            // The login stands; its logout will name the client instead.
            tracing::warn!(error = %error, "keeping the ID token for single logout failed");
        }
        idporten.remember_session(caller, verified.sid, session.expires_at);
    }
    Ok(session)
}

/// The session token of a logout request: a bearer token or the session
/// cookie (a top-level navigation cannot send the CSRF header; the cookie is
/// `SameSite=Strict`, so another site cannot send it either).
pub(super) fn logout_token(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned());
    }
    crate::cookies::cookie(headers, SESSION_COOKIE).map(str::to_owned)
}

/// `GET /auth/idporten/logout`: end the local session, then log out at
/// the provider (single logout).
pub(super) async fn logout(State(state): State<IdPortenState>, headers: HeaderMap) -> Response {
    let answer = Answer::of(&headers);
    let Some(idporten) = state.idporten else {
        return not_configured(answer);
    };
    // The session may have begun on another node: see it first.
    if let Err(not_reached) =
        crate::positions::reach_requested(state.app.projections(), &headers).await
    {
        return crate::server::not_reached_response(not_reached, |status, error| {
            refusal_page(answer, status, error, &idporten.config.post_login_url)
        });
    }
    let caller = match logout_token(&headers) {
        Some(token) => state.app.authenticate(&token).await,
        None => None,
    };
    let mut id_token = None;
    if let Some(caller) = &caller {
        if caller.method == LoginMethod::IdPorten {
            id_token = idporten
                .take_id_token(state.app.store.as_ref(), &state.app.keyer, caller.session)
                .await;
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
pub(super) struct FrontchannelParams {
    pub(super) iss: Option<String>,
    pub(super) sid: Option<String>,
}

/// `GET /auth/idporten/frontchannel-logout?iss=…&sid=…`: the provider
/// ended its session `sid` (the person logged out there or at another
/// service); the sessions started under it end here too. Loaded by the
/// provider in a hidden frame, so it relies on no cookie.
pub(super) async fn frontchannel_logout(
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
        // Their ID tokens are no longer needed.
        let _ = idporten
            .take_id_token(state.app.store.as_ref(), &state.app.keyer, caller.session)
            .await;
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
