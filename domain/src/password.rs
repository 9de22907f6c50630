//! Password rules and the `Password` newtype: the seed FAQ's composition
//! rules or a NIST SP 800-63B policy, checked in full so a person learns every
//! rule a password breaks at once.
//!
//! Two policies exist:
//!
//! - [`PasswordPolicyKind::Seed`] (the default) is exactly the FAQ of the
//!   existing login: at least 8 characters, at least one capital letter A-Z,
//!   one lower-case letter a-z and one digit 0-9, and nothing but those ASCII
//!   letters and digits. Æ, Ø, Å, letters of other alphabets, spaces and
//!   special characters such as `@ % &` are refused. The input is checked as
//!   typed, without normalisation, so a full-width `Ａ` is refused rather than
//!   silently read as `A`.
//! - [`PasswordPolicyKind::Nist`] follows NIST SP 800-63B: no composition
//!   rules, any character, a configurable minimum length (8 to 15), length
//!   counted in Unicode characters after NFKC normalisation, a blocklist of
//!   common passwords, and no password built from the account's email.
//!
//! Both policies allow at most [`MAX_PASSWORD_CHARS`] (128) characters, well
//! above the 64 that NIST asks verifiers to allow. Before anything else an
//! input longer than [`MAX_PASSWORD_BYTES`] (1024) bytes is refused with
//! [`PasswordViolation::TooLong`] alone, without looking at its content, so a
//! huge input costs one length comparison.
//!
//! A parsed [`Password`] holds the form that is hashed: the input itself under
//! Seed (ASCII letters and digits are already in NFKC form) and the NFKC form
//! under Nist. [`normalise_for_verification`] gives the same form for a
//! password typed at login, whatever policy is in force.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// Most characters a password may have, under either policy.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Longest input, in bytes, whose content is examined at all. Anything longer
/// is refused with [`PasswordViolation::TooLong`] alone. 1024 bytes is twice
/// what 128 characters of at most 4 bytes each can take, which leaves room for
/// decomposed input (a letter followed by combining accents) that NFKC
/// composes into fewer characters.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Fewest characters a password may have under the seed policy.
pub const SEED_MIN_LENGTH: usize = 8;

/// Lowest minimum length the NIST policy can be configured with.
pub const NIST_MIN_LENGTH_LOWEST: usize = 8;

/// Highest minimum length the NIST policy can be configured with.
pub const NIST_MIN_LENGTH_HIGHEST: usize = 15;

/// The NIST minimum to use when nothing else is configured: 15 characters,
/// because the password is the only factor of a password login
/// (SP 800-63B rev. 4).
pub const NIST_DEFAULT_MIN_LENGTH: usize = 15;

/// Under the NIST policy, a password containing the email's local part (the
/// text before the last `@`) is refused when that local part has at least
/// this many characters. Shorter local parts (`ola`, `li`) occur inside too
/// many ordinary words to be refused; a password equal to the whole email is
/// refused whatever its length.
pub const EMAIL_LOCAL_PART_MIN_CHARS: usize = 4;

/// The shipped blocklist: common passwords, lower-case, NFKC, one per line,
/// sorted.
const COMMON_PASSWORDS_TEXT: &str = include_str!("common-passwords.txt");

/// Which rules a new password must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PasswordPolicyKind {
    /// The FAQ's rules: 8 to 128 characters, at least one A-Z, one a-z and
    /// one 0-9, and nothing but ASCII letters and digits.
    #[default]
    Seed,
    /// NIST SP 800-63B: `min_length` to 128 characters after NFKC, any
    /// characters, not a common password, not built from the email.
    ///
    /// Build it with [`PasswordPolicyKind::nist`], which refuses a minimum
    /// outside 8..=15. A value written directly that lies outside that range
    /// is clamped into it when passwords are checked, so the policy never
    /// falls below 8 characters.
    Nist {
        /// Fewest characters, counted after NFKC normalisation.
        min_length: usize,
    },
}

/// A NIST minimum length outside 8..=15 was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NistMinLengthOutOfRange {
    /// The minimum length that was asked for.
    pub requested: usize,
}

impl fmt::Display for NistMinLengthOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the minimum password length must be between {NIST_MIN_LENGTH_LOWEST} and \
             {NIST_MIN_LENGTH_HIGHEST} characters, not {}",
            self.requested
        )
    }
}

impl std::error::Error for NistMinLengthOutOfRange {}

impl PasswordPolicyKind {
    /// The NIST policy with the given minimum length, which must lie in
    /// 8..=15.
    pub fn nist(min_length: usize) -> Result<PasswordPolicyKind, NistMinLengthOutOfRange> {
        if (NIST_MIN_LENGTH_LOWEST..=NIST_MIN_LENGTH_HIGHEST).contains(&min_length) {
            Ok(PasswordPolicyKind::Nist { min_length })
        } else {
            Err(NistMinLengthOutOfRange {
                requested: min_length,
            })
        }
    }

