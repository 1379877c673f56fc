//! Field comparators: each maps a pair of normalised values to a discrete level.
//!
//! Level 0 is always "null" (either side missing, weight 0), level 1 is always
//! "exact", the last level is always "else"; the ones in between are ordered from
//! the most to the least similar.

use serde::{Deserialize, Serialize};

/// Either value is missing: the level contributes no evidence.
pub const NULL_LEVEL: u8 = 0;
/// Both values are identical after normalisation.
pub const EXACT_LEVEL: u8 = 1;

/// How one field is compared. Thresholds define the levels between "exact" and "else".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Comparison {
    /// exact / else.
    Exact,
    /// Jaro–Winkler similarity at or above each threshold, strictest first.
    JaroWinkler { thresholds: Vec<f64> },
    /// Levenshtein edit distance at or below each threshold, strictest first.
    Levenshtein { thresholds: Vec<u32> },
    /// Dates: day/month transposed, only the year differs, one digit differs.
    Date,
    /// Absolute numeric difference at or below each threshold, strictest first.
    Numeric { thresholds: Vec<f64> },
}

impl Comparison {
    /// Number of levels, the null level included.
    pub fn level_count(&self) -> usize {
        let partial_levels = match self {
            Comparison::Exact => 0,
            Comparison::JaroWinkler { thresholds } | Comparison::Numeric { thresholds } => {
                thresholds.len()
            }
            Comparison::Levenshtein { thresholds } => thresholds.len(),
            Comparison::Date => 3,
        };
        partial_levels + 3 // null, exact, else
    }

    /// Human-readable label of every level, indexed by level.
    pub fn level_labels(&self) -> Vec<String> {
        let mut labels = vec!["null".to_owned(), "exact".to_owned()];
        match self {
            Comparison::Exact => {}
            Comparison::JaroWinkler { thresholds } => {
                labels.extend(thresholds.iter().map(|t| format!("jaro_winkler >= {t}")))
            }
            Comparison::Levenshtein { thresholds } => {
                labels.extend(thresholds.iter().map(|t| format!("levenshtein <= {t}")))
            }
            Comparison::Date => labels.extend(
                [
                    "day/month transposed",
                    "only year differs",
                    "one digit differs",
                ]
                .map(str::to_owned),
            ),
            Comparison::Numeric { thresholds } => {
                labels.extend(thresholds.iter().map(|t| format!("difference <= {t}")))
            }
        }
        labels.push("else".to_owned());
        labels
    }

    /// The level of a pair of normalised values. Symmetric in its arguments.
    pub fn level(&self, a: Option<&str>, b: Option<&str>) -> u8 {
        let (Some(a), Some(b)) = (a, b) else {
            return NULL_LEVEL;
        };
        // Canonical order makes every comparator symmetric, whatever its internals.
        let (a, b) = match a.cmp(b) {
            std::cmp::Ordering::Equal => return EXACT_LEVEL,
            std::cmp::Ordering::Less => (a, b),
            std::cmp::Ordering::Greater => (b, a),
        };
        let else_level = self.level_count() as u8 - 1;
        let first_partial = EXACT_LEVEL + 1;
        let position = match self {
            Comparison::Exact => None,
            Comparison::JaroWinkler { thresholds } => {
                let lowest = thresholds.last().copied().unwrap_or(1.0);
                // Most pairs (random ones above all) share few characters: a cheap
                // bound rules them out without the full computation. Below 0.7 the
                // Winkler prefix bonus does not apply, so the bound holds for JW too.
                let bound = jaro_upper_bound(a, b);
                if bound < lowest && bound <= 0.7 {
                    None
                } else {
                    let similarity = jaro_winkler(a, b);
                    thresholds.iter().position(|&t| similarity >= t)
                }
            }
            Comparison::Levenshtein { thresholds } => {
                let max = thresholds.iter().copied().max().unwrap_or(0) as usize;
                // Cheap lower bound on the distance avoids the quadratic work for most pairs.
                if a.chars().count().abs_diff(b.chars().count()) > max {
                    None
                } else {
                    let distance = levenshtein(a, b) as u32;
                    thresholds.iter().position(|&t| distance <= t)
                }
            }
            Comparison::Date => return date_level(a, b),
            Comparison::Numeric { thresholds } => match (parse_number(a), parse_number(b)) {
                (Some(x), Some(y)) if x == y => return EXACT_LEVEL,
                (Some(x), Some(y)) => thresholds.iter().position(|&t| (x - y).abs() <= t),
                _ => None,
            },
        };
        position.map_or(else_level, |p| first_partial + p as u8)
    }
}

const DATE_TRANSPOSED: u8 = 2;
const DATE_YEAR_ONLY: u8 = 3;
const DATE_ONE_DIGIT: u8 = 4;
const DATE_ELSE: u8 = 5;

