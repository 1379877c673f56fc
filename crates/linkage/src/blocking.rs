//! Blocking: which pairs of records are compared at all.
//!
//! Each rule maps a record to a key (null when any part is null); records with
//! equal keys form a block. Rules are OR'd: a pair found by several rules is
//! emitted once, by the first rule that finds it. Comparison counts come from
//! block sizes alone, so they are known before any pair is generated.

use std::hash::{DefaultHasher, Hasher};

use rustc_hash::FxHashMap as HashMap;

use serde::Serialize;

use crate::mapping::{BlockingRule, KeyTransform};
use crate::Dataset;

/// No key: some part of the rule is null for this record.
const NO_KEY: u32 = u32::MAX;

/// Comparisons one blocking rule generates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    pub rule: String,
    /// Pairs with equal keys under this rule alone (computed from block sizes).
    pub comparisons: u64,
    /// Of those, pairs not already found by an earlier rule (known after generation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_pairs: Option<u64>,
}

/// Interned blocking keys of every record, per rule and side.
pub(crate) struct Blocker {
    rules: Vec<String>,
    /// Distinct keys per rule (key ids are dense: `0..key_count`).
    key_count: Vec<usize>,
    left: Vec<Vec<u32>>,
    /// `None` when deduplicating one dataset.
    right: Option<Vec<Vec<u32>>>,
}

impl Blocker {
    pub(crate) fn new(rules: &[BlockingRule], left: &Dataset, right: Option<&Dataset>) -> Self {
        let mut left_keys = Vec::with_capacity(rules.len());
        let mut right_keys = Vec::with_capacity(rules.len());
        let mut key_count = Vec::with_capacity(rules.len());
        for rule in rules {
            // One interner per rule, shared by both sides, so equal keys get equal ids.
            let mut interner: HashMap<u64, u32> = HashMap::default();
            left_keys.push(rule_keys(rule, left, &mut interner));
            if let Some(right) = right {
                right_keys.push(rule_keys(rule, right, &mut interner));
            }
            key_count.push(interner.len());
        }
        Self {
            rules: rules.iter().map(ToString::to_string).collect(),
            key_count,
            left: left_keys,
            right: right.map(|_| right_keys),
        }
    }

    fn right(&self, rule: usize) -> &[u32] {
        self.right.as_ref().map_or(&self.left[rule], |r| &r[rule])
    }

    /// Comparisons per rule, from block sizes only.
    pub(crate) fn counts(&self) -> Vec<RuleCount> {
        (0..self.rules.len())
            .map(|rule| {
                let left = block_sizes(&self.left[rule], self.key_count[rule]);
                let comparisons = match &self.right {
                    None => left.iter().map(|&n| n * n.saturating_sub(1) / 2).sum(),
                    Some(_) => {
                        let right = block_sizes(self.right(rule), self.key_count[rule]);
                        left.iter().zip(&right).map(|(&l, &r)| l * r).sum()
                    }
                };
                RuleCount {
                    rule: self.rules[rule].clone(),
                    comparisons,
                    new_pairs: None,
                }
            })
            .collect()
    }

    /// Every candidate pair once (left index, right index; `left < right` when
    /// deduplicating), with the per-rule counts completed with `new_pairs`.
    pub(crate) fn pairs(&self) -> (Vec<(u32, u32)>, Vec<RuleCount>) {
        let mut counts = self.counts();
        let mut pairs = Vec::with_capacity(counts.iter().map(|c| c.comparisons as usize).sum());
        for (rule, count) in counts.iter_mut().enumerate() {
            let before = pairs.len();
            let mut emit = |i: u32, j: u32| {
                if !self.found_by_earlier_rule(rule, i, j) {
                    pairs.push((i, j));
                }
            };
            let key_count = self.key_count[rule];
            let left_blocks = Blocks::new(&self.left[rule], key_count);
            match &self.right {
                None => {
                    for block in (0..key_count).map(|key| left_blocks.block(key)) {
                        for (n, &i) in block.iter().enumerate() {
                            for &j in &block[n + 1..] {
                                emit(i, j);
                            }
                        }
                    }
                }
                Some(_) => {
                    let right_blocks = Blocks::new(self.right(rule), key_count);
                    for key in 0..key_count {
                        let right_block = right_blocks.block(key);
                        for &i in left_blocks.block(key) {
                            for &j in right_block {
                                emit(i, j);
                            }
                        }
                    }
                }
            }
            count.new_pairs = Some((pairs.len() - before) as u64);
        }
        (pairs, counts)
    }

    fn found_by_earlier_rule(&self, rule: usize, i: u32, j: u32) -> bool {
        (0..rule).any(|earlier| {
            let key = self.left[earlier][i as usize];
            key != NO_KEY && key == self.right(earlier)[j as usize]
        })
    }
}

