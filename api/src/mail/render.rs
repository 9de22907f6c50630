//! Rendering an `OutgoingMail` into a bilingual plain-text RFC 5322 message.
//!
//! The body is UTF-8 sent as `8bit`, never base64 or quoted-printable, so a
//! code stands in clear on its own line of the raw `.eml`. Lines are wrapped
//! below 76 bytes (the limit lettre accepts for `8bit`). The fixed wording
//! never contains a run of six digits, so a code is the only such run in a
//! code mail.

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, Mailbox};

use super::oslo_time::{format_en, format_nb};
use super::{KIND_HEADER, MailContent, MailError, OutgoingMail, validate_key};

/// Lines are wrapped at this many bytes (not characters: `ø` is two bytes).
const WRAP_BYTES: usize = 72;

const RULE: &str = "==================================================";

/// Renders `mail` as a plain-text message from `from` (normally
/// [`super::DEFAULT_FROM`]).
///
/// Headers: From, To, Subject ("Norwegian / English"), Date, a Message-ID
/// derived from the kind and key (stable across re-sends), MIME-Version,
/// `Content-Type: text/plain; charset=utf-8`, `Content-Transfer-Encoding:
/// 8bit`, `Auto-Submitted: auto-generated` and `X-Caseledger-Kind`.
/// The body is Norwegian bokmål first, then English; a code mail shows the
/// code once, alone on its line, above both.
pub fn render(mail: &OutgoingMail, from: &Mailbox) -> Result<Message, MailError> {
    validate_key(&mail.key)?;
    let to: Mailbox = mail.to.parse().map_err(|_| MailError::InvalidRecipient)?;
    let kind = mail.content.kind();
    let (subject, text) = compose(&mail.content)?;
    let body = Body::new_with_encoding(text, ContentTransferEncoding::EightBit)
        .map_err(|_| MailError::InvalidContent("a line of the mail is too long for 8bit"))?;
    let message_id = format!("<{kind}.{}@{}>", mail.key, from.email.domain());
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .date_now()
        .message_id(Some(message_id))
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(KIND_HEADER),
            kind.to_owned(),
        ))
        .body(body)
        .map_err(MailError::Build)
}

/// A plain-text body under construction, `\n` line endings (lettre turns
/// them into CRLF).
#[derive(Default)]
struct Text(String);

impl Text {
    fn line(&mut self, line: &str) -> &mut Self {
        self.0.push_str(line);
        self.0.push('\n');
        self
    }

    fn blank(&mut self) -> &mut Self {
        self.line("")
    }

    /// A paragraph wrapped to [`WRAP_BYTES`], followed by a blank line.
    fn para(&mut self, text: &str) -> &mut Self {
        self.wrapped(text, "", "");
        self.blank()
    }

    /// A list item: "- " then the text, continuation lines indented.
    fn bullet(&mut self, text: &str) -> &mut Self {
        self.wrapped(text, "- ", "  ")
    }

    fn wrapped(&mut self, text: &str, first_prefix: &str, rest_prefix: &str) -> &mut Self {
        let mut current = String::from(first_prefix);
        let mut has_word = false;
        for word in text.split_whitespace() {
            for piece in split_long_word(word, WRAP_BYTES - rest_prefix.len()) {
                let needed = if has_word { 1 } else { 0 } + piece.len();
                if has_word && current.len() + needed > WRAP_BYTES {
                    self.line(&current);
                    current = String::from(rest_prefix);
                    has_word = false;
                }
                if has_word {
                    current.push(' ');
                }
                current.push_str(piece);
                has_word = true;
            }
        }
        if has_word || !first_prefix.is_empty() {
            self.line(current.trim_end());
        }
        self
    }

    fn signature(&mut self) -> &mut Self {
        self.line("-- ")
            .line("Utlendingsdirektoratet (UDI)")
            .line("The Norwegian Directorate of Immigration (UDI)")
            .line("Denne e-posten kan ikke besvares.")
            .line("This email cannot be replied to.")
    }
}

