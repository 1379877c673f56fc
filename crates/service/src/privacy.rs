//! Subject access (GDPR article 15, CCPA's right to know): everything Sightline holds about
//! one person, found through any of their identifiers — the profile, its identifiers and
//! merge history, traits with their provenance, every event of its timeline, the consent
//! ledger, audience memberships and their history, computed traits, what was delivered or
//! synced about them (to which destination, when, under which purposes), the link reviews
//! naming them and the CRM rows imported for them.
//!
//! The export reads only: the stored profiles (what the server's follower keeps current),
//! the log through the profile's timeline, and the stores of deliveries, audience history,
//! sync checkpoints and link reviews. Deciding what belongs to the person (which retired
//! profile ids are theirs, which rows name them, what a sync checkpoint says was sent) is
//! done by the pure functions below; [`export`] gathers, calls them, records who saw whom
//! in the audit log, and answers. [`render_html`] is the readable page, every text escaped.

use crate::access::{require, Actor, PRIVACY};
use crate::lookup::{self, Found, Timeline};
use crate::{Error, Result};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use sightline_core::{time, Delivery, Destination, DestinationKind, LinkReview, StoredEvent};
use sightline_govern::report::escape_html;
use sightline_identity::{normalise, sentence, Change, IdType, Profile, Region};
use sightline_store::Store;
use std::collections::{BTreeMap, BTreeSet};

/// Longest identifier type and value an export accepts (bytes).
const MAX_TYPE: usize = 64;
const MAX_VALUE: usize = 1024;
/// Rows read per store call.
const PAGE: usize = 1000;

/// The person an export is about: an identifier, normalised as collection normalises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id_type: IdType,
    pub value: String,
}

impl Subject {
    /// `type:value`.
    pub fn text(&self) -> String {
        format!("{}:{}", self.id_type.as_str(), self.value)
    }

    /// The SHA-256 (hex) of `type:value`: how the audit log names the subject, so that it
    /// holds no identifier in clear yet an auditor who knows one can check it.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.text().as_bytes()))
    }
}

/// Parses `TYPE:VALUE` (e.g. `email:Ann@Example.com`, `anonymous_id:a-1`) and normalises the
/// value as collection does (emails lower-cased, phones to E.164 read in `region`). A
/// malformed identifier is `Invalid`, saying what to write.
pub fn parse_subject(text: &str, region: Region) -> Result<Subject> {
    let example = "write TYPE:VALUE, e.g. email:ann@example.com, user_id:42 or anonymous_id:a-1";
    let Some((id_type, value)) = text.split_once(':') else {
        return Err(Error::invalid(format!(
            "{:?} is not an identifier: {example}",
            shorten(text)
        )));
    };
    let (id_type, value) = (id_type.trim(), value.trim());
    if id_type.is_empty() || value.is_empty() {
        return Err(Error::invalid(format!(
            "an identifier needs a type and a value: {example}"
        )));
    }
    if id_type.len() > MAX_TYPE
        || !id_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(Error::invalid(format!(
            "identifier type {:?} is not one: a type is letters, digits, `_`, `-` or `.` (at most {MAX_TYPE}), e.g. email, phone, user_id, anonymous_id, device_id or a custom type such as crm_id",
            shorten(id_type)
        )));
    }
    if value.len() > MAX_VALUE {
        return Err(Error::invalid(format!(
            "the identifier's value is {} bytes: at most {MAX_VALUE}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "the identifier's value holds a control character",
        ));
    }
    let id_type = IdType::parse(id_type);
    let Some(value) = normalise(&id_type, value, region) else {
        let what = match id_type {
            IdType::Email => "an email address",
            IdType::Phone => {
                "a phone number (E.164 such as +14155550123, or a number of the default region)"
            }
            _ => "a valid value of its type",
        };
        return Err(Error::invalid(format!(
            "{:?} is not {what}",
            shorten(value)
        )));
    };
    Ok(Subject { id_type, value })
}

/// At most 80 characters of input repeated in an error.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// How the export is handed over (recorded in the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
    /// Files written by the command line (`--out DIR`): the JSON and the page.
    Files,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Html => "html",
            Format::Files => "files",
        }
    }
}

