//! The file-level entry points: deduplicate one dataset or link two.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;

use crate::blocking::{Blocker, RuleCount};
use crate::compare::NULL_LEVEL;
use crate::em::{self, EmOptions, LevelProbabilities, Patterns};
use crate::mapping::{Mapping, ResolvedMapping};
use crate::model::{probability, FieldModel, Model, Scorer, TermFrequencies};
use crate::random::SplitMix64;
use crate::{Dataset, Error, Explanation, SkippedRow};

/// Everything that tunes a linkage run. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Fields and blocking rules; defaults are recognised from column names.
    pub mapping: Mapping,
    /// Pairs at or above this probability are links (`--threshold`, default 0.5).
    pub threshold: f64,
    /// Links at or above this probability are accepted automatically; links below
    /// it (but at or above `threshold`) go to clerical review. Default 0.95; at or
    /// below `threshold`, every link is automatic and nothing needs review.
    pub auto_link_threshold: f64,
    /// Scored pairs below this probability, and below `threshold`, are not kept
    /// in the result (default 0.01).
    pub min_probability: f64,
    /// Random pairs sampled to estimate u (all pairs when there are fewer). The
    /// default, 50,000, is plenty as EM's starting point; raise it (e.g. to
    /// 1,000,000) when `em.estimate_u` is off and the sample alone sets u.
    pub u_sample_pairs: u64,
    /// Seed of the u sampling, so runs are reproducible.
    pub seed: u64,
    pub em: EmOptions,
    /// Refuse to run when blocking would generate more comparisons than this
    /// (default 100 million, about 2 GB of working memory).
    pub max_comparisons: u64,
    /// Threads used to compare pairs (default: available parallelism).
    pub threads: usize,
    /// Train EM without the evidence blocking forces: for the pairs a blocking rule
    /// found, the fields its keys read count as missing in EM (they still score). Without
    /// it, a rule such as "same postcode" makes agreement on postcode near-universal among
    /// compared pairs, which on small inputs EM can mistake for the match class. Default
    /// false (the file commands and their FEBRL figures); the CRM import turns it on.
    pub mask_blocking_fields: bool,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            mapping: Mapping::default(),
            threshold: 0.5,
            auto_link_threshold: 0.95,
            min_probability: 0.01,
            u_sample_pairs: 50_000,
            seed: 42,
            em: EmOptions::default(),
            max_comparisons: 100_000_000,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            mask_blocking_fields: false,
        }
    }
}

impl LinkOptions {
    fn validate(&self) -> Result<(), Error> {
        let probability = |option, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(Error::InvalidOption {
                    option,
                    message: format!("{value} is not a probability between 0 and 1"),
                })
            }
        };
        probability("threshold", self.threshold)?;
        probability("auto_link_threshold", self.auto_link_threshold)?;
        probability("min_probability", self.min_probability)?;
        Ok(())
    }
}

/// A compared pair: indices into the left and right datasets and its score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoredPair {
    pub left: u32,
    pub right: u32,
    /// log2 of the posterior odds of a match.
    pub match_weight: f64,
    pub match_probability: f64,
}

/// The two-threshold classification of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// At or above `auto_link_threshold`.
    Link,
    /// At or above `threshold`, below `auto_link_threshold`: needs a person.
    Review,
    /// Below `threshold`.
    NoLink,
}

/// Estimated parameters of one comparison level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelParameters {
    pub label: String,
    pub m: f64,
    /// u used for scoring (re-estimated by EM unless `em.estimate_u` is off).
    pub u: f64,
    /// u estimated from random pairs (EM's starting point).
    pub u_sampled: f64,
    /// log2(m / u).
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldParameters {
    pub column: String,
    pub comparison: String,
    pub term_frequency: bool,
    /// Every level but null (which always weighs 0).
    pub levels: Vec<LevelParameters>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmReport {
    /// Distinct comparison patterns EM iterated over.
    pub patterns: usize,
    pub iterations: usize,
    pub converged: bool,
    /// Estimated share of matches among the compared (blocked) pairs; the prior
    /// match probability of every scored pair.
    pub lambda: f64,
}

/// What a run did, for the CLI to print (it serialises to JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `dedupe` or `pair`.
    pub mode: &'static str,
    pub left_records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_records: Option<usize>,
    pub skipped_left: Vec<SkippedRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_right: Vec<SkippedRow>,
    pub blocking: Vec<RuleCount>,
    /// Distinct pairs compared (each counted once across rules).
    pub compared_pairs: u64,
    pub u_sample_pairs: u64,
    pub em: EmReport,
    pub parameters: Vec<FieldParameters>,
    pub threshold: f64,
    pub auto_link_threshold: f64,
    /// Pairs at or above `threshold`.
    pub links: usize,
    /// Links at or above `auto_link_threshold`.
    pub auto_links: usize,
    /// Pairs between the two thresholds.
    pub review: usize,
}