    /// Fewest characters a password may have under this policy.
    pub fn min_length(&self) -> usize {
        match self {
            PasswordPolicyKind::Seed => SEED_MIN_LENGTH,
            PasswordPolicyKind::Nist { min_length } => {
                (*min_length).clamp(NIST_MIN_LENGTH_LOWEST, NIST_MIN_LENGTH_HIGHEST)
            }
        }
    }

    /// Most characters a password may have under this policy.
    pub fn max_length(&self) -> usize {
        MAX_PASSWORD_CHARS
    }

    /// The rules of this policy, for a registration form to show.
    pub fn describe(&self) -> PolicyDescription {
        match self {
            PasswordPolicyKind::Seed => PolicyDescription {
                kind: "seed",
                min_length: self.min_length(),
                max_length: self.max_length(),
                requires_uppercase: true,
                requires_lowercase: true,
                requires_digit: true,
                allowed_characters: "Only the letters A-Z and a-z and the digits 0-9. \
                    Special characters such as @, % or &, spaces, the letters Æ, Ø and Å, \
                    and letters from other alphabets such as Cyrillic or Greek are not allowed.",
                checks_common_passwords: false,
            },
            PasswordPolicyKind::Nist { .. } => PolicyDescription {
                kind: "nist",
                min_length: self.min_length(),
                max_length: self.max_length(),
                requires_uppercase: false,
                requires_lowercase: false,
                requires_digit: false,
                allowed_characters: "Any characters, including spaces, special characters \
                    and letters from any alphabet. Common passwords and passwords made from \
                    your email address are not allowed.",
                checks_common_passwords: true,
            },
        }
    }
}

/// The rules of a policy in plain values, as the API serves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDescription {
    /// `"seed"` or `"nist"`.
    pub kind: &'static str,
    /// Fewest characters.
    pub min_length: usize,
    /// Most characters.
    pub max_length: usize,
    /// At least one capital letter A-Z is needed.
    pub requires_uppercase: bool,
    /// At least one lower-case letter a-z is needed.
    pub requires_lowercase: bool,
    /// At least one digit 0-9 is needed.
    pub requires_digit: bool,
    /// Which characters may be used, in English words.
    pub allowed_characters: &'static str,
    /// Common passwords are refused.
    pub checks_common_passwords: bool,
}

/// One rule a password breaks. The declaration order is the order in which
/// [`Password::parse`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PasswordViolation {
    /// Fewer characters than the policy's minimum.
    TooShort,
    /// More than [`MAX_PASSWORD_CHARS`] characters (or more than
    /// [`MAX_PASSWORD_BYTES`] bytes).
    TooLong,
    /// Seed: no capital letter A-Z.
    MissingUppercase,
    /// Seed: no lower-case letter a-z.
    MissingLowercase,
    /// Seed: no digit 0-9.
    MissingDigit,
    /// Seed: a character other than A-Z, a-z or 0-9.
    ForbiddenCharacter,
    /// Nist: the password is in the blocklist of common passwords.
    CommonPassword,
    /// Nist: the password is the email address or contains its local part.
    ContainsEmail,
}

impl PasswordViolation {
    /// Every violation, in reporting order.
    pub const ALL: [PasswordViolation; 8] = [
        PasswordViolation::TooShort,
        PasswordViolation::TooLong,
        PasswordViolation::MissingUppercase,
        PasswordViolation::MissingLowercase,
        PasswordViolation::MissingDigit,
        PasswordViolation::ForbiddenCharacter,
        PasswordViolation::CommonPassword,
        PasswordViolation::ContainsEmail,
    ];

