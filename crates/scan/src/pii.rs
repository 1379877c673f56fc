//! Personal data in outgoing requests: the emails and phone numbers typed during the journey,
//! their SHA-256 hex digests (what ad pixels send as "hashed" matching keys), and any
//! email-looking text.

use sha2::{Digest, Sha256};

/// What kind of personal data a needle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiKind {
    Email,
    EmailSha256,
    Phone,
    PhoneSha256,
}

impl PiiKind {
    pub fn describe(self) -> &'static str {
        match self {
            PiiKind::Email => "an email address",
            PiiKind::EmailSha256 => "the SHA-256 of an email address",
            PiiKind::Phone => "a phone number",
            PiiKind::PhoneSha256 => "the SHA-256 of a phone number",
        }
    }
}

/// Strings to look for, lowercased, each with its kind.
#[derive(Debug, Clone, Default)]
pub struct PiiNeedles {
    needles: Vec<(String, PiiKind)>,
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `s` is shaped like an email address (local@domain.tld, no spaces).
pub fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let ok_local = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c));
    let ok_domain = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    ok_local && ok_domain
}

/// The digits of `s` when it is shaped like a phone number (7 to 15 digits, only phone
/// punctuation around them).
pub fn phone_digits(s: &str) -> Option<String> {
    let s = s.trim();
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

impl PiiNeedles {
    /// Needles for the values typed into the journey's fields.
    pub fn from_values<S: AsRef<str>>(values: &[S]) -> PiiNeedles {
        let mut needles = Vec::new();
        for v in values {
            let v = v.as_ref().trim();
            if looks_like_email(v) {
                let email = v.to_ascii_lowercase();
                needles.push((sha256_hex(&email), PiiKind::EmailSha256));
                needles.push((email, PiiKind::Email));
            } else if let Some(digits) = phone_digits(v) {
                // Pixels hash the E.164 form with or without the plus.
                needles.push((sha256_hex(&digits), PiiKind::PhoneSha256));
                needles.push((sha256_hex(&format!("+{digits}")), PiiKind::PhoneSha256));
                needles.push((digits, PiiKind::Phone));
            }
        }
        PiiNeedles { needles }
    }

    /// The first personal datum found in `text` (a decoded URL or a body), if any: the
    /// journey's own values first, then any email-shaped token.
    pub fn find(&self, text: &str) -> Option<(PiiKind, String)> {
        let lower = text.to_ascii_lowercase();
        for (needle, kind) in &self.needles {
            let hit = match kind {
                // Digits must stand alone, not inside a longer number or id.
                PiiKind::Phone => contains_standalone_phone(&lower, needle),
                _ => lower.contains(needle.as_str()),
            };
            if hit {
                return Some((*kind, needle.clone()));
            }
        }
        find_email(&lower).map(|e| (PiiKind::Email, e))
    }
}

fn digits_only(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Whether a run of phone characters in `text` has exactly the digits `digits`.
fn contains_standalone_phone(text: &str, digits: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_digit() || " +-().".contains(c)))
        .any(|run| digits_only(run) == digits)
}

/// The first email-shaped token in `text`.
fn find_email(text: &str) -> Option<String> {
    let is_part = |c: char| c.is_ascii_alphanumeric() || "._%+-@".contains(c);
    text.split(|c: char| !is_part(c))
        .map(|t| t.trim_matches('.'))
        .find(|t| looks_like_email(t))
        .map(str::to_owned)
}

/// A form-encoded body made readable: `a=b%40c&d=e` becomes `a=b@c d=e`. Other bodies come
/// back unchanged (a JSON body with a `%` in it decodes to garbage, so callers search both).
pub fn decode_form(body: &str) -> String {
    url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A URL made readable for matching: percent-decoded, with `+` read as a space in the query.
pub fn decode_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let mut out = String::from(u.as_str().split('?').next().unwrap_or_default());
            for (k, v) in u.query_pairs() {
                out.push(' ');
                out.push_str(&k);
                out.push('=');
                out.push_str(&v);
            }
            out
        }
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_emails_and_their_hashes() {
        let n = PiiNeedles::from_values(&["Ann@Example.com"]);
        let hash = sha256_hex("ann@example.com");
        assert_eq!(
            n.find(&decode_url("https://t.test/p?em=ann%40example.com")),
            Some((PiiKind::Email, "ann@example.com".into()))
        );
        assert_eq!(
            n.find(&format!("https://t.test/p?ud[em]={}", hash.to_uppercase())),
            Some((PiiKind::EmailSha256, hash))
        );
        assert_eq!(n.find("https://t.test/p?id=42"), None);
    }

    #[test]
    fn finds_any_email_shaped_text() {
        let n = PiiNeedles::default();
        assert_eq!(
            n.find(r#"{"user":"bob.smith+x@mail.example.org"}"#),
            Some((PiiKind::Email, "bob.smith+x@mail.example.org".into()))
        );
        assert_eq!(n.find("https://a.test/@handle"), None);
    }

    #[test]
    fn finds_phones_and_their_hashes_but_not_inside_ids() {
        let n = PiiNeedles::from_values(&["+44 20 7946 0958"]);
        assert_eq!(
            n.find(&decode_url("https://t.test/p?ph=%2B44%2020%207946%200958")),
            Some((PiiKind::Phone, "442079460958".into()))
        );
        assert_eq!(
            n.find(&format!("body ph={}", sha256_hex("442079460958"))),
            Some((PiiKind::PhoneSha256, sha256_hex("442079460958")))
        );
        assert_eq!(
            n.find(&format!("x={}", sha256_hex("+442079460958"))),
            Some((PiiKind::PhoneSha256, sha256_hex("+442079460958")))
        );
        assert_eq!(n.find("https://t.test/p?id=94420794609581"), None);
    }

    #[test]
    fn form_bodies_are_decoded() {
        let n = PiiNeedles::from_values(&["ann@example.com"]);
        assert_eq!(
            n.find(&decode_form("ev=Lead&em=ann%40example.com"))
                .unwrap()
                .0,
            PiiKind::Email
        );
    }

    #[test]
    fn shapes() {
        assert!(looks_like_email("a@b.co"));
        assert!(!looks_like_email("a@b"));
        assert!(!looks_like_email("@b.co"));
        assert!(!looks_like_email("a b@c.d"));
        assert_eq!(
            phone_digits("(555) 010-9999").as_deref(),
            Some("5550109999")
        );
        assert_eq!(phone_digits("12345"), None);
        assert_eq!(phone_digits("call me"), None);
    }

    #[test]
    fn never_panics_on_odd_text() {
        let n = PiiNeedles::from_values(&["", "@", "+", "ä@ö.ü", "😀"]);
        for t in ["", "@", "@@..", "%ff%fe", "ä@ö.ü", "😀@😀.😀", "a@b.c@d.e"] {
            let _ = n.find(t);
            let _ = decode_url(t);
            let _ = decode_form(t);
        }
    }
}
