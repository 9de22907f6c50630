//! Text shapes shared by the commands: instants, event descriptions, JSON
//! fields flattened for a person to read, and masking of personal values.

use chrono::{DateTime, SecondsFormat, Utc};
use migrations::json::{Disclosure, MASKED};
use serde_json::Value;

/// An instant as RFC 3339 in UTC (fractions only when there are any).
pub fn instant(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `PasswordAccountRegistered` -> `password account registered`.
pub fn describe(type_name: &str) -> String {
    let mut words = String::with_capacity(type_name.len() + 8);
    for (index, c) in type_name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                words.push(' ');
            }
            words.push(c.to_ascii_lowercase());
        } else {
            words.push(c);
        }
    }
    words
}

/// A personal value, or [`MASKED`].
pub fn personal(value: &str, disclosure: Disclosure) -> String {
    match disclosure {
        Disclosure::Masked => MASKED.to_owned(),
        Disclosure::Shown => value.to_owned(),
    }
}

/// The report line that says whether personal data is shown.
pub fn disclosure_line(disclosure: Disclosure) -> String {
    let how = match disclosure {
        Disclosure::Masked => "masked (--show-personal-data shows it)",
        Disclosure::Shown => "SHOWN",
    };
    format!("personal data: {how}")
}

/// The fields of a JSON object as `key=value` pairs, nested keys joined by
/// dots, strings unquoted unless they hold spaces or separators.
pub fn fields(value: &Value) -> String {
    let mut pairs = Vec::new();
    flatten("", value, &mut pairs);
    pairs.join(", ")
}

fn flatten(prefix: &str, value: &Value, pairs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, field) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, field, pairs);
            }
        }
        Value::String(text) => {
            let plain = !text.is_empty()
                && !text
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, ',' | '=' | '"'));
            if plain {
                pairs.push(format!("{prefix}={text}"));
            } else {
                pairs.push(format!("{prefix}={value}"));
            }
        }
        other => pairs.push(format!("{prefix}={other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_names_read_as_words() {
        assert_eq!(describe("FlowStarted"), "flow started");
        assert_eq!(
            describe("IdPortenAccountCreated"),
            "id porten account created"
        );
    }

    #[test]
    fn nested_fields_flatten_with_dots_and_quote_only_when_needed() {
        let value = json!({
            "kind": "WORK",
            "applicant": { "name": "Kari Nordmann", "birthDate": "1990-01-02" },
            "account": null,
            "attemptsLeft": 2,
        });
        assert_eq!(
            fields(&value),
            "account=null, applicant.birthDate=1990-01-02, applicant.name=\"Kari Nordmann\", \
             attemptsLeft=2, kind=WORK"
        );
    }
}