/// A date split into year and the two other components in written order, so
/// transpositions are detected whether the file writes day or month first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateParts {
    year: u16,
    first: u8,
    second: u8,
}

impl DateParts {
    /// The date as the eight digits `YYYYAABB`.
    fn digits(self) -> [u8; 8] {
        let y = self.year;
        let (a, b) = (self.first, self.second);
        [
            (y / 1000 % 10) as u8,
            (y / 100 % 10) as u8,
            (y / 10 % 10) as u8,
            (y % 10) as u8,
            a / 10,
            a % 10,
            b / 10,
            b % 10,
        ]
    }
}

/// Parses `YYYYMMDD`, `YYYY-MM-DD`, `DD/MM/YYYY` and `MM/DD/YYYY` (any separator).
/// Allocation-free: it runs for every compared pair.
fn parse_date(text: &str) -> Option<DateParts> {
    let mut parts = [&b""[..]; 3];
    let mut count = 0;
    for part in text
        .as_bytes()
        .split(|c| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
    {
        *parts.get_mut(count)? = part;
        count += 1;
    }
    let (year, first, second) = match (count, parts) {
        (1, [compact, _, _]) if compact.len() == 8 => {
            (&compact[..4], &compact[4..6], &compact[6..])
        }
        (3, [y, a, b]) if y.len() == 4 && a.len() <= 2 && b.len() <= 2 => (y, a, b),
        (3, [a, b, y]) if y.len() == 4 && a.len() <= 2 && b.len() <= 2 => (y, a, b),
        _ => return None,
    };
    // Parts are 1 to 4 ASCII digits here, so this cannot overflow.
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
    };
    let (first, second) = (number(first) as u8, number(second) as u8);
    (first <= 31 && second <= 31).then_some(DateParts {
        year: number(year),
        first,
        second,
    })
}

fn date_level(a: &str, b: &str) -> u8 {
    let (Some(x), Some(y)) = (parse_date(a), parse_date(b)) else {
        return DATE_ELSE;
    };
    if x == y {
        // Same date written differently, e.g. "1990-01-02" and "19900102".
        return EXACT_LEVEL;
    }
    if x.year == y.year && x.first == y.second && x.second == y.first {
        return DATE_TRANSPOSED;
    }
    if x.first == y.first && x.second == y.second {
        return DATE_YEAR_ONLY;
    }
    let differing = x
        .digits()
        .iter()
        .zip(y.digits())
        .filter(|(p, q)| **p != *q)
        .count();
    if differing == 1 {
        DATE_ONE_DIGIT
    } else {
        DATE_ELSE
    }
}

/// An upper bound on the Jaro similarity from which characters the strings share:
/// each match pairs a byte of `a` with an equal byte of `b`, so matches cannot
/// exceed the bytes of either string whose value occurs in the other. Bytes are
/// folded into 64 buckets (`c % 64`) so a set is one word; a shared bucket is
/// implied by a shared byte, so the bound stays valid. Non-ASCII gets bound 1.
fn jaro_upper_bound(a: &str, b: &str) -> f64 {
    if !(a.is_ascii() && b.is_ascii()) || a.is_empty() || b.is_empty() {
        return 1.0;
    }
    let set = |s: &[u8]| s.iter().fold(0u64, |set, &c| set | 1 << (c % 64));
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (x_set, y_set) = (set(x), set(y));
    let shared = |s: &[u8], other: u64| s.iter().filter(|&&c| other & (1 << (c % 64)) != 0).count();
    let matches = shared(x, y_set).min(shared(y, x_set));
    if matches == 0 {
        return 0.0;
    }
    let m = matches as f64;
    (m / x.len() as f64 + m / y.len() as f64 + 1.0) / 3.0
}

thread_local! {
    /// Per-thread character-position table of [`jaro_winkler`], all zero between calls.
    static POSITIONS: std::cell::RefCell<[u64; 128]> = const { std::cell::RefCell::new([0; 128]) };
}

