//! Keeps unified profiles and audience memberships current from the log: the server follows
//! the log into one in-memory [`Book`]; the command line rebuilds the same state from the
//! log. Both are derived state: a rebuild from the log gives the same answer.

use anyhow::Result;
use sightline_audience::{Audience, MembershipChange};
use sightline_core::{time, AudienceDefinition, StoredEvent};
use sightline_identity::Rules;
use sightline_profiles::{Memberships, Profiles};
use sightline_store::Store;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

const PAGE: usize = 1000;

/// Profiles and the memberships of the stored audiences.
pub struct Book {
    pub profiles: Profiles,
    pub memberships: Memberships,
    /// The definitions `memberships` was built from.
    pub definitions: Vec<AudienceDefinition>,
    pub rules: Rules,
}

impl Book {
    fn new(definitions: Vec<AudienceDefinition>, rules: Rules) -> Book {
        let audiences = definitions
            .iter()
            .filter_map(|d| match Audience::parse(d.name.clone(), &d.rule) {
                Ok(audience) => Some(audience),
                Err(e) => {
                    tracing::warn!(audience = %d.name, error = %e, "skipping an audience whose rule no longer parses");
                    None
                }
            })
            .collect();
        Book {
            profiles: Profiles::new(rules.clone()),
            memberships: Memberships::new(audiences),
            definitions,
            rules,
        }
    }

    fn apply(&mut self, event: &StoredEvent, now: i64) {
        let applied = self.profiles.apply(event);
        self.memberships
            .on_event(&self.profiles, &applied, event, now);
    }

    /// Reads the log from where this book stands to its end.
    async fn catch_up(&mut self, store: &dyn Store) -> Result<()> {
        loop {
            let page = store
                .read_events(self.profiles.last_seq(), PAGE, None)
                .await?;
            let now = time::now_ms();
            for event in &page {
                self.apply(event, now);
            }
            if page.len() < PAGE {
                self.memberships.fire_timers(&self.profiles, now);
                return Ok(());
            }
        }
    }
}

/// Profiles and memberships rebuilt from the whole log (a new audience's backfill). The
/// enter and exit records of the replay are history, not news: none is left to sync.
pub async fn rebuild(store: &dyn Store, rules: Rules) -> Result<Book> {
    let mut book = Book::new(store.list_audiences().await?, rules);
    book.catch_up(store).await?;
    book.memberships.take_changes();
    Ok(book)
}

/// Applies new log events as they are committed and fires membership timers, forever. A
/// new audience definition rebuilds the book from the log, then swaps it in.
pub async fn follow(
    store: Arc<dyn Store>,
    book: Arc<RwLock<Book>>,
    changes: mpsc::Sender<MembershipChange>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        if ticks.is_multiple_of(20) {
            if let Err(e) = reload_if_changed(store.as_ref(), &book).await {
                tracing::warn!(error = %e, "audiences: cannot reload definitions; retrying");
            }
        }
        let after = book.read().expect("book lock poisoned").profiles.last_seq();
        let page = match store.read_events(after, PAGE, None).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "profiles: cannot read the log; retrying");
                continue;
            }
        };
        let news = {
            let mut guard = book.write().expect("book lock poisoned");
            let book = &mut *guard;
            let now = time::now_ms();
            for event in &page {
                book.apply(event, now);
            }
            book.memberships.fire_timers(&book.profiles, now);
            metrics::gauge!("sightline_profiles_applied_seq").set(book.profiles.last_seq() as f64);
            metrics::gauge!("sightline_profiles").set(book.profiles.profile_count() as f64);
            book.memberships.take_changes()
        };
        for change in news {
            // The syncer keeps up or holds the follower back; nothing is dropped.
            if changes.send(change).await.is_err() {
                break;
            }
        }
        if page.len() == PAGE {
            tick.reset_immediately();
        }
    }
}

async fn reload_if_changed(store: &dyn Store, book: &RwLock<Book>) -> Result<()> {
    let definitions = store.list_audiences().await?;
    if definitions == book.read().expect("book lock poisoned").definitions {
        return Ok(());
    }
    let rules = book.read().expect("book lock poisoned").rules.clone();
    let mut fresh = Book::new(definitions, rules);
    fresh.catch_up(store).await?;
    fresh.memberships.take_changes();
    *book.write().expect("book lock poisoned") = fresh;
    Ok(())
}

/// Members as the API and the command line show them: each profile with its identifiers.
pub fn member_list(
    book: &Book,
    members: &std::collections::BTreeSet<sightline_identity::ProfileId>,
) -> Vec<serde_json::Value> {
    members
        .iter()
        .filter_map(|&id| book.profiles.identity(id))
        .map(|profile| serde_json::json!({"id": profile.id, "identifiers": profile.identifiers}))
        .collect()
}
