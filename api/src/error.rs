//! `ApiError`: every refusal the API gives, with the contract's
//! `extensions.code`, extra fields, and a message in English and bokmål.

use async_graphql::ErrorExtensions;
use serde_json::{Value, json};

/// The code of [`ApiError::unavailable`].
pub const UNAVAILABLE: &str = "UNAVAILABLE";
/// How long a client is told to wait when the store cannot be reached.
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 5;

/// The language of messages, from `Accept-Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Nb,
}

impl Lang {
    /// `nb`, `no` or `nn` as the most preferred language means bokmål.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(header) = header else {
            return Lang::En;
        };
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "nb" | "no" | "nn" => Some(Lang::Nb),
                "en" | "*" => Some(Lang::En),
                _ => None,
            };
            if let Some(lang) = lang
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::En)
    }
}

/// A refusal or failure, as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The contract's `extensions.code`.
    pub code: &'static str,
    pub en: String,
    pub nb: String,
    /// Extra `extensions` entries (`field`, `violations`, `attemptsLeft`, ...).
    pub extensions: Vec<(&'static str, Value)>,
}

impl ApiError {
    pub fn new(code: &'static str, en: impl Into<String>, nb: impl Into<String>) -> ApiError {
        ApiError {
            code,
            en: en.into(),
            nb: nb.into(),
            extensions: Vec::new(),
        }
    }

    pub fn with(mut self, key: &'static str, value: Value) -> ApiError {
        self.extensions.push((key, value));
        self
    }

    pub fn message(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Nb => &self.nb,
        }
    }

    pub fn invalid_input(
        field: &'static str,
        en: impl Into<String>,
        nb: impl Into<String>,
    ) -> ApiError {
        ApiError::new("INVALID_INPUT", en, nb).with("field", json!(field))
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            "UNAUTHENTICATED",
            "You are not logged in, or your session has ended. Please log in.",
            "Du er ikke logget inn, eller økten din er avsluttet. Logg inn på nytt.",
        )
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            "NOT_FOUND",
            "We found no such application for the account you are logged in with.",
            "Vi fant ingen slik søknad for kontoen du er logget inn med.",
        )
    }

    pub fn flow_not_found() -> ApiError {
        ApiError::new(
            "FLOW_NOT_FOUND",
            "This registration or password reset is unknown or already finished. Please start again.",
            "Denne registreringen eller tilbakestillingen er ukjent eller allerede avsluttet. Start på nytt.",
        )
    }

    pub fn invalid_credentials() -> ApiError {
        ApiError::new(
            "INVALID_CREDENTIALS",
            "The email address or the password is wrong.",
            "E-postadressen eller passordet er feil.",
        )
    }

    pub fn too_many_attempts(retry_after_seconds: Option<i64>) -> ApiError {
        let error = ApiError::new(
            "TOO_MANY_ATTEMPTS",
            "Too many attempts. Please wait a little and try again.",
            "For mange forsøk. Vent litt og prøv igjen.",
        );
        match retry_after_seconds {
            Some(s) => error.with("retryAfterSeconds", json!(s.max(1))),
            None => error,
        }
    }

    /// A failure inside the server: says nothing of the cause (which is logged).
    pub fn internal() -> ApiError {
        ApiError::new(
            "INTERNAL",
            "Something went wrong on our side. Please try again later.",
            "Noe gikk galt hos oss. Prøv igjen senere.",
        )
    }

    /// The event store cannot be reached (an outage of the database, say):
    /// the request changed nothing and may be sent again. The HTTP answer
    /// is 503 with `Retry-After`.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            UNAVAILABLE,
            "The service cannot reach its data right now. Nothing was changed; please try again in a moment.",
            "Tjenesten får ikke tak i dataene sine akkurat nå. Ingenting ble endret; prøv igjen om litt.",
        )
        .with("retryAfterSeconds", json!(UNAVAILABLE_RETRY_AFTER_SECONDS))
    }

    /// The server is too busy to take this request now.
    pub fn overloaded() -> ApiError {
        ApiError::new(
            "TOO_MANY_ATTEMPTS",
            "The service is busy right now. Please try again in a moment.",
            "Tjenesten er travel akkurat nå. Prøv igjen om litt.",
        )
        .with("retryAfterSeconds", json!(1))
        .with("reason", json!("OVERLOADED"))
    }

    /// Render as an `async_graphql` error in `lang`.
    pub fn into_graphql(self, lang: Lang) -> async_graphql::Error {
        let message = self.message(lang).to_owned();
        let code = self.code;
        let extensions = self.extensions;
        async_graphql::Error::new(message).extend_with(move |_, e| {
            e.set("code", code);
            for (key, value) in &extensions {
                if let Ok(v) = async_graphql::Value::from_json(value.clone()) {
                    e.set(*key, v);
                }
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.en)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bokmal_is_chosen_when_preferred() {
        assert_eq!(
            Lang::from_accept_language(Some("nb-NO,nb;q=0.9,en;q=0.8")),
            Lang::Nb
        );
        assert_eq!(
            Lang::from_accept_language(Some("en-US,en;q=0.9,nb;q=0.5")),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language(Some("no")), Lang::Nb);
        assert_eq!(Lang::from_accept_language(None), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("de")), Lang::En);
    }
}
