//! Probabilistic linkage of imported records, after the deterministic pass: to the
//! existing profiles (their traits as the other side) and to each other. Pure: records and
//! profiles in, proposed links out; the caller logs them and queues the reviews.

use super::mapping::{ImportMapping, LinkageSettings};
use super::records::{CrmRecord, Parsed};
use serde::Serialize;
use serde_json::Value;
use sightline_identity::{Change, Identifier, ProfileId, Rules};
use sightline_linkage::{Dataset, Decision, LinkOptions, LinkResult};
use sightline_profiles::Profiles;
use std::collections::HashSet;

/// Random pairs that estimate u when EM does not re-estimate it.
const U_SAMPLE_PAIRS: u64 = 1_000_000;

/// Review items one import may queue; beyond it pairs are counted, not queued.
pub const MAX_REVIEWS_PER_IMPORT: usize = 10_000;

/// The two sides of the linkage, read from the profiles after the deterministic pass.
pub struct Sides {
    records: Dataset,
    record_ids: Vec<Identifier>,
    /// The profile each record is on now (`None` only if identity refused its id).
    record_profiles: Vec<Option<ProfileId>>,
    /// Existing profiles that hold none of the records and have a value to compare.
    profiles: Option<Dataset>,
    /// Per row of `profiles`: the identifier a link event names it by.
    targets: Vec<Identifier>,
    /// Records whose profile existed before the import (joined by an exact identifier).
    pub joined_existing: usize,
}

/// The id column of both datasets: records by their own identifier, profiles by theirs.
const ID_COLUMN: &str = "__identifier";

/// Reads both sides. `existing_through` is the log position before the import: profiles
/// created at or before it existed already (a profile's id is the seq that created it).
pub fn sides(
    parsed: &Parsed,
    mapping: &ImportMapping,
    profiles: &Profiles,
    rules: &Rules,
    existing_through: i64,
) -> Sides {
    let record_profiles: Vec<Option<ProfileId>> = parsed
        .records
        .iter()
        .map(|r| {
            profiles
                .find(r.id.id_type.as_str(), &r.id.value)
                .map(|v| v.identity.id)
        })
        .collect();
    let joined_existing = record_profiles
        .iter()
        .flatten()
        .filter(|p| p.0 <= existing_through)
        .count();
    let holding: HashSet<ProfileId> = record_profiles.iter().flatten().copied().collect();

    let mut columns = vec![ID_COLUMN.to_owned()];
    columns.extend(parsed.columns.iter().cloned());
    let record_rows = parsed.records.iter().map(|r: &CrmRecord| {
        let mut row = vec![r.id.to_string()];
        row.extend(r.values.iter().map(|v| v.clone().unwrap_or_default()));
        row
    });
    let records = Dataset::from_rows(columns.clone(), ID_COLUMN, record_rows)
        .expect("the id column is the first column");

    // How each compared column reads off a profile: an identifier type, else a trait key.
    let readers: Vec<ColumnReader> = parsed
        .columns
        .iter()
        .map(
            |column| match mapping.identifiers.iter().find(|(c, _)| c == column) {
                Some((_, id_type)) => ColumnReader::Identifier(id_type.as_str().to_owned()),
                None => ColumnReader::Trait(
                    mapping
                        .traits
                        .iter()
                        .find(|(c, _)| c == column)
                        .map(|(_, key)| key.clone())
                        .unwrap_or_default(),
                ),
            },
        )
        .collect();
    let mut targets = Vec::new();
    let mut rows = Vec::new();
    for view in profiles.profiles() {
        if holding.contains(&view.identity.id) {
            continue;
        }
        let values: Vec<String> = readers
            .iter()
            .map(|reader| reader.read(&view).unwrap_or_default())
            .collect();
        let Some(target) = view
            .identity
            .identifiers
            .iter()
            .min_by_key(|i| rules.rank(&i.id_type))
        else {
            continue;
        };
        if values.iter().all(String::is_empty) {
            continue;
        }
        let mut row = vec![target.to_string()];
        row.extend(values);
        rows.push(row);
        targets.push(target.clone());
    }
    let profiles = (!rows.is_empty()).then(|| {
        Dataset::from_rows(columns, ID_COLUMN, rows).expect("the id column is the first column")
    });
    Sides {
        records,
        record_ids: parsed.records.iter().map(|r| r.id.clone()).collect(),
        record_profiles,
        profiles,
        targets,
        joined_existing,
    }
}

enum ColumnReader {
    Identifier(String),
    Trait(String),
}

