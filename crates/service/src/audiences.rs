//! Audiences and computed traits: their definitions, members and history.

use crate::access::{require, Actor, MARKETING, READERS};
use crate::lookup::stored_doc;
use crate::profiles::{member_json, Book, Live};
use crate::{imported, Error, Result};
use serde_json::{json, Value};
use sightline_activate::vendor::Vendor;
use sightline_audience::ComputedTrait;
use sightline_core::{AudienceDefinition, TraitDefinition};
use sightline_store::{Definitions, ProfileStore, Store};

/// A name a person reads in lists, URLs and webhook bodies: 1 to 100 characters, without
/// '/' or control characters (which would break a path, a header or a log line).
fn check_name(name: &str, what: &str) -> Result<()> {
    if name.trim().is_empty()
        || name.len() > 100
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(Error::invalid(format!(
            "{what} name must be 1 to 100 characters, without '/' or control characters"
        )));
    }
    Ok(())
}

/// Validates an audience rule and stores it, synced to the destinations named.
pub async fn add_audience(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    rule: &str,
    sync: &[String],
) -> Result<AudienceDefinition> {
    require(actor, MARKETING, "adding audiences")?;
    check_name(name, "an audience")?;
    sightline_audience::Audience::parse(name, rule)
        .map_err(|e| Error::invalid(format!("invalid rule: {e}")))?;
    for destination in sync {
        match store.destination_by_name(destination).await? {
            None => {
                return Err(Error::invalid(format!(
                    "no destination named {destination:?} to sync to: `sightline destination list` shows them"
                )))
            }
            Some(d) if d.kind != sightline_core::DestinationKind::Webhook => {
                let vendor = Vendor::of(d.kind, &d.settings)
                    .ok()
                    .flatten()
                    .filter(Vendor::syncs_audiences);
                let Some(vendor) = vendor else {
                    return Err(Error::invalid(format!(
                        "destination {destination:?} is a {} destination, which has no audience API: audiences sync to webhook, meta and google_ads destinations",
                        d.kind.as_str()
                    )));
                };
                if let Err(reason) = vendor.audience_list(name) {
                    return Err(Error::invalid(format!(
                        "destination {destination:?} cannot take audience {name:?}: {reason} (`sightline destination change {destination} --setting audience.{name}=<id>`)"
                    )));
                }
            }
            Some(_) => {}
        }
    }
    let created = store.create_audience(name, rule, sync).await?;
    let after = crate::audit::snapshot(&created);
    crate::audit::record(store, actor, "audience.create", name, None, after).await?;
    Ok(created)
}

pub async fn list_audiences(
    store: &dyn Definitions,
    actor: &Actor,
) -> Result<Vec<AudienceDefinition>> {
    require(actor, READERS, "reading audiences")?;
    Ok(store.list_audiences().await?)
}

/// Every audience with its member count (`null` for one the profiles have not picked up).
pub async fn audiences_with_counts(
    store: &dyn Store,
    actor: &Actor,
    book: &Live,
) -> Result<Vec<Value>> {
    let definitions = list_audiences(store, actor).await?;
    let sizes: std::collections::HashMap<String, i64> =
        store.audience_sizes().await?.into_iter().collect();
    Ok(definitions
        .iter()
        .map(|d| {
            let members = book
                .has_audience(&d.name)
                .then(|| sizes.get(&d.name).copied().unwrap_or(0));
            json!({"name": d.name, "rule": d.rule, "members": members})
        })
        .collect())
}

fn unknown_audience(name: &str) -> Error {
    Error::not_found(
        "audience",
        format!("no audience named {name:?}: `sightline audience list` shows them (a new one appears within a few seconds)"),
    )
}

/// Members read from the store per request.
const MEMBER_PAGE: usize = 1000;

/// An audience's members, each profile with its identifiers, as the server's profiles
/// stored them.
pub async fn members(
    store: &dyn ProfileStore,
    actor: &Actor,
    book: &Live,
    name: &str,
) -> Result<Vec<Value>> {
    require(actor, READERS, "reading audience members")?;
    if !book.has_audience(name) {
        return Err(unknown_audience(name));
    }
    let mut list = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audience_members(name, after, MEMBER_PAGE).await?;
        for stored in &page {
            list.push(member_json(&stored_doc(stored)?.identity));
        }
        match page.last() {
            Some(last) if page.len() == MEMBER_PAGE => after = last.id,
            _ => return Ok(list),
        }
    }
}