/// Splits a word longer than `max` bytes at character boundaries, so even an
/// unbroken string keeps every line short enough for `8bit`.
fn split_long_word(word: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = word;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

/// A value from outside the template on one line: control characters
/// (including line breaks) become spaces, so a value cannot forge lines.
fn one_line(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_code(code: &str) -> Result<(), MailError> {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(MailError::InvalidContent("a code must be six ASCII digits"))
    }
}

fn compose(content: &MailContent) -> Result<(&'static str, String), MailError> {
    let mut text = Text::default();
    let subject = match content {
        MailContent::RegistrationCode { code, expires_at } => {
            check_code(code)?;
            registration_code(&mut text, code, *expires_at);
            "Bekreftelseskode for ny brukerkonto / Verification code for a new user account"
        }
        MailContent::RecoveryCode { code, expires_at } => {
            check_code(code)?;
            recovery_code(&mut text, code, *expires_at);
            "Bekreftelseskode for nytt passord / Verification code for a new password"
        }
        MailContent::NoAccountNotice => {
            no_account(&mut text);
            "Ingen brukerkonto med denne e-postadressen / No user account with this email address"
        }
        MailContent::AccountExistsNotice => {
            account_exists(&mut text);
            "Du har allerede en brukerkonto / You already have a user account"
        }
        MailContent::PurgeWarning { deletion_after } => {
            purge_warning(&mut text, *deletion_after);
            "Brukerkontoen din blir slettet / Your user account will be deleted"
        }
        MailContent::AccountDeleted => {
            account_deleted(&mut text);
            "Brukerkontoen din er slettet / Your user account has been deleted"
        }
        MailContent::AppointmentConfirmation {
            reference,
            meeting_point,
            location,
            starts_at,
            documents_en,
            documents_nb,
        } => {
            appointment(
                &mut text,
                &Appointment {
                    reference: one_line(reference),
                    meeting_point: one_line(meeting_point),
                    location: one_line(location),
                    starts_at: *starts_at,
                    documents_en: documents_en.iter().map(|d| one_line(d)).collect(),
                    documents_nb: documents_nb.iter().map(|d| one_line(d)).collect(),
                },
            );
            "Bekreftelse på timebestilling / Appointment confirmation"
        }
    };
    text.signature();
    Ok((subject, text.0))
}

fn code_block(text: &mut Text, code: &str) {
    text.line("Bekreftelseskode / Verification code:")
        .blank()
        .line(code)
        .blank();
}

fn registration_code(text: &mut Text, code: &str, expires_at: DateTime<Utc>) {
    code_block(text, code);
    text.line("--- Norsk (bokmål) ---").blank()
        .para("Du har bedt om å opprette en brukerkonto hos UDI med denne e-postadressen. Kopier koden over og lim den inn i innloggingsvinduet for å bekrefte e-postadressen din og aktivere brukerkontoen.")
        .para(&format!("Koden er bare gyldig i noen minutter, til {}. Etter det kan du be om en ny kode.", format_nb(expires_at)))
        .para("Ikke del koden med noen. Hvis det ikke var du som ba om koden, kan du se bort fra denne e-posten.")
        .line("--- English ---").blank()
        .para("You asked to create a user account with UDI using this email address. Copy the code above and paste it into the login window to confirm your email address and activate your user account.")
        .para(&format!("The code is only valid for a few minutes, until {}. After that you can ask for a new code.", format_en(expires_at)))
        .para("Do not share the code with anyone. If you did not ask for this code, you can ignore this email.");
}

fn recovery_code(text: &mut Text, code: &str, expires_at: DateTime<Utc>) {
    code_block(text, code);
    text.line("--- Norsk (bokmål) ---").blank()
        .para("Du har bedt om å velge nytt passord for brukerkontoen din hos UDI. Skriv inn koden over i feltet «Bekreftelseskode» og trykk «Bekreft kode». Deretter kan du velge nytt passord.")
        .para(&format!("Koden er bare gyldig i noen minutter, til {}.", format_nb(expires_at)))
        .para("Ikke del koden med noen. Hvis det ikke var du som ba om nytt passord, kan du se bort fra denne e-posten. Passordet ditt er ikke endret.")
        .line("--- English ---").blank()
        .para("You asked to choose a new password for your UDI user account. Enter the code above in the field \"Bekreftelseskode\" (verification code) and press \"Bekreft kode\" (confirm code). Then you can choose your new password.")
        .para(&format!("The code is only valid for a few minutes, until {}.", format_en(expires_at)))
        .para("Do not share the code with anyone. If you did not ask for a new password, you can ignore this email. Your password has not been changed.");
}

fn no_account(text: &mut Text) {
    text.line("--- Norsk (bokmål) ---").blank()
        .para("Noen har bedt om å velge nytt passord for en brukerkonto hos UDI med denne e-postadressen. Det er ikke registrert noen brukerkonto med denne e-postadressen.")
        .para("Kanskje registrerte du deg med en annen e-postadresse, eller kontoen er slettet fordi den ikke var brukt på over to år. Søknader du har sendt inn, er fortsatt i systemene våre.")
        .para("Hvis du vil ha en brukerkonto, kan du registrere deg: gå til innloggingssiden og trykk «Registrer deg nå».")
        .para("Hvis det ikke var du som ba om dette, kan du se bort fra denne e-posten.")
        .line("--- English ---").blank()
        .para("Someone asked to reset the password of a UDI user account with this email address. There is no account registered with this email address.")
        .para("You may have registered with a different email address, or the account was deleted because it had not been used for over two years. Applications you have submitted are still in our systems.")
        .para("If you want a user account, you can register: go to the login page and press \"Register now\".")
        .para("If it was not you who asked for this, you can ignore this email.");
}

fn account_exists(text: &mut Text) {
    text.line("--- Norsk (bokmål) ---").blank()
        .para("Noen har prøvd å registrere en ny brukerkonto hos UDI med denne e-postadressen. Det finnes allerede en brukerkonto med denne e-postadressen, så vi har ikke laget en ny.")
        .para("Hvis du har glemt passordet, kan du velge et nytt: gå til innloggingssiden og trykk «Har du glemt passordet?».")
        .para("Hvis det ikke var du som prøvde å registrere deg, kan du se bort fra denne e-posten. Kontoen din er ikke endret.")
        .line("--- English ---").blank()
        .para("Someone tried to register a new UDI user account with this email address. An account is already registered with this email address, so no new one was made.")
        .para("If you have forgotten your password, you can choose a new one: go to the login page and press \"Forgot your password?\".")
        .para("If it was not you who tried to register, you can ignore this email. Your account has not been changed.");
}

fn purge_warning(text: &mut Text, deletion_after: DateTime<Utc>) {
    text.line("--- Norsk (bokmål) ---").blank()
        .para("Du har ikke logget inn på brukerkontoen din hos UDI på nesten to år. Vi sletter brukerkontoer som ikke har vært brukt på over to år.")
        .para(&format!("Hvis du vil beholde kontoen, må du logge inn før {}. Hvis du ikke logger inn, blir kontoen slettet etter dette tidspunktet.", format_nb(deletion_after)))
        .para("Søknader du har sendt inn, blir ikke slettet. De er fortsatt i systemene våre, og en time du har bestilt, gjelder fortsatt.")
        .line("--- English ---").blank()
        .para("You have not logged in to your UDI user account for almost two years. We delete user accounts that have not been used for over two years.")
        .para(&format!("If you want to keep the account, you must log in before {}. If you do not log in, the account will be deleted after that time.", format_en(deletion_after)))
        .para("Applications you have submitted will not be deleted. They stay in our systems, and an appointment you have booked is still valid.");
}

fn account_deleted(text: &mut Text) {
    text.line("--- Norsk (bokmål) ---").blank()
        .para("Brukerkontoen din hos UDI er slettet fordi du ikke hadde logget inn på over to år.")
        .para("Søknader og opplysninger du har sendt inn, er fortsatt i systemene våre, og en time du har bestilt, gjelder fortsatt.")
        .para("Hvis du skal sende en ny søknad, kan du lage en ny brukerkonto, også med denne e-postadressen.")
        .line("--- English ---").blank()
        .para("Your UDI user account has been deleted because you had not logged in for over two years.")
        .para("Applications and information you have submitted are still in our systems, and an appointment you have booked is still valid.")
        .para("If you are going to submit a new application, you can create a new user account, also with this email address.");
}

struct Appointment {
    reference: String,
    meeting_point: String,
    location: String,
    starts_at: DateTime<Utc>,
    documents_en: Vec<String>,
    documents_nb: Vec<String>,
}

fn appointment(text: &mut Text, a: &Appointment) {
    let when_nb = format_nb(a.starts_at);
    let when_en = format_en(a.starts_at);

    text.line("--- Norsk (bokmål) ---")
        .blank()
        .para("Du har bestilt time. Her er tidspunkt og sted:");
    text.wrapped(&format!("Tidspunkt: {when_nb}"), "", "  ")
        .wrapped(&format!("Oppmøtested: {}", a.meeting_point), "", "  ")
        .wrapped(&format!("Sted: {}", a.location), "", "  ")
        .wrapped(&format!("Referanse: {}", a.reference), "", "  ")
        .blank()
        .line("Dette må du ta med til timen:");
    for document in &a.documents_nb {
        text.bullet(document);
    }
    text.bullet("følgebrevet nederst i denne e-posten, skrevet ut")
        .blank()
        .para("Hvis du ikke finner igjen opplysningene om timen, kan du kontakte oppmøtestedet.");

    text.line("--- English ---")
        .blank()
        .para("You have booked an appointment. Here are the time and place:");
    text.wrapped(&format!("Time: {when_en}"), "", "  ")
        .wrapped(&format!("Meeting point: {}", a.meeting_point), "", "  ")
        .wrapped(&format!("Location: {}", a.location), "", "  ")
        .wrapped(&format!("Reference: {}", a.reference), "", "  ")
        .blank()
        .line("Bring these to your appointment:");
    for document in &a.documents_en {
        text.bullet(document);
    }
    text.bullet("the cover letter at the end of this email, printed")
        .blank()
        .para("If you cannot find the details of your appointment, contact the meeting point.");

    text.line(RULE)
        .line("FØLGEBREV / COVER LETTER")
        .line("Skriv ut og ta med til timen.")
        .line("Print this and bring it to your appointment.")
        .line(RULE)
        .blank();
    text.wrapped(&format!("Referanse / Reference: {}", a.reference), "", "  ")
        .wrapped(
            &format!("Oppmøtested / Meeting point: {}", a.meeting_point),
            "",
            "  ",
        )
        .wrapped(&format!("Sted / Location: {}", a.location), "", "  ")
        .wrapped(&format!("Tidspunkt: {when_nb}"), "", "  ")
        .wrapped(&format!("Time: {when_en}"), "", "  ")
        .blank()
        .line("Dokumenter / Documents:");
    for document in &a.documents_nb {
        text.wrapped(document, "[ ] ", "    ");
    }
    for document in &a.documents_en {
        text.wrapped(document, "[ ] ", "    ");
    }
    text.line(RULE).blank();
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::header::Subject;

    fn from() -> Mailbox {
        super::super::DEFAULT_FROM.parse().unwrap()
    }

    fn mail(content: MailContent) -> OutgoingMail {
        OutgoingMail {
            key: "0197a2b4-7c1e-7d2a-9f00-3c4d5e6f7a8b".to_owned(),
            position: 123_456_789,
            to: "kari.nordmann@example.org".to_owned(),
            content,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn raw(content: MailContent) -> (Message, String) {
        let message = render(&mail(content), &from()).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        (message, raw)
    }

    fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
        let (headers, _) = raw.split_once("\r\n\r\n").unwrap();
        headers.split("\r\n").find_map(|line| {
            line.split_once(": ")
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    /// The body with every run of whitespace (line breaks from wrapping
    /// included) turned into one space, for checking wording.
    fn flat(body: &str) -> String {
        body.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn body(raw: &str) -> &str {
        raw.split_once("\r\n\r\n").unwrap().1
    }

    /// Every maximal run of digits of length six or more in `text`.
    fn six_digit_runs(text: &str) -> Vec<&str> {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|run| run.len() >= 6)
            .collect()
    }

    fn assert_common_headers(message: &Message, raw: &str, kind: &str, subject: &str) {
        assert_eq!(
            message
                .headers()
                .get::<Subject>()
                .as_ref()
                .map(AsRef::as_ref),
            Some(subject)
        );
        assert_eq!(header(raw, "From"), Some("UDI <noreply@udi.no>"));
        assert_eq!(header(raw, "To"), Some("kari.nordmann@example.org"));
        assert_eq!(header(raw, "X-Caseledger-Kind"), Some(kind));
        assert_eq!(
            header(raw, "Message-ID"),
            Some(format!("<{kind}.0197a2b4-7c1e-7d2a-9f00-3c4d5e6f7a8b@udi.no>").as_str())
        );
        assert!(header(raw, "Date").is_some());
        assert_eq!(header(raw, "MIME-Version"), Some("1.0"));
        assert_eq!(
            header(raw, "Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(header(raw, "Content-Transfer-Encoding"), Some("8bit"));
        assert_eq!(header(raw, "Auto-Submitted"), Some("auto-generated"));
        for line in body(raw).split("\r\n") {
            assert!(line.len() < 76, "line too long: {line:?}");
        }
    }

    fn assert_code_alone_on_its_line(raw: &str, code: &str) {
        let body = body(raw);
        let lines: Vec<&str> = body.split("\r\n").filter(|l| *l == code).collect();
        assert_eq!(lines.len(), 1, "the code stands alone on exactly one line");
        assert_eq!(
            six_digit_runs(body),
            vec![code],
            "no other run of six digits"
        );
        assert!(raw.contains(&format!("\r\n{code}\r\n")));
    }

    #[test]
    fn registration_code_is_in_clear_on_its_own_line() {
        let (message, raw) = raw(MailContent::RegistrationCode {
            code: "042917".to_owned(),
            expires_at: utc("2025-07-03T12:05:00Z"),
        });
        assert_common_headers(
            &message,
            &raw,
            "registration-code",
            "Bekreftelseskode for ny brukerkonto / Verification code for a new user account",
        );
        assert_code_alone_on_its_line(&raw, "042917");
        let body = body(&raw);
        let text = flat(body);
        assert!(text.contains("til torsdag 3. juli 2025 kl. 14:05 (norsk tid)"));
        assert!(text.contains("Thursday 3 July 2025 at 14:05 (Norwegian time)"));
        assert!(text.find("Norsk").unwrap() < text.find("English").unwrap());
    }

    #[test]
    fn recovery_code_is_in_clear_and_shows_winter_time() {
        let (message, raw) = raw(MailContent::RecoveryCode {
            code: "987654".to_owned(),
            expires_at: utc("2025-01-15T08:30:00Z"),
        });
        assert_common_headers(
            &message,
            &raw,
            "recovery-code",
            "Bekreftelseskode for nytt passord / Verification code for a new password",
        );
        assert_code_alone_on_its_line(&raw, "987654");
        let body = body(&raw);
        let text = flat(body);
        assert!(text.contains("onsdag 15. januar 2025 kl. 09:30 (norsk tid)"));
        assert!(text.contains("Wednesday 15 January 2025 at 09:30"));
        assert!(text.contains("«Bekreftelseskode»"));
    }

    #[test]
    fn codes_that_are_not_six_digits_are_refused() {
        for code in ["12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            let result = render(
                &mail(MailContent::RegistrationCode {
                    code: code.to_owned(),
                    expires_at: utc("2025-01-15T08:30:00Z"),
                }),
                &from(),
            );
            assert!(
                matches!(result, Err(MailError::InvalidContent(_))),
                "{code:?}"
            );
        }
    }

    #[test]
    fn no_account_notice_says_so_and_invites_registration() {
        let (message, raw) = raw(MailContent::NoAccountNotice);
        assert_common_headers(
            &message,
            &raw,
            "no-account",
            "Ingen brukerkonto med denne e-postadressen / No user account with this email address",
        );
        let body = body(&raw);
        let text = flat(body);
        assert!(text.contains("There is no account registered with this email address."));
        assert!(text.contains("\"Register now\""));
        assert!(text.contains("you can ignore this email"));
        assert!(six_digit_runs(body).is_empty());
    }

    #[test]
    fn account_exists_notice_sends_no_code_and_points_to_recovery() {
        let (message, raw) = raw(MailContent::AccountExistsNotice);
        assert_common_headers(
            &message,
            &raw,
            "account-exists",
            "Du har allerede en brukerkonto / You already have a user account",
        );
        let body = body(&raw);
        let text = flat(body);
        assert!(text.contains("An account is already registered with this email address"));
        assert!(text.contains("\"Forgot your password?\""));
        assert!(text.contains("«Har du glemt passordet?»"));
        assert!(six_digit_runs(body).is_empty());
    }

    #[test]
    fn purge_warning_gives_the_deletion_date_in_oslo_time() {
        let (message, raw) = raw(MailContent::PurgeWarning {
            deletion_after: utc("2027-06-30T22:00:00Z"),
        });
        assert_common_headers(
            &message,
            &raw,
            "purge-warning",
            "Brukerkontoen din blir slettet / Your user account will be deleted",
        );
        let body = body(&raw);
        let text = flat(body);
        // 22:00 UTC in summer is midnight in Oslo, the next day.
        assert!(
            text.contains("1. juli 2027 kl. 00:00 (norsk tid)"),
            "{body}"
        );
        assert!(text.contains("Thursday 1 July 2027 at 00:00 (Norwegian time)"));
        assert!(text.contains("almost two years"));
        assert!(text.contains("Applications you have submitted will not be deleted."));
        assert!(six_digit_runs(body).is_empty());
    }

    #[test]
    fn account_deleted_says_the_applications_stay() {
        let (message, raw) = raw(MailContent::AccountDeleted);
        assert_common_headers(
            &message,
            &raw,
            "account-deleted",
            "Brukerkontoen din er slettet / Your user account has been deleted",
        );
        let body = body(&raw);
        let text = flat(body);
        assert!(text.contains("are still in our systems"));
        assert!(text.contains("er fortsatt i systemene våre"));
        assert!(six_digit_runs(body).is_empty());
    }

    #[test]
    fn appointment_confirmation_has_time_place_documents_and_cover_letter() {
        let (message, raw) = raw(MailContent::AppointmentConfirmation {
            reference: "UDI-2025-AB12".to_owned(),
            meeting_point: "Police".to_owned(),
            location: "Oslo politidistrikt,\nSchweigaards gate 15".to_owned(),
            starts_at: utc("2025-11-04T08:15:00Z"),
            documents_en: vec![
                "Valid passport".to_owned(),
                "A passport photo that is no more than six months old and meets the requirements for passport photos".to_owned(),
            ],
            documents_nb: vec!["Gyldig pass".to_owned(), "Passbilde".to_owned()],
        });
        assert_common_headers(
            &message,
            &raw,
            "appointment-confirmation",
            "Bekreftelse på timebestilling / Appointment confirmation",
        );
        let body = body(&raw);
        let text = flat(body);
        assert!(text.contains("Tidspunkt: tirsdag 4. november 2025 kl. 09:15 (norsk tid)"));
        assert!(text.contains("Time: Tuesday 4 November 2025 at 09:15 (Norwegian time)"));
        assert!(text.contains("Meeting point: Police"));
        // A line break inside a value cannot forge a line of its own.
        assert!(body.contains("\r\nLocation: Oslo politidistrikt, Schweigaards gate 15\r\n"));
        assert!(body.contains("- Valid passport\r\n"));
        assert!(body.contains("- Gyldig pass\r\n"));
        assert!(
            body.contains("\r\n  requirements for passport photos\r\n"),
            "{body}"
        );
        let cover = &text[text.find("FØLGEBREV / COVER LETTER").expect("cover letter")..];
        assert!(cover.contains("Referanse / Reference: UDI-2025-AB12"));
        assert!(cover.contains("[ ] Gyldig pass"));
        assert!(cover.contains("[ ] Valid passport"));
        assert!(cover.contains("Time: Tuesday 4 November 2025 at 09:15"));
        assert!(six_digit_runs(body).is_empty());
    }

    #[test]
    fn an_invalid_recipient_is_refused_without_echoing_it() {
        let mut bad = mail(MailContent::AccountDeleted);
        bad.to = "not an address".to_owned();
        let error = render(&bad, &from()).unwrap_err();
        assert!(matches!(error, MailError::InvalidRecipient));
        assert!(!error.to_string().contains("not an address"));
    }

    #[test]
    fn long_unbroken_words_are_split_to_stay_within_the_line_limit() {
        let mut text = Text::default();
        text.para(&format!("kort {} ord", "ø".repeat(60)));
        for line in text.0.lines() {
            assert!(line.len() <= WRAP_BYTES, "{line:?}");
        }
        assert_eq!(text.0.matches('ø').count(), 60);
    }
}