impl ColumnReader {
    fn read(&self, view: &sightline_profiles::ProfileView<'_>) -> Option<String> {
        match self {
            ColumnReader::Identifier(id_type) => view
                .identity
                .identifiers
                .iter()
                .find(|i| i.id_type.as_str() == id_type)
                .map(|i| i.value.clone()),
            ColumnReader::Trait(key) => {
                let value = &view.facts?.traits.get(key)?.value;
                match value {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                }
            }
        }
    }
}

/// A link the engine proposes, with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct ProposedLink {
    /// `profiles` (a record and an existing profile) or `dedupe` (two records).
    pub pass: &'static str,
    #[serde(serialize_with = "as_text")]
    pub left: Identifier,
    #[serde(serialize_with = "as_text")]
    pub right: Identifier,
    pub match_probability: f64,
    /// The engine's explanation (prior, per-field level and weight, the result) with the
    /// decision, pass and origin: what the link event and the review item carry.
    #[serde(skip)]
    pub evidence: Value,
}

/// An identifier as `type:value`.
fn as_text<S: serde::Serializer>(identifier: &Identifier, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(identifier)
}

/// What one linkage pass did: the engine's summary, or why it could not run.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub pass: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<sightline_linkage::Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub auto_links: Vec<ProposedLink>,
    pub reviews: Vec<ProposedLink>,
    /// Review pairs beyond [`MAX_REVIEWS_PER_IMPORT`], not queued.
    pub reviews_not_queued: usize,
    pub passes: Vec<PassReport>,
}

/// Runs the passes the settings ask for. A record links automatically to at most one
/// profile (its most probable one, when at or above the upper threshold); its other
/// candidates at or above the lower threshold go to review, as do pairs between the two.
/// Records already on one profile are not proposed again.
pub fn plan(sides: &Sides, settings: &LinkageSettings, origin: &str) -> Plan {
    let mut options = LinkOptions {
        mapping: settings.mapping.clone(),
        threshold: settings.threshold,
        auto_link_threshold: settings.auto_link_threshold,
        ..LinkOptions::default()
    };
    options.em.estimate_u = settings.estimate_u;
    options.mask_blocking_fields = true;
    if !settings.estimate_u {
        // The sample alone sets u: make it large (all pairs when there are fewer).
        options.u_sample_pairs = U_SAMPLE_PAIRS;
    }
    let mut plan = Plan::default();
    let propose = |plan: &mut Plan, link: ProposedLink, decision: Decision| match decision {
        Decision::Link => plan.auto_links.push(link),
        Decision::Review if plan.reviews.len() < MAX_REVIEWS_PER_IMPORT => plan.reviews.push(link),
        Decision::Review => plan.reviews_not_queued += 1,
        Decision::NoLink => {}
    };
    if let (true, Some(profiles)) = (settings.profiles, &sides.profiles) {
        match sightline_linkage::pair(&sides.records, profiles, &options) {
            Ok(result) => {
                let mut linked = HashSet::new();
                for pair in &result.pairs {
                    let mut decision = result.decision(pair);
                    if decision == Decision::NoLink {
                        break; // most probable first
                    }
                    // One automatic link per record; its other candidates need a person.
                    if !linked.insert(pair.left) && decision == Decision::Link {
                        decision = Decision::Review;
                    }
                    let link = proposed(
                        "profiles",
                        &result,
                        &sides.records,
                        profiles,
                        pair,
                        (
                            &sides.record_ids[pair.left as usize],
                            &sides.targets[pair.right as usize],
                        ),
                        decision,
                        origin,
                    );
                    propose(&mut plan, link, decision);
                }
                plan.passes.push(report("profiles", Ok(result)));
            }
            Err(e) => plan.passes.push(report("profiles", Err(e))),
        }
    }
    if settings.dedupe && sides.records.len() >= 2 {
        match sightline_linkage::dedupe(&sides.records, &options) {
            Ok(result) => {
                for pair in &result.pairs {
                    let decision = result.decision(pair);
                    if decision == Decision::NoLink {
                        break;
                    }
                    let (i, j) = (pair.left as usize, pair.right as usize);
                    let same = sides.record_profiles[i].is_some()
                        && sides.record_profiles[i] == sides.record_profiles[j];
                    if same {
                        continue;
                    }
                    let link = proposed(
                        "dedupe",
                        &result,
                        &sides.records,
                        &sides.records,
                        pair,
                        (&sides.record_ids[i], &sides.record_ids[j]),
                        decision,
                        origin,
                    );
                    propose(&mut plan, link, decision);
                }
                plan.passes.push(report("dedupe", Ok(result)));
            }
            Err(e) => plan.passes.push(report("dedupe", Err(e))),
        }
    }
    plan
}