    /// The code the API reports in `extensions.violations`.
    pub fn code(&self) -> &'static str {
        match self {
            PasswordViolation::TooShort => "TOO_SHORT",
            PasswordViolation::TooLong => "TOO_LONG",
            PasswordViolation::MissingUppercase => "MISSING_UPPERCASE",
            PasswordViolation::MissingLowercase => "MISSING_LOWERCASE",
            PasswordViolation::MissingDigit => "MISSING_DIGIT",
            PasswordViolation::ForbiddenCharacter => "FORBIDDEN_CHARACTER",
            PasswordViolation::CommonPassword => "COMMON_PASSWORD",
            PasswordViolation::ContainsEmail => "CONTAINS_EMAIL",
        }
    }

    /// The rule in English, as a person reads it next to the form.
    pub fn message_en(&self, policy: &PasswordPolicyKind) -> String {
        match self {
            PasswordViolation::TooShort => format!(
                "The password must be at least {} characters long.",
                policy.min_length()
            ),
            PasswordViolation::TooLong => format!(
                "The password can be at most {} characters long.",
                policy.max_length()
            ),
            PasswordViolation::MissingUppercase => {
                "The password must contain at least one capital letter (A-Z).".to_owned()
            }
            PasswordViolation::MissingLowercase => {
                "The password must contain at least one lower-case letter (a-z).".to_owned()
            }
            PasswordViolation::MissingDigit => {
                "The password must contain at least one number (0-9).".to_owned()
            }
            PasswordViolation::ForbiddenCharacter => match policy {
                PasswordPolicyKind::Seed => "The password can only contain the letters A-Z \
                    and a-z and the numbers 0-9. Special characters such as @, % or &, \
                    spaces, the letters Æ, Ø and Å, and letters from other alphabets such \
                    as Cyrillic or Greek are not allowed."
                    .to_owned(),
                PasswordPolicyKind::Nist { .. } => {
                    "The password contains a character that is not allowed.".to_owned()
                }
            },
            PasswordViolation::CommonPassword => {
                "This password is too common and easy to guess. Please choose another one."
                    .to_owned()
            }
            PasswordViolation::ContainsEmail => format!(
                "The password must not be your email address, or contain the part of it \
                 before the @ when that part has {EMAIL_LOCAL_PART_MIN_CHARS} or more \
                 characters."
            ),
        }
    }

    /// The rule in Norwegian (bokmål), as a person reads it next to the form.
    pub fn message_nb(&self, policy: &PasswordPolicyKind) -> String {
        match self {
            PasswordViolation::TooShort => {
                format!("Passordet må ha minst {} tegn.", policy.min_length())
            }
            PasswordViolation::TooLong => {
                format!("Passordet kan ha høyst {} tegn.", policy.max_length())
            }
            PasswordViolation::MissingUppercase => {
                "Passordet må inneholde minst én stor bokstav (A-Z).".to_owned()
            }
            PasswordViolation::MissingLowercase => {
                "Passordet må inneholde minst én liten bokstav (a-z).".to_owned()
            }
            PasswordViolation::MissingDigit => {
                "Passordet må inneholde minst ett tall (0-9).".to_owned()
            }
            PasswordViolation::ForbiddenCharacter => match policy {
                PasswordPolicyKind::Seed => "Passordet kan bare inneholde bokstavene A-Z og \
                    a-z og tallene 0-9. Spesialtegn som @, % eller &, mellomrom, bokstavene \
                    Æ, Ø og Å og bokstaver fra andre alfabeter, som det kyrilliske eller \
                    greske, er ikke tillatt."
                    .to_owned(),
                PasswordPolicyKind::Nist { .. } => {
                    "Passordet inneholder et tegn som ikke er tillatt.".to_owned()
                }
            },
            PasswordViolation::CommonPassword => {
                "Dette passordet er for vanlig og lett å gjette. Velg et annet passord.".to_owned()
            }
            PasswordViolation::ContainsEmail => format!(
                "Passordet kan ikke være e-postadressen din, eller inneholde delen av den \
                 før @ når den delen har {EMAIL_LOCAL_PART_MIN_CHARS} tegn eller flere."
            ),
        }
    }
}

/// A password that obeys the policy it was parsed under. It holds the form
/// that is hashed (see the module documentation); `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Check `raw` against `policy` and return either the password or every
    /// rule it breaks, in [`PasswordViolation`] declaration order, each once.
    ///
    /// `email` is the address the account registers with; the NIST policy
    /// refuses a password equal to it (ignoring case) or containing its local
    /// part of at least [`EMAIL_LOCAL_PART_MIN_CHARS`] characters (ignoring
    /// case, after NFKC). The seed policy ignores it, as the FAQ does.
    ///
    /// An input longer than [`MAX_PASSWORD_BYTES`] bytes gives
    /// `[TooLong]` without any other check.
    pub fn parse(
        raw: &str,
        policy: &PasswordPolicyKind,
        email: Option<&str>,
    ) -> Result<Password, Vec<PasswordViolation>> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(vec![PasswordViolation::TooLong]);
        }
        match policy {
            PasswordPolicyKind::Seed => parse_seed(raw, policy),
            PasswordPolicyKind::Nist { .. } => parse_nist(raw, policy, email),
        }
    }

    /// The password, in the form that is hashed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The form of a password typed at login that is compared with the stored
/// hash: its NFKC normalisation, which is what [`Password::as_str`] holds for
/// a password accepted under either policy. Borrowed when the input is
/// already normalised (always so for ASCII). Callers refuse over-long input
/// first; the work is linear in the input.
pub fn normalise_for_verification(raw: &str) -> Cow<'_, str> {
    match is_nfkc_quick(raw.chars()) {
        IsNormalized::Yes => Cow::Borrowed(raw),
        IsNormalized::No | IsNormalized::Maybe => Cow::Owned(raw.nfkc().collect()),
    }
}

