//! The governance registry: the journeys, tags, backlog and vendor risk that stored scans
//! feed (`scans` stores them). Journeys are the marketing team's to change, vendor risk the security team's,
//! tags follow the approval workflow of `sightline_govern::tag`.

use crate::access::{require, Actor, MARKETING, SECURITY, TEAMS};
use crate::{Error, Result};
use serde_json::json;
use sightline_scan::Report;
use sightline_store::{Governance, ScanRow, Store, SCREENSHOT_SCANS_KEPT};
use std::collections::BTreeMap;

fn no_scan(id: i64) -> Error {
    Error::not_found(
        "scan",
        format!("no stored scan {id}: `sightline scan list` shows them"),
    )
}

/// A stored scan's report as stored (JSON text), or a clear error naming the id.
pub async fn stored_report_text(store: &dyn Governance, id: i64) -> Result<String> {
    store.scan_report(id).await?.ok_or_else(|| no_scan(id))
}

/// A stored scan's report, or a clear error naming the id.
pub async fn stored_report(store: &dyn Governance, id: i64) -> Result<Report> {
    let text = stored_report_text(store, id).await?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Internal(anyhow::anyhow!(
            "stored scan {id} is not a scan report: {e}"
        ))
    })
}

/// A stored scan's row (journey, time, summary), or a clear error naming the id.
pub async fn stored_scan(store: &dyn Governance, id: i64) -> Result<ScanRow> {
    store.scan(id).await?.ok_or_else(|| no_scan(id))
}

/// A stored scan's screenshot, `screenshots/SCENARIO/FILE` as its report names it (a PNG).
pub async fn stored_screenshot(
    store: &dyn Governance,
    id: i64,
    scenario: &str,
    file: &str,
) -> Result<Vec<u8>> {
    let path = format!("screenshots/{scenario}/{file}");
    let missing = || {
        Error::not_found(
            "screenshot",
            format!("scan {id} keeps no screenshot {path:?}: its report names those it took, and only a journey's last {SCREENSHOT_SCANS_KEPT} scans keep them"),
        )
    };
    if !sightline_scan::report::is_screenshot_path(&path) {
        return Err(missing());
    }
    store.scan_screenshot(id, &path).await?.ok_or_else(missing)
}

// ---- The registry: journeys, tags, backlog, vendor risk (shared by the CLI and the API) ----

use sightline_govern::backlog::{self, BacklogAction, BacklogItem, Coverage, Filter, Observed};
use sightline_govern::journey::Journey;
use sightline_govern::tag::{self, Environment, Tag, TagAction, TagSpec, TagStatus};
use sightline_govern::vendor::VendorRisk;
use sightline_govern::GovernError;
use sightline_store::{NewTagLogEntry, RecordKind, RecordWrite, StoredRecord};

/// A stored record with its id and version, as the CLI and API show it.
pub struct Held<T> {
    pub id: i64,
    pub version: i64,
    pub value: T,
}

impl<T: serde::Serialize> Held<T> {
    /// The value's fields with `id` and `version` first.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("version".into(), json!(self.version));
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&self.value) {
            out.extend(fields);
        }
        serde_json::Value::Object(out)
    }
}

fn held<T: serde::de::DeserializeOwned>(kind: RecordKind, r: StoredRecord) -> Result<Held<T>> {
    let value = serde_json::from_str(&r.doc).map_err(|e| {
        Error::Internal(anyhow::anyhow!(
            "stored {} {} is unreadable: {e}",
            kind.noun(),
            r.id
        ))
    })?;
    Ok(Held {
        id: r.id,
        version: r.version,
        value,
    })
}

async fn all<T: serde::de::DeserializeOwned>(
    store: &dyn Governance,
    kind: RecordKind,
) -> Result<Vec<Held<T>>> {
    store
        .records(kind)
        .await?
        .into_iter()
        .map(|r| held(kind, r))
        .collect()
}

async fn by_id<T: serde::de::DeserializeOwned>(
    store: &dyn Governance,
    kind: RecordKind,
    id: i64,
) -> Result<Held<T>> {
    let record = store.record_by_id(kind, id).await?.ok_or_else(|| {
        sightline_store::StoreError::NotFound(format!("no {} with id {id}", kind.noun()))
    })?;
    held(kind, record)
}

