//! The in-memory graph's key for an identifier: its type and value as one byte string,
//! stored inline when short. On a large graph every pointer a lookup follows is a cache
//! miss, and looking identifiers up is most of what resolution does; an inline key also
//! makes the table's buckets smaller and lets it grow without reading every identifier's
//! text from the heap.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use crate::identifier::{IdType, Identifier};

/// Longest encoding kept inline: with the length and the enum's tag, a key is 24 bytes.
const INLINE: usize = 22;

#[derive(Clone, Debug)]
pub(crate) enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<Key>() == 24);

impl Key {
    pub(crate) fn new(identifier: &Identifier) -> Key {
        encoded(identifier, |bytes| {
            if bytes.len() <= INLINE {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                let len = bytes.len() as u8; // At most INLINE.
                Key::Inline { len, bytes: inline }
            } else {
                Key::Heap(bytes.into())
            }
        })
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(bytes) => bytes,
        }
    }
}

/// Calls `f` with the identifier's encoding, built on the stack unless it is long: a tag
/// byte for the type, a custom type's name ended by 0xFF (never found in UTF-8), the value.
pub(crate) fn encoded<T>(identifier: &Identifier, f: impl FnOnce(&[u8]) -> T) -> T {
    let (tag, name): (u8, &[u8]) = match &identifier.id_type {
        IdType::UserId => (0, b""),
        IdType::Email => (1, b""),
        IdType::Phone => (2, b""),
        IdType::DeviceId => (3, b""),
        IdType::AnonymousId => (4, b""),
        IdType::Custom(name) => (5, name.as_bytes()),
    };
    let end: &[u8] = if tag == 5 { &[0xFF] } else { b"" };
    let parts = [&[tag][..], name, end, identifier.value.as_bytes()];
    let len = parts.iter().map(|part| part.len()).sum();
    let mut stack = [0; 64];
    let mut heap = Vec::new();
    let buffer = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    let mut at = 0;
    for part in parts {
        buffer[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    f(buffer)
}

// Hash and equality are those of the encoding, as `Borrow` requires.
impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Key {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_equal_exactly_when_identifiers_are() {
        let long = "x".repeat(INLINE);
        let identifiers: Vec<Identifier> = [
            ("user_id", "a"),
            ("email", "a"),
            ("device_id", ""),
            ("c", "ab"),
            ("ca", "b"),
            ("", "cab"),
            ("user_id", &long[1..]),
            ("user_id", &long),
            ("c", &long),
        ]
        .into_iter()
        .map(|(t, v)| Identifier::new(IdType::parse(t), v))
        .collect();
        for a in &identifiers {
            for b in &identifiers {
                assert_eq!(Key::new(a) == Key::new(b), a == b, "{a} {b}");
                let found = encoded(b, |bytes| Key::new(a).bytes() == bytes);
                assert_eq!(found, a == b, "{a} {b}");
            }
        }
        assert!(matches!(Key::new(&identifiers[6]), Key::Inline { .. }));
        assert!(matches!(Key::new(&identifiers[7]), Key::Heap(_)));
    }
}
