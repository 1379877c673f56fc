//! Keeps unified profiles and audience memberships current from the log: the server follows
//! the log into one in-memory [`Book`] and saves the profiles it changes to the store after
//! every page; the command line rebuilds the same state from the log. Both are derived
//! state: a rebuild from the log gives the same answer.

use crate::processors::{PositionFuture, Processor, Step, StepFuture};
use anyhow::Result;
use sightline_audience::{Audience, ComputedTrait};
use sightline_consent::Policy;
use sightline_core::{
    time, AudienceDefinition, ProfileRows, ProfileSave, ProfilesState, StoredEvent, TraitDefinition,
};
use sightline_identity::Rules;
use sightline_profiles::{Memberships, Profiles};
use sightline_store::{Store, StoreError};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

const PAGE: usize = 1000;

/// Profiles and the memberships of the stored audiences.
pub struct Book {
    pub profiles: Profiles,
    pub memberships: Memberships,
    /// The definitions `memberships` was built from.
    definitions: Definitions,
    pub rules: ProfileRules,
    /// Where the stored profiles stand: the base of the next save.
    saved_seq: i64,
}

/// The server's book, kept current by the follower and read by every request. A panic
/// while the lock is held (a bug) must not take every later request down with it: the
/// lock is taken as it was left, and the log stays the truth a rebuild restores.
#[derive(Clone)]
pub struct Live(Arc<RwLock<Book>>);

impl Live {
    pub fn new(book: Book) -> Live {
        Live(Arc::new(RwLock::new(book)))
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Book> {
        self.0.read().unwrap_or_else(|poisoned| {
            tracing::error!("profiles: a reader or the follower panicked; reading on");
            poisoned.into_inner()
        })
    }

    fn write(&self) -> RwLockWriteGuard<'_, Book> {
        self.0.write().unwrap_or_else(|poisoned| {
            tracing::error!("profiles: a reader or the follower panicked; writing on");
            poisoned.into_inner()
        })
    }

    /// The rules the profiles are derived under.
    pub fn rules(&self) -> ProfileRules {
        self.read().rules.clone()
    }

    /// The seq through which the profiles have taken in the log.
    pub fn applied_seq(&self) -> i64 {
        self.read().profiles.last_seq()
    }
}

/// What profiles are derived under: the identity rules, the consent mapping (which decodes
/// the ledgers' signals), and their fingerprint, stored beside the profiles.
#[derive(Clone)]
pub struct ProfileRules {
    pub rules: Rules,
    pub policy: Policy,
    pub fingerprint: String,
}

/// The stored audience and computed trait definitions.
#[derive(PartialEq)]
struct Definitions {
    audiences: Vec<AudienceDefinition>,
    traits: Vec<TraitDefinition>,
}

impl Definitions {
    async fn load(store: &dyn Store) -> Result<Definitions> {
        Ok(Definitions {
            audiences: store.list_audiences().await?,
            traits: store.list_traits().await?,
        })
    }

    /// What the stored membership and trait states were kept under: the rules and the
    /// names they are stored by (which destinations an audience syncs to is not part of it).
    fn fingerprint(&self) -> String {
        let mut text = String::new();
        for a in &self.audiences {
            text.push_str(&format!("audience\0{}\0{}\n", a.name, a.rule));
        }
        for t in &self.traits {
            text.push_str(&format!("trait\0{}\0{}\n", t.name, t.definition));
        }
        sightline_core::secret::hash(&text)[..16].to_owned()
    }

    fn audiences(&self) -> Vec<Audience> {
        self.audiences
            .iter()
            .filter_map(|d| match Audience::parse(d.name.clone(), &d.rule) {
                Ok(audience) => Some(audience),
                Err(e) => {
                    tracing::warn!(audience = %d.name, error = %e, "skipping an audience whose rule no longer parses");
                    None
                }
            })
            .collect()
    }

    fn traits(&self) -> Vec<ComputedTrait> {
        self.traits
            .iter()
            .filter_map(|d| match serde_json::from_value::<ComputedTrait>(d.definition.clone()) {
                Ok(computed) => Some(computed),
                Err(e) => {
                    tracing::warn!(computed_trait = %d.name, error = %e, "skipping a computed trait whose definition no longer reads");
                    None
                }
            })
            .collect()
    }
}