fn doc(value: &impl serde::Serialize) -> Result<String> {
    Ok(serde_json::to_string(value)?)
}

/// Today (UTC), for deadlines, expiries and reviews.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

// -- Journeys --

/// Checks a journey as the registry and the scanner both read it.
fn checked_journey(journey: Journey) -> Result<Journey> {
    let journey = journey.validated()?;
    let text = journey.to_scanner_toml()?;
    sightline_scan::Journey::parse(&text)
        .map_err(|e| GovernError::Invalid(format!("the scanner would refuse this journey: {e}")))?;
    Ok(journey)
}

/// Creates a journey (`replace` false: a taken name is a conflict) or replaces the one of
/// that name (`replace` true: created when absent).
pub async fn put_journey(
    store: &dyn Store,
    actor: &Actor,
    journey: Journey,
    replace: bool,
) -> Result<Held<Journey>> {
    require(actor, MARKETING, "changing journeys")?;
    let journey = checked_journey(journey)?;
    let version = match replace {
        true => store
            .record(RecordKind::Journey, &journey.name)
            .await?
            .map(|r| r.version),
        false => None,
    };
    let write = RecordWrite {
        key: journey.name.clone(),
        version,
        doc: doc(&journey)?,
    };
    let mut written = store
        .write_records(RecordKind::Journey, vec![write])
        .await?;
    let put: Held<Journey> = held(RecordKind::Journey, written.remove(0))?;
    let action = if replace {
        "journey.replace"
    } else {
        "journey.create"
    };
    audit(store, actor, action, &put.value.name, Some(put.to_json())).await?;
    Ok(put)
}

pub async fn journey(store: &dyn Governance, name: &str) -> Result<Held<Journey>> {
    let record = store
        .record(RecordKind::Journey, name)
        .await?
        .ok_or_else(|| {
            sightline_store::StoreError::NotFound(format!(
                "no journey named {name:?}: `sightline journey list` shows them"
            ))
        })?;
    held(RecordKind::Journey, record)
}

pub async fn journeys(store: &dyn Governance) -> Result<Vec<Held<Journey>>> {
    all(store, RecordKind::Journey).await
}

pub async fn delete_journey(store: &dyn Store, actor: &Actor, name: &str) -> Result<()> {
    require(actor, MARKETING, "changing journeys")?;
    let found = journey(store, name).await?;
    store
        .delete_record(RecordKind::Journey, found.id, found.version)
        .await?;
    let before = Some(found.to_json());
    crate::audit::record(store, actor, "journey.delete", name, before, None).await
}

/// Records a registry change with the record as written.
async fn audit(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    target: &str,
    after: Option<serde_json::Value>,
) -> Result<()> {
    crate::audit::record(store, actor, action, target, None, after).await
}

/// Imports a scanner journey file's text (replacing a journey of that name).
pub async fn import_journey(store: &dyn Store, actor: &Actor, text: &str) -> Result<Held<Journey>> {
    require(actor, MARKETING, "changing journeys")?;
    sightline_scan::Journey::parse(text)
        .map_err(|e| GovernError::Invalid(format!("not a journey file the scanner runs: {e}")))?;
    put_journey(store, actor, Journey::from_scanner_toml(text)?, true).await
}

// -- Tags --

/// Applies a workflow action to the tag `id` (or, for a proposal, the tag under the
/// spec's vendor and environment) and stores it with its change-log entry.
pub async fn tag_action(
    store: &dyn Store,
    actor: &Actor,
    id: Option<i64>,
    action: TagAction,
    reason: &str,
) -> Result<Held<Tag>> {
    require(actor, TEAMS, "changing tags")?;
    let current: Option<Held<Tag>> = match (&action, id) {
        (_, Some(id)) => Some(by_id(store, RecordKind::Tag, id).await?),
        (TagAction::Propose(spec), None) => match store.record(RecordKind::Tag, &spec.key()).await?
        {
            Some(record) => Some(held(RecordKind::Tag, record)?),
            None => None,
        },
        (_, None) => {
            return Err(Error::invalid(
                "name the tag by its id: `sightline tags list` shows them",
            ))
        }
    };
    let now = sightline_core::time::now_ms();
    let action_name = format!("tag.{}", action.name());
    let (next, entry) = tag::apply(
        current.as_ref().map(|h| &h.value),
        action,
        actor,
        reason,
        now,
    )?;
    let write = RecordWrite {
        key: next.spec.key(),
        version: current.as_ref().map(|h| h.version),
        doc: doc(&next)?,
    };
    let entry = NewTagLogEntry {
        at: entry.at,
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        entry: doc(&entry)?,
    };
    let written: Held<Tag> = held(RecordKind::Tag, store.write_tag(write, entry).await?)?;
    let before = current.as_ref().map(|h| h.to_json());
    let target = format!("tag:{}", written.id);
    let after = Some(written.to_json());
    crate::audit::record(store, actor, &action_name, &target, before, after).await?;
    Ok(written)
}

