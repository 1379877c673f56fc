//! The security approval of server-side data flows: destinations created or changed
//! through the workflow of `sightline_govern::flow`, with the same role rules as tags.
//!
//! The destination's stored row is the configuration in force, and the only one delivery
//! and audience sync read. A new destination held for approval is stored with `approved`
//! false (its worker reads nothing, its checkpoint stays at 0: once approved it is sent
//! the log from its beginning, as any new destination is); a held change is kept in the
//! destination's governance record only, so delivery goes on with the approved
//! configuration until the change is approved, when the record, the change-log entry and
//! the row's new configuration commit together (`Flows::write_flow`). Every step is in
//! the destination change log and the audit log.

use crate::access::{require, Actor, MARKETING, READERS, SECURITY};
use crate::audit::record;
use crate::destinations::{masked_url, named};
use crate::{imported, Error, Result};
use serde_json::{json, Value};
use sightline_activate::{Credential, DestinationSpec, Transform};
use sightline_consent::Policy;
use sightline_core::{time, Destination, DestinationKind, NewDestination};
use sightline_govern::flow::{self, Flow, FlowAction, FlowConfig, FlowStatus};
use sightline_store::{DestinationConfig, NewTagLogEntry, Store};

pub use sightline_govern::flow::{ApprovalPolicy, Mode};
pub use sightline_govern::tag::Environment;

/// The largest page of the change log.
pub const MAX_PAGE: usize = 1000;

fn config_of_new(new: &NewDestination) -> FlowConfig {
    FlowConfig {
        kind: new.kind.as_str().to_owned(),
        url: new.url.clone(),
        purposes: new.purposes.clone(),
        event_types: new.event_types.clone(),
        event_names: new.event_names.clone(),
        transform: new.transform.clone(),
        settings: new.settings.clone(),
        batch_size: new.batch_size,
    }
}

fn config_of(d: &Destination) -> FlowConfig {
    FlowConfig {
        kind: d.kind.as_str().to_owned(),
        url: d.url.clone(),
        purposes: d.purposes.clone(),
        event_types: d.event_types.clone(),
        event_names: d.event_names.clone(),
        transform: d.transform.clone(),
        settings: d.settings.clone(),
        batch_size: d.batch_size,
    }
}

fn to_store(c: FlowConfig) -> Result<DestinationConfig> {
    let kind = DestinationKind::parse(&c.kind)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("unknown destination type {:?}", c.kind)))?;
    Ok(DestinationConfig {
        kind,
        url: c.url,
        purposes: c.purposes,
        event_types: c.event_types,
        event_names: c.event_names,
        batch_size: c.batch_size,
        transform: c.transform,
        settings: c.settings,
    })
}

/// A flow as it may be shown and logged: credentials in its URLs masked.
pub fn shown(flow: &Flow) -> Flow {
    let mut flow = flow.clone();
    flow.config.url = masked_url(&flow.config.url);
    if let Some(approved) = &mut flow.approved {
        approved.url = masked_url(&approved.url);
    }
    flow
}

fn log_entry(entry: &flow::FlowEntry) -> Result<NewTagLogEntry> {
    let mut entry = entry.clone();
    entry.flow = shown(&entry.flow);
    Ok(NewTagLogEntry {
        at: entry.at,
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        entry: serde_json::to_string(&entry).map_err(|e| Error::Internal(e.into()))?,
    })
}

fn doc(flow: &Flow) -> Result<String> {
    serde_json::to_string(flow).map_err(|e| Error::Internal(e.into()))
}

/// A destination's record and its version; a destination from before approval existed
/// has none and counts as approved as it stands (version `None`: the first write creates
/// its record).
async fn record_of(store: &dyn Store, d: &Destination) -> Result<(Option<i64>, Flow)> {
    match store.flow(d.id).await? {
        Some(row) => {
            let flow: Flow = serde_json::from_str(&row.doc).map_err(|e| {
                Error::Internal(anyhow::anyhow!(
                    "destination {:?}'s governance record cannot be read: {e}",
                    d.name
                ))
            })?;
            Ok((Some(row.version), flow))
        }
        None => Ok((
            None,
            Flow {
                destination: d.name.clone(),
                status: if d.approved {
                    FlowStatus::Approved
                } else {
                    FlowStatus::Pending
                },
                revision: 0,
                config: config_of(d),
                approved: d.approved.then(|| config_of(d)),
                changes: Vec::new(),
                proposed_by: String::new(),
                decided_by: None,
            },
        )),
    }
}