#[allow(clippy::too_many_arguments)]
fn proposed(
    pass: &'static str,
    result: &LinkResult,
    left: &Dataset,
    right: &Dataset,
    pair: &sightline_linkage::ScoredPair,
    (left_id, right_id): (&Identifier, &Identifier),
    decision: Decision,
    origin: &str,
) -> ProposedLink {
    let mut evidence =
        serde_json::to_value(result.explain(left, right, pair)).unwrap_or(Value::Null);
    if let Some(object) = evidence.as_object_mut() {
        let decision = match decision {
            Decision::Link => "auto_link",
            _ => "review",
        };
        object.insert("decision".into(), decision.into());
        object.insert("pass".into(), pass.into());
        object.insert("origin".into(), origin.into());
        object.insert("threshold".into(), result.summary.threshold.into());
        object.insert(
            "auto_link_threshold".into(),
            result.summary.auto_link_threshold.into(),
        );
    }
    ProposedLink {
        pass,
        left: left_id.clone(),
        right: right_id.clone(),
        match_probability: pair.match_probability,
        evidence,
    }
}

fn report(pass: &'static str, result: Result<LinkResult, sightline_linkage::Error>) -> PassReport {
    match result {
        Ok(result) => PassReport {
            pass,
            summary: Some(result.summary),
            error: None,
        },
        Err(e) => PassReport {
            pass,
            summary: None,
            error: Some(e.to_string()),
        },
    }
}

/// What became of a logged link once identity applied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "rule")]
pub enum Outcome {
    /// Both sides are one profile now.
    Merged,
    /// Merge protection refused it: the rule that did (e.g. `limit_exceeded`).
    Refused(String),
}

