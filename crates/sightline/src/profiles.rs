//! Keeps unified profiles current from the log: the server follows the log into one
//! in-memory [`Profiles`]; the command line rebuilds the same state from the log.

use anyhow::Result;
use sightline_identity::Rules;
use sightline_profiles::Profiles;
use sightline_store::Store;
use std::sync::{Arc, RwLock};
use std::time::Duration;

const PAGE: usize = 1000;

/// Profiles rebuilt from the whole log.
pub async fn rebuild(store: &dyn Store) -> Result<Profiles> {
    let mut profiles = Profiles::new(Rules::default());
    loop {
        let page = store.read_events(profiles.last_seq(), PAGE, None).await?;
        if page.is_empty() {
            return Ok(profiles);
        }
        for event in &page {
            profiles.apply(event);
        }
    }
}

/// Applies new log events to `profiles` as they are committed, forever.
pub async fn follow(store: Arc<dyn Store>, profiles: Arc<RwLock<Profiles>>) {
    let mut idle = tokio::time::interval(Duration::from_millis(50));
    loop {
        let after = profiles.read().expect("profiles lock poisoned").last_seq();
        match store.read_events(after, PAGE, None).await {
            Ok(page) if !page.is_empty() => {
                let mut profiles = profiles.write().expect("profiles lock poisoned");
                for event in &page {
                    profiles.apply(event);
                }
                metrics::gauge!("sightline_profiles_applied_seq").set(profiles.last_seq() as f64);
                metrics::gauge!("sightline_profiles").set(profiles.profile_count() as f64);
                if page.len() == PAGE {
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "profiles: cannot read the log; retrying"),
        }
        idle.tick().await;
    }
}