/// Everything held about the person holding `subject` (`TYPE:VALUE`): an export with
/// `"found": false` and empty sections when no one holds it. Only `privacy` and `admin`
/// may; each export is recorded in the audit log as `privacy.export` on the profile id,
/// with the identifier's SHA-256 (never the identifier) and what was exported, counted.
pub async fn export(
    store: &dyn Store,
    actor: &Actor,
    region: Region,
    subject: &str,
    format: Format,
) -> Result<Value> {
    require(actor, PRIVACY, "exporting a person's data")?;
    let subject = parse_subject(subject, region)?;
    let state = store.profiles_state().await?;
    let log_last_seq = store.last_seq().await?;
    let stored = store
        .stored_profile(subject.id_type.as_str(), &subject.value)
        .await?;
    let mut export = match stored {
        None => empty(&subject),
        Some(stored) => {
            let found = Found {
                doc: lookup::stored_doc(&stored)?,
                timeline: Timeline::Stored(stored.id),
                states: stored.states.clone(),
            };
            held(store, &subject, &found).await?
        }
    };
    export["generated_at"] = time::format_ms(time::now_ms()).into();
    export["profiles_through_seq"] = state.map_or(0, |s| s.seq).into();
    export["log_last_seq"] = log_last_seq.into();
    let profile = export["profile"]["id"].as_i64();
    let target = profile.map_or_else(|| "nobody".to_owned(), |id| format!("profile:{id}"));
    let after = json!({
        "identifier_type": subject.id_type.as_str(),
        "identifier_sha256": subject.digest(),
        "profile": profile,
        "format": format.as_str(),
        "counts": counts(&export),
    });
    crate::audit::record(store, actor, "privacy.export", &target, None, Some(after)).await?;
    Ok(export)
}

/// The destinations that received data about the stored profile: an event of theirs
/// delivered, or an audience change of theirs synced. By name, each once.
pub(crate) async fn recipients(
    store: &dyn Store,
    subject: &Subject,
    stored: &sightline_core::StoredProfile,
) -> Result<BTreeSet<String>> {
    let found = Found {
        doc: lookup::stored_doc(stored)?,
        timeline: Timeline::Stored(stored.id),
        states: stored.states.clone(),
    };
    let held = held(store, subject, &found).await?;
    let named = |section: &str, sent: &dyn Fn(&Value) -> bool| -> Vec<String> {
        held[section]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|row| sent(row))
            .filter_map(|row| row["destination"].as_str().map(str::to_owned))
            .collect()
    };
    let mut names: BTreeSet<String> = named("deliveries", &|row| row["status"] == "delivered")
        .into_iter()
        .collect();
    names.extend(named("audience_syncs", &|row| row["passed"] == true));
    Ok(names)
}

/// The sections an export holds, in the order the page shows them.
const SECTIONS: [(&str, &str); 14] = [
    ("profile", "Profile"),
    ("identifiers", "Identifiers"),
    ("merges", "How these identifiers were joined"),
    ("traits", "Traits, with where each came from"),
    ("computed_traits", "Computed traits"),
    ("consent", "Consent: the state per purpose and every change"),
    ("audiences", "Audience memberships now"),
    ("audience_history", "Audience history: every enter and exit"),
    (
        "deliveries",
        "Events delivered (or withheld) to destinations",
    ),
    ("audience_syncs", "Audience changes synced to destinations"),
    ("crm_rows", "CRM rows imported"),
    ("link_reviews", "Record linkage reviews naming this person"),
    ("events", "Every event in the log"),
    ("notes", "How to read this export"),
];