impl Book {
    fn new(definitions: Definitions, rules: ProfileRules) -> Book {
        let mut profiles = Profiles::with_policy(rules.rules.clone(), rules.policy.clone());
        profiles.track_changes_after(i64::MAX);
        Book {
            profiles,
            memberships: Memberships::new(definitions.audiences(), definitions.traits()),
            definitions,
            rules,
            saved_seq: 0,
        }
    }

    /// The book a save left in the store, without replaying the log: `rows` as stored at
    /// `state`, which was kept under these rules and definitions.
    fn restore(
        definitions: Definitions,
        rules: ProfileRules,
        state: &ProfilesState,
        rows: &ProfileRows,
        now: i64,
    ) -> Result<Book> {
        let corrupt = |e: String| StoreError::Corrupt(format!("stored profiles: {e}"));
        let profiles =
            Profiles::restore(rules.rules.clone(), rules.policy.clone(), rows, state.seq)
                .map_err(corrupt)?;
        let memberships = Memberships::restore(
            definitions.audiences(),
            definitions.traits(),
            &profiles,
            &rows.states,
            now,
        )
        .map_err(corrupt)?;
        Ok(Book {
            profiles,
            memberships,
            definitions,
            rules,
            saved_seq: state.seq,
        })
    }

    fn state(&self) -> ProfilesState {
        ProfilesState {
            seq: self.profiles.last_seq(),
            rules: self.rules.fingerprint.clone(),
            definitions: self.definitions.fingerprint(),
        }
    }

    /// The changes since the last save, on top of it.
    fn changes(&mut self) -> ProfileSave {
        let mut rows = self.profiles.take_changes();
        rows.states = self.memberships.take_state_rows();
        ProfileSave {
            replace: false,
            base_seq: self.saved_seq,
            state: self.state(),
            rows,
        }
    }

