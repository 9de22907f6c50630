//! The cookies of a browser session: the HttpOnly session cookie, the CSRF
//! cookie bound to its session, the device cookie that keeps a browser's
//! own login-throttling counter, and how a request's session token is found
//! (a bearer token, or the session cookie with its CSRF header).

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use keys::Keyer;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "caseledger_session";
/// Name of the cookie that holds the CSRF token (readable by the page).
pub const CSRF_COOKIE: &str = "caseledger_csrf";
/// Header that must carry the session's CSRF token (the CSRF cookie's
/// value) on cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in a request.
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

/// The token of an `Authorization: Bearer` header, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    auth.strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .map(str::trim)
}

/// The session token of a request: a bearer token, or the session cookie
/// when the CSRF header carries that session's CSRF token.
pub(crate) fn session_token(headers: &HeaderMap, keyer: &Keyer) -> Option<String> {
    if headers.contains_key(header::AUTHORIZATION) {
        return bearer(headers).map(str::to_owned);
    }
    let session = cookie(headers, SESSION_COOKIE)?;
    let csrf_header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())?;
    let expected = keyer.csrf_token(session);
    domain::constant_time_eq(expected.as_bytes(), csrf_header.trim().as_bytes())
        .then(|| session.to_owned())
}

/// The `Set-Cookie` values of a new session: the HttpOnly session cookie and
/// the CSRF cookie (the session's CSRF token, a MAC of its token under the
/// server secret) that the page sends back in the `X-CSRF-Token` header.
pub fn session_cookies(keyer: &Keyer, token: &str, expires_at: DateTime<Utc>) -> (String, String) {
    let expires = expires_at.format("%a, %d %b %Y %H:%M:%S GMT");
    (
        format!(
            "{SESSION_COOKIE}={token}; Path=/; Expires={expires}; HttpOnly; Secure; SameSite=Strict"
        ),
        format!(
            "{CSRF_COOKIE}={}; Path=/; Expires={expires}; Secure; SameSite=Strict",
            keyer.csrf_token(token)
        ),
    )
}

/// Name of the cookie that marks a browser that logged in before.
pub const DEVICE_COOKIE: &str = "caseledger_device";

/// The `Set-Cookie` value of a device cookie (a year; the browser keeps
/// its own counter against login throttling with that address).
pub fn device_cookie(token: &str) -> String {
    format!("{DEVICE_COOKIE}={token}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}