/// What each section means, for the reader of the export.
fn notes() -> Value {
    json!([
        "Every identifier given finds the same person: the export follows their profile, which joins all of their identifiers.",
        "Traits keep the value of the latest event (by event time) that set them; `seq` is that event's position in the log and `source` where it came from.",
        "Deliveries list each of the person's events a destination's consent gate judged: `delivered` was sent, `suppressed` was withheld (the reason says which consent was missing), `dead` was refused by the destination. `purposes` are what the destination requires the person's consent for.",
        "Audience syncs: an `entered` change is sent to the destination only when the person's consent at that moment grants its purposes; an `exited` change always is. `passed` says whether the destination's sync has reached the change. The first sync of an audience to a destination also sends its members of that moment.",
        "`profiles_through_seq` is how far into the log the stored profiles were when the export was made; `log_last_seq` where the log ended.",
    ])
}

fn empty(subject: &Subject) -> Value {
    json!({
        "subject": subject.text(),
        "found": false,
        "profile": null,
        "identifiers": [],
        "merges": [],
        "traits": [],
        "computed_traits": {},
        "consent": {"state": {}, "history": []},
        "audiences": [],
        "audience_history": [],
        "deliveries": [],
        "audience_syncs": [],
        "crm_rows": [],
        "link_reviews": [],
        "events": [],
        "notes": notes(),
    })
}

/// How many of each listed thing the export holds (what the audit log records).
pub fn counts(export: &Value) -> Value {
    let mut counts = Map::new();
    for (key, _) in SECTIONS {
        if let Some(items) = export[key].as_array().filter(|_| key != "notes") {
            counts.insert(key.into(), items.len().into());
        }
    }
    Value::Object(counts)
}

