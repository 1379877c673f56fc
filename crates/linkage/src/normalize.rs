//! Value normalisation applied once when records are loaded.

/// Lower-cases, trims and collapses runs of whitespace into one space.
/// Returns `None` for values that are empty after that (empty means null).
pub fn normalize(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    push_normalized(raw, &mut out);
    (!out.is_empty()).then_some(out)
}

/// Appends the normalised form of `raw` to `out` (nothing when it is empty), so
/// loading can write straight into its arena without a String per cell.
pub(crate) fn push_normalized(raw: &str, out: &mut String) {
    for (i, word) in raw.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.is_ascii() {
            let start = out.len();
            out.push_str(word);
            out[start..].make_ascii_lowercase();
        } else {
            out.extend(word.chars().flat_map(char::to_lowercase));
        }
    }
}

/// Canonical form of a column name for recognising common names:
/// lower case, every run of non-alphanumerics becomes one `_`.
pub fn column_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_spaces() {
        assert_eq!(
            normalize("  Mary   ANN\tSmith "),
            Some("mary ann smith".into())
        );
        assert_eq!(normalize("   "), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn lower_cases_non_ascii_too() {
        assert_eq!(normalize(" ÉLODIE  Müller "), Some("élodie müller".into()));
    }

    #[test]
    fn column_keys() {
        assert_eq!(column_key(" First Name"), "first_name");
        assert_eq!(column_key("date-of-birth"), "date_of_birth");
        assert_eq!(column_key("Address 1"), "address_1");
    }
}
