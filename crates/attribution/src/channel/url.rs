//! The little URL handling channel grouping needs: host and query parameters.
//! Written here rather than pulling in `url`, because only these two reads are needed
//! and both must accept the malformed URLs found in real tracking data.

/// Lower-cased host of an absolute URL (`https://www.Example.com:443/x` →
/// `www.example.com`), or of a bare host (`example.com/x`).
pub(crate) fn host(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => url.strip_prefix("//").unwrap_or(url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = host_port
        .split(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('.');
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| host.to_ascii_lowercase())
}

/// The first value of query parameter `name` (percent-decoded, `+` as space).
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key).eq_ignore_ascii_case(name)).then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            host("https://www.Example.com:443/x?y").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            host("android-app://com.google.android.gm/").as_deref(),
            Some("com.google.android.gm")
        );
        assert_eq!(host("example.org/path").as_deref(), Some("example.org"));
        assert_eq!(
            host("https://user@shop.example.com/").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(host(""), None);
    }

    #[test]
    fn query_params() {
        let url = "https://a.example/?utm_source=news%20letter&utm_medium=e+mail&x#frag";
        assert_eq!(
            query_param(url, "utm_source").as_deref(),
            Some("news letter")
        );
        assert_eq!(query_param(url, "UTM_MEDIUM").as_deref(), Some("e mail"));
        assert_eq!(query_param(url, "x").as_deref(), Some(""));
        assert_eq!(query_param(url, "gclid"), None);
        assert_eq!(
            query_param("https://a.example/?q=%zz%4", "q").as_deref(),
            Some("%zz%4")
        );
    }
}