pub async fn tags(store: &dyn Governance, status: Option<TagStatus>) -> Result<Vec<Held<Tag>>> {
    let mut tags: Vec<Held<Tag>> = all(store, RecordKind::Tag).await?;
    tags.retain(|t| status.is_none_or(|s| t.value.status == s));
    Ok(tags)
}

/// The registry's production tags as the scanner judges a scan of `journey` against them,
/// when the registry holds that journey and at least one production tag (a scan of another
/// journey, or before the first tag is proposed, keeps the journey's own `[inventory]`):
/// see `sightline_scan::findings::RuleInput::tags`.
pub async fn scan_inventory(
    store: &dyn Governance,
    journey: &str,
) -> Result<Option<Vec<sightline_scan::InventoryTag>>> {
    use sightline_govern::tag::Classification;
    use sightline_scan::{Category, InventoryTag, TagClass, TagState};
    if store.record(RecordKind::Journey, journey).await?.is_none() {
        return Ok(None);
    }
    let tags: Vec<Tag> = tags(store, None)
        .await?
        .into_iter()
        .map(|held| held.value)
        .filter(|t| t.spec.environment == Environment::Production)
        .collect();
    if tags.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        tags.into_iter()
            .map(|t| InventoryTag {
                status: match t.status {
                    TagStatus::Proposed => TagState::Proposed,
                    TagStatus::Approved => TagState::Approved,
                    TagStatus::Rejected => TagState::Rejected,
                    TagStatus::Retired => TagState::Retired,
                },
                class: match t.spec.classification {
                    Classification::Essential => TagClass::Essential,
                    Classification::Optional => TagClass::Optional,
                    Classification::Questionable => TagClass::Questionable,
                },
                // A purpose the scanner has a category for; another (`functional`, …)
                // leaves the catalog's category.
                consent_purpose: t
                    .spec
                    .consent_purpose
                    .as_deref()
                    .and_then(|p| serde_json::from_value::<Category>(json!(p)).ok())
                    .filter(|c| c.needs_consent()),
                steps: t
                    .spec
                    .steps
                    .iter()
                    .filter(|s| s.journey == journey)
                    .map(|s| s.step.clone())
                    .collect(),
                vendor: t.spec.vendor,
            })
            .collect(),
    ))
}

/// The change log (one tag's, or all), oldest first, each entry with its id and tag id.
pub async fn tag_log(
    store: &dyn Governance,
    tag_id: Option<i64>,
) -> Result<Vec<serde_json::Value>> {
    if let Some(id) = tag_id {
        by_id::<Tag>(store, RecordKind::Tag, id).await?;
    }
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.tag_log(tag_id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for row in page {
            let mut entry: serde_json::Value = serde_json::from_str(&row.entry)?;
            entry["id"] = json!(row.id);
            entry["tag_id"] = json!(row.tag_id);
            out.push(entry);
        }
    }
    Ok(out)
}

/// Third-party vendors a report saw, each with the first (journey, step) and category.
fn seen_vendors(report: &Report) -> Vec<(String, String, String)> {
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for step in report.scenarios.iter().flat_map(|s| &s.steps) {
        for v in &step.vendors {
            if !seen.iter().any(|(name, _, _)| *name == v.name) {
                let category = serde_json::to_value(v.category)
                    .ok()
                    .and_then(|c| c.as_str().map(str::to_string))
                    .unwrap_or_else(|| "unknown".into());
                seen.push((v.name.clone(), step.name.clone(), category));
            }
        }
    }
    seen
}

