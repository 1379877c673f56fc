//! Base64url text as a stream of big-endian bit fields, the representation
//! shared by TCF, GPP and the GPP sections.

use crate::DecodeError;

/// The 6-bit value of one base64url character. Standard-alphabet `+` and `/`
/// are accepted because some CMPs and URL encoders emit them.
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' | b'+' => Some(62),
        b'_' | b'/' => Some(63),
        _ => None,
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Reads bit fields from one base64url-encoded segment. Every read is
/// bounds-checked and names its field, so a short or corrupt segment becomes a
/// [`DecodeError`] that says which field at which bit offset is missing.
#[derive(Debug)]
pub(crate) struct BitReader {
    sextets: Vec<u8>,
    position: usize,
    segment: &'static str,
}

impl BitReader {
    /// Decodes the characters of `text`; trailing `=` padding is ignored.
    pub(crate) fn from_base64url(text: &str, segment: &'static str) -> Result<Self, DecodeError> {
        let unpadded = text.trim_end_matches('=');
        let sextets = unpadded
            .char_indices()
            .map(|(position, found)| {
                u8::try_from(found)
                    .ok()
                    .and_then(sextet)
                    .ok_or(DecodeError::InvalidBase64 {
                        segment,
                        position,
                        found,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            sextets,
            position: 0,
            segment,
        })
    }

    /// Names the segment for later errors, once its type is known.
    pub(crate) fn relabel(&mut self, segment: &'static str) {
        self.segment = segment;
    }

    /// Bit offset of the next read, for error messages.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn remaining(&self) -> usize {
        self.sextets.len() * 6 - self.position
    }

    fn bit_at(&self, index: usize) -> bool {
        (self.sextets[index / 6] >> (5 - index % 6)) & 1 == 1
    }

    fn ensure(&self, needed: usize, field: &'static str) -> Result<(), DecodeError> {
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                segment: self.segment,
                field,
                offset: self.position,
                needed,
                available: self.remaining(),
            });
        }
        Ok(())
    }

    /// Reads an unsigned big-endian integer of `width` bits (at most 64).
    pub(crate) fn read(&mut self, width: usize, field: &'static str) -> Result<u64, DecodeError> {
        debug_assert!(width <= 64);
        self.ensure(width, field)?;
        let value = (self.position..self.position + width).fold(0u64, |value, index| {
            (value << 1) | u64::from(self.bit_at(index))
        });
        self.position += width;
        Ok(value)
    }

    pub(crate) fn read_bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        Ok(self.read(1, field)? == 1)
    }

    pub(crate) fn read_u8(&mut self, width: usize, field: &'static str) -> Result<u8, DecodeError> {
        debug_assert!(width <= 8);
        Ok(self.read(width, field)? as u8)
    }

    pub(crate) fn read_u16(
        &mut self,
        width: usize,
        field: &'static str,
    ) -> Result<u16, DecodeError> {
        debug_assert!(width <= 16);
        Ok(self.read(width, field)? as u16)
    }

    /// Reads `width` flags and returns the 1-based positions of those set.
    pub(crate) fn read_bitfield<T: TryFrom<usize>>(
        &mut self,
        width: usize,
        field: &'static str,
    ) -> Result<Vec<T>, DecodeError> {
        self.ensure(width, field)?;
        let start = self.position;
        self.position += width;
        Ok((start..start + width)
            .filter(|&index| self.bit_at(index))
            .filter_map(|index| T::try_from(index - start + 1).ok())
            .collect())
    }

    /// Reads a Fibonacci-coded positive integer (Zeckendorf digits, least
    /// significant first, terminated by two consecutive 1 bits) as GPP uses.
    pub(crate) fn read_fibonacci(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        // 2^16 ids need 23 digits; longer codes can only be corruption.
        const MAX_DIGITS: usize = 24;
        let offset = self.position;
        let (mut weight, mut next_weight) = (1u64, 2u64);
        let (mut value, mut last_was_one) = (0u64, false);
        for _ in 0..=MAX_DIGITS {
            let bit = self.read_bool(field)?;
            if bit && last_was_one {
                return Ok(value);
            }
            if bit {
                value += weight;
            }
            (weight, next_weight) = (next_weight, weight + next_weight);
            last_was_one = bit;
        }
        Err(self.invalid(
            field,
            offset,
            format!("no terminating '11' within {MAX_DIGITS} bits"),
            "a Fibonacci-coded integer ending in two consecutive 1 bits",
        ))
    }

    pub(crate) fn invalid(
        &self,
        field: &'static str,
        offset: usize,
        found: impl ToString,
        expected: &'static str,
    ) -> DecodeError {
        DecodeError::InvalidField {
            segment: self.segment,
            field,
            offset,
            found: found.to_string(),
            expected,
        }
    }
}