/// Jaro–Winkler similarity, equal to `strsim::jaro_winkler`. ASCII strings of up
/// to 64 bytes take an allocation-free bitmask path (several times faster than
/// strsim, which allocates per call; this is the hottest loop of a run); other
/// strings go to strsim. A property test checks that both agree.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if !(a.is_ascii() && b.is_ascii() && x.len() <= 64 && y.len() <= 64) {
        return strsim::jaro_winkler(a, b);
    }
    if x.is_empty() || y.is_empty() {
        return if x.len() == y.len() { 1.0 } else { 0.0 };
    }
    let window = (x.len().max(y.len()) / 2).saturating_sub(1);
    let (matches, x_matched, y_matched) = POSITIONS.with_borrow_mut(|positions| {
        // Bit j of positions[c] is set when y[j] == c: each character of x then
        // finds its first unmatched partner in the window with a few bit operations.
        for (j, &c) in y.iter().enumerate() {
            positions[c as usize] |= 1 << j;
        }
        let below = |n: usize| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let (mut x_matched, mut y_matched) = (0u64, 0u64);
        let mut matches = 0usize;
        for (i, &c) in x.iter().enumerate() {
            let in_window = below(y.len().min(i + window + 1)) & !below(i.saturating_sub(window));
            let candidates = positions[c as usize] & in_window & !y_matched;
            if candidates != 0 {
                x_matched |= 1 << i;
                y_matched |= candidates & candidates.wrapping_neg();
                matches += 1;
            }
        }
        // Clearing only the entries used is cheaper than zeroing the table per call.
        for &c in y {
            positions[c as usize] = 0;
        }
        (matches, x_matched, y_matched)
    });
    if matches == 0 {
        return 0.0;
    }
    let mut half_transpositions = 0usize;
    let (mut xs, mut ys) = (x_matched, y_matched);
    while xs != 0 {
        let (i, j) = (xs.trailing_zeros() as usize, ys.trailing_zeros() as usize);
        half_transpositions += usize::from(x[i] != y[j]);
        xs &= xs - 1;
        ys &= ys - 1;
    }
    let m = matches as f64;
    let jaro =
        (m / x.len() as f64 + m / y.len() as f64 + (m - (half_transpositions / 2) as f64) / m)
            / 3.0;
    if jaro <= 0.7 {
        return jaro;
    }
    let prefix = x.iter().zip(y).take(4).take_while(|(p, q)| p == q).count();
    jaro + 0.1 * prefix as f64 * (1.0 - jaro)
}

/// Levenshtein distance, equal to `strsim::levenshtein`. ASCII strings whose
/// shorter side fits in 64 bytes use Myers' bit-parallel algorithm (no allocation,
/// one pass); others go to strsim.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if !(short.is_ascii() && long.is_ascii() && short.len() <= 64) {
        return strsim::levenshtein(a, b);
    }
    let (pattern, text) = (short.as_bytes(), long.as_bytes());
    if pattern.is_empty() {
        return text.len();
    }
    let mut peq = [0u64; 128];
    for (i, &c) in pattern.iter().enumerate() {
        peq[c as usize] |= 1 << i;
    }
    let last = 1u64 << (pattern.len() - 1);
    let (mut pv, mut mv) = (u64::MAX, 0u64);
    let mut score = pattern.len();
    for &c in text {
        let eq = peq[c as usize];
        let xv = eq | mv;
        let xh = ((eq & pv).wrapping_add(pv) ^ pv) | eq;
        let mut ph = mv | !(xh | pv);
        let mut mh = pv & xh;
        if ph & last != 0 {
            score += 1;
        } else if mh & last != 0 {
            score -= 1;
        }
        ph = (ph << 1) | 1;
        mh <<= 1;
        pv = mh | !(xv | ph);
        mv = ph & xv;
    }
    score
}

