//! The `Email` newtype: a syntactically plausible, normalised address.
//!
//! Normalisation: surrounding whitespace is trimmed and the whole address is
//! lower-cased (ASCII and Unicode). Providers treat the local part
//! case-insensitively in practice, and two accounts differing only in case
//! would confuse people. Dots and `+tags` are kept: they are meaningful at
//! some providers.

use std::fmt;

/// Longest address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Why a string is not an email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailError {
    Empty,
    TooLong,
    Malformed,
}

impl fmt::Display for EmailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmailError::Empty => write!(f, "the email address is empty"),
            EmailError::TooLong => write!(
                f,
                "the email address is longer than {MAX_EMAIL_LEN} characters"
            ),
            EmailError::Malformed => {
                write!(f, "this is not an email address (expected name@domain.tld)")
            }
        }
    }
}

/// A valid, normalised email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// The address that was here and is erased ([`crate::ERASED`]).
    pub fn erased() -> Email {
        Email(crate::ERASED.to_owned())
    }

    /// Whether this address was erased.
    pub fn is_erased(&self) -> bool {
        self.0 == crate::ERASED
    }

    /// An address that [`Email::parse`] gave before and that comes back
    /// unaltered (opened from an authenticated seal): not parsed again.
    pub fn from_authenticated(normalised: String) -> Email {
        Email(normalised)
    }

    /// An address as stored: [`Email::parse`], or [`Email::erased`].
    pub fn from_recorded(raw: &str) -> Result<Email, EmailError> {
        if raw == crate::ERASED {
            Ok(Email::erased())
        } else {
            Email::parse(raw)
        }
    }

    /// Parse and normalise.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        let normalised = trimmed.to_lowercase();
        let (local, domain) = normalised.rsplit_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[],;:\\\"".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels.last().is_some_and(|tld| tld.chars().count() >= 2);
        if local_ok && domain_ok {
            Ok(Email(normalised))
        } else {
            Err(EmailError::Malformed)
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(
            Email::parse("  Kari.Nordmann@Example.NO ")
                .unwrap()
                .as_str(),
            "kari.nordmann@example.no"
        );
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "a@b",
            "@example.no",
            "a@.no",
            "a b@example.no",
            "a..b@example.no",
            "a@exa mple.no",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refuses_over_long_addresses() {
        let long = format!("{}@example.no", "a".repeat(300));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }
}
