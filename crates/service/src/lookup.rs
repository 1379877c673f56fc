//! Profiles looked up by any identifier, and what is shown of them: the profile, its
//! traits, identifiers, merge history and its explanation, consent, events, computed traits.
//! The server answers from the stored profiles its follower keeps current; the command line
//! from the stored ones when they are current with the log, else from a replay of the log,
//! so the answer is always the log's.

use crate::access::{require, Actor, PROFILE_READERS};
use crate::profiles::{self, ProfileRules};
use crate::{Error, Result};
use serde_json::{json, Value};
use sightline_audience::ComputedTrait;
use sightline_core::{time, StoredEvent, StoredProfile};
use sightline_identity::{normalise, IdType, Region};
use sightline_profiles::ProfileDoc;
pub use sightline_profiles::ProfileView;
use sightline_store::Store;

/// `type:value`, e.g. `email:ann@example.com`.
pub fn identifier(id: &str) -> Result<(&str, &str)> {
    id.split_once(':')
        .filter(|(t, v)| !t.is_empty() && !v.is_empty())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{id:?} is not an identifier: write type:value, e.g. user_id:42 or email:ann@example.com"
            ))
        })
}

fn unknown(id_type: &str, value: &str) -> Error {
    Error::not_found("profile", format!("no profile holds {id_type}:{value}"))
}

/// A profile, and where its events are listed.
pub struct Found {
    pub doc: ProfileDoc,
    pub timeline: Timeline,
    /// Its stored audience membership and computed trait states (`None` when it has none
    /// or was replayed).
    pub states: Option<String>,
}

pub enum Timeline {
    /// In the store, under this profile id.
    Stored(i64),
    /// Sequence numbers, ascending (from live or replayed profiles).
    Seqs(Vec<i64>),
}

/// The profile holding `type:value` in a replayed book, copied out of it.
fn found_in(book: &profiles::Book, id_type: &str, value: &str) -> Result<Found> {
    let view = book
        .profiles
        .find(id_type, value)
        .ok_or_else(|| unknown(id_type, value))?;
    Ok(Found {
        doc: ProfileDoc {
            identity: view.identity.clone(),
            facts: view.facts.cloned().unwrap_or_default(),
        },
        timeline: Timeline::Seqs(view.facts.map(|f| f.events.clone()).unwrap_or_default()),
        states: None,
    })
}

/// A stored profile's document with its consent ledger, read.
pub fn stored_doc(stored: &StoredProfile) -> Result<ProfileDoc> {
    ProfileDoc::read(stored).map_err(|e| {
        Error::Internal(anyhow::anyhow!(
            "stored profile {} cannot be read: {e}",
            stored.id
        ))
    })
}

/// The stored profile holding `id` (`type:value`), found after the same normalisation as
/// at collection (phone numbers without a country code read in `region`). The server's
/// answer: its follower keeps the stored profiles current.
pub async fn find(store: &dyn Store, actor: &Actor, region: Region, id: &str) -> Result<Found> {
    require(actor, PROFILE_READERS, "reading profiles")?;
    let (id_type, value) = identifier(id)?;
    let id_type = IdType::parse(id_type);
    let value =
        normalise(&id_type, value, region).ok_or_else(|| unknown(id_type.as_str(), value))?;
    // The read and its audit entry at once: nothing is answered unless both succeed, and
    // the caller waits for the slower of the two, not for both in turn.
    let identifier = format!("{}:{value}", id_type.as_str());
    let (audited, stored) = tokio::join!(
        read_audit(store, actor, &identifier),
        store.stored_profile(id_type.as_str(), &value)
    );
    audited?;
    let stored = stored?.ok_or_else(|| unknown(id_type.as_str(), &value))?;
    Ok(Found {
        doc: stored_doc(&stored)?,
        timeline: Timeline::Stored(stored.id),
        states: stored.states,
    })
}

/// Records who looked up whom (a `read` entry: `profile.read`), whether or not anyone
/// holds it. The target names the identifier by type and the SHA-256 of `type:value`
/// (`email:sha256:HEX`), never in clear: the audit log is append-only, and erasure must
/// leave no copy of a person's identifiers.
async fn read_audit(store: &dyn Store, actor: &Actor, identifier: &str) -> Result<()> {
    let id_type = identifier.split_once(':').map_or("", |(t, _)| t);
    let target = format!(
        "{id_type}:sha256:{}",
        sightline_core::secret::hash(identifier)
    );
    crate::audit::record_read(store, actor, &target).await
}

