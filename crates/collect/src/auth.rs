//! Write keys: read from HTTP Basic (username, empty password) or the body, looked up by
//! their SHA-256 and cached briefly so that a hot source costs no store round trip.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use sightline_core::{secret, Source};
use sightline_store::Access;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a looked-up key is trusted before the store is asked again: the longest a
/// rotated-out key outlives its grace period.
const KEY_TTL: Duration = Duration::from_secs(10);
const KEY_CACHE_MAX: usize = 10_000;

/// The write key from an `Authorization: Basic` header; `Ok(None)` when there is none.
pub fn basic_write_key(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII")?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err("use HTTP Basic auth with the write key as the username and an empty password");
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the Basic credentials are not valid base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8")?;
    let key = decoded.split(':').next().unwrap_or_default();
    if key.is_empty() {
        return Err("the Basic username (the write key) is empty");
    }
    Ok(Some(key.to_string()))
}

pub struct KeyCache {
    store: Arc<dyn Access>,
    known: Mutex<HashMap<String, (Source, Instant)>>,
}

impl KeyCache {
    pub fn new(store: Arc<dyn Access>) -> KeyCache {
        KeyCache {
            store,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The source a write key belongs to, or `None` for an unknown or expired key.
    pub async fn source_for(&self, key: &str, now: i64) -> Result<Option<Source>, Response> {
        let hash = secret::hash(key);
        if let Some((source, at)) = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
        {
            if at.elapsed() < KEY_TTL {
                return Ok(Some(source.clone()));
            }
        }
        let found = self.store.source_for_key(&hash, now).await.map_err(|e| {
            tracing::error!(error = %e, "write key lookup failed");
            crate::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store could not be asked about this write key: retry",
            )
        })?;
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        match &found {
            Some(source) => {
                if known.len() >= KEY_CACHE_MAX {
                    known.clear();
                }
                known.insert(hash, (source.clone(), Instant::now()));
            }
            None => {
                known.remove(&hash);
            }
        }
        Ok(found)
    }
}
