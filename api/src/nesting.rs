//! A bound on how deeply a GraphQL document nests its brackets, checked on
//! the text before it is parsed. The parser recurses once per level of a
//! list or object value (and its grammar more than once), with no limit of
//! its own for values, so a document of a few thousand `[` overflowed a
//! worker thread's stack and aborted the whole server.

/// Deepest nesting of `{`, `[` and `(` a document may have. Selections are
/// limited further by the schema (`limit_depth`); values in real requests
/// nest a few levels.
pub const MAX_NESTING: usize = 64;

/// `Err` with a message for a person when `query` nests its brackets
/// deeper than [`MAX_NESTING`]. Brackets inside strings, block strings and
/// comments do not count. Unbalanced brackets are left to the parser.
pub fn check(query: &str) -> Result<(), String> {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                // A block string ends at the next `"""` not escaped as `\"""`.
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "The document nests brackets deeper than {MAX_NESTING} levels."
                    ));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_pass() {
        for query in [
            "{ me { id } }",
            "mutation($i: BookAppointmentInput!) { bookAppointment(applicationId: \"a\", input: $i) { location } }",
            "{ application(id: \"[[[[[[[[\") { id } } # {{{{{{{{{{",
            "{ application(id: \"\"\"{{{{ \\\"\"\" [[[[\"\"\") { id } }",
            "{ a(x: [[[[1]]]]) }",
        ] {
            assert_eq!(check(query), Ok(()), "{query}");
        }
    }

    #[test]
    fn deep_values_and_selections_are_refused_before_parsing() {
        let deep_list = format!(
            "{{ application(id: {}\"x\"{}) {{ id }} }}",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(check(&deep_list).is_err());
        let deep_object = format!("{{ a(x: {}) }}", "{b: ".repeat(MAX_NESTING));
        assert!(check(&deep_object).is_err());
        let deep_selection = format!("{}{}", "{ me ".repeat(MAX_NESTING + 1), "}".repeat(70));
        assert!(check(&deep_selection).is_err());
        let at_the_limit = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(check(&at_the_limit), Ok(()));
    }
}