    /// Everything, replacing whatever is stored.
    fn snapshot(&self) -> ProfileSave {
        let mut rows = self.profiles.snapshot();
        rows.states = self.memberships.state_rows();
        ProfileSave {
            replace: true,
            base_seq: 0,
            state: self.state(),
            rows,
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
pub async fn rebuild(store: &dyn Store, rules: ProfileRules) -> Result<Book> {
    let mut book = Book::new(Definitions::load(store).await?, rules);
    book.catch_up(store).await?;
    book.memberships.take_changes();
    book.memberships.forget_state_changes();
    Ok(book)
}

/// Rebuilds profiles from the whole log and stores them in place of what was stored.
pub async fn rebuild_stored(store: &dyn Store, rules: ProfileRules) -> Result<Book> {
    let book = rebuild(store, rules).await?;
    store.save_profiles(book.snapshot()).await?;
    Ok(book)
}

/// The server's book at start: the stored one brought up to the log's end, when it was
/// kept under the same identity rules and definitions (no replay but of the events past
/// it); else rebuilt from the whole log and stored in place of what was.
pub async fn open(store: &dyn Store, rules: ProfileRules) -> Result<Book> {
    let definitions = Definitions::load(store).await?;
    let kept_under = |state: &ProfilesState| {
        state.rules == rules.fingerprint && state.definitions == definitions.fingerprint()
    };
    let log_end = store.last_seq().await?;
    let resumable = match store.profiles_state().await? {
        Some(state) if kept_under(&state) && state.seq <= log_end => store
            .load_profiles()
            .await?
            // Read again with the rows: another process may have saved in between.
            .filter(|(state, _)| kept_under(state)),
        _ => None,
    };
    let resumed = resumable.is_some();
    let replay_from = resumable.as_ref().map_or(0, |(state, _)| state.seq);
    metrics::gauge!("sightline_profiles_start_replay_from_seq").set(replay_from as f64);
    let mut book = match resumable {
        Some((state, rows)) => {
            let started = Instant::now();
            let book = Book::restore(definitions, rules, &state, &rows, time::now_ms())?;
            tracing::info!(
                profiles = book.profiles.profile_count(),
                seq = state.seq,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "profiles: resumed from the store"
            );
            book
        }
        None => {
            tracing::info!(
                "profiles: rebuilding from the log (first start, or the identity rules or audience definitions changed)"
            );
            let mut book = rebuild(store, rules).await?;
            store.save_profiles(book.snapshot()).await?;
            book.saved_seq = book.profiles.last_seq();
            book.profiles.track_changes_after(book.saved_seq);
            book
        }
    };
    book.catch_up(store).await?;
    // Past a resumed position, the events were never applied by a follower that saved
    // their enter and exit records (a crash came first): those records are news, stored
    // now with the state they lead to. A rebuild's are history, as before.
    let news = book.memberships.take_changes();
    let mut save = book.changes();
    if resumed {
        save.rows.audience_changes = news_rows(&news);
    }
    book.saved_seq = save.state.seq;
    store.save_profiles(save).await?;
    Ok(book)
}

/// Enter and exit records as the store keeps them: `(audience, JSON)`.
fn news_rows(news: &[sightline_audience::MembershipChange]) -> Vec<(String, String)> {
    news.iter()
        .filter_map(|c| Some((c.audience.clone(), serde_json::to_string(c).ok()?)))
        .collect()
}

/// A save the follower owes the store.
enum Owed {
    Changes(Box<ProfileSave>),
    /// Another process rewrote the stored profiles: store this server's state whole.
    Snapshot,
}

/// Makes the store hold what the book holds; on failure, says what is still owed.
async fn pay(store: &dyn Store, book: &Live, owed: Owed) -> Result<(), Owed> {
    let save = match owed {
        Owed::Changes(save) => *save,
        Owed::Snapshot => book.read().snapshot(),
    };
    let (seq, replace) = (save.state.seq, save.replace);
    let retry = (!replace).then(|| save.clone());
    match store.save_profiles(save).await {
        Ok(()) => {
            book.write().saved_seq = seq;
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "profiles: cannot store the profiles");
            Err(match (e, retry) {
                (StoreError::Conflict(_), _) | (_, None) => Owed::Snapshot,
                (_, Some(save)) => Owed::Changes(Box::new(save)),
            })
        }
    }
}

/// The profiles processor: applies new log events as they are committed, fires membership
/// timers, and saves what changed (with the audience enter and exit records, which audience
/// sync reads) after every page. A new audience or trait definition rebuilds the book from
/// the log, then swaps it in.
pub struct Follower {
    store: Arc<dyn Store>,
    book: Live,
    /// A save that failed: new events wait until the store holds what the book holds.
    owed: std::sync::Mutex<Option<Owed>>,
    /// When the definitions were last compared with the stored ones.
    checked: std::sync::Mutex<Instant>,
}

/// How often the follower compares the audience and trait definitions with the stored ones.
const DEFINITIONS_EVERY: Duration = Duration::from_secs(1);

impl Follower {
    pub fn new(store: Arc<dyn Store>, book: Live) -> Follower {
        Follower {
            store,
            book,
            owed: std::sync::Mutex::new(None),
            checked: std::sync::Mutex::new(Instant::now()),
        }
    }

    async fn page(&self) -> Result<Step> {
        let store = self.store.as_ref();
        let debt = self
            .owed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(debt) = debt {
            if let Err(debt) = pay(store, &self.book, debt).await {
                *self.owed.lock().unwrap_or_else(PoisonError::into_inner) = Some(debt);
                anyhow::bail!("the profiles could not be stored");
            }
        }
        let due = {
            let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
            let due = checked.elapsed() >= DEFINITIONS_EVERY;
            if due {
                *checked = Instant::now();
            }
            due
        };
        if due {
            reload_if_changed(store, &self.book).await?;
        }
        let after = self.book.read().profiles.last_seq();
        let page = store.read_events(after, PAGE, None).await?;
        let save = {
            let mut guard = self.book.write();
            let book = &mut *guard;
            let now = time::now_ms();
            for event in &page {
                book.apply(event, now);
            }
            book.memberships.fire_timers(&book.profiles, now);
            metrics::gauge!("sightline_profiles_applied_seq").set(book.profiles.last_seq() as f64);
            metrics::gauge!("sightline_profiles").set(book.profiles.profile_count() as f64);
            let news = book.memberships.take_changes();
            // Timers change memberships with no new event: their records are saved too.
            (book.profiles.last_seq() != book.saved_seq || !news.is_empty()).then(|| {
                let mut save = book.changes();
                save.rows.audience_changes = news_rows(&news);
                save
            })
        };
        if let Some(save) = save {
            if let Err(debt) = pay(store, &self.book, Owed::Changes(Box::new(save))).await {
                *self.owed.lock().unwrap_or_else(PoisonError::into_inner) = Some(debt);
                anyhow::bail!("the profiles could not be stored");
            }
        }
        Ok(if page.len() == PAGE {
            Step::More
        } else {
            Step::Idle
        })
    }
}

impl Processor for Follower {
    fn name(&self) -> String {
        "profiles".into()
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(self.page())
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(50)
    }

    fn applied_through(&self) -> PositionFuture<'_> {
        Box::pin(async { Ok(Some(self.book.applied_seq())) })
    }
}

async fn reload_if_changed(store: &dyn Store, book: &Live) -> Result<()> {
    let definitions = Definitions::load(store).await?;
    if definitions == book.read().definitions {
        return Ok(());
    }
    let (rules, saved_seq) = {
        let current = book.read();
        (current.rules.clone(), current.saved_seq)
    };
    // The stored profiles follow the log, not the audiences: the fresh book saves on from
    // where the stored ones stand.
    let mut fresh = Book::new(definitions, rules);
    fresh.profiles.track_changes_after(saved_seq);
    fresh.saved_seq = saved_seq;
    fresh.catch_up(store).await?;
    fresh.memberships.take_changes();
    *book.write() = fresh;
    Ok(())
}

/// Delivery reads the consent in force for an event's profile from the book.
pub struct BookLedger(pub Live);

impl sightline_activate::ConsentLedger for BookLedger {
    fn known_through(&self) -> i64 {
        self.0.read().profiles.last_seq()
    }