/// Scored pairs (most probable first), the trained model and the summary.
#[derive(Debug, Clone)]
pub struct LinkResult {
    pub pairs: Vec<ScoredPair>,
    pub summary: Summary,
    model: Model,
    left_ids: Arc<[String]>,
    right_ids: Arc<[String]>,
    min_probability: f64,
}

impl LinkResult {
    pub fn left_id(&self, pair: &ScoredPair) -> &str {
        &self.left_ids[pair.left as usize]
    }

    pub fn right_id(&self, pair: &ScoredPair) -> &str {
        &self.right_ids[pair.right as usize]
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Link, review or no link, from the run's two thresholds.
    pub fn decision(&self, pair: &ScoredPair) -> Decision {
        let p = pair.match_probability;
        if p < self.summary.threshold {
            Decision::NoLink
        } else if p >= self.summary.auto_link_threshold {
            Decision::Link
        } else {
            Decision::Review
        }
    }

    /// Pairs that need a person: between the two thresholds, most probable first.
    pub fn review_queue(&self) -> impl Iterator<Item = &ScoredPair> {
        self.pairs
            .iter()
            .filter(|p| self.decision(p) == Decision::Review)
    }

    /// Explains a pair of this result; pass the same dataset twice after `dedupe`.
    pub fn explain(&self, left: &Dataset, right: &Dataset, pair: &ScoredPair) -> Explanation {
        self.model
            .explain(left, pair.left as usize, right, pair.right as usize)
    }

    /// Writes `left_id,right_id,match_probability` for every pair at or above
    /// `threshold`, most probable first. Returns the number of rows written.
    pub fn write_links_csv(&self, writer: impl Write, threshold: f64) -> Result<usize, Error> {
        if threshold < self.min_probability {
            return Err(Error::InvalidOption {
                option: "threshold",
                message: format!(
                    "{threshold} is below min_probability {} used for this run; rerun with a lower min_probability",
                    self.min_probability
                ),
            });
        }
        let failed = |err: csv::Error| Error::WriteLinks(err.to_string());
        let mut out = csv::Writer::from_writer(writer);
        out.write_record(["left_id", "right_id", "match_probability"])
            .map_err(failed)?;
        let mut written = 0;
        for pair in self
            .pairs
            .iter()
            .take_while(|p| p.match_probability >= threshold)
        {
            out.write_record([
                self.left_id(pair),
                self.right_id(pair),
                &format!("{:.6}", pair.match_probability),
            ])
            .map_err(failed)?;
            written += 1;
        }
        out.flush()
            .map_err(|err| Error::WriteLinks(err.to_string()))?;
        Ok(written)
    }
}

/// Comparisons per blocking rule for deduplicating `records`, computed from block
/// sizes without comparing anything (to show before a long run).
pub fn plan_dedupe(records: &Dataset, opts: &LinkOptions) -> Result<Vec<RuleCount>, Error> {
    let mapping = opts
        .mapping
        .resolve(records.columns(), records.id_column())?;
    Ok(Blocker::new(&mapping.blocking, records, None).counts())
}

/// Comparisons per blocking rule for linking `a` to `b`, from block sizes only.
pub fn plan_pair(a: &Dataset, b: &Dataset, opts: &LinkOptions) -> Result<Vec<RuleCount>, Error> {
    let mapping = resolve_pair(a, b, opts)?;
    Ok(Blocker::new(&mapping.blocking, a, Some(b)).counts())
}

/// Finds duplicates within one dataset.
pub fn dedupe(records: &Dataset, opts: &LinkOptions) -> Result<LinkResult, Error> {
    opts.validate()?;
    if records.len() < 2 {
        return Err(Error::NoRecords { side: "input" });
    }
    let mapping = opts
        .mapping
        .resolve(records.columns(), records.id_column())?;
    run(records, None, mapping, opts)
}

/// Finds records of `a` and `b` that refer to the same entity.
pub fn pair(a: &Dataset, b: &Dataset, opts: &LinkOptions) -> Result<LinkResult, Error> {
    opts.validate()?;
    if a.is_empty() {
        return Err(Error::NoRecords { side: "left" });
    }
    if b.is_empty() {
        return Err(Error::NoRecords { side: "right" });
    }
    let mapping = resolve_pair(a, b, opts)?;
    run(a, Some(b), mapping, opts)
}

fn resolve_pair(a: &Dataset, b: &Dataset, opts: &LinkOptions) -> Result<ResolvedMapping, Error> {
    let shared: Vec<String> = a
        .columns()
        .iter()
        .filter(|c| b.column_index(c).is_some() || *c == a.id_column())
        .cloned()
        .collect();
    opts.mapping.resolve(&shared, a.id_column())
}

fn run(
    left: &Dataset,
    right: Option<&Dataset>,
    mapping: ResolvedMapping,
    opts: &LinkOptions,
) -> Result<LinkResult, Error> {
    let blocker = Blocker::new(&mapping.blocking, left, right);
    let planned = blocker.counts();
    let total: u64 = planned.iter().map(|c| c.comparisons).sum();
    if total > opts.max_comparisons {
        let per_rule = planned
            .iter()
            .map(|c| format!("{}: {}", c.rule, c.comparisons))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::TooManyComparisons {
            total,
            limit: opts.max_comparisons,
            per_rule,
        });
    }
    let (pairs, blocking) = blocker.pairs();
    drop(blocker);

