//! The audit log's service side: what every change (and every lookup of a person) records,
//! with secrets redacted, and reading and verifying the chain. The chain itself (canonical
//! bytes, hashing, verification) is `sightline_store`'s IO-free `audit` module; appends are
//! serialised by the store.
//!
//! Each operation records once, here in the service layer, after it succeeded: the command
//! line and the HTTP API share it and neither adapter records anything itself.

use crate::access::{require, Actor, AUDITORS};
use crate::Result;
use serde_json::Value;
use sightline_store::{AuditEntry, AuditLog, BrokenChain, Durability, NewAuditEntry};

/// What the audit log shows in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// Object keys whose values are secrets wherever they appear: signing secrets,
/// credentials, write keys, token values, passwords.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "credential",
        "password",
        "token",
        "write_key",
        "writekey",
        "api_key",
        "apikey",
        "access_key",
        "private_key",
        "authorization",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// A copy of `value` with every secret-named key's value replaced by [`REDACTED`].
pub fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if is_secret_key(&k) && !v.is_null() {
                        (k, Value::String(REDACTED.into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

/// How the audit log names an actor: `token:ID`, or its name when it holds no token (`cli`
/// for the operator).
pub fn actor_id(actor: &Actor) -> String {
    match actor.token {
        Some(id) => format!("token:{id}"),
        // The operator at the command line (`cli`), or the server itself (`retention`).
        None => actor.name.clone(),
    }
}

/// Appends one entry: `action` on `target` by `actor`, with the state before and after
/// (redacted here; `None` is JSON `null`), on disk before it returns.
pub async fn record(
    store: &dyn AuditLog,
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    let entry = new_entry(actor, action, target, before, after);
    store.append_audit(entry, Durability::Synced).await?;
    Ok(())
}

/// Appends a lookup of a person (`profile.read` of `identifier` by `actor`), committed
/// before it returns but not waited on to reach the disk ([`Durability::Committed`]): it
/// survives the process dying, and a lookup does not wait for a flush.
pub async fn record_read(store: &dyn AuditLog, actor: &Actor, identifier: &str) -> Result<()> {
    let entry = new_entry(actor, "profile.read", identifier, None, None);
    store.append_audit(entry, Durability::Committed).await?;
    Ok(())
}

fn new_entry(
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> NewAuditEntry {
    let json = |v: Option<Value>| redact(v.unwrap_or(Value::Null)).to_string();
    NewAuditEntry {
        actor: actor_id(actor),
        role: actor.role.as_str().into(),
        at: sightline_core::time::now_ms(),
        action: action.into(),
        target: target.into(),
        before: json(before),
        after: json(after),
    }
}

/// Serialises a value for `before`/`after`.
pub fn snapshot<T: serde::Serialize>(value: &T) -> Option<Value> {
    serde_json::to_value(value).ok()
}

/// The largest page of [`list`].
pub const MAX_PAGE: usize = 1000;

/// Entries after id `after`, oldest first, at most `limit` (capped at [`MAX_PAGE`]).
pub async fn list(
    store: &dyn AuditLog,
    actor: &Actor,
    after: i64,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    require(actor, AUDITORS, "reading the audit log")?;
    Ok(store.audit_entries(after, limit.clamp(1, MAX_PAGE)).await?)
}

/// What `verify` found.
pub enum Verified {
    /// The whole chain holds: its length and its newest hash (keep it to detect a
    /// truncation later).
    Intact {
        entries: u64,
        head: String,
    },
    Broken(BrokenChain),
}

/// Reads the whole chain page by page and checks it.
pub async fn verify(store: &dyn AuditLog, actor: &Actor) -> Result<Verified> {
    require(actor, AUDITORS, "verifying the audit log")?;
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_entries(after, MAX_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        all.extend(page);
    }
    Ok(match sightline_store::verify_audit_chain(&all) {
        Ok(entries) => Verified::Intact {
            entries,
            head: all
                .last()
                .map_or(sightline_store::AUDIT_GENESIS.to_string(), |e| {
                    e.hash.clone()
                }),
        },
        Err(broken) => Verified::Broken(broken),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let value = json!({
            "name": "hook",
            "signing_secret": "s3cr3t",
            "settings": {"measurement_id": "G-1", "api_secret": "x", "access_token": "y"},
            "keys": [{"write_key": "k"}],
            "credential": null,
        });
        assert_eq!(
            redact(value),
            json!({
                "name": "hook",
                "signing_secret": REDACTED,
                "settings": {"measurement_id": "G-1", "api_secret": REDACTED, "access_token": REDACTED},
                "keys": [{"write_key": REDACTED}],
                "credential": null,
            })
        );
    }
}
