//! Tracking sources, their write keys, and API tokens. Secrets are generated here, shown
//! once by the caller and stored only as hashes.

use crate::access::{require, Actor, ADMIN};
use crate::audit::{record, snapshot};
use crate::{Error, Result};
use serde_json::json;
use sightline_core::{secret, time, Role, Source, Token};
use sightline_store::{Access, Store};

pub const WRITE_KEY_LEN: usize = 32;
pub const TOKEN_PREFIX: &str = "slt_";
pub const TOKEN_LEN: usize = 40;

/// Creates a source; returns it with its write key (the only time the key is seen).
pub async fn add_source(store: &dyn Store, actor: &Actor, name: &str) -> Result<(Source, String)> {
    require(actor, ADMIN, "adding sources")?;
    if name.trim().is_empty() || name.len() > 100 {
        return Err(Error::invalid("a source name must be 1 to 100 characters"));
    }
    let key = secret::generate("", WRITE_KEY_LEN);
    let source = store.create_source(name, &secret::hash(&key)).await?;
    record(store, actor, "source.create", name, None, snapshot(&source)).await?;
    Ok((source, key))
}

pub async fn list_sources(store: &dyn Access, actor: &Actor) -> Result<Vec<Source>> {
    require(actor, ADMIN, "listing sources")?;
    Ok(store.list_sources().await?)
}

/// A source by name, or an error that says where to look.
pub async fn source_named(store: &dyn Access, name: &str) -> Result<Source> {
    store.source_by_name(name).await?.ok_or_else(|| {
        Error::not_found(
            "source",
            format!("no source named {name:?}: `sightline source list` shows them"),
        )
    })
}

/// A new write key for a source.
pub struct RotatedKey {
    pub source: Source,
    pub write_key: String,
    /// Until when (ms) the old keys keep working.
    pub old_keys_valid_until: i64,
}

/// Issues a new write key; the old ones keep working for `grace`.
pub async fn rotate_key(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    grace: std::time::Duration,
) -> Result<RotatedKey> {
    require(actor, ADMIN, "rotating write keys")?;
    let source = source_named(store, name).await?;
    let write_key = secret::generate("", WRITE_KEY_LEN);
    let until = time::now_ms() + grace.as_millis() as i64;
    store
        .rotate_key(source.id, &secret::hash(&write_key), until)
        .await?;
    let after = Some(json!({"write_key": "new", "old_keys_valid_until": until}));
    record(store, actor, "source.rotate_key", name, None, after).await?;
    Ok(RotatedKey {
        source,
        write_key,
        old_keys_valid_until: until,
    })
}

/// Creates an API token for `role` (for the person `name`, when given); returns it with
/// its secret (the only time the secret is seen).
pub async fn create_token(
    store: &dyn Store,
    actor: &Actor,
    role: Role,
    name: Option<&str>,
) -> Result<(Token, String)> {
    require(actor, ADMIN, "creating API tokens")?;
    let name = name.map(str::trim);
    if name.is_some_and(|n| n.is_empty() || n.len() > 100 || n.starts_with("token:")) {
        return Err(Error::invalid(
            "--name must be 1 to 100 characters and not start with \"token:\"",
        ));
    }
    let secret = secret::generate(TOKEN_PREFIX, TOKEN_LEN);
    let token = store.create_token(role, &secret::hash(&secret)).await?;
    if let Some(name) = name {
        store.set_token_name(token.id, name).await?;
    }
    let after = Some(json!({"id": token.id, "role": role.as_str(), "name": name}));
    let target = format!("token:{}", token.id);
    record(store, actor, "token.create", &target, None, after).await?;
    Ok((token, secret))
}

/// What an empty store is given at first start: the `default` source and an admin token.
pub struct Bootstrap {
    pub source: Source,
    pub write_key: String,
    pub admin_token: String,
}

/// On a store with no sources and no tokens: creates the first source and admin token.
pub async fn bootstrap(store: &dyn Store) -> Result<Option<Bootstrap>> {
    if !store.is_empty().await? {
        return Ok(None);
    }
    let operator = crate::access::operator();
    let (source, write_key) = add_source(store, &operator, "default").await?;
    let (_, admin_token) = create_token(store, &operator, Role::Admin, None).await?;
    Ok(Some(Bootstrap {
        source,
        write_key,
        admin_token,
    }))
}