    let right_data = right.unwrap_or(left);
    let mut fields = field_models(&mapping, left, right);
    let field_count = fields.len();
    let levels = compare_pairs(&fields, left, right_data, &pairs, opts.threads);

    let (u_random, u_sample_pairs) = sample_u(&fields, left, right, opts);
    let start: Vec<LevelProbabilities> = fields
        .iter()
        .zip(u_random)
        .map(|(field, u)| LevelProbabilities {
            m: starting_m(field.labels.len()),
            u,
        })
        .collect();
    let patterns = if opts.mask_blocking_fields {
        let training = mask_blocking_fields(&levels, &fields, &mapping, &blocking);
        Patterns::from_levels(&training, field_count)
    } else {
        Patterns::from_levels(&levels, field_count)
    };
    let outcome = em::estimate(&patterns, STARTING_LAMBDA, start.clone(), &opts.em);
    for ((field, estimated), sampled) in fields.iter_mut().zip(&outcome.fields).zip(&start) {
        field.u_sampled = sampled.u.clone();
        field.set_probabilities(estimated.m.clone(), estimated.u.clone());
    }
    let model = Model {
        fields,
        prior: outcome.lambda,
    };

    let retained = opts.min_probability.min(opts.threshold);
    let scorer = Scorer::new(&model, left);
    let mut scored: Vec<ScoredPair> = pairs
        .iter()
        .zip(levels.chunks_exact(field_count))
        .filter_map(|(&(i, j), pattern)| {
            let match_weight = scorer.match_weight(pattern, i as usize);
            let match_probability = probability(match_weight);
            (match_probability >= retained).then_some(ScoredPair {
                left: i,
                right: j,
                match_weight,
                match_probability,
            })
        })
        .collect();
    scored.sort_unstable_by(|a, b| {
        b.match_weight
            .total_cmp(&a.match_weight)
            .then(a.left.cmp(&b.left))
            .then(a.right.cmp(&b.right))
    });