/// Accumulates bit fields and renders them as unpadded base64url.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    bits: Vec<bool>,
}

impl BitWriter {
    /// Appends the low `width` bits of `value`, most significant first.
    pub(crate) fn write(&mut self, value: u64, width: usize) {
        self.bits
            .extend((0..width).rev().map(|shift| (value >> shift) & 1 == 1));
    }

    pub(crate) fn write_bool(&mut self, value: bool) {
        self.bits.push(value);
    }

    /// Appends one flag per position 1..=width, set where `ids` contains it.
    pub(crate) fn write_bitfield<T: Copy + Into<u64>>(&mut self, ids: &[T], width: usize) {
        let start = self.bits.len();
        self.bits.resize(start + width, false);
        for id in ids.iter().map(|&id| id.into() as usize) {
            if (1..=width).contains(&id) {
                self.bits[start + id - 1] = true;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bits.len()
    }

    /// Pads with zero bits to a multiple of 24 (whole bytes and whole
    /// characters), as the IAB reference encoder does, then encodes.
    pub(crate) fn into_base64url(mut self) -> String {
        self.bits.resize(self.bits.len().div_ceil(24) * 24, false);
        self.bits
            .chunks(6)
            .map(|chunk| {
                let index = chunk
                    .iter()
                    .fold(0usize, |acc, &bit| (acc << 1) | usize::from(bit));
                char::from(ALPHABET[index])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_fields_across_characters() {
        // 'C' = 000010, 'P' = 001111
        let mut reader = BitReader::from_base64url("CP", "test").unwrap();
        assert_eq!(reader.read(6, "version").unwrap(), 2);
        assert_eq!(reader.read(3, "a").unwrap(), 0b001);
        assert_eq!(reader.read(3, "b").unwrap(), 0b111);
        assert!(matches!(
            reader.read(1, "c"),
            Err(DecodeError::Truncated {
                field: "c",
                offset: 12,
                needed: 1,
                available: 0,
                ..
            })
        ));
    }

    #[test]
    fn fibonacci_codes_decode_to_their_values() {
        // 1 = 11, 2 = 011, 3 = 0011, 4 = 1011, 7 = 01011, 12 = 101011
        let mut writer = BitWriter::default();
        for code in ["11", "011", "0011", "1011", "01011", "101011"] {
            for bit in code.chars() {
                writer.write_bool(bit == '1');
            }
        }
        let mut reader = BitReader::from_base64url(&writer.into_base64url(), "test").unwrap();
        for expected in [1, 2, 3, 4, 7, 12] {
            assert_eq!(reader.read_fibonacci("id").unwrap(), expected);
        }
    }

    #[test]
    fn rejects_characters_outside_base64() {
        let error = BitReader::from_base64url("CP!x", "TCF core segment").unwrap_err();
        assert_eq!(
            error,
            DecodeError::InvalidBase64 {
                segment: "TCF core segment",
                position: 2,
                found: '!'
            }
        );
    }

    #[test]
    fn writer_round_trips_through_reader() {
        let mut writer = BitWriter::default();
        writer.write(2, 6);
        writer.write(4095, 12);
        writer.write_bitfield(&[1u8, 3], 4);
        let mut reader = BitReader::from_base64url(&writer.into_base64url(), "test").unwrap();
        assert_eq!(reader.read(6, "a").unwrap(), 2);
        assert_eq!(reader.read(12, "b").unwrap(), 4095);
        assert_eq!(reader.read_bitfield::<u8>(4, "c").unwrap(), vec![1, 3]);
    }
}