/// Reads the outcome of the link event at `seq` from the profiles.
pub fn outcome(profiles: &Profiles, left: &Identifier, right: &Identifier, seq: i64) -> Outcome {
    let profile = |i: &Identifier| profiles.find(i.id_type.as_str(), &i.value);
    let (Some(a), Some(b)) = (profile(left), profile(right)) else {
        return Outcome::Refused("unknown_identifier".into());
    };
    if a.identity.id == b.identity.id {
        return Outcome::Merged;
    }
    let rule = [a, b]
        .iter()
        .flat_map(|v| &v.identity.history)
        .filter(|r| r.seq == seq)
        .find_map(|r| match &r.change {
            Change::Refuse { rule, .. } => Some(rule.as_str().to_owned()),
            _ => None,
        });
    Outcome::Refused(rule.unwrap_or_else(|| "not_linked".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::records;
    use sightline_core::{EventType, StoredEvent};

    const MAPPING: &str = r#"
        id_column = "id"
        [identifiers]
        email = "email"
        [traits]
        first_name = "first_name"
        last_name = "last_name"
        dob = "birthday"
        zip = "postcode"
        [linkage]
        threshold = 0.05
        auto_link_threshold = 0.99
    "#;

    const GIVEN: [&str; 12] = [
        "ann", "bob", "cara", "dev", "emil", "fay", "gus", "hana", "ivan", "jo", "kim", "lena",
    ];
    const SURNAMES: [&str; 10] = [
        "smith", "jones", "ng", "patel", "okafor", "berg", "rossi", "kowalski", "dubois", "tanaka",
    ];

    fn person(n: usize) -> [String; 4] {
        [
            GIVEN[n % 12].to_owned(),
            SURNAMES[(n / 12 + n) % 10].to_owned(),
            format!(
                "19{:02}-{:02}-{:02}",
                40 + (n * 7) % 60,
                1 + n % 12,
                1 + (n * 11) % 28
            ),
            format!("{}", 100 + n % 9),
        ]
    }

    /// Web profiles u0..u80 (u80 a twin of u79 under another user id), then the import's
    /// records applied as the import logs them.
    fn setup(csv: &str) -> (Profiles, records::Parsed, ImportMapping) {
        let mapping = ImportMapping::from_toml_str(MAPPING).unwrap();
        let rules = Rules::default();
        let mut profiles = Profiles::new(rules.clone());
        let mut seq = 0;
        let mut apply = |profiles: &mut Profiles, body: Value| {
            seq += 1;
            profiles.apply(&StoredEvent {
                seq,
                source_id: 1,
                message_id: format!("m{seq}"),
                event_type: EventType::Identify,
                received_at: seq,
                body: body.to_string(),
            });
        };
        for n in 0..81 {
            let [g, s, d, z] = person(n.min(79));
            apply(
                &mut profiles,
                serde_json::json!({"type": "identify", "userId": format!("u{n}"),
                    "traits": {"email": format!("p{n}@x.io"), "first_name": g, "last_name": s,
                               "birthday": d, "postcode": z}}),
            );
        }
        let parsed = records::parse(csv.as_bytes(), &mapping, &rules).unwrap();
        let origin = records::Origin {
            file: "t.csv".into(),
            source_id: 2,
            source: "crm".into(),
        };
        for record in &parsed.records {
            let event = records::record_event(record, &origin, 1);
            apply(&mut profiles, serde_json::from_str(&event.body).unwrap());
        }
        (profiles, parsed, mapping)
    }

    #[test]
    fn a_record_links_automatically_to_one_profile_and_its_twin_goes_to_review() {
        let mut csv = String::from("id,first_name,last_name,email,dob,zip\n");
        // Exact emails for 0..40 (joined by identity), misspelt copies of 40..79 without.
        for n in 0..79 {
            let [g, s, d, z] = person(n);
            let (g, email) = if n < 40 {
                (g, format!("p{n}@x.io"))
            } else {
                (format!("{g}h"), String::new())
            };
            csv.push_str(&format!("c{n},{g},{s},{email},{d},{z}\n"));
        }
        let [g, s, d, z] = person(79);
        csv.push_str(&format!("c79,{g},{s},,{d},{z}\n"));
        let (profiles, parsed, mapping) = setup(&csv);
        let sides = sides(&parsed, &mapping, &profiles, &Rules::default(), 81);
        assert_eq!(sides.joined_existing, 40);
        let plan = plan(&sides, &mapping.linkage, "test");
        assert!(
            plan.passes.iter().all(|p| p.error.is_none()),
            "{:?}",
            plan.passes
        );

        // Profiles holding a record are not candidates: no link names u0..u39.
        let joined: Vec<String> = (0..40).map(|n| format!("user_id:u{n}")).collect();
        assert!(plan
            .auto_links
            .iter()
            .chain(&plan.reviews)
            .all(|l| !joined.contains(&l.right.to_string())));
        // At most one automatic link per record to the profiles.
        let mut seen = HashSet::new();
        for link in plan.auto_links.iter().filter(|l| l.pass == "profiles") {
            assert!(seen.insert(link.left.clone()), "{} linked twice", link.left);
            assert!(link.match_probability >= 0.99);
        }
        // The misspelt copies link to their own profile.
        let to = |left: &str| {
            plan.auto_links
                .iter()
                .find(|l| l.left.to_string() == left)
                .map(|l| l.right.to_string())
        };
        let correct = (40..79)
            .filter(|n| to(&format!("crm_id:c{n}")) == Some(format!("user_id:u{n}")))
            .count();
        assert!(
            correct >= 37,
            "{correct} of 39 misspelt records linked to their profile"
        );
        // c79 matches u79 and its twin u80 equally: one is linked, the other is reviewed.
        let c79 = Identifier::parse("crm_id:c79").unwrap();
        let auto: Vec<&ProposedLink> = plan.auto_links.iter().filter(|l| l.left == c79).collect();
        let reviewed: Vec<&ProposedLink> = plan.reviews.iter().filter(|l| l.left == c79).collect();
        assert_eq!(auto.len(), 1, "{auto:?}");
        assert_eq!(reviewed.len(), 1, "{reviewed:?}");
        let twins = [auto[0].right.to_string(), reviewed[0].right.to_string()];
        assert!(twins.contains(&"user_id:u79".into()) && twins.contains(&"user_id:u80".into()));
        assert_eq!(reviewed[0].evidence["decision"], "review");
        assert_eq!(auto[0].evidence["decision"], "auto_link");
        assert!(auto[0].evidence["fields"].as_array().unwrap().len() >= 4);
    }

    #[test]
    fn outcomes_read_merges_and_refusals_back() {
        let (mut profiles, _, _) = setup("id,first_name,last_name,email,dob,zip\n");
        let left = Identifier::parse("user_id:u1").unwrap();
        let right = Identifier::parse("user_id:u2").unwrap();
        let link = records::link_event(&left, &right, serde_json::json!({}), "l".into(), 2, 1);
        profiles.apply(&StoredEvent {
            seq: 500,
            source_id: 2,
            message_id: link.message_id,
            event_type: EventType::Identify,
            received_at: 1,
            body: link.body,
        });
        assert_eq!(
            outcome(&profiles, &left, &right, 500),
            Outcome::Refused("conflicting_user_id".into())
        );
        let email = Identifier::parse("email:p1@x.io").unwrap();
        assert_eq!(outcome(&profiles, &left, &email, 500), Outcome::Merged);
        let unknown = Identifier::parse("crm_id:nobody").unwrap();
        assert_eq!(
            outcome(&profiles, &left, &unknown, 500),
            Outcome::Refused("unknown_identifier".into())
        );
    }
}
