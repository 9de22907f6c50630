//! Bounded free-text newtypes (names, locations, references) and the rules
//! that keep typed text from deceiving whoever reads it later.

use std::fmt;

/// Why a text field was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Nothing left after trimming whitespace.
    Empty,
    /// More than `max` characters.
    TooLong { max: usize },
    /// A control character (Unicode category Cc), such as a line break.
    ControlCharacter,
    /// A character that changes the direction text is shown in (U+202A–U+202E,
    /// U+2066–U+2069, U+200E, U+200F, U+061C): it can make `Bob\u{202E}gnp.exe`
    /// read as `Bobexe.png`.
    BidiControl,
    /// Only invisible characters (whitespace, zero-width and other format
    /// characters): the value would look empty.
    Invisible,
    /// `<` or `>`, which no name or place needs and which markup does.
    Markup,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::Empty => write!(f, "must not be empty"),
            TextError::TooLong { max } => write!(f, "must be at most {max} characters"),
            TextError::ControlCharacter => write!(f, "must not contain control characters"),
            TextError::BidiControl => write!(
                f,
                "must not contain characters that change the direction of the text"
            ),
            TextError::Invisible => write!(f, "must contain at least one visible character"),
            TextError::Markup => write!(f, "must not contain the characters < or >"),
        }
    }
}

impl TextError {
    /// The reason in Norwegian (bokmål), as the end of a sentence.
    pub fn nb(&self) -> String {
        match self {
            TextError::Empty => "kan ikke være tomt".into(),
            TextError::TooLong { max } => format!("kan ha høyst {max} tegn"),
            TextError::ControlCharacter => "kan ikke inneholde kontrolltegn".into(),
            TextError::BidiControl => "kan ikke inneholde tegn som endrer skriveretningen".into(),
            TextError::Invisible => "må inneholde minst ett synlig tegn".into(),
            TextError::Markup => "kan ikke inneholde tegnene < eller >".into(),
        }
    }
}

/// Whether `c` changes the direction text is displayed in: the embeddings,
/// overrides and isolates, the directional marks and the Arabic letter mark.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Whether `c` is a format character (Unicode general category Cf): it has
/// no glyph of its own (zero-width space and joiners, word joiner, byte
/// order mark, soft hyphen, tag characters, ...).
pub fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Whether `c` shows nothing: whitespace, a format character, or another
/// default-ignorable or blank code point (combining grapheme joiner,
/// variation selectors, Hangul fillers, the blank Braille pattern).
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || is_format(c)
        || matches!(
            c,
            '\u{034F}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Trim, then check that the text is non-empty, at most `max` characters,
/// free of control and direction-changing characters and of `<` and `>`,
/// and shows at least one visible character. This is the rule for text a
/// person types.
pub fn bounded(raw: &str, max: usize) -> Result<String, TextError> {
    let trimmed = well_formed(raw, max)?;
    if trimmed.chars().any(is_bidi_control) {
        return Err(TextError::BidiControl);
    }
    if trimmed.contains(['<', '>']) {
        return Err(TextError::Markup);
    }
    if trimmed.chars().all(is_invisible) {
        return Err(TextError::Invisible);
    }
    Ok(trimmed)
}

/// The rule that text already recorded once met: trimmed, non-empty, at most
/// `max` characters, no control characters. Decoding stored history uses
/// this, so that text accepted under earlier rules still replays.
pub fn well_formed(raw: &str, max: usize) -> Result<String, TextError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty);
    }
    if trimmed.chars().count() > max {
        return Err(TextError::TooLong { max });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter);
    }
    Ok(trimmed.to_owned())
}

/// A person's name as they write it (1 to 200 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Longest accepted name, in characters.
    pub const MAX: usize = 200;

    /// A name a person typed (or an identity provider sent): see [`bounded`].
    pub fn parse(raw: &str) -> Result<PersonName, TextError> {
        bounded(raw, Self::MAX).map(PersonName)
    }

    /// A name read back from stored history: see [`well_formed`]. Never use
    /// this for new input.
    pub fn from_recorded(raw: &str) -> Result<PersonName, TextError> {
        well_formed(raw, Self::MAX).map(PersonName)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_many_languages_pass() {
        for name in [
            "Åse Ødegård",
            "José María",
            "O'Brien-Nguyễn",
            "محمد عبد الله",
            "Фёдор Достоевский",
            "李小龙",
            "Zoë d’Arc",
        ] {
            assert_eq!(PersonName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn joiners_inside_a_visible_name_pass() {
        // Persian writes some names with a zero-width non-joiner.
        let name = "محمد\u{200C}رضا";
        assert_eq!(PersonName::parse(name).unwrap().as_str(), name);
    }

    #[test]
    fn a_right_to_left_override_is_refused() {
        assert_eq!(
            PersonName::parse("Bob\u{202E}gnp.exe"),
            Err(TextError::BidiControl)
        );
    }

    #[test]
    fn every_bidi_control_is_refused() {
        for c in ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{200E}', '\u{200F}', '\u{061C}'])
        {
            assert_eq!(
                bounded(&format!("Oslo{c}sentrum"), 200),
                Err(TextError::BidiControl),
                "{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn an_invisible_only_name_is_refused() {
        assert_eq!(
            PersonName::parse("\u{200b}\u{feff}"),
            Err(TextError::Invisible)
        );
        for raw in [
            "\u{00AD}",
            " \u{2060} \u{200D} ",
            "\u{3164}",
            "\u{E0041}\u{E0042}",
        ] {
            assert_eq!(PersonName::parse(raw), Err(TextError::Invisible), "{raw:?}");
        }
    }

    #[test]
    fn a_whitespace_only_name_is_empty() {
        assert_eq!(PersonName::parse(" \u{3000} "), Err(TextError::Empty));
    }

    #[test]
    fn markup_is_refused() {
        assert_eq!(PersonName::parse("<b>x</b>"), Err(TextError::Markup));
        assert_eq!(bounded("a > b", 200), Err(TextError::Markup));
    }

    #[test]
    fn control_characters_and_length_are_still_checked() {
        assert_eq!(
            PersonName::parse("Kari\nNordmann"),
            Err(TextError::ControlCharacter)
        );
        assert_eq!(
            PersonName::parse(&"a".repeat(201)),
            Err(TextError::TooLong { max: 200 })
        );
    }

    #[test]
    fn recorded_names_still_decode_under_the_earlier_rule() {
        for raw in ["Bob\u{202E}gnp.exe", "\u{200b}\u{feff}", "<b>x</b>"] {
            assert_eq!(PersonName::from_recorded(raw).unwrap().as_str(), raw);
        }
        assert_eq!(PersonName::from_recorded(" "), Err(TextError::Empty));
    }

    #[test]
    fn every_refusal_reads_as_a_sentence_in_both_languages() {
        for e in [
            TextError::BidiControl,
            TextError::Invisible,
            TextError::Markup,
        ] {
            assert!(e.to_string().starts_with("must "));
            assert!(!e.nb().is_empty());
        }
    }
}
