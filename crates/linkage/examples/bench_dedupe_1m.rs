//! Deduplicates 1,000,000 synthetic person records (seeded generator, 20% of them
//! duplicates with typos, missing values and transposed dates) and reports
//! records/s and peak memory, beside a plain CSV parse of the same file measured
//! in the same run.
//!
//! `cargo run --release --example bench_dedupe_1m [RECORDS]`
//! Prints one JSON object on its last stdout line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use sightline_linkage::{dedupe, Dataset, LinkOptions, SplitMix64};

const SYLLABLES: &[&str] = &[
    "an", "ber", "car", "da", "el", "fin", "gar", "ha", "is", "jo", "ka", "lo", "mar", "ne", "or",
    "pa", "qui", "ro", "sa", "ta", "ul", "va", "wil", "xa", "ya", "zo", "son", "ton", "ley", "ric",
];
const STREET_TYPES: &[&str] = &["street", "road", "avenue", "close", "place", "crescent"];
const STATES: &[&str] = &["nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt"];

/// `count` distinct pseudo-names of two or three syllables.
fn vocabulary(rng: &mut SplitMix64, count: usize) -> Vec<String> {
    let mut words = std::collections::BTreeSet::new();
    while words.len() < count {
        let syllables = 2 + rng.below(2) as usize;
        let word: String = (0..syllables)
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
            .collect();
        words.insert(word);
    }
    let mut words: Vec<String> = words.into_iter().collect();
    // Shuffle so that the skewed draw below does not favour alphabetical order.
    for i in (1..words.len()).rev() {
        words.swap(i, rng.below(i as u64 + 1) as usize);
    }
    words
}

/// A skewed draw: low indices are much more common, like "smith" among surnames.
fn skewed<'a>(rng: &mut SplitMix64, words: &'a [String]) -> &'a str {
    let x = rng.next_f64();
    &words[(x * x * words.len() as f64) as usize]
}

#[derive(Clone)]
struct Person {
    given_name: String,
    surname: String,
    street_number: String,
    address_1: String,
    suburb: String,
    postcode: String,
    state: String,
    date_of_birth: String,
    soc_sec_id: String,
}

impl Person {
    fn fields_mut(&mut self) -> [&mut String; 9] {
        [
            &mut self.given_name,
            &mut self.surname,
            &mut self.street_number,
            &mut self.address_1,
            &mut self.suburb,
            &mut self.postcode,
            &mut self.state,
            &mut self.date_of_birth,
            &mut self.soc_sec_id,
        ]
    }
}

/// One typo: substitute, delete, insert or swap adjacent characters.
fn typo(rng: &mut SplitMix64, value: &mut String) {
    let mut chars: Vec<char> = value.chars().collect();
    if chars.len() < 2 {
        return;
    }
    let at = rng.below(chars.len() as u64 - 1) as usize;
    let letter = (b'a' + rng.below(26) as u8) as char;
    match rng.below(4) {
        0 => chars[at] = letter,
        1 => {
            chars.remove(at);
        }
        2 => chars.insert(at, letter),
        _ => chars.swap(at, at + 1),
    }
    *value = chars.into_iter().collect();
}

