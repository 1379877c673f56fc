//! Personal data in outgoing requests: the emails and phone numbers typed during the journey,
//! their SHA-256, SHA-1 and MD5 hex digests (what ad pixels send as "hashed" matching keys,
//! of the normalised value: a trimmed, lowercased email; a phone's digits with and without
//! a leading `+`), and any email-looking text.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The personal datum a needle stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum {
    Email,
    Phone,
}

/// How it is written: as typed (normalised), or as the hex digest ad and analytics tags send
/// as "hashed" matching keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Plain,
    Sha256,
    Sha1,
    Md5,
}

/// What kind of personal data a needle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiKind {
    pub datum: Datum,
    pub form: Form,
}

impl PiiKind {
    pub const EMAIL: PiiKind = PiiKind {
        datum: Datum::Email,
        form: Form::Plain,
    };
    pub const PHONE: PiiKind = PiiKind {
        datum: Datum::Phone,
        form: Form::Plain,
    };

    pub fn describe(self) -> String {
        let datum = match self.datum {
            Datum::Email => "an email address",
            Datum::Phone => "a phone number",
        };
        match self.form {
            Form::Plain => datum.to_owned(),
            Form::Sha256 => format!("the SHA-256 of {datum}"),
            Form::Sha1 => format!("the SHA-1 of {datum}"),
            Form::Md5 => format!("the MD5 of {datum}"),
        }
    }
}