    let links = scored
        .iter()
        .filter(|p| p.match_probability >= opts.threshold)
        .count();
    let auto_links = scored
        .iter()
        .filter(|p| p.match_probability >= opts.auto_link_threshold.max(opts.threshold))
        .count();
    let summary = Summary {
        mode: if right.is_some() { "pair" } else { "dedupe" },
        left_records: left.len(),
        right_records: right.map(Dataset::len),
        skipped_left: left.skipped_rows().to_vec(),
        skipped_right: right.map(|r| r.skipped_rows().to_vec()).unwrap_or_default(),
        blocking,
        compared_pairs: pairs.len() as u64,
        u_sample_pairs,
        em: EmReport {
            patterns: patterns.len(),
            iterations: outcome.iterations,
            converged: outcome.converged,
            lambda: outcome.lambda,
        },
        parameters: parameters(&model),
        threshold: opts.threshold,
        auto_link_threshold: opts.auto_link_threshold,
        links,
        auto_links,
        review: links - auto_links,
    };
    Ok(LinkResult {
        pairs: scored,
        summary,
        model,
        left_ids: left.shared_ids(),
        right_ids: right_data.shared_ids(),
        min_probability: retained,
    })
}

/// EM starts from "a tenth of compared pairs match"; it moves quickly from there.
const STARTING_LAMBDA: f64 = 0.1;

/// m leaning strongly towards the most similar levels: exact 0.75, each next
/// level a quarter of the one before.
fn starting_m(level_count: usize) -> Vec<f64> {
    let mut m: Vec<f64> = (0..level_count)
        .map(|level| {
            if level == NULL_LEVEL as usize {
                0.0
            } else {
                0.25f64.powi(level as i32 - 1)
            }
        })
        .collect();
    let sum: f64 = m.iter().sum();
    m.iter_mut().for_each(|p| *p /= sum);
    m
}

fn field_models(
    mapping: &ResolvedMapping,
    left: &Dataset,
    right: Option<&Dataset>,
) -> Vec<FieldModel> {
    mapping
        .fields
        .iter()
        .map(|spec| {
            let left_column = left.column_index(&spec.column).expect("resolved column");
            let right_column = right.map_or(left_column, |r| {
                r.column_index(&spec.column).expect("resolved column")
            });
            let term_frequencies = spec.term_frequency.then(|| {
                let left_values = (0..left.len()).filter_map(|i| left.value(i, left_column));
                let right_values = right
                    .into_iter()
                    .flat_map(|r| (0..r.len()).filter_map(move |j| r.value(j, right_column)));
                TermFrequencies::new(left_values.chain(right_values))
            });
            let labels = spec.comparison.level_labels();
            FieldModel {
                spec: spec.clone(),
                left_column,
                right_column,
                m: vec![0.0; labels.len()],
                u: vec![0.0; labels.len()],
                u_sampled: vec![0.0; labels.len()],
                weights: vec![0.0; labels.len()],
                labels,
                term_frequencies,
            }
        })
        .collect()
}

/// A copy of `levels` for training in which, for the pairs each blocking rule found, the
/// fields whose columns the rule's keys read are null (missing at random to EM). Pairs are
/// generated rule by rule, so each rule's pairs are the next `new_pairs` of them.
fn mask_blocking_fields(
    levels: &[u8],
    fields: &[FieldModel],
    mapping: &ResolvedMapping,
    blocking: &[RuleCount],
) -> Vec<u8> {
    let field_count = fields.len();
    let mut training = levels.to_vec();
    let mut start = 0;
    for (rule, count) in mapping.blocking.iter().zip(blocking) {
        let end = start + count.new_pairs.unwrap_or(0) as usize;
        let masked: Vec<usize> = fields
            .iter()
            .enumerate()
            .filter(|(_, f)| rule.keys.iter().any(|k| k.column == f.spec.column))
            .map(|(i, _)| i)
            .collect();
        for pattern in
            training[start * field_count..end * field_count].chunks_exact_mut(field_count)
        {
            for &field in &masked {
                pattern[field] = NULL_LEVEL;
            }
        }
        start = end;
    }
    training
}