fn block_sizes(keys: &[u32], key_count: usize) -> Vec<u64> {
    let mut sizes = vec![0; key_count];
    for &key in keys.iter().filter(|&&k| k != NO_KEY) {
        sizes[key as usize] += 1;
    }
    sizes
}

/// Records grouped by key id, ascending within each block (so deduplication pairs
/// have i < j and the pair order is deterministic). Stored as one array with
/// offsets (a counting sort) rather than a vector per block, to save allocations.
struct Blocks {
    starts: Vec<u32>,
    members: Vec<u32>,
}

impl Blocks {
    fn new(keys: &[u32], key_count: usize) -> Self {
        let mut starts = vec![0u32; key_count + 1];
        for &key in keys.iter().filter(|&&k| k != NO_KEY) {
            starts[key as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut members = vec![0u32; starts[key_count] as usize];
        for (index, &key) in keys.iter().enumerate().filter(|(_, &k)| k != NO_KEY) {
            members[next[key as usize] as usize] = index as u32;
            next[key as usize] += 1;
        }
        Self { starts, members }
    }

    fn block(&self, key: usize) -> &[u32] {
        &self.members[self.starts[key] as usize..self.starts[key + 1] as usize]
    }
}

/// Dense key ids of every record under one rule. A key is the 64-bit SipHash of
/// its parts, so no string is built or stored per record. Two different keys
/// sharing a hash (odds about n²/2⁶⁵) would only merge two blocks: a few more
/// pairs compared and scored like any other, never a pair lost.
fn rule_keys(rule: &BlockingRule, data: &Dataset, interner: &mut HashMap<u64, u32>) -> Vec<u32> {
    let columns: Vec<(usize, KeyTransform)> = rule
        .keys
        .iter()
        .map(|k| {
            let column = data
                .column_index(&k.column)
                .expect("blocking columns are validated when the mapping is resolved");
            (column, k.transform)
        })
        .collect();
    (0..data.len())
        .map(|row| {
            let mut hasher = DefaultHasher::new();
            for &(column, transform) in &columns {
                let Some(value) = data.value(row, column) else {
                    return NO_KEY;
                };
                match transform {
                    KeyTransform::Value => hasher.write(value.as_bytes()),
                    KeyTransform::Prefix(n) => {
                        let end = value.char_indices().nth(n).map_or(value.len(), |(i, _)| i);
                        hasher.write(&value.as_bytes()[..end]);
                    }
                    KeyTransform::Year => match year(value) {
                        Some(year) => hasher.write(year.as_bytes()),
                        None => return NO_KEY,
                    },
                    KeyTransform::Soundex => match soundex(value) {
                        Some(code) => hasher.write(&code.0),
                        None => return NO_KEY,
                    },
                }
                // Separates the parts: ("ab", "c") and ("a", "bc") are different keys.
                hasher.write_u8(0x1f);
            }
            let next_id = interner.len() as u32;
            *interner.entry(hasher.finish()).or_insert(next_id)
        })
        .collect()
}

/// The year of a date written `YYYYMMDD`, `YYYY-MM-DD` or `DD/MM/YYYY`.
fn year(date: &str) -> Option<&str> {
    date.split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 8 || part.len() == 4)
        .map(|part| &part[..4])
}

/// American Soundex (letter + three digits). Written here because it is a few
/// lines and no small, maintained crate provides just this.
fn soundex(value: &str) -> Option<Soundex> {
    fn code(c: u8) -> u8 {
        match c {
            b'b' | b'f' | b'p' | b'v' => b'1',
            b'c' | b'g' | b'j' | b'k' | b'q' | b's' | b'x' | b'z' => b'2',
            b'd' | b't' => b'3',
            b'l' => b'4',
            b'm' | b'n' => b'5',
            b'r' => b'6',
            b'h' | b'w' => b'h', // does not separate equal codes
            _ => b'0',           // vowels and y separate equal codes
        }
    }
    let mut letters = value
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase());
    let first = letters.next()?;
    let mut out = [first.to_ascii_uppercase(), b'0', b'0', b'0'];
    let mut len = 1;
    let mut previous = code(first);
    for c in letters {
        let digit = code(c);
        if digit == b'h' {
            continue;
        }
        if digit != b'0' && digit != previous {
            out[len] = digit;
            len += 1;
            if len == 4 {
                break;
            }
        }
        previous = digit;
    }
    Some(Soundex(out))
}