    fn consent_for(
        &self,
        event: &StoredEvent,
        body: &serde_json::Value,
    ) -> Option<sightline_consent::ConsentState> {
        let book = self.0.read();
        let profile = book.profiles.profile_of_event(body)?;
        let facts = book.profiles.facts(profile)?;
        Some(
            facts
                .consent
                .state_at(sightline_profiles::event_time(event, body), event.seq),
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{EventType, NewEvent};
    use sightline_store::{Definitions, EventLog};

    fn viewed(anonymous_id: &str) -> NewEvent {
        NewEvent {
            source_id: 1,
            message_id: format!("m-{anonymous_id}"),
            event_type: EventType::Track,
            received_at: time::now_ms(),
            body: format!(r#"{{"type":"track","event":"Viewed","anonymousId":"{anonymous_id}"}}"#),
        }
    }

    fn rules() -> ProfileRules {
        ProfileRules {
            rules: Rules::default(),
            policy: Policy::default(),
            fingerprint: "test".into(),
        }
    }

    /// Events logged after the last save of a server that then died were never taken in
    /// by a follower: the start that resumes applies them and stores their audience news
    /// (so audience sync sends them); a rebuild's news stay history.
    #[tokio::test]
    async fn a_resumed_start_stores_the_news_of_the_events_past_the_save() {
        let dir = tempfile::tempdir().unwrap();
        let store = sightline_store::SqliteStore::open(dir.path())
            .await
            .unwrap();
        store
            .create_audience("keen", r#"event "Viewed" count >= 1 within 30d"#, &[])
            .await
            .unwrap();
        store.append(vec![viewed("a1")], 0).await.unwrap();
        open(&store, rules()).await.unwrap();
        assert!(
            store
                .audience_history("keen", 0, 10)
                .await
                .unwrap()
                .is_empty(),
            "a rebuild's enter records are history"
        );
        // Acknowledged, then the server died before its follower saved.
        store.append(vec![viewed("a2")], 0).await.unwrap();
        let book = open(&store, rules()).await.unwrap();
        let history = store.audience_history("keen", 0, 10).await.unwrap();
        assert_eq!(history.len(), 1, "{history:?}");
        assert!(history[0].1.contains("entered"), "{history:?}");
        assert_eq!(book.memberships.members("keen").unwrap().len(), 2);
    }
}