/// Proposes a tag for every vendor the stored scan saw that the inventory lacks
/// (classified questionable, its purpose and owner still to be documented).
pub async fn adopt(
    store: &dyn Store,
    actor: &Actor,
    scan: i64,
    environment: Environment,
) -> Result<Vec<Held<Tag>>> {
    require(actor, MARKETING, "proposing tags")?;
    let report = stored_report(store, scan).await?;
    let seen = seen_vendors(&report);
    let inventory: Vec<Tag> = tags(store, None)
        .await?
        .into_iter()
        .map(|t| t.value)
        .collect();
    let missing = tag::missing_vendors(
        &inventory,
        seen.iter().map(|(v, _, _)| v.as_str()),
        environment,
    );
    let mut proposed = Vec::new();
    for vendor in missing {
        let Some((_, step, category)) = seen.iter().find(|(v, _, _)| *v == vendor) else {
            continue;
        };
        let spec = TagSpec {
            vendor: vendor.clone(),
            purpose: format!("seen by scan {scan}; purpose to be documented"),
            owner: "unassigned".into(),
            steps: vec![tag::StepRef {
                journey: report.journey.clone(),
                step: step.clone(),
            }],
            data_collected: Vec::new(),
            consent_purpose: Some(category.clone()),
            classification: tag::Classification::Questionable,
            environment,
            review_date: None,
        };
        let reason = format!("adopted from scan {scan}");
        proposed.push(tag_action(store, actor, None, TagAction::Propose(spec), &reason).await?);
    }
    Ok(proposed)
}

// -- Backlog and vendor risk, fed by scans --

fn observed(report: &Report) -> (Vec<Observed>, Coverage) {
    let findings = report
        .findings
        .iter()
        .map(|f| Observed {
            key: backlog::FindingKey {
                kind: f.kind.name().to_string(),
                scenario: f.scenario.as_ref().map(|s| s.name()),
                step: f.step.clone(),
                vendor: f.vendor.clone(),
            },
            severity: f.severity,
            message: f.message.clone(),
            evidence: f.evidence.request.clone(),
        })
        .collect();
    // A failed step (the last of an incomplete scenario) did not look everywhere.
    let steps = report
        .scenarios
        .iter()
        .flat_map(|s| {
            s.steps
                .iter()
                .filter(|st| st.error.is_none())
                .map(|st| (s.name.name().to_string(), st.name.clone()))
        })
        .collect();
    (
        findings,
        Coverage {
            steps,
            complete: !report.incomplete,
        },
    )
}