/// A Soundex code, kept on the stack.
struct Soundex([u8; 4]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::BlockingKey;
    use proptest::prelude::*;

    fn rule(columns: &[&str]) -> BlockingRule {
        BlockingRule {
            keys: columns
                .iter()
                .map(|c| BlockingKey {
                    column: (*c).to_owned(),
                    transform: KeyTransform::Value,
                })
                .collect(),
        }
    }

    fn dataset(rows: &[(Option<u8>, Option<u8>)]) -> Dataset {
        let columns = vec!["id".to_owned(), "a".to_owned(), "b".to_owned()];
        let rows: Vec<[String; 3]> = rows
            .iter()
            .enumerate()
            .map(|(i, (a, b))| {
                let text = |v: &Option<u8>| v.map(|v| v.to_string()).unwrap_or_default();
                [i.to_string(), text(a), text(b)]
            })
            .collect();
        Dataset::from_rows(columns, "id", rows).unwrap()
    }

    fn matches(data_l: &Dataset, i: usize, data_r: &Dataset, j: usize, columns: &[&str]) -> bool {
        columns.iter().all(|c| {
            let (cl, cr) = (
                data_l.column_index(c).unwrap(),
                data_r.column_index(c).unwrap(),
            );
            data_l.value(i, cl).is_some() && data_l.value(i, cl) == data_r.value(j, cr)
        })
    }

    #[test]
    fn soundex_codes() {
        let code = |name: &str| soundex(name).map(|s| String::from_utf8(s.0.to_vec()).unwrap());
        assert_eq!(code("robert").as_deref(), Some("R163"));
        assert_eq!(code("rupert").as_deref(), Some("R163"));
        assert_eq!(code("ashcraft").as_deref(), Some("A261"));
        assert_eq!(code("tymczak").as_deref(), Some("T522"));
        assert_eq!(code("pfister").as_deref(), Some("P236"));
        assert_eq!(code("lee").as_deref(), Some("L000"));
        assert_eq!(code("123"), None);
    }

    #[test]
    fn year_of_dates() {
        assert_eq!(year("19900102"), Some("1990"));
        assert_eq!(year("1990-01-02"), Some("1990"));
        assert_eq!(year("02/01/1990"), Some("1990"));
        assert_eq!(year("0102"), Some("0102"));
        assert_eq!(year("12"), None);
    }

    fn cell() -> impl Strategy<Value = Option<u8>> {
        prop::option::weighted(0.8, 0u8..4)
    }

    proptest! {
        #[test]
        fn dedupe_pairs_are_unique_complete_and_counted(
            rows in prop::collection::vec((cell(), cell()), 0..40),
        ) {
            let data = dataset(&rows);
            let rule_columns: [&[&str]; 3] = [&["a"], &["b"], &["a", "b"]];
            let rules: Vec<_> = rule_columns.iter().map(|c| rule(c)).collect();
            let blocker = Blocker::new(&rules, &data, None);
            let (pairs, counts) = blocker.pairs();
            let mut sorted = pairs.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), pairs.len(), "a pair was emitted twice");
            let mut expected = Vec::new();
            for (r, columns) in rule_columns.iter().enumerate() {
                let mut per_rule = 0;
                for i in 0..data.len() {
                    for j in i + 1..data.len() {
                        if matches(&data, i, &data, j, columns) {
                            per_rule += 1;
                            expected.push((i as u32, j as u32));
                        }
                    }
                }
                prop_assert_eq!(counts[r].comparisons, per_rule);
            }
            expected.sort_unstable();
            expected.dedup();
            prop_assert_eq!(sorted, expected);
            let new_total: u64 = counts.iter().map(|c| c.new_pairs.unwrap()).sum();
            prop_assert_eq!(new_total as usize, pairs.len());
        }

        #[test]
        fn linkage_pairs_are_unique_complete_and_counted(
            left in prop::collection::vec((cell(), cell()), 0..25),
            right in prop::collection::vec((cell(), cell()), 0..25),
        ) {
            let (left, right) = (dataset(&left), dataset(&right));
            let rule_columns: [&[&str]; 2] = [&["a"], &["b"]];
            let rules: Vec<_> = rule_columns.iter().map(|c| rule(c)).collect();
            let blocker = Blocker::new(&rules, &left, Some(&right));
            let (mut pairs, counts) = blocker.pairs();
            let mut expected = Vec::new();
            for (r, columns) in rule_columns.iter().enumerate() {
                let mut per_rule = 0;
                for i in 0..left.len() {
                    for j in 0..right.len() {
                        if matches(&left, i, &right, j, columns) {
                            per_rule += 1;
                            expected.push((i as u32, j as u32));
                        }
                    }
                }
                prop_assert_eq!(counts[r].comparisons, per_rule);
            }
            let emitted = pairs.len();
            pairs.sort_unstable();
            pairs.dedup();
            prop_assert_eq!(pairs.len(), emitted, "a pair was emitted twice");
            expected.sort_unstable();
            expected.dedup();
            prop_assert_eq!(pairs, expected);
        }
    }
}