/// Gathers what is held about the stored profile `found` and assembles the export.
async fn held(store: &dyn Store, subject: &Subject, found: &Found) -> Result<Value> {
    let view = found.view();
    let identity = view.identity;
    let profile_id = identity.id.0;
    let sources: BTreeMap<i64, String> = store
        .list_sources()
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .chain([(0, "api".to_owned())])
        .collect();

    // Every event on the profile's timeline, oldest first.
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut before = i64::MAX;
    loop {
        let page = store
            .stored_profile_events(profile_id, before, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        before = last.seq;
        events.extend(page);
    }
    events.reverse();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();

    // Audiences: membership now, and every stored enter and exit of the profile or of a
    // profile merged into it.
    let ids = profile_ids(identity);
    let audiences = store.list_audiences().await?;
    let mut member_of = Vec::new();
    let mut history: Vec<(i64, Value)> = Vec::new();
    for audience in &audiences {
        let first = store
            .audience_members(&audience.name, profile_id - 1, 1)
            .await?;
        if first.first().is_some_and(|p| p.id == profile_id) {
            member_of.push(audience.name.clone());
        }
        let mut after = 0;
        loop {
            let page = store.audience_history(&audience.name, after, PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            history.extend(
                page.into_iter()
                    .filter_map(|(id, text)| Some((id, serde_json::from_str(&text).ok()?)))
                    .filter(|(_, change)| is_theirs(change, &ids)),
            );
        }
    }

    // Deliveries of their events, destination by destination.
    let destinations = store.list_destinations().await?;
    let mut deliveries: Vec<(Destination, Delivery)> = Vec::new();
    for destination in &destinations {
        for delivery in deliveries_of(store, destination.id, &seqs).await? {
            deliveries.push((destination.clone(), delivery));
        }
    }

    // Audience sync: how far each synced (destination, audience) pair has gone.
    let mut syncs = Vec::new();
    for audience in &audiences {
        for name in &audience.sync {
            let Some(destination) = destinations
                .iter()
                .find(|d| &d.name == name && d.kind == DestinationKind::Webhook)
            else {
                continue;
            };
            let position = store
                .checkpoint(&format!("sync:{}:{}", destination.id, audience.name))
                .await?;
            syncs.push((audience.name.clone(), destination.clone(), position));
        }
    }

    // Link reviews naming any of their identifiers.
    let names: BTreeSet<String> = identity.identifiers.iter().map(|i| i.to_string()).collect();
    let mut reviews: Vec<LinkReview> = Vec::new();
    let mut after = 0;
    loop {
        let page = store.link_reviews(None, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        reviews.extend(
            page.into_iter()
                .filter(|r| names.contains(&r.left) || names.contains(&r.right)),
        );
    }

    let computed = lookup::computed_json(store, found).await?["computed"].take();
    Ok(json!({
        "subject": subject.text(),
        "found": true,
        "profile": lookup::profile_json(view),
        "identifiers": identity.identifiers,
        "merges": merges(identity),
        "traits": traits(found, &sources),
        "computed_traits": computed,
        "consent": lookup::consent_json(view, None),
        "audiences": member_of,
        "audience_history": audience_history(&history),
        "deliveries": deliveries_json(&deliveries),
        "audience_syncs": audience_syncs(&history, &syncs),
        "crm_rows": crm_rows(&events, &sources),
        "link_reviews": reviews,
        "events": events.iter().map(|e| event_json(e, &sources)).collect::<Vec<_>>(),
        "notes": notes(),
    }))
}

/// The delivery log's outcomes for `seqs` (ascending) at one destination: a page read from
/// each of the person's events not yet covered, so the reads follow their events, not the
/// whole delivery log.
async fn deliveries_of(store: &dyn Store, destination: i64, seqs: &[i64]) -> Result<Vec<Delivery>> {
    let wanted: BTreeSet<i64> = seqs.iter().copied().collect();
    let mut found = Vec::new();
    let mut next = 0;
    while let Some(&seq) = seqs.get(next) {
        let page = store.deliveries(destination, None, seq - 1, 256).await?;
        let Some(last) = page.last().map(|d| d.seq) else {
            break;
        };
        found.extend(page.into_iter().filter(|d| wanted.contains(&d.seq)));
        next = seqs.partition_point(|&s| s <= last);
    }
    Ok(found)
}

/// The profile's id and every id merged into it (a merge moves the retired profile's
/// history into the survivor, so the survivor's history names them all).
pub fn profile_ids(identity: &Profile) -> BTreeSet<String> {
    identity
        .history
        .iter()
        .filter_map(|record| match &record.change {
            Change::Merge { from, .. } => Some(from.0.to_string()),
            _ => None,
        })
        .chain([identity.id.0.to_string()])
        .collect()
}

/// Whether a stored enter or exit record is about one of `ids`.
pub fn is_theirs(change: &Value, ids: &BTreeSet<String>) -> bool {
    change["profile"].as_str().is_some_and(|p| ids.contains(p))
}

/// The identity history, each record with its plain-words sentence.
fn merges(identity: &Profile) -> Value {
    identity
        .history
        .iter()
        .map(|record| {
            let mut row = serde_json::to_value(record).unwrap_or(Value::Null);
            if let (Some(row), Some(sentence)) = (row.as_object_mut(), sentence(record)) {
                row.insert("explanation".into(), sentence.into());
            }
            row
        })
        .collect()
}

fn source_name(sources: &BTreeMap<i64, String>, id: i64) -> String {
    sources
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("source {id}"))
}

fn traits(found: &Found, sources: &BTreeMap<i64, String>) -> Value {
    found
        .doc
        .facts
        .traits
        .iter()
        .map(|(name, t)| {
            json!({
                "trait": name,
                "value": t.value,
                "set_at": time::format_ms(t.at),
                "seq": t.seq,
                "source": source_name(sources, t.source_id),
            })
        })
        .collect()
}

fn event_json(event: &StoredEvent, sources: &BTreeMap<i64, String>) -> Value {
    let mut value = event.to_json();
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "source".into(),
            source_name(sources, event.source_id).into(),
        );
    }
    value
}

fn audience_history(history: &[(i64, Value)]) -> Value {
    history
        .iter()
        .map(|(id, change)| {
            json!({
                "id": id,
                "audience": change["audience"],
                "profile": change["profile"],
                "transition": change["transition"],
                "at": change["at"].as_i64().map(time::format_ms),
                "caused_by": change["caused_by"],
            })
        })
        .collect()
}

fn destination_json(destination: &Destination) -> Value {
    json!({
        "destination": destination.name,
        "type": destination.kind.as_str(),
        "purposes": destination.purposes,
    })
}