/// Strings to look for, lowercased, each with its kind.
#[derive(Debug, Clone, Default)]
pub struct PiiNeedles {
    needles: Vec<(String, PiiKind)>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lowercase hex digest of `s` in `form` (`Plain` gives `s` back).
pub fn digest_hex(form: Form, s: &str) -> String {
    match form {
        Form::Plain => s.to_owned(),
        Form::Sha256 => hex(&Sha256::digest(s.as_bytes())),
        Form::Sha1 => hex(&Sha1::digest(s.as_bytes())),
        Form::Md5 => hex(&Md5::digest(s.as_bytes())),
    }
}

/// Adds the digests first: a hex digest must not be reported as the plain value it hides.
fn push_forms(needles: &mut Vec<(String, PiiKind)>, datum: Datum, normalised: &[String]) {
    for form in [Form::Sha256, Form::Sha1, Form::Md5] {
        for n in normalised {
            needles.push((digest_hex(form, n), PiiKind { datum, form }));
        }
    }
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
                push_forms(&mut needles, Datum::Email, std::slice::from_ref(&email));
                needles.push((email, PiiKind::EMAIL));
            } else if let Some(digits) = phone_digits(v) {
                // Tags hash the E.164 form with or without the plus.
                push_forms(
                    &mut needles,
                    Datum::Phone,
                    &[digits.clone(), format!("+{digits}")],
                );
                needles.push((digits, PiiKind::PHONE));
            }
        }
        PiiNeedles { needles }
    }

    /// The first personal datum found in `text` (a decoded URL or a body), if any: the
    /// journey's own values first, then any email-shaped token.
    pub fn find(&self, text: &str) -> Option<(PiiKind, String)> {
        let lower = text.to_ascii_lowercase();
        for (needle, kind) in &self.needles {
            let hit = match (kind.datum, kind.form) {
                // Digits must stand alone, not inside a longer number or id.
                (Datum::Phone, Form::Plain) => contains_standalone_phone(&lower, needle),
                _ => lower.contains(needle.as_str()),
            };
            if hit {
                return Some((*kind, needle.clone()));
            }
        }
        find_email(&lower).map(|e| (PiiKind::EMAIL, e))
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
        let hash = digest_hex(Form::Sha256, "ann@example.com");
        assert_eq!(
            n.find(&decode_url("https://t.test/p?em=ann%40example.com")),
            Some((PiiKind::EMAIL, "ann@example.com".into()))
        );
        assert_eq!(
            n.find(&format!("https://t.test/p?ud[em]={}", hash.to_uppercase())),
            Some((
                PiiKind {
                    datum: Datum::Email,
                    form: Form::Sha256
                },
                hash
            ))
        );
        assert_eq!(n.find("https://t.test/p?id=42"), None);
    }

    #[test]
    fn finds_any_email_shaped_text() {
        let n = PiiNeedles::default();
        assert_eq!(
            n.find(r#"{"user":"bob.smith+x@mail.example.org"}"#),
            Some((PiiKind::EMAIL, "bob.smith+x@mail.example.org".into()))
        );
        assert_eq!(n.find("https://a.test/@handle"), None);
    }

    #[test]
    fn finds_phones_and_their_hashes_but_not_inside_ids() {
        let n = PiiNeedles::from_values(&["+44 20 7946 0958"]);
        assert_eq!(
            n.find(&decode_url("https://t.test/p?ph=%2B44%2020%207946%200958")),
            Some((PiiKind::PHONE, "442079460958".into()))
        );
        assert_eq!(
            n.find(&format!(
                "body ph={}",
                digest_hex(Form::Sha256, "442079460958")
            )),
            Some((
                PiiKind {
                    datum: Datum::Phone,
                    form: Form::Sha256
                },
                digest_hex(Form::Sha256, "442079460958")
            ))
        );
        assert_eq!(
            n.find(&format!("x={}", digest_hex(Form::Sha256, "+442079460958"))),
            Some((
                PiiKind {
                    datum: Datum::Phone,
                    form: Form::Sha256
                },
                digest_hex(Form::Sha256, "+442079460958")
            ))
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
            PiiKind::EMAIL
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

    #[test]
    fn md5_and_sha1_of_the_normalised_values() {
        // Known answers (Python's hashlib) for the normalised email and phone forms.
        let email = PiiNeedles::from_values(&[" Ann@Example.COM "]);
        let md5 = PiiKind {
            datum: Datum::Email,
            form: Form::Md5,
        };
        let sha1 = PiiKind {
            datum: Datum::Email,
            form: Form::Sha1,
        };
        assert_eq!(
            email.find("h=257C57037D384AE37EA27A07E8A01665").unwrap(),
            (md5, "257c57037d384ae37ea27a07e8a01665".into())
        );
        assert_eq!(
            email
                .find("x-user: 85e20fa15f500fa17c1b6975c6647445094c26d9")
                .unwrap(),
            (sha1, "85e20fa15f500fa17c1b6975c6647445094c26d9".into())
        );
        assert_eq!(md5.describe(), "the MD5 of an email address");
        let phone = PiiNeedles::from_values(&["+44 20 7946 0958"]);
        assert_eq!(
            phone.find("ph=6b5ec58013600595f95cabfc47ceebaa").unwrap().0,
            PiiKind {
                datum: Datum::Phone,
                form: Form::Md5
            }
        );
        assert_eq!(
            phone
                .find("ph=57d6c20bb17469875434a86984de3bdd51acba28")
                .unwrap()
                .0,
            PiiKind {
                datum: Datum::Phone,
                form: Form::Sha1
            }
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn email() -> impl Strategy<Value = String> {
            (
                "[A-Za-z0-9._%+-]{1,12}",
                "[A-Za-z0-9-]{1,10}",
                "[A-Za-z]{2,6}",
            )
                .prop_map(|(l, d, t)| format!("{l}@{d}.{t}"))
        }

        fn form() -> impl Strategy<Value = Form> {
            prop_oneof![
                Just(Form::Plain),
                Just(Form::Sha256),
                Just(Form::Sha1),
                Just(Form::Md5)
            ]
        }

        proptest! {
            /// A typed email in any case, sent in any of its forms (hex digest in either
            /// case) inside other text, is found as exactly that form.
            #[test]
            fn an_email_in_any_form_is_found(
                typed in email(),
                form in form(),
                upper in any::<bool>(),
                before in "[ =&:;/?]{0,8}",
                after in "[ =&:;/?]{0,8}",
            ) {
                let needles = PiiNeedles::from_values(&[typed.as_str()]);
                let mut sent = digest_hex(form, &typed.to_ascii_lowercase());
                if upper { sent = sent.to_ascii_uppercase(); }
                let (kind, value) = needles.find(&format!("{before}{sent}{after}")).unwrap();
                prop_assert_eq!(kind, PiiKind { datum: Datum::Email, form });
                prop_assert_eq!(value, digest_hex(form, &typed.to_ascii_lowercase()));
            }

            /// A typed phone's digest, with or without the leading plus, is found.
            #[test]
            fn a_phone_digest_is_found(
                digits in "[0-9]{7,15}",
                plus in any::<bool>(),
                form in prop_oneof![Just(Form::Sha256), Just(Form::Sha1), Just(Form::Md5)],
            ) {
                let typed = format!("+{digits}");
                let needles = PiiNeedles::from_values(&[typed.as_str()]);
                let normalised = if plus { typed.clone() } else { digits.clone() };
                let (kind, _) = needles
                    .find(&format!("ph={}", digest_hex(form, &normalised)))
                    .unwrap();
                prop_assert_eq!(kind, PiiKind { datum: Datum::Phone, form });
            }

            /// Arbitrary values and text never panic.
            #[test]
            fn arbitrary_text_never_panics(values in proptest::collection::vec(".*", 0..4), text in ".*") {
                let needles = PiiNeedles::from_values(&values);
                let _ = needles.find(&text);
                let _ = needles.find(&decode_url(&text));
                let _ = needles.find(&decode_form(&text));
            }
        }
    }
}