/// Levels of every pair (`fields.len()` per pair), split over `threads` threads.
fn compare_pairs(
    fields: &[FieldModel],
    left: &Dataset,
    right: &Dataset,
    pairs: &[(u32, u32)],
    threads: usize,
) -> Vec<u8> {
    /// Pairs per unit of work: small enough that a thread descheduled on a busy
    /// machine does not hold up the others, large enough that the lock is noise.
    const CHUNK_PAIRS: usize = 4096;
    let field_count = fields.len();
    let mut levels = vec![0u8; pairs.len() * field_count];
    let work = std::sync::Mutex::new(
        pairs
            .chunks(CHUNK_PAIRS)
            .zip(levels.chunks_mut(CHUNK_PAIRS * field_count)),
    );
    let compare = || loop {
        let next = work
            .lock()
            .expect("no thread panics holding the lock")
            .next();
        let Some((pair_chunk, level_chunk)) = next else {
            return;
        };
        for (&(i, j), out) in pair_chunk
            .iter()
            .zip(level_chunk.chunks_exact_mut(field_count))
        {
            Model::levels(fields, left, i as usize, right, j as usize, out);
        }
    };
    let helpers = threads.clamp(1, pairs.len().div_ceil(CHUNK_PAIRS).max(1)) - 1;
    std::thread::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(compare);
        }
        compare();
    });
    levels
}

/// u per field and level from random pairs (all pairs when there are few), with
/// add-one smoothing so no level has u = 0. Returns the u vectors and the pair count.
fn sample_u(
    fields: &[FieldModel],
    left: &Dataset,
    right: Option<&Dataset>,
    opts: &LinkOptions,
) -> (Vec<Vec<f64>>, u64) {
    let n_left = left.len() as u64;
    let right_data = right.unwrap_or(left);
    let n_right = right_data.len() as u64;
    let all_pairs = match right {
        Some(_) => n_left * n_right,
        None => n_left * (n_left - 1) / 2,
    };
    let sample: Vec<(u32, u32)> = if all_pairs <= opts.u_sample_pairs {
        (0..n_left as u32)
            .flat_map(|i| {
                let first_j = if right.is_some() { 0 } else { i + 1 };
                (first_j..n_right as u32).map(move |j| (i, j))
            })
            .collect()
    } else {
        // Drawn up front from one generator, so the sample does not depend on threads.
        let mut rng = SplitMix64::new(opts.seed);
        (0..opts.u_sample_pairs)
            .map(|_| {
                let i = rng.below(n_left);
                let j = match right {
                    Some(_) => rng.below(n_right),
                    // Uniform over j != i: draw from n - 1 values and skip over i.
                    None => {
                        let j = rng.below(n_right - 1);
                        j + u64::from(j >= i)
                    }
                };
                (i as u32, j as u32)
            })
            .collect()
    };
    let levels = compare_pairs(fields, left, right_data, &sample, opts.threads);
    let mut counts: Vec<Vec<u64>> = fields.iter().map(|f| vec![0; f.labels.len()]).collect();
    for pattern in levels.chunks_exact(fields.len()) {
        for (count, &level) in counts.iter_mut().zip(pattern) {
            count[level as usize] += 1;
        }
    }
    let u = counts
        .iter()
        .map(|count| {
            let non_null: u64 = count[1..].iter().sum();
            let denominator = (non_null + count.len() as u64 - 1) as f64;
            count
                .iter()
                .enumerate()
                .map(|(level, &c)| {
                    if level == NULL_LEVEL as usize {
                        0.0
                    } else {
                        (c + 1) as f64 / denominator
                    }
                })
                .collect()
        })
        .collect();
    (u, sample.len() as u64)
}

fn parameters(model: &Model) -> Vec<FieldParameters> {
    model
        .fields
        .iter()
        .map(|field| FieldParameters {
            column: field.spec.column.clone(),
            comparison: serde_json::to_value(&field.spec.comparison)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                .unwrap_or_default(),
            term_frequency: field.spec.term_frequency,
            levels: (1..field.labels.len())
                .map(|level| LevelParameters {
                    label: field.labels[level].clone(),
                    m: field.m[level],
                    u: field.u[level],
                    u_sampled: field.u_sampled[level],
                    weight: field.weights[level],
                })
                .collect(),
        })
        .collect()
}