fn parse_number(text: &str) -> Option<f64> {
    let cleaned: String = text.chars().filter(|c| *c != ',' && *c != ' ').collect();
    cleaned.parse::<f64>().ok().filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_kinds() -> Vec<Comparison> {
        vec![
            Comparison::Exact,
            Comparison::JaroWinkler {
                thresholds: vec![0.92, 0.88, 0.7],
            },
            Comparison::Levenshtein {
                thresholds: vec![1, 2],
            },
            Comparison::Date,
            Comparison::Numeric {
                thresholds: vec![1.0, 5.0],
            },
        ]
    }

    #[test]
    fn jaro_winkler_levels() {
        let c = Comparison::JaroWinkler {
            thresholds: vec![0.92, 0.88],
        };
        assert_eq!(c.level(Some("martha"), Some("martha")), EXACT_LEVEL);
        assert_eq!(c.level(Some("martha"), Some("marhta")), 2); // 0.961
        assert_eq!(c.level(Some("dixon"), Some("dicksonx")), 4); // 0.813
        assert_eq!(c.level(None, Some("x")), NULL_LEVEL);
    }

    #[test]
    fn levenshtein_levels() {
        let c = Comparison::Levenshtein {
            thresholds: vec![1, 2],
        };
        assert_eq!(c.level(Some("4011"), Some("4012")), 2);
        assert_eq!(c.level(Some("4011"), Some("4101")), 3);
        assert_eq!(c.level(Some("4011"), Some("9999")), 4);
        assert_eq!(c.level(Some("4011"), Some("40112345")), 4);
    }

    #[test]
    fn date_levels() {
        let c = Comparison::Date;
        assert_eq!(c.level(Some("19900102"), Some("1990-01-02")), EXACT_LEVEL);
        assert_eq!(c.level(Some("19900102"), Some("19900201")), DATE_TRANSPOSED);
        assert_eq!(c.level(Some("19900102"), Some("19910102")), DATE_YEAR_ONLY);
        assert_eq!(c.level(Some("19900102"), Some("19900103")), DATE_ONE_DIGIT);
        assert_eq!(c.level(Some("19900102"), Some("19850620")), DATE_ELSE);
        assert_eq!(c.level(Some("unknown"), Some("19850620")), DATE_ELSE);
        assert_eq!(
            c.level(Some("02/01/1990"), Some("01/02/1990")),
            DATE_TRANSPOSED
        );
    }

    #[test]
    fn numeric_levels() {
        let c = Comparison::Numeric {
            thresholds: vec![1.0, 5.0],
        };
        assert_eq!(c.level(Some("40"), Some("40.0")), EXACT_LEVEL);
        assert_eq!(c.level(Some("40"), Some("41")), 2);
        assert_eq!(c.level(Some("40"), Some("44")), 3);
        assert_eq!(c.level(Some("40"), Some("60")), 4);
        assert_eq!(c.level(Some("forty"), Some("60")), 4);
    }

    proptest! {
        #[test]
        fn levels_are_symmetric_bounded_and_exact_on_identity(
            a in "[a-e0-9/-]{0,10}", b in "[a-e0-9/-]{0,10}",
        ) {
            let a = crate::normalize::normalize(&a);
            let b = crate::normalize::normalize(&b);
            for kind in all_kinds() {
                let ab = kind.level(a.as_deref(), b.as_deref());
                prop_assert_eq!(ab, kind.level(b.as_deref(), a.as_deref()));
                prop_assert!((ab as usize) < kind.level_count());
                prop_assert_eq!(ab == NULL_LEVEL, a.is_none() || b.is_none());
                if a.is_some() {
                    prop_assert_eq!(kind.level(a.as_deref(), a.as_deref()), EXACT_LEVEL);
                }
            }
        }

        #[test]
        fn jaro_winkler_is_bounded_and_agrees_with_strsim(
            a in "[a-z ]{0,12}|[a-f ]{0,70}|\\PC{0,12}", b in "[a-z ]{0,12}|[a-f ]{0,70}|\\PC{0,12}",
        ) {
            let ab = jaro_winkler(&a, &b);
            prop_assert!((0.0..=1.0).contains(&ab));
            prop_assert!((ab - strsim::jaro_winkler(&a, &b)).abs() < 1e-12);
            if a == b {
                prop_assert_eq!(ab, 1.0);
            }
        }

        #[test]
        fn jaro_upper_bound_bounds_jaro(
            a in "[a-z ]{0,12}|[a-f ]{0,70}|\\PC{0,12}", b in "[a-z ]{0,12}|[a-f ]{0,70}|\\PC{0,12}",
        ) {
            prop_assert!(jaro_upper_bound(&a, &b) + 1e-12 >= strsim::jaro(&a, &b));
        }

        #[test]
        fn levenshtein_agrees_with_strsim_and_is_symmetric(
            a in "[a-z ]{0,12}|[a-f ]{0,70}|\\PC{0,12}", b in "[a-z ]{0,12}|[a-f ]{0,70}|\\PC{0,12}",
        ) {
            let ab = levenshtein(&a, &b);
            prop_assert_eq!(ab, strsim::levenshtein(&a, &b));
            prop_assert_eq!(ab, levenshtein(&b, &a));
            prop_assert_eq!(levenshtein(&a, &a), 0);
        }

        #[test]
        fn day_month_transpositions_are_detected(
            year in 1900u16..2030, month in 1u8..=12, day in 1u8..=28,
        ) {
            prop_assume!(month != day);
            let a = format!("{year:04}{month:02}{day:02}");
            let b = format!("{year:04}{day:02}{month:02}");
            prop_assert_eq!(Comparison::Date.level(Some(&a), Some(&b)), DATE_TRANSPOSED);
            let other_year = format!("{:04}{month:02}{day:02}", year + 7);
            prop_assert_eq!(Comparison::Date.level(Some(&a), Some(&other_year)), DATE_YEAR_ONLY);
        }

        #[test]
        fn level_count_matches_labels(thresholds in prop::collection::vec(0.1f64..0.9, 0..5)) {
            let kinds = [
                Comparison::JaroWinkler { thresholds: thresholds.clone() },
                Comparison::Numeric { thresholds: thresholds.clone() },
                Comparison::Levenshtein { thresholds: vec![1; thresholds.len()] },
                Comparison::Date,
                Comparison::Exact,
            ];
            for kind in kinds {
                prop_assert_eq!(kind.level_count(), kind.level_labels().len());
            }
        }
    }
}