fn write_records(path: &Path, records: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = SplitMix64::new(seed);
    let given_names = vocabulary(&mut rng, 2_000);
    let surnames = vocabulary(&mut rng, 8_000);
    let streets = vocabulary(&mut rng, 5_000);
    let suburbs = vocabulary(&mut rng, 3_000);
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(
        out,
        "rec_id,given_name,surname,street_number,address_1,suburb,postcode,state,date_of_birth,soc_sec_id"
    )?;
    let originals = records * 4 / 5;
    let mut people: Vec<Person> = Vec::with_capacity(originals);
    for n in 0..records {
        let (id, person) = if n < originals {
            let person = Person {
                given_name: skewed(&mut rng, &given_names).to_owned(),
                surname: skewed(&mut rng, &surnames).to_owned(),
                street_number: (1 + rng.below(300)).to_string(),
                address_1: format!(
                    "{} {}",
                    skewed(&mut rng, &streets),
                    STREET_TYPES[rng.below(STREET_TYPES.len() as u64) as usize]
                ),
                suburb: skewed(&mut rng, &suburbs).to_owned(),
                postcode: format!("{}", 10_000 + rng.below(90_000)),
                state: STATES[rng.below(STATES.len() as u64) as usize].to_owned(),
                date_of_birth: format!(
                    "{}{:02}{:02}",
                    1920 + rng.below(85),
                    1 + rng.below(12),
                    1 + rng.below(28)
                ),
                soc_sec_id: format!("{}", 1_000_000 + rng.below(9_000_000)),
            };
            people.push(person.clone());
            (format!("rec-{n}-org"), person)
        } else {
            let original = rng.below(originals as u64) as usize;
            let mut person = people[original].clone();
            let dob = person.date_of_birth.clone();
            for (field, value) in person.fields_mut().into_iter().enumerate() {
                match rng.below(100) {
                    0..=9 => typo(&mut rng, value),
                    10..=14 => value.clear(),
                    15..=16 if field == 7 => {
                        *value = format!("{}{}{}", &dob[..4], &dob[6..], &dob[4..6]);
                    }
                    _ => {}
                }
            }
            (format!("rec-{original}-dup-{n}"), person)
        };
        let p = person;
        writeln!(
            out,
            "{id},{},{},{},{},{},{},{},{},{}",
            p.given_name,
            p.surname,
            p.street_number,
            p.address_1,
            p.suburb,
            p.postcode,
            p.state,
            p.date_of_birth,
            p.soc_sec_id
        )?;
    }
    out.flush()
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The baseline: read every record of the file with the csv crate, doing nothing else.
fn plain_parse(path: &Path) -> usize {
    let mut reader = csv::Reader::from_path(path).expect("open");
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while reader.read_byte_record(&mut record).expect("parse") {
        rows += 1;
    }
    rows
}

fn main() {
    let records: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("RECORDS must be a number"));
    let dir = std::env::temp_dir().join(format!("sightline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("people.csv");
    let start = Instant::now();
    write_records(&path, records, 2026).expect("write synthetic records");
    eprintln!(
        "generated {records} records in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let parsed = plain_parse(&path);
    let baseline_s = start.elapsed().as_secs_f64();
    assert_eq!(parsed, records);

    let start = Instant::now();
    let data = Dataset::from_csv_path(&path, "rec_id").expect("load");
    let loaded_s = start.elapsed().as_secs_f64();
    let result = dedupe(&data, &LinkOptions::default()).expect("dedupe");
    let sightline_s = start.elapsed().as_secs_f64();
    let peak_mib = peak_memory_mib();
    std::fs::remove_dir_all(&dir).ok();

    let entity = |id: &str| id.split('-').nth(1).unwrap_or_default().to_owned();
    let predicted: Vec<_> = result
        .pairs
        .iter()
        .filter(|p| p.match_probability >= 0.5)
        .collect();
    let correct = predicted
        .iter()
        .filter(|p| entity(result.left_id(p)) == entity(result.right_id(p)))
        .count() as f64;
    let mut per_entity = std::collections::HashMap::<String, u64>::new();
    for id in data.ids() {
        *per_entity.entry(entity(id)).or_default() += 1;
    }
    let true_links: u64 = per_entity.values().map(|n| n * (n - 1) / 2).sum();
    let precision = correct / predicted.len().max(1) as f64;
    let recall = correct / true_links.max(1) as f64;
    let f1 = 2.0 * precision * recall / (precision + recall).max(f64::MIN_POSITIVE);
    eprintln!(
        "loaded in {loaded_s:.2} s; blocking {:?}",
        result.summary.blocking
    );
    eprintln!(
        "sightline: {sightline_s:.2} s for {records} records ({} pairs compared, {} EM iterations), \
         precision {precision:.4} recall {recall:.4}; plain CSV parse {baseline_s:.2} s",
        result.summary.compared_pairs, result.summary.em.iterations
    );
    let summary = serde_json::json!({
        "bench": "linkage_dedupe_1m",
        "records": records,
        "records_per_s": records as f64 / sightline_s,
        "sightline_s": sightline_s,
        "compared_pairs": result.summary.compared_pairs,
        "peak_memory_mib": peak_mib,
        "f1": f1,
        "baseline": "csv-parse",
        "baseline_s": baseline_s,
        "baseline_records_per_s": records as f64 / baseline_s,
        "ratio": baseline_s / sightline_s,
    });
    println!("{summary}");
}