/// Adds a destination through the approval workflow ([`create`]): in force at
/// once, or held for a security approval, as `approval` says for the actor. The answer
/// holds its signing secret (the only time it is seen) and its governance record.
pub async fn add(
    store: &dyn Store,
    actor: &Actor,
    spec: DestinationSpec,
    policy: &Policy,
    approval: &ApprovalPolicy,
) -> Result<(Destination, Flow)> {
    require(actor, MARKETING, "adding destinations")?;
    let new = spec.validate(policy).map_err(Error::Invalid)?;
    create(store, actor, new, approval).await
}

/// Adds every destination listed. Every entry is checked before any is stored: a file is
/// taken whole or not at all; names already taken are left as they are.
pub async fn import(
    store: &dyn Store,
    actor: &Actor,
    specs: Vec<DestinationSpec>,
    policy: &Policy,
    approval: &ApprovalPolicy,
) -> Result<Vec<Value>> {
    require(actor, MARKETING, "adding destinations")?;
    let checked = specs
        .into_iter()
        .map(|spec| {
            let name = spec.name.clone();
            spec.validate(policy)
                .map_err(|e| Error::invalid(format!("destination {name:?}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut report = Vec::new();
    for new in checked {
        let name = new.name.clone();
        let created = create(store, actor, new, approval)
            .await
            .map(|(d, flow)| created_json(&d, &flow));
        report.push(imported(&name, created)?);
    }
    Ok(report)
}

/// Creates a destination through the workflow: in force at once, or held for a security
/// approval, as the policy says for the actor. Returns the destination (with its secret,
/// shown this once) and its record.
pub async fn create(
    store: &dyn Store,
    actor: &Actor,
    new: NewDestination,
    policy: &ApprovalPolicy,
) -> Result<(Destination, Flow)> {
    require(actor, MARKETING, "adding destinations")?;
    let decision = flow::apply(
        None,
        &new.name,
        FlowAction::Propose(Box::new(config_of_new(&new))),
        actor,
        policy.mode(),
        "",
        time::now_ms(),
    )?;
    let approved = decision.apply.is_some();
    let created = store
        .create_governed_destination(
            new,
            approved,
            doc(&decision.flow)?,
            log_entry(&decision.entry)?,
        )
        .await?;
    let action = if approved {
        "destination.create"
    } else {
        "destination.propose"
    };
    record(
        store,
        actor,
        action,
        &created.name,
        None,
        crate::audit::snapshot(&shown(&decision.flow)),
    )
    .await?;
    Ok((created, decision.flow))
}

/// A change to a destination's configuration: what is absent stays as it is.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationChange {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub purposes: Option<Vec<String>>,
    #[serde(rename = "types", default)]
    pub event_types: Option<Vec<String>>,
    #[serde(rename = "events", default)]
    pub event_names: Option<Vec<String>>,
    #[serde(rename = "batch", default)]
    pub batch_size: Option<u32>,
    #[serde(default)]
    pub transform: Option<Transform>,
    #[serde(default)]
    pub settings: Option<serde_json::Map<String, Value>>,
    /// Why, for the change log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Proposes a change to a destination (its URL, purposes, event filter, transform,
/// settings or batch size). A change that needs review and that the policy holds for the
/// actor waits for a security approval, the approved configuration staying in force; any
/// other applies at once. A change while one waits replaces it (its base is the waiting
/// revision).
pub async fn change(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    change: DestinationChange,
    consent: &Policy,
    policy: &ApprovalPolicy,
) -> Result<Flow> {
    require(actor, MARKETING, "changing destinations")?;
    let destination = named(store, name).await?;
    let (version, current) = record_of(store, &destination).await?;
    let base = match (&current.status, &current.approved) {
        (FlowStatus::Approved | FlowStatus::Rejected, Some(approved)) => approved.clone(),
        _ => current.config.clone(),
    };
    let transform = match change.transform {
        Some(t) => t,
        None => serde_json::from_value(base.transform.clone()).map_err(|e| {
            Error::Internal(anyhow::anyhow!("the stored transform cannot be read: {e}"))
        })?,
    };
    let spec = DestinationSpec {
        name: destination.name.clone(),
        kind: base.kind.clone(),
        url: Some(change.url.unwrap_or(base.url)),
        purposes: change.purposes.unwrap_or(base.purposes),
        event_types: change.event_types.unwrap_or(base.event_types),
        event_names: change.event_names.unwrap_or(base.event_names),
        batch_size: Some(change.batch_size.unwrap_or(base.batch_size)),
        transform,
        settings: match change.settings {
            Some(s) => s,
            None => base.settings.as_object().cloned().unwrap_or_default(),
        },
        // Validation wants a vendor's credential: the stored one, which a change keeps.
        credential: (destination.kind != DestinationKind::Webhook)
            .then(|| Credential(destination.signing_secret.clone())),
        credential_env: None,
    };
    let new = spec.validate(consent).map_err(Error::Invalid)?;
    let decision = flow::apply(
        Some(&current),
        &destination.name,
        FlowAction::Propose(Box::new(config_of_new(&new))),
        actor,
        policy.mode(),
        change.reason.as_deref().unwrap_or_default(),
        time::now_ms(),
    )?;
    let before = crate::audit::snapshot(&shown(&current));
    write(store, destination.id, version, &decision).await?;
    let action = if decision.flow.is_pending() {
        "destination.propose"
    } else {
        "destination.change"
    };
    record(
        store,
        actor,
        action,
        name,
        before,
        crate::audit::snapshot(&shown(&decision.flow)),
    )
    .await?;
    Ok(shown(&decision.flow))
}

/// Stores a decision: the record, its change-log entry and the configuration it puts in
/// force, in one transaction (refused if the record moved past `version`).
async fn write(
    store: &dyn Store,
    destination_id: i64,
    version: Option<i64>,
    decision: &flow::Decision,
) -> Result<()> {
    let apply = decision.apply.clone().map(to_store).transpose()?;
    store
        .write_flow(
            destination_id,
            version,
            doc(&decision.flow)?,
            log_entry(&decision.entry)?,
            apply,
        )
        .await?;
    Ok(())
}

/// Approves (`true`) or rejects a destination's waiting revision: the security role, and
/// a person other than its proposer. An approval puts it in force at once.
pub async fn decide(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    approve: bool,
    reason: &str,
) -> Result<Flow> {
    let what = if approve {
        "approving destinations"
    } else {
        "rejecting destinations"
    };
    require(actor, SECURITY, what)?;
    let destination = named(store, name).await?;
    let (version, current) = record_of(store, &destination).await?;
    let action = if approve {
        FlowAction::Approve
    } else {
        FlowAction::Reject
    };
    let decision = flow::apply(
        Some(&current),
        &destination.name,
        action,
        actor,
        Mode::Required,
        reason,
        time::now_ms(),
    )?;
    write(store, destination.id, version, &decision).await?;
    record(
        store,
        actor,
        if approve {
            "destination.approve"
        } else {
            "destination.reject"
        },
        name,
        crate::audit::snapshot(&shown(&current)),
        crate::audit::snapshot(&shown(&decision.flow)),
    )
    .await?;
    Ok(shown(&decision.flow))
}

/// Every destination's record (URLs masked), in destination order; `pending_only`: those
/// with a revision waiting for approval.
pub async fn flows(store: &dyn Store, actor: &Actor, pending_only: bool) -> Result<Vec<Flow>> {
    require(actor, READERS, "reading destinations")?;
    all_flows(store, pending_only).await
}

/// [`flows`] without a role check, for the governance reads (lineage, the report).
pub async fn all_flows(store: &dyn Store, pending_only: bool) -> Result<Vec<Flow>> {
    let mut out = Vec::new();
    for destination in store.list_destinations().await? {
        let (_, flow) = record_of(store, &destination).await?;
        if !pending_only || flow.is_pending() {
            out.push(shown(&flow));
        }
    }
    Ok(out)
}

/// The destination change log after `after` (entry ids), oldest first; one destination's
/// when named.
pub async fn log(
    store: &dyn Store,
    actor: &Actor,
    name: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Value> {
    require(actor, READERS, "reading the destination change log")?;
    let id = match name {
        Some(name) => Some(named(store, name).await?.id),
        None => None,
    };
    let rows = store.flow_log(id, after, limit.clamp(1, MAX_PAGE)).await?;
    let next_after = rows.last().map_or(after, |r| r.id);
    let entries = rows
        .into_iter()
        .map(|r| {
            let mut entry: Value = serde_json::from_str(&r.entry).unwrap_or(Value::Null);
            entry["id"] = r.id.into();
            entry["destination_id"] = r.destination_id.into();
            entry["at"] = time::format_ms(r.at).into();
            entry
        })
        .collect::<Vec<_>>();
    Ok(json!({"entries": entries, "next_after": next_after}))
}

/// Where a destination's approval stands, in words (`sightline_govern::flow::standing`); a
/// destination without a governance record (none was needed) is in force.
pub fn describe(in_force: bool, flow: Option<&Flow>) -> String {
    sightline_govern::flow::standing(in_force, flow.is_some_and(Flow::is_pending)).to_string()
}

/// What creating a destination answers: `{"id","name","approval"}`, the record's status
/// (`approved`, or `pending` until a security approval), and a webhook's new signing
/// secret, shown this once. A vendor type's credential is never shown back.
pub fn created_json(destination: &Destination, flow: &Flow) -> Value {
    let mut answer = json!({
        "id": destination.id,
        "name": destination.name,
        "approval": flow.status.name(),
    });
    if destination.kind == DestinationKind::Webhook {
        answer["signing_secret"] = destination.signing_secret.clone().into();
    }
    answer
}
