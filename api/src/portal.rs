//! The portal for people at `GET /`: one HTML page, its style sheet and
//! scripts (plain HTML, CSS and JavaScript from `assets/portal/`, embedded
//! in the binary, no build step), talking to `/graphql` like any frontend.
//!
//! The page is served with a strict Content-Security-Policy (its own
//! scripts and styles only, requests to this server only, no frames, no
//! inline script) and a Permissions-Policy; the other security headers come
//! from the server's common layers. The scripts and the style sheet are
//! named in the page with a version (`?v=` and the first hex digits of
//! their SHA-256), so a browser may keep them for a year; the page itself is
//! revalidated on every load (`ETag`, `If-None-Match`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The portal page's `Content-Security-Policy`.
pub const PORTAL_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";
/// The portal's `Permissions-Policy`: no powerful feature is used.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), geolocation=(), \
     gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()";
/// `Cache-Control` of an asset asked for by its current version.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of the page, and of an asset asked for without its
/// version: keep, but ask again before use.
const REVALIDATE: &str = "no-cache";

const INDEX_TEMPLATE: &str = include_str!("../assets/portal/index.html");
/// The files under `/portal/`: name, content type, content.
const FILES: [(&str, &str, &str); 4] = [
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_str!("../assets/portal/portal.css"),
    ),
    (
        "strings.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/portal/strings.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/portal/live.js"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/portal/portal.js"),
    ),
];

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    version: String,
}

struct Portal {
    index: String,
    index_etag: String,
    assets: Vec<Asset>,
}

/// The first 16 hex digits of the SHA-256 of `bytes`.
fn version_of(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

impl Portal {
    fn new(idporten_configured: bool) -> Portal {
        let assets: Vec<Asset> = FILES
            .iter()
            .map(|(name, content_type, body)| Asset {
                name,
                content_type,
                body,
                version: version_of(body.as_bytes()),
            })
            .collect();
        let mut index = INDEX_TEMPLATE.replace(
            "{{IDPORTEN}}",
            if idporten_configured { "on" } else { "off" },
        );
        for asset in &assets {
            index = index.replace(
                &format!("{{{{{}}}}}", asset.name),
                &format!("/portal/{}?v={}", asset.name, asset.version),
            );
        }
        Portal {
            index_etag: format!("\"{}\"", version_of(index.as_bytes())),
            index,
            assets,
        }
    }
}

/// The portal's routes: `GET /` and `GET /portal/<file>`. The page says
/// whether "Log in with ID-porten" is offered.
pub fn router<S>(idporten_configured: bool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(index))
        .route("/portal/{file}", get(asset))
        .with_state(Arc::new(Portal::new(idporten_configured)))
}

/// Whether the browser's copy (`If-None-Match`) is the current one.
fn fresh(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn answer(
    headers: &HeaderMap,
    etag: &str,
    cache_control: &'static str,
    content_type: &'static str,
    body: Response,
) -> Response {
    let mut response = if fresh(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    out.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn index(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let mut response = answer(
        &headers,
        &portal.index_etag,
        REVALIDATE,
        "text/html; charset=utf-8",
        portal.index.clone().into_response(),
    );
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PORTAL_CSP),
    );
    out.insert(
        header::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    response
}

#[derive(Deserialize)]
struct VersionQuery {
    v: Option<String>,
}

async fn asset(
    State(portal): State<Arc<Portal>>,
    Path(file): Path<String>,
    Query(query): Query<VersionQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = portal.assets.iter().find(|a| a.name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cache_control = if query.v.as_deref() == Some(asset.version.as_str()) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    answer(
        &headers,
        &format!("\"{}\"", asset.version),
        cache_control,
        asset.content_type,
        asset.body.into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_each_asset_by_its_version_and_loads_nothing_from_other_hosts() {
        let portal = Portal::new(true);
        assert!(portal.index.contains("data-idporten=\"on\""));
        assert!(!portal.index.contains("{{"), "{}", portal.index);
        for asset in &portal.assets {
            let href = format!("/portal/{}?v={}", asset.name, asset.version);
            assert!(portal.index.contains(&href), "{href}");
        }
        assert!(Portal::new(false).index.contains("data-idporten=\"off\""));
        for text in std::iter::once(INDEX_TEMPLATE).chain(FILES.iter().map(|f| f.2)) {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_handler() {
        for tag in INDEX_TEMPLATE.split("<script").skip(1) {
            let (attributes, rest) = tag.split_once('>').unwrap();
            assert!(attributes.contains("src="), "an inline script: {tag}");
            assert!(rest.starts_with("</script>"));
        }
        let handlers = INDEX_TEMPLATE
            .split(" on")
            .skip(1)
            .filter(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            })
            .count();
        assert_eq!(handlers, 0, "no inline event handlers");
        assert!(!INDEX_TEMPLATE.contains("style="), "no inline style");
        assert!(!PORTAL_CSP.contains("unsafe"));
    }

    #[test]
    fn a_matching_etag_is_fresh() {
        let mut headers = HeaderMap::new();
        assert!(!fresh(&headers, "\"abc\""));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(fresh(&headers, "\"abc\""));
        assert!(!fresh(&headers, "\"abd\""));
    }
}