/// One page of an audience's members (at most `limit` after the stored profile id
/// `after`), and the id to read the next page after when there may be more: the console
/// pages a list rather than reading it whole.
pub async fn members_page(
    store: &dyn ProfileStore,
    actor: &Actor,
    book: &Live,
    name: &str,
    after: i64,
    limit: usize,
) -> Result<(Vec<Value>, Option<i64>)> {
    require(actor, READERS, "reading audience members")?;
    if !book.has_audience(name) {
        return Err(unknown_audience(name));
    }
    let limit = limit.clamp(1, MEMBER_PAGE);
    let page = store.audience_members(name, after, limit).await?;
    let next = page.last().filter(|_| page.len() == limit).map(|l| l.id);
    let list = page
        .iter()
        .map(|stored| Ok(member_json(&stored_doc(stored)?.identity)))
        .collect::<Result<Vec<_>>>()?;
    Ok((list, next))
}

/// An audience's members in profiles replayed from the log (the command line).
pub fn replayed_members(actor: &Actor, book: &Book, name: &str) -> Result<Vec<Value>> {
    require(actor, READERS, "reading audience members")?;
    let members = book
        .memberships
        .members(name)
        .ok_or_else(|| unknown_audience(name))?;
    Ok(members
        .iter()
        .filter_map(|&id| book.profiles.identity(id))
        .map(member_json)
        .collect())
}

/// Members as CSV: `profile,identifiers`, the identifiers as `type:value` joined by `;`.
pub fn members_csv(members: &[Value]) -> String {
    let mut out = String::from("profile,identifiers\n");
    for member in members {
        let identifiers: Vec<String> = member["identifiers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                format!(
                    "{}:{}",
                    i["type"].as_str().unwrap_or_default(),
                    i["value"].as_str().unwrap_or_default()
                )
            })
            .collect();
        out.push_str(&format!(
            "{},{}\n",
            member["id"],
            crate::export::csv_field(&identifiers.join(";"))
        ));
    }
    out
}

/// Up to `limit` enter and exit records of an audience after the record id `after`,
/// oldest first, each with its id.
pub async fn history(
    store: &dyn Definitions,
    actor: &Actor,
    name: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, Value)>> {
    require(actor, READERS, "reading audience history")?;
    if !store.list_audiences().await?.iter().any(|a| a.name == name) {
        return Err(unknown_audience(name));
    }
    let rows = store.audience_history(name, after, limit).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, change)| Some((id, serde_json::from_str(&change).ok()?)))
        .collect())
}

/// Checks a computed trait definition and stores it.
pub async fn add_trait(
    store: &dyn Store,
    actor: &Actor,
    definition: &ComputedTrait,
) -> Result<TraitDefinition> {
    require(actor, MARKETING, "adding computed traits")?;
    check_name(&definition.name, "a computed trait's")?;
    let created = store
        .create_trait(&definition.name, &serde_json::to_string(definition)?)
        .await?;
    let after = crate::audit::snapshot(definition);
    crate::audit::record(store, actor, "trait.create", &definition.name, None, after).await?;
    Ok(created)
}

pub async fn list_traits(store: &dyn Definitions, actor: &Actor) -> Result<Vec<TraitDefinition>> {
    require(actor, READERS, "reading computed traits")?;
    Ok(store.list_traits().await?)
}

/// Stores every computed trait listed; names already taken are left as they are.
pub async fn import_traits(
    store: &dyn Store,
    actor: &Actor,
    listed: &[ComputedTrait],
) -> Result<Vec<Value>> {
    let mut report = Vec::new();
    for definition in listed {
        let created = add_trait(store, actor, definition)
            .await
            .map(|t| json!({"name": t.name, "id": t.id}));
        report.push(imported(&definition.name, created)?);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_with_control_characters_or_slashes_are_refused() {
        assert!(check_name("recent-buyers", "an audience").is_ok());
        assert!(check_name("Käufer 30 Tage", "an audience").is_ok());
        for bad in [
            "",
            "  ",
            "a/b",
            "line\nbreak",
            "nul\u{0}",
            "bell\u{7}",
            &"x".repeat(101),
        ] {
            let refused = check_name(bad, "an audience").unwrap_err().to_string();
            assert!(refused.contains("control characters"), "{bad:?}: {refused}");
        }
    }
}
