//! The answers a browser or a JSON client gets when a login is refused:
//! a small page in English or bokmål, or a JSON error.

use super::*;

/// How the client wants its answer.
#[derive(Clone, Copy)]
pub(super) struct Answer {
    pub(super) lang: Lang,
    pub(super) json: bool,
}

impl Answer {
    pub(super) fn of(headers: &HeaderMap) -> Answer {
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

pub(super) fn not_configured(answer: Answer) -> Response {
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

pub(super) fn status_of(error: &ApiError) -> StatusCode {
    match error.code {
        "INSUFFICIENT_LEVEL" => StatusCode::FORBIDDEN,
        "INTERNAL" => StatusCode::INTERNAL_SERVER_ERROR,
        "TOO_MANY_ATTEMPTS" => StatusCode::SERVICE_UNAVAILABLE,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

pub(super) fn html_escape(text: &str) -> String {
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
pub(super) fn refusal_page(
    answer: Answer,
    status: StatusCode,
    error: &ApiError,
    back: &str,
) -> Response {
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
