//! Write keys and API tokens: generated from the OS's CSPRNG, stored only as SHA-256
//! hashes (they carry 190+ bits of entropy, so a fast hash is enough) and looked up by
//! hash, so the secret itself is never compared and timing reveals nothing about it. Also
//! the keyed hash that erasure's suppression list and receipts use.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new random secret of `len` alphanumeric characters after `prefix`.
pub fn generate(prefix: &str, len: usize) -> String {
    let target = prefix.len() + len;
    let mut out = String::with_capacity(target);
    out.push_str(prefix);
    let mut buf = [0u8; 64];
    while out.len() < target {
        getrandom::fill(&mut buf).expect("the operating system's random source failed");
        // 248 = 4 * 62: rejecting bytes above it keeps every character equally likely.
        for &byte in buf.iter().filter(|&&b| b < 248) {
            if out.len() == target {
                break;
            }
            out.push(ALPHABET[(byte % 62) as usize] as char);
        }
    }
    out
}

/// The hex SHA-256 of a secret: what the store keeps and looks secrets up by.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// HMAC-SHA256 of `text` under `key`, hex: how the suppression list names an erased
/// identifier (`type:value`) and how a receipt is signed, under the install's privacy secret.
pub fn keyed_hash(key: &str, text: &str) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashes_match_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            keyed_hash("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn generated_secrets_are_distinct_and_alphanumeric() {
        let a = generate("sl_", 40);
        let b = generate("sl_", 40);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn hashes_differ_for_different_secrets() {
        assert_eq!(hash("k"), hash("k"));
        assert_ne!(hash("k"), hash("K"));
        assert_eq!(hash("k").len(), 64);
    }
}