/// Whether the stored profiles were derived under `rules` through the end of the log.
pub async fn stored_current(store: &dyn Store, rules: &ProfileRules) -> Result<bool> {
    Ok(match store.profiles_state().await? {
        Some(state) => state.rules == rules.fingerprint && state.seq >= store.last_seq().await?,
        None => false,
    })
}

/// The profile holding `id` as stored, when the stored profiles are current (see
/// [`stored_current`]); else from a replay of the log.
pub async fn find_stored(
    store: &dyn Store,
    actor: &Actor,
    rules: ProfileRules,
    id: &str,
) -> Result<Found> {
    if stored_current(store, &rules).await? {
        return find(store, actor, rules.rules.default_region(), id).await;
    }
    require(actor, PROFILE_READERS, "reading profiles")?;
    let (id_type, value) = identifier(id)?;
    read_audit(store, actor, &format!("{id_type}:{value}")).await?;
    let book = profiles::rebuild(store, rules).await?;
    found_in(&book, id_type, value)
}

impl Found {
    pub fn view(&self) -> ProfileView<'_> {
        self.doc.view()
    }
}

/// The profile as the API shows it.
pub fn profile_json(view: ProfileView<'_>) -> Value {
    view.to_json()
}

pub fn traits_json(view: ProfileView<'_>) -> Value {
    match view.facts {
        Some(facts) => json!({ "traits": facts.traits }),
        None => json!({ "traits": {} }),
    }
}

pub fn identifiers_json(view: ProfileView<'_>) -> Value {
    json!({ "identifiers": view.identity.identifiers })
}

pub fn merges_json(view: ProfileView<'_>) -> Value {
    json!({"merges": view.identity.history, "explanation": view.identity.explain()})
}

/// The consent in force at `at` (ms; `None` for now) and the whole ledger.
pub fn consent_json(view: ProfileView<'_>, at: Option<i64>) -> Value {
    let none = sightline_consent::Ledger::default();
    let ledger = view.facts.map_or(&none, |f| &f.consent);
    json!({"state": ledger.state_at(at.unwrap_or(i64::MAX), i64::MAX), "history": ledger})
}

/// An ISO 8601 time as ms, or an error naming `what`.
pub fn instant(what: &str, text: &str) -> Result<i64> {
    time::parse_ms(text)
        .ok_or_else(|| Error::invalid(format!("{what} {text:?} is not an ISO 8601 time")))
}

/// Up to `limit` of the profile's events below `before` (a seq), newest first.
pub async fn events(
    store: &dyn Store,
    timeline: &Timeline,
    before: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    match timeline {
        Timeline::Stored(id) => Ok(store.stored_profile_events(*id, before, limit).await?),
        Timeline::Seqs(seqs) => {
            let end = seqs.partition_point(|&seq| seq < before);
            let mut events = Vec::new();
            for &seq in seqs[end.saturating_sub(limit)..end].iter().rev() {
                events.extend(crate::events::event_at(store, seq).await?);
            }
            Ok(events)
        }
    }
}

/// The audiences a stored profile is a member of, by name (none for a replayed one).
pub fn audiences(found: &Found) -> Result<Vec<String>> {
    let Some(states) = &found.states else {
        return Ok(Vec::new());
    };
    sightline_profiles::stored_audiences(states).map_err(|e| {
        Error::Internal(anyhow::anyhow!(
            "stored states of profile {} cannot be read: {e}",
            found.doc.identity.id.0
        ))
    })
}

/// The computed traits of a stored profile, as of now.
pub async fn computed_json(store: &dyn Store, found: &Found) -> Result<Value> {
    let Some(states) = &found.states else {
        return Ok(json!({"computed": {}}));
    };
    let traits: Vec<ComputedTrait> = store
        .list_traits()
        .await?
        .into_iter()
        .filter_map(|t| serde_json::from_value(t.definition).ok())
        .collect();
    let computed =
        sightline_profiles::stored_computed(&traits, states, time::now_ms()).map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "stored states of profile {} cannot be read: {e}",
                found.doc.identity.id.0
            ))
        })?;
    Ok(json!({ "computed": computed }))
}