/// The delivery outcomes of the person's events (no request body is kept: what was sent is
/// the event in `events` after the destination's transform).
pub fn deliveries_json(deliveries: &[(Destination, Delivery)]) -> Value {
    deliveries
        .iter()
        .map(|(destination, d)| {
            let mut row = destination_json(destination);
            for (key, value) in [
                ("seq", json!(d.seq)),
                ("message_id", json!(d.message_id)),
                ("status", json!(d.status.as_str())),
                ("at", json!(time::format_ms(d.at))),
                ("attempts", json!(d.attempts)),
                ("response_code", json!(d.response_code)),
                ("reason", json!(d.reason)),
            ] {
                row[key] = value;
            }
            row
        })
        .collect()
}

/// For each of the person's enter and exit records of an audience synced to a destination,
/// whether that pair's sync has passed it (its checkpoint is the id of the last record
/// handled; -1 and 0 mean no record yet).
pub fn audience_syncs(history: &[(i64, Value)], syncs: &[(String, Destination, i64)]) -> Value {
    let mut rows = Vec::new();
    for (audience, destination, position) in syncs {
        for (id, change) in history
            .iter()
            .filter(|(_, c)| c["audience"].as_str() == Some(audience.as_str()))
        {
            let mut row = destination_json(destination);
            row["audience"] = audience.as_str().into();
            row["change"] = (*id).into();
            row["transition"] = change["transition"].clone();
            row["at"] = change["at"].as_i64().map(time::format_ms).into();
            row["passed"] = (*id <= *position).into();
            rows.push(row);
        }
    }
    Value::Array(rows)
}

/// The CRM rows imported for the person: the identify events the import appended
/// (`context.import`), with file, line, identifiers and traits.
pub fn crm_rows(events: &[StoredEvent], sources: &BTreeMap<i64, String>) -> Value {
    events
        .iter()
        .filter_map(|event| {
            let body: Value = serde_json::from_str(&event.body).ok()?;
            let import = body["context"]["import"].as_object()?;
            Some(json!({
                "seq": event.seq,
                "source": source_name(sources, event.source_id),
                "imported_at": time::format_ms(event.received_at),
                "kind": import.get("kind"),
                "file": import.get("file"),
                "line": import.get("line"),
                "identifiers": body["context"]["externalIds"],
                "traits": body["traits"],
            }))
        })
        .collect()
}

/// A value as a cell's text: strings as they are, anything else as compact JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => escape_html(text),
        Value::Null => String::new(),
        other => format!("<code>{}</code>", escape_html(&other.to_string())),
    }
}

/// One section's body: a table for a list of objects, a list for other lists, a
/// two-column table for an object, the value otherwise.
fn section(value: &Value) -> String {
    match value {
        Value::Array(items) if items.is_empty() => "<p class=none>Nothing held.</p>".into(),
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let mut columns: Vec<&str> = Vec::new();
            for item in items {
                for key in item.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !columns.contains(&key.as_str()) {
                        columns.push(key);
                    }
                }
            }
            let mut html = String::from("<table><thead><tr>");
            for column in &columns {
                html.push_str(&format!("<th>{}</th>", escape_html(column)));
            }
            html.push_str("</tr></thead><tbody>");
            for item in items {
                html.push_str("<tr>");
                for column in &columns {
                    html.push_str(&format!("<td>{}</td>", cell(&item[*column])));
                }
                html.push_str("</tr>");
            }
            html.push_str("</tbody></table>");
            html
        }
        Value::Array(items) => {
            let rows: String = items
                .iter()
                .map(|item| format!("<li>{}</li>", cell(item)))
                .collect();
            format!("<ul>{rows}</ul>")
        }
        Value::Object(map) if map.is_empty() => "<p class=none>Nothing held.</p>".into(),
        Value::Object(map) => {
            let rows: String = map
                .iter()
                .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", escape_html(k), cell(v)))
                .collect();
            format!("<table><tbody>{rows}</tbody></table>")
        }
        Value::Null => "<p class=none>Nothing held.</p>".into(),
        other => format!("<p>{}</p>", cell(other)),
    }
}