/// Brings the journey's backlog forward with a stored scan; returns how many items it
/// created or changed.
pub async fn apply_scan_to_backlog(
    store: &dyn Governance,
    scan: &ScanRow,
    report: &Report,
) -> Result<usize> {
    let items: Vec<Held<BacklogItem>> = all(store, RecordKind::Backlog).await?;
    let (findings, coverage) = observed(report);
    let day =
        chrono::DateTime::from_timestamp_millis(scan.at).map_or_else(today, |t| t.date_naive());
    let values: Vec<BacklogItem> = items.iter().map(|h| h.value.clone()).collect();
    let changes = backlog::apply_scan(
        &values,
        &backlog::ScanInput {
            id: scan.id,
            journey: &scan.journey,
            at: scan.at,
            day,
            findings: &findings,
            coverage: &coverage,
        },
    );
    let writes = changes
        .iter()
        .map(|item| {
            let key = item.key();
            let version = items
                .iter()
                .find(|h| h.value.key() == key)
                .map(|h| h.version);
            Ok(RecordWrite {
                key,
                version,
                doc: doc(item)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let n = writes.len();
    store.write_records(RecordKind::Backlog, writes).await?;
    Ok(n)
}

/// Adds the fourth parties a report saw to the risk records of the vendors that loaded
/// them (the vendor of the script in the fourth party's initiator chain).
pub async fn apply_scan_to_vendors(store: &dyn Governance, report: &Report) -> Result<usize> {
    let mut loaded: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let requests: Vec<_> = report
        .scenarios
        .iter()
        .flat_map(|s| &s.steps)
        .flat_map(|s| &s.requests)
        .collect();
    for f in report
        .findings
        .iter()
        .filter(|f| f.kind == sightline_scan::FindingKind::FourthParty)
    {
        let loader = f.evidence.initiator_chain.iter().skip(1).find_map(|url| {
            requests
                .iter()
                .find(|r| r.url == *url)
                .and_then(|r| r.vendor.clone())
        });
        if let Some(loader) = loader {
            loaded.entry(loader).or_default().push(f.vendor.clone());
        }
    }
    let mut writes = Vec::new();
    for held in all::<VendorRisk>(store, RecordKind::VendorRisk).await? {
        let mut risk = held.value;
        if let Some(seen) = loaded.get(&risk.vendor) {
            if risk.add_sub_processors(seen.iter().map(String::as_str)) {
                writes.push(RecordWrite {
                    key: risk.vendor.clone(),
                    version: Some(held.version),
                    doc: doc(&risk)?,
                });
            }
        }
    }
    let n = writes.len();
    store.write_records(RecordKind::VendorRisk, writes).await?;
    Ok(n)
}

pub async fn backlog_items(
    store: &dyn Governance,
    filter: &Filter,
) -> Result<Vec<Held<BacklogItem>>> {
    let today = today();
    let mut items: Vec<Held<BacklogItem>> = all(store, RecordKind::Backlog).await?;
    items.retain(|h| filter.matches(&h.value, today));
    Ok(items)
}

pub async fn backlog_act(
    store: &dyn Store,
    actor: &Actor,
    id: i64,
    action: BacklogAction,
) -> Result<Held<BacklogItem>> {
    require(actor, TEAMS, "acting on the backlog")?;
    let item: Held<BacklogItem> = by_id(store, RecordKind::Backlog, id).await?;
    let next = backlog::act(
        &item.value,
        action,
        actor,
        today(),
        sightline_core::time::now_ms(),
    )?;
    let write = RecordWrite {
        key: next.key(),
        version: Some(item.version),
        doc: doc(&next)?,
    };
    let mut written = store
        .write_records(RecordKind::Backlog, vec![write])
        .await?;
    let done: Held<BacklogItem> = held(RecordKind::Backlog, written.remove(0))?;
    let target = format!("backlog:{}", done.id);
    let (before, after) = (Some(item.to_json()), Some(done.to_json()));
    crate::audit::record(store, actor, "backlog.act", &target, before, after).await?;
    Ok(done)
}

/// Creates or replaces a vendor's risk record; sub-processors seen by scans are kept.
pub async fn put_vendor(
    store: &dyn Store,
    actor: &Actor,
    risk: VendorRisk,
) -> Result<Held<VendorRisk>> {
    require(actor, SECURITY, "recording vendor risk")?;
    let mut risk = risk.validated()?;
    let current = store.record(RecordKind::VendorRisk, &risk.vendor).await?;
    if let Some(current) = &current {
        let stored: Held<VendorRisk> = held(RecordKind::VendorRisk, current.clone())?;
        risk.sub_processors.extend(stored.value.sub_processors);
    }
    let write = RecordWrite {
        key: risk.vendor.clone(),
        version: current.map(|c| c.version),
        doc: doc(&risk)?,
    };
    let mut written = store
        .write_records(RecordKind::VendorRisk, vec![write])
        .await?;
    let put: Held<VendorRisk> = held(RecordKind::VendorRisk, written.remove(0))?;
    let vendor = put.value.vendor.clone();
    audit(store, actor, "vendor.put", &vendor, Some(put.to_json())).await?;
    Ok(put)
}

pub async fn vendors(store: &dyn Governance, overdue_only: bool) -> Result<Vec<Held<VendorRisk>>> {
    let today = today();
    let mut all: Vec<Held<VendorRisk>> = all(store, RecordKind::VendorRisk).await?;
    all.retain(|h| !overdue_only || h.value.is_overdue(today));
    Ok(all)
}

/// A vendor risk record as shown: with its next review day and whether it is overdue.
pub fn vendor_json(h: &Held<VendorRisk>) -> serde_json::Value {
    let mut out = h.to_json();
    out["next_review"] = json!(h.value.next_review().map(|d| d.to_string()));
    out["overdue"] = json!(h.value.is_overdue(today()));
    out
}

/// A backlog item as shown: with whether it is overdue.
pub fn backlog_json(h: &Held<BacklogItem>) -> serde_json::Value {
    let mut out = h.to_json();
    out["overdue"] = json!(h.value.is_overdue(today()));
    out
}