/// Whether `candidate` (compared in lower case after NFKC) is in the shipped
/// blocklist of common passwords.
pub fn is_common_password(candidate: &str) -> bool {
    let folded: String = candidate.nfkc().collect::<String>().to_lowercase();
    common_passwords().contains(folded.as_str())
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS_TEXT
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

fn parse_seed(raw: &str, policy: &PasswordPolicyKind) -> Result<Password, Vec<PasswordViolation>> {
    let mut length = 0usize;
    let (mut has_upper, mut has_lower, mut has_digit, mut has_forbidden) =
        (false, false, false, false);
    for c in raw.chars() {
        length += 1;
        match c {
            'A'..='Z' => has_upper = true,
            'a'..='z' => has_lower = true,
            '0'..='9' => has_digit = true,
            _ => has_forbidden = true,
        }
    }
    let mut violations = Vec::new();
    if length < policy.min_length() {
        violations.push(PasswordViolation::TooShort);
    }
    if length > policy.max_length() {
        violations.push(PasswordViolation::TooLong);
    }
    if !has_upper {
        violations.push(PasswordViolation::MissingUppercase);
    }
    if !has_lower {
        violations.push(PasswordViolation::MissingLowercase);
    }
    if !has_digit {
        violations.push(PasswordViolation::MissingDigit);
    }
    if has_forbidden {
        violations.push(PasswordViolation::ForbiddenCharacter);
    }
    if violations.is_empty() {
        Ok(Password(raw.to_owned()))
    } else {
        Err(violations)
    }
}

fn parse_nist(
    raw: &str,
    policy: &PasswordPolicyKind,
    email: Option<&str>,
) -> Result<Password, Vec<PasswordViolation>> {
    let normalised: String = raw.nfkc().collect();
    let length = normalised.chars().count();
    let folded = normalised.to_lowercase();
    let mut violations = Vec::new();
    if length < policy.min_length() {
        violations.push(PasswordViolation::TooShort);
    }
    if length > policy.max_length() {
        violations.push(PasswordViolation::TooLong);
    }
    if common_passwords().contains(folded.as_str()) {
        violations.push(PasswordViolation::CommonPassword);
    }
    if email.is_some_and(|email| is_built_from_email(&folded, email)) {
        violations.push(PasswordViolation::ContainsEmail);
    }
    if violations.is_empty() {
        Ok(Password(normalised))
    } else {
        Err(violations)
    }
}

/// `folded_password` is already NFKC and lower-case.
fn is_built_from_email(folded_password: &str, email: &str) -> bool {
    let folded_email = email.trim().nfkc().collect::<String>().to_lowercase();
    if folded_email.is_empty() {
        return false;
    }
    if folded_password == folded_email {
        return true;
    }
    let local_part = folded_email
        .rsplit_once('@')
        .map_or(folded_email.as_str(), |(local, _domain)| local);
    local_part.chars().count() >= EMAIL_LOCAL_PART_MIN_CHARS && folded_password.contains(local_part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    use PasswordViolation::*;

    const SEED: PasswordPolicyKind = PasswordPolicyKind::Seed;

    fn nist(min_length: usize) -> PasswordPolicyKind {
        PasswordPolicyKind::nist(min_length).expect("a minimum within 8..=15")
    }

    fn violations(
        raw: &str,
        policy: &PasswordPolicyKind,
        email: Option<&str>,
    ) -> Vec<PasswordViolation> {
        match Password::parse(raw, policy, email) {
            Ok(_) => Vec::new(),
            Err(violations) => violations,
        }
    }

    // ---- Seed policy -------------------------------------------------------

    #[test]
    fn seed_policy_is_the_default() {
        assert_eq!(PasswordPolicyKind::default(), PasswordPolicyKind::Seed);
    }

    #[test]
    fn seed_policy_accepts_letters_and_digits_with_one_of_each_kind() {
        // given a password of ASCII letters and digits, 8 characters long
        // when it is parsed under the seed policy
        let password = Password::parse("Sommer24", &SEED, None);
        // then it is accepted unchanged
        assert_eq!(password.expect("accepted").as_str(), "Sommer24");
    }

    #[test]
    fn seed_policy_refuses_at_sign_percent_and_ampersand() {
        for raw in ["Passw0rd@", "Passw0rd%", "Passw0rd&", "P@ssw0rd1"] {
            assert_eq!(
                violations(raw, &SEED, None),
                vec![ForbiddenCharacter],
                "{raw}"
            );
        }
    }

    #[test]
    fn seed_policy_refuses_norwegian_letters() {
        for raw in [
            "Blåbær2024",
            "Søndag2024",
            "Æble2024X",
            "ØRRETfisk1",
            "ÅpenDør2024",
        ] {
            assert_eq!(
                violations(raw, &SEED, None),
                vec![ForbiddenCharacter],
                "{raw}"
            );
        }
    }

    #[test]
    fn seed_policy_refuses_cyrillic_and_greek() {
        // given passwords that otherwise follow the rules but hold a Cyrillic
        // or Greek letter (including the Cyrillic А that looks like a Latin A)
        for raw in ["Passw0rdд", "Passw0rdλ", "\u{0410}bcdefg1h", "Ωmega2024x"] {
            // then the only complaint is the forbidden character
            let found = violations(raw, &SEED, None);
            assert!(found.contains(&ForbiddenCharacter), "{raw}: {found:?}");
        }
        // and a password with nothing else in it misses the capital letter too
        assert_eq!(
            violations("\u{0410}bcdefg1h", &SEED, None),
            vec![MissingUppercase, ForbiddenCharacter]
        );
    }

    #[test]
    fn seed_policy_refuses_spaces_and_full_width_look_alikes() {
        assert_eq!(
            violations("Pass word1", &SEED, None),
            vec![ForbiddenCharacter]
        );
        // a full-width Ａ is not read as A: the seed policy does not normalise
        assert_eq!(
            violations("\u{FF21}bcdefg1h", &SEED, None),
            vec![MissingUppercase, ForbiddenCharacter]
        );
    }

    #[test]
    fn seed_policy_lists_every_rule_broken() {
        // given "æ": one character, no A-Z, no a-z (æ is not among a-z), no digit
        // when parsed under the seed policy
        // then every broken rule is reported, in declaration order
        assert_eq!(
            violations("æ", &SEED, None),
            vec![
                TooShort,
                MissingUppercase,
                MissingLowercase,
                MissingDigit,
                ForbiddenCharacter
            ]
        );
        assert_eq!(
            violations("", &SEED, None),
            vec![TooShort, MissingUppercase, MissingLowercase, MissingDigit]
        );
        assert_eq!(
            violations("abc", &SEED, None),
            vec![TooShort, MissingUppercase, MissingDigit]
        );
    }

    #[test]
    fn seed_policy_requires_eight_characters() {
        assert_eq!(violations("Abcdef1", &SEED, None), vec![TooShort]);
        assert!(Password::parse("Abcdefg1", &SEED, None).is_ok());
    }

    #[test]
    fn seed_policy_allows_128_characters_and_refuses_129() {
        let longest = format!("Aa1{}", "x".repeat(125));
        assert!(Password::parse(&longest, &SEED, None).is_ok());
        let too_long = format!("{longest}x");
        assert_eq!(violations(&too_long, &SEED, None), vec![TooLong]);
    }

    #[test]
    fn seed_policy_requires_a_capital_a_lower_case_letter_and_a_digit() {
        assert_eq!(violations("abcdefg1", &SEED, None), vec![MissingUppercase]);
        assert_eq!(violations("ABCDEFG1", &SEED, None), vec![MissingLowercase]);
        assert_eq!(violations("Abcdefgh", &SEED, None), vec![MissingDigit]);
        assert_eq!(
            violations("12345678", &SEED, None),
            vec![MissingUppercase, MissingLowercase]
        );
    }

    #[test]
    fn seed_policy_checks_neither_common_passwords_nor_the_email() {
        // the FAQ's rules are exactly the seed policy: nothing more
        assert!(Password::parse("Password1", &SEED, Some("password1@example.no")).is_ok());
    }

    // ---- Length guard --------------------------------------------------------

    #[test]
    fn huge_input_is_refused_as_too_long_and_nothing_else() {
        // given ten megabytes of characters that break every other rule
        let huge = "æ".repeat(5 * 1024 * 1024);
        // then only TooLong is reported, under either policy
        assert_eq!(violations(&huge, &SEED, None), vec![TooLong]);
        assert_eq!(
            violations(&huge, &nist(8), Some("æææææ@example.no")),
            vec![TooLong]
        );
    }

    #[test]
    fn input_at_the_byte_limit_is_still_checked_rule_by_rule() {
        // given exactly 1024 bytes of "æ" (512 characters)
        let at_limit = "æ".repeat(MAX_PASSWORD_BYTES / 2);
        assert_eq!(at_limit.len(), MAX_PASSWORD_BYTES);
        // then every rule it breaks is listed
        assert_eq!(
            violations(&at_limit, &SEED, None),
            vec![
                TooLong,
                MissingUppercase,
                MissingLowercase,
                MissingDigit,
                ForbiddenCharacter
            ]
        );
        // and one byte more gives TooLong alone
        let over = format!("{at_limit}a");
        assert_eq!(violations(&over, &SEED, None), vec![TooLong]);
    }

    // ---- NIST policy ---------------------------------------------------------

    #[test]
    fn nist_counts_characters_after_nfkc() {
        let policy = nist(8);
        // given "e" + combining acute, eight times: 16 code points, 8 after NFKC
        let decomposed = "e\u{301}".repeat(8);
        assert_eq!(decomposed.chars().count(), 16);
        let password = Password::parse(&decomposed, &policy, None).expect("8 characters");
        assert_eq!(password.as_str(), "é".repeat(8));
        // and seven of them are 14 code points but 7 characters: too short
        assert_eq!(
            violations(&"e\u{301}".repeat(7), &policy, None),
            vec![TooShort]
        );
        // given the ligature "ﬃ" three times: 3 code points, 9 characters after NFKC
        assert!(Password::parse("ﬃﬃﬃ", &policy, None).is_ok());
        // and a password of 4-byte characters counts characters, not bytes
        assert_eq!(violations(&"😀".repeat(7), &policy, None), vec![TooShort]);
        assert!(Password::parse(&"😀".repeat(8), &policy, None).is_ok());
    }

    #[test]
    fn nist_allows_64_characters_and_any_script() {
        let policy = nist(15);
        // given 64 characters mixing scripts, spaces and symbols
        let mixed: String = "Blåbær og Ωmega, Москва & 東京 @ 100% 😀 "
            .chars()
            .cycle()
            .take(64)
            .collect();
        assert_eq!(mixed.chars().count(), 64);
        // then it is accepted as it stands
        let password = Password::parse(&mixed, &policy, Some("kari.nordmann@example.no"));
        assert_eq!(password.expect("accepted").as_str(), mixed);
        // and 128 characters are allowed, 129 are not
        let longest: String = "Москва ".chars().cycle().take(128).collect();
        assert!(Password::parse(&longest, &policy, None).is_ok());
        let too_long: String = "Москва ".chars().cycle().take(129).collect();
        assert_eq!(violations(&too_long, &policy, None), vec![TooLong]);
    }

    #[test]
    fn nist_needs_no_capital_letter_digit_or_special_character() {
        assert!(Password::parse("correct horse battery staple", &nist(15), None).is_ok());
    }

    #[test]
    fn nist_refuses_common_passwords() {
        let policy = nist(8);
        for raw in [
            "password123",
            "PASSORD123",
            "Sommer2024",
            "qwertyuiop",
            "iloveyou",
            "123456789",
            // full-width letters and digits fold to "password123" under NFKC
            "\u{FF50}\u{FF41}\u{FF53}\u{FF53}\u{FF57}\u{FF4F}\u{FF52}\u{FF44}\u{FF11}\u{FF12}\u{FF13}",
        ] {
            assert_eq!(
                violations(raw, &policy, None),
                vec![CommonPassword],
                "{raw}"
            );
        }
        // and a short common password breaks two rules
        assert_eq!(
            violations("123456", &policy, None),
            vec![TooShort, CommonPassword]
        );
    }

    #[test]
    fn nist_min_length_is_configurable_8_to_15() {
        assert_eq!(
            PasswordPolicyKind::nist(7),
            Err(NistMinLengthOutOfRange { requested: 7 })
        );
        assert_eq!(
            PasswordPolicyKind::nist(16),
            Err(NistMinLengthOutOfRange { requested: 16 })
        );
        for min in 8..=15 {
            let policy = PasswordPolicyKind::nist(min).expect("in range");
            assert_eq!(policy.min_length(), min);
            let just_short: String = "ø".repeat(min - 1);
            assert_eq!(
                violations(&just_short, &policy, None),
                vec![TooShort],
                "min {min}"
            );
            assert!(
                Password::parse(&"ø".repeat(min), &policy, None).is_ok(),
                "min {min}"
            );
        }
    }

    #[test]
    fn nist_policy_written_directly_with_a_minimum_out_of_range_is_clamped() {
        let too_weak = PasswordPolicyKind::Nist { min_length: 2 };
        assert_eq!(too_weak.min_length(), 8);
        assert_eq!(violations("øøøøøøø", &too_weak, None), vec![TooShort]);
        assert_eq!(PasswordPolicyKind::Nist { min_length: 99 }.min_length(), 15);
    }

    #[test]
    fn nist_refuses_the_email_itself_in_any_case() {
        // a local part of three characters is not refused inside a password,
        // but the whole address is
        let email = "ola@example.no";
        assert_eq!(
            violations("OLA@Example.NO", &nist(8), Some(email)),
            vec![ContainsEmail]
        );
    }

    #[test]
    fn nist_refuses_a_password_containing_a_local_part_of_four_or_more_characters() {
        let email = "Kari.Nordmann@example.no";
        assert_eq!(
            violations("my name is KARI.NORDMANN!", &nist(8), Some(email)),
            vec![ContainsEmail]
        );
        assert_eq!(
            violations("kari.nordmann", &nist(8), Some(email)),
            vec![ContainsEmail]
        );
        assert_eq!(
            violations("xxxxkarixxx", &nist(8), Some("kari@example.no")),
            vec![ContainsEmail]
        );
    }

    #[test]
    fn nist_allows_a_local_part_of_fewer_than_four_characters_inside_a_password() {
        assert!(Password::parse("ola er en fin gutt", &nist(8), Some("ola@example.no")).is_ok());
    }

    #[test]
    fn nist_lists_every_rule_broken() {
        assert_eq!(
            violations("Passord", &nist(8), Some("passord@example.no")),
            vec![TooShort, CommonPassword, ContainsEmail]
        );
    }

    #[test]
    fn nist_keeps_the_nfkc_form_which_login_normalisation_reproduces() {
        let typed = "Cafe\u{301} ﬁne 2024";
        let password = Password::parse(typed, &nist(8), None).expect("accepted");
        assert_eq!(password.as_str(), "Café fine 2024");
        assert_eq!(normalise_for_verification(typed), password.as_str());
        // and ASCII is borrowed, not copied
        assert!(matches!(
            normalise_for_verification("Sommer24"),
            Cow::Borrowed("Sommer24")
        ));
    }

    // ---- Password, violations and descriptions -------------------------------

    #[test]
    fn password_debug_never_shows_the_password() {
        let password = Password::parse("Hemmelig42", &SEED, None).expect("accepted");
        assert_eq!(format!("{password:?}"), "Password(***)");
        assert!(!format!("{:?}", Some(&password)).contains("Hemmelig"));
    }

    #[test]
    fn violation_codes_match_the_api_contract() {
        let codes: Vec<&str> = PasswordViolation::ALL
            .iter()
            .map(PasswordViolation::code)
            .collect();
        assert_eq!(
            codes,
            [
                "TOO_SHORT",
                "TOO_LONG",
                "MISSING_UPPERCASE",
                "MISSING_LOWERCASE",
                "MISSING_DIGIT",
                "FORBIDDEN_CHARACTER",
                "COMMON_PASSWORD",
                "CONTAINS_EMAIL",
            ]
        );
        let mut sorted = PasswordViolation::ALL;
        sorted.sort();
        assert_eq!(sorted, PasswordViolation::ALL, "ALL is in reporting order");
    }

    #[test]
    fn every_violation_has_a_distinct_message_in_english_and_norwegian() {
        for policy in [SEED, nist(12)] {
            let english: BTreeSet<String> = PasswordViolation::ALL
                .iter()
                .map(|v| v.message_en(&policy))
                .collect();
            let norwegian: BTreeSet<String> = PasswordViolation::ALL
                .iter()
                .map(|v| v.message_nb(&policy))
                .collect();
            assert_eq!(english.len(), PasswordViolation::ALL.len());
            assert_eq!(norwegian.len(), PasswordViolation::ALL.len());
            assert!(english.iter().chain(&norwegian).all(|m| m.ends_with('.')));
        }
    }

    #[test]
    fn length_messages_name_the_policy_limits() {
        assert_eq!(
            TooShort.message_en(&SEED),
            "The password must be at least 8 characters long."
        );
        assert_eq!(TooShort.message_nb(&SEED), "Passordet må ha minst 8 tegn.");
        assert_eq!(
            TooShort.message_nb(&nist(15)),
            "Passordet må ha minst 15 tegn."
        );
        assert_eq!(
            TooLong.message_nb(&SEED),
            "Passordet kan ha høyst 128 tegn."
        );
    }

    #[test]
    fn forbidden_character_message_names_what_is_not_allowed() {
        let english = ForbiddenCharacter.message_en(&SEED);
        for needle in [
            "A-Z",
            "a-z",
            "0-9",
            "@",
            "%",
            "&",
            "Æ, Ø and Å",
            "Cyrillic",
            "Greek",
        ] {
            assert!(english.contains(needle), "{needle} in {english}");
        }
        let norwegian = ForbiddenCharacter.message_nb(&SEED);
        for needle in [
            "A-Z",
            "a-z",
            "0-9",
            "@",
            "%",
            "&",
            "Æ, Ø og Å",
            "kyrilliske",
            "greske",
        ] {
            assert!(norwegian.contains(needle), "{needle} in {norwegian}");
        }
    }

    #[test]
    fn seed_description_shows_the_faq_rules() {
        let description = SEED.describe();
        assert_eq!(description.kind, "seed");
        assert_eq!((description.min_length, description.max_length), (8, 128));
        assert!(description.requires_uppercase && description.requires_lowercase);
        assert!(description.requires_digit);
        assert!(!description.checks_common_passwords);
        assert!(description.allowed_characters.contains("A-Z"));
    }

    #[test]
    fn nist_description_shows_its_minimum_and_the_blocklist() {
        let description = nist(12).describe();
        assert_eq!(description.kind, "nist");
        assert_eq!((description.min_length, description.max_length), (12, 128));
        assert!(!description.requires_uppercase && !description.requires_lowercase);
        assert!(!description.requires_digit);
        assert!(description.checks_common_passwords);
    }

    #[test]
    fn blocklist_is_lower_case_nfkc_sorted_unique_and_long_enough() {
        let lines: Vec<&str> = COMMON_PASSWORDS_TEXT.lines().collect();
        assert!(lines.len() >= 1000, "only {} entries", lines.len());
        for line in &lines {
            assert!(!line.is_empty() && line.trim() == *line, "{line:?}");
            assert_eq!(line.to_lowercase(), *line, "{line:?}");
            assert_eq!(line.nfkc().collect::<String>(), *line, "{line:?}");
        }
        assert!(
            lines.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted and unique"
        );
        assert_eq!(common_passwords().len(), lines.len());
    }

    #[test]
    fn blocklist_holds_well_known_and_norwegian_passwords() {
        for entry in [
            "password",
            "123456789",
            "qwertyuiop",
            "iloveyou",
            "passord123",
            "sommer2024",
            "hemmelig",
            "vinter2023",
            "rosenborg",
            "velkommen1",
        ] {
            assert!(is_common_password(entry), "{entry}");
        }
        assert!(is_common_password("PassOrd123"));
        assert!(!is_common_password("violet staircase under the fjord"));
    }

    // ---- Properties ------------------------------------------------------------

    /// The seed rules computed another way: over bytes and character
    /// predicates, collected into a set.
    fn seed_oracle(raw: &str) -> BTreeSet<PasswordViolation> {
        let mut expected = BTreeSet::new();
        if raw.len() > MAX_PASSWORD_BYTES {
            expected.insert(TooLong);
            return expected;
        }
        let length = raw.chars().count();
        if length < 8 {
            expected.insert(TooShort);
        }
        if length > 128 {
            expected.insert(TooLong);
        }
        if !raw.bytes().any(|b| b.is_ascii_uppercase()) {
            expected.insert(MissingUppercase);
        }
        if !raw.bytes().any(|b| b.is_ascii_lowercase()) {
            expected.insert(MissingLowercase);
        }
        if !raw.bytes().any(|b| b.is_ascii_digit()) {
            expected.insert(MissingDigit);
        }
        if !raw.chars().all(|c| c.is_ascii_alphanumeric()) {
            expected.insert(ForbiddenCharacter);
        }
        expected
    }

    /// The NIST rules computed another way: NFKC counted as an iterator, the
    /// blocklist scanned line by line.
    fn nist_oracle(
        raw: &str,
        min_length: usize,
        email: Option<&str>,
    ) -> BTreeSet<PasswordViolation> {
        let mut expected = BTreeSet::new();
        if raw.len() > MAX_PASSWORD_BYTES {
            expected.insert(TooLong);
            return expected;
        }
        let length = raw.nfkc().count();
        if length < min_length {
            expected.insert(TooShort);
        }
        if length > 128 {
            expected.insert(TooLong);
        }
        let folded = raw.nfkc().flat_map(char::to_lowercase).collect::<String>();
        if COMMON_PASSWORDS_TEXT.lines().any(|line| line == folded) {
            expected.insert(CommonPassword);
        }
        if let Some(email) = email {
            let email = email.to_lowercase();
            let local = email.split('@').next().unwrap_or_default();
            if folded == email || (local.chars().count() >= 4 && folded.contains(local)) {
                expected.insert(ContainsEmail);
            }
        }
        expected
    }

    fn as_ordered_set(found: &[PasswordViolation]) -> BTreeSet<PasswordViolation> {
        assert!(
            found.windows(2).all(|pair| pair[0] < pair[1]),
            "ordered, no repeats: {found:?}"
        );
        found.iter().copied().collect()
    }

    fn any_password_input() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9]{0,140}",
            "[A-Za-z0-9@%& æøåÆØÅдλΩ]{0,140}",
            "\\PC{0,200}",
            any::<String>(),
            // around the byte limit: 2-byte characters, 500 to 530 of them
            "[æøå]{500,530}",
        ]
    }

    proptest! {
        #[test]
        fn seed_accepts_any_ascii_letters_and_digits_with_one_of_each_kind(
            body in "[A-Za-z0-9]{5,125}",
            upper in "[A-Z]",
            lower in "[a-z]",
            digit in "[0-9]",
            positions in (0usize..126, 0usize..127, 0usize..128),
        ) {
            let mut raw = body;
            raw.insert_str(positions.0.min(raw.len()), &upper);
            raw.insert_str(positions.1.min(raw.len()), &lower);
            raw.insert_str(positions.2.min(raw.len()), &digit);
            let password = Password::parse(&raw, &SEED, None);
            prop_assert_eq!(password.map(|p| p.as_str().to_owned()), Ok(raw));
        }

        #[test]
        fn seed_refuses_any_character_outside_ascii_letters_and_digits(
            before in "\\PC{0,60}",
            intruder in any::<char>().prop_filter("not A-Z, a-z, 0-9", |c| !c.is_ascii_alphanumeric()),
            after in "\\PC{0,60}",
        ) {
            let raw = format!("{before}{intruder}{after}");
            let found = violations(&raw, &SEED, None);
            prop_assert!(found.contains(&ForbiddenCharacter), "{:?}: {:?}", raw, found);
        }

        #[test]
        fn seed_violations_equal_an_independent_oracle(raw in any_password_input()) {
            let found = violations(&raw, &SEED, None);
            prop_assert_eq!(as_ordered_set(&found), seed_oracle(&raw));
        }

        #[test]
        fn nist_accepts_exactly_when_the_length_holds_and_the_password_is_not_common(
            raw in any_password_input(),
            min_length in 8usize..=15,
        ) {
            let policy = nist(min_length);
            let length = raw.nfkc().count();
            let common = COMMON_PASSWORDS_TEXT
                .lines()
                .any(|line| line == raw.nfkc().flat_map(char::to_lowercase).collect::<String>());
            let should_accept = raw.len() <= MAX_PASSWORD_BYTES
                && (min_length..=128).contains(&length)
                && !common;
            prop_assert_eq!(Password::parse(&raw, &policy, None).is_ok(), should_accept);
        }

        #[test]
        fn nist_violations_equal_an_independent_oracle(
            raw in prop_oneof![
                any_password_input(),
                "[a-z]{0,4}(kari|nordmann|ola|passord|sommer2024)[a-z0-9 ]{0,6}",
            ],
            local in "(kari|ola|nordmann|[a-z]{1,8})",
            min_length in 8usize..=15,
        ) {
            let email = format!("{local}@example.no");
            let found = violations(&raw, &nist(min_length), Some(&email));
            prop_assert_eq!(as_ordered_set(&found), nist_oracle(&raw, min_length, Some(&email)));
        }
    }
}