/// The export as one self-contained, readable HTML page: no script and no external
/// reference (a CSP meta forbids both), every text and value escaped.
pub fn render_html(export: &Value) -> String {
    let subject = export["subject"].as_str().unwrap_or_default();
    let found = export["found"].as_bool().unwrap_or(false);
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=robots content=noindex>",
    );
    html.push_str(&format!(
        "<title>Data held about {}</title>",
        escape_html(subject)
    ));
    html.push_str(
        "<style>body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:80em;padding:0 1em;color:#222}\
         h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}\
         table{border-collapse:collapse;width:100%;font-size:13px}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}\
         th{background:#f4f4f4}code{white-space:pre-wrap;word-break:break-all;font-size:12px}.none{color:#777}</style></head><body>",
    );
    html.push_str(&format!(
        "<h1>Data held about {}</h1><p>Made {} from the stored profiles through log position {} (the log ends at {}).</p>",
        escape_html(subject),
        escape_html(export["generated_at"].as_str().unwrap_or_default()),
        cell(&export["profiles_through_seq"]),
        cell(&export["log_last_seq"]),
    ));
    if !found {
        html.push_str(
            "<p><strong>No one holds this identifier: nothing is held about it.</strong></p>",
        );
    }
    for (key, title) in SECTIONS {
        html.push_str(&format!(
            "<section id={key}><h2>{}</h2>{}</section>",
            escape_html(title),
            section(&export[key])
        ));
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Region {
        sightline_identity::Rules::default().default_region()
    }

    #[test]
    fn subjects_are_normalised_as_collection_normalises_them() {
        let s = parse_subject(" Email : Ann@Example.COM ", region()).unwrap();
        assert_eq!(s.text(), "email:ann@example.com");
        assert_eq!(
            parse_subject("anonymous_id:a-1", region()).unwrap().text(),
            "anonymous_id:a-1"
        );
        assert_eq!(
            parse_subject("crm_id:c:1", region()).unwrap().text(),
            "crm_id:c:1"
        );
        assert_eq!(s.digest().len(), 64);
        assert!(!s.digest().contains("ann"));
    }

    #[test]
    fn malformed_subjects_are_refused_with_what_to_write() {
        for (input, says) in [
            ("ann@example.com", "write TYPE:VALUE"),
            (":x", "needs a type and a value"),
            ("email:", "needs a type and a value"),
            ("em ail:x", "is not one"),
            ("<script>:x", "is not one"),
            ("email:not-an-email", "is not an email address"),
            ("phone:12", "is not a phone number"),
            ("user_id:a\u{0}b", "control character"),
        ] {
            match parse_subject(input, region()) {
                Err(Error::Invalid(message)) => {
                    assert!(message.contains(says), "{input:?}: {message}")
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
        let long = format!("user_id:{}", "x".repeat(MAX_VALUE + 1));
        assert!(matches!(
            parse_subject(&long, region()),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn the_page_escapes_every_value_and_key() {
        let mut export = empty(&Subject {
            id_type: IdType::UserId,
            value: "<b>\"x\"&'".into(),
        });
        export["found"] = true.into();
        export["traits"] =
            json!([{"trait": "<img src=x>", "value": "</td><script>alert(1)</script>"}]);
        export["events"] = json!([{"properties": {"<k>": "<v>"}, "seq": 1}]);
        export["consent"] = json!({"<state>": {"a": "<b>"}});
        let page = render_html(&export);
        for raw in ["<script>", "<img", "<b>", "<k>", "<v>", "<state>", "\"x\""] {
            assert!(!page.contains(raw), "{raw} in {page}");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;&quot;x&quot;&amp;&#39;"));
        assert!(!page.contains("<script"));
    }

    /// The page with `hostile` as a trait's name and value, an event property and a
    /// consent key.
    fn page_with(hostile: &str) -> String {
        let mut export = empty(&Subject {
            id_type: IdType::UserId,
            value: hostile.into(),
        });
        export["found"] = true.into();
        export["generated_at"] = hostile.into();
        export["traits"] = json!([{"trait": hostile, "value": hostile}]);
        export["events"] = json!([{"properties": {hostile: hostile}, "seq": 1}]);
        export["consent"] = json!({ hostile: {"decision": hostile} });
        export["audiences"] = json!([hostile]);
        render_html(&export)
    }

    proptest::proptest! {
        /// Whatever a value or key holds, the page's markup is the same: as many `<`, `>`
        /// and `"` as with a harmless value, so no value opens a tag or leaves an attribute.
        #[test]
        fn no_value_changes_the_markup(hostile in ".*") {
            let page = page_with(&hostile);
            let plain = page_with("x");
            for c in ['<', '>', '"'] {
                proptest::prop_assert_eq!(
                    page.matches(c).count(),
                    plain.matches(c).count(),
                    "{:?} in {:?}", c, hostile
                );
            }
        }
    }

    #[test]
    fn merged_profiles_and_crm_rows_are_the_persons() {
        let identity: Profile = serde_json::from_value(json!({
            "id": 1,
            "identifiers": [{"type": "user_id", "value": "ann"}],
            "summary": [],
            "history": [
                {"seq": 4, "change": "merge", "from": 3, "into": 1,
                 "via": {"type": "anonymous_id", "value": "p"},
                 "joined_with": {"type": "user_id", "value": "ann"}, "rule": "identify"}
            ],
        }))
        .unwrap();
        let ids = profile_ids(&identity);
        assert_eq!(ids, BTreeSet::from(["1".to_owned(), "3".to_owned()]));
        assert!(is_theirs(&json!({"profile": "3"}), &ids));
        assert!(!is_theirs(&json!({"profile": "2"}), &ids));

        let event = |seq: i64, body: Value| StoredEvent {
            seq,
            source_id: 2,
            message_id: format!("m{seq}"),
            event_type: sightline_core::EventType::Identify,
            received_at: 0,
            body: body.to_string(),
        };
        let rows = crm_rows(
            &[
                event(5, json!({"userId": "ann"})),
                event(
                    6,
                    json!({"traits": {"tier": "gold"},
                           "context": {"externalIds": [{"type": "crm_id", "id": "c1"}],
                                       "import": {"kind": "crm", "file": "crm.csv", "line": 2}}}),
                ),
            ],
            &BTreeMap::from([(2, "crm".to_owned())]),
        );
        assert_eq!(rows.as_array().unwrap().len(), 1);
        assert_eq!(rows[0]["seq"], 6);
        assert_eq!(rows[0]["source"], "crm");
        assert_eq!(rows[0]["line"], 2);
        assert_eq!(rows[0]["traits"]["tier"], "gold");
    }

    #[test]
    fn counts_name_every_listed_section() {
        let export = empty(&Subject {
            id_type: IdType::Email,
            value: "a@b.co".into(),
        });
        let counts = counts(&export);
        assert_eq!(counts["events"], 0);
        assert_eq!(counts["deliveries"], 0);
        assert!(counts.get("notes").is_none());
    }

    #[test]
    fn a_sync_has_passed_a_change_at_or_below_its_checkpoint() {
        let destination = Destination {
            id: 1,
            name: "ads".into(),
            kind: DestinationKind::Webhook,
            url: "http://x".into(),
            purposes: vec!["advertising".into()],
            event_types: vec![],
            event_names: vec![],
            batch_size: 1,
            transform: json!({}),
            settings: json!({}),
            signing_secret: String::new(),
            created_at: 0,
            disabled: false,
            approved: true,
        };
        let history = vec![
            (
                3,
                json!({"audience": "buyers", "profile": "7", "transition": "entered", "at": 0}),
            ),
            (
                9,
                json!({"audience": "buyers", "profile": "7", "transition": "exited", "at": 1}),
            ),
            (
                4,
                json!({"audience": "other", "profile": "7", "transition": "entered", "at": 0}),
            ),
        ];
        let rows = audience_syncs(&history, &[("buyers".into(), destination, 5)]);
        let passed: Vec<(i64, bool)> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["change"].as_i64().unwrap(),
                    r["passed"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(passed, [(3, true), (9, false)]);
        assert_eq!(rows[0]["purposes"], json!(["advertising"]));
    }
}
